package tracer

import (
	"errors"

	"sync/atomic"
)

// Fanout is a Stage that passes every record on the main path (Next) and
// a copy of it to each side consumer (metrics, alerts, a live view)
// through the consumer's own bounded queue. A side consumer that falls
// behind loses records, counted (Side.Dropped), and never stalls the main
// path. Each side consumer runs in its own goroutine.
type Fanout struct {
	Next  Sink
	sides []*Side
}

// Side is a side consumer attached to a Fanout.
type Side struct {
	c       Sink
	q       chan Record
	dropped atomic.Uint64
	done    chan struct{}
	err     error // the consumer's first error; it gets nothing after it
}

// Attach adds a side consumer with a queue of n records and starts its
// goroutine. Call it before the first Write. The consumer gets copies of
// the records (pointed-to data, such as a conn Summary, is shared and must
// not change after it is written), without their Slot; it is flushed whenever its queue runs
// empty and ended (when an Ender) by Fanout.End.
func (f *Fanout) Attach(c Sink, n int) *Side {
	s := &Side{c: c, q: make(chan Record, max(n, 1)), done: make(chan struct{})}
	f.sides = append(f.sides, s)
	go s.run()
	return s
}

func (s *Side) run() {
	defer close(s.done)
	for r := range s.q {
		if s.err != nil {
			continue
		}
		s.err = s.c.Write(&r)
		if s.err == nil && len(s.q) == 0 {
			s.err = s.c.Flush()
		}
	}
}

// Dropped returns how many records the consumer lost because its queue
// was full.
func (s *Side) Dropped() uint64 { return s.dropped.Load() }

// Write passes r on the main path, and queues a copy for every side
// consumer that has room (else counts it dropped). It never waits on a
// side consumer.
func (f *Fanout) Write(r *Record) error {
	if len(f.sides) == 0 {
		return f.Next.Write(r)
	}
	c := *r
	c.Slot = nil // the main path's per-connection state: not for other goroutines
	for _, s := range f.sides {
		select {
		case s.q <- c:
		default:
			s.dropped.Add(1)
		}
	}
	return f.Next.Write(r)
}

// Flush flushes the main path; side consumers flush themselves.
func (f *Fanout) Flush() error { return f.Next.Flush() }

// End lets every side consumer finish its queue, then ends it (when it is
// an Ender). It returns the side consumers' errors; ErrStop from one of
// them is not an error.
func (f *Fanout) End() error {
	var errs []error
	for _, s := range f.sides {
		close(s.q)
		<-s.done
		if e, ok := s.c.(Ender); ok && s.err == nil {
			s.err = e.End()
		}
		if s.err != nil && !errors.Is(s.err, ErrStop) {
			errs = append(errs, s.err)
		}
	}
	return errors.Join(errs...)
}

var _ Stage = (*Fanout)(nil)
