package tracer

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// ringReader is what Run needs of the kernel's ring buffer: a
// *ringbuf.Reader, or a fake in tests. Only the reader goroutine calls
// ReadInto and SetDeadline; Flush may be called from any goroutine.
type ringReader interface {
	ReadInto(*ringbuf.Record) error
	SetDeadline(time.Time)
	Flush() error
	Close() error
	// AvailableBytes is how many bytes wait in the ring; BufferSize its
	// size. Safe from any goroutine.
	AvailableBytes() int
	BufferSize() int
}

// dropCounters reads the kernel's per-CPU drop counters, one per event
// kind (the drops map; a fake in tests).
type dropCounters interface {
	Lookup(key, valueOut any) error
}

// pump is the ring reader goroutine: it copies raw records into batches
// and hands them to the consumer through a batchQueue, so that a slow
// consumer (a blocked stdout) never stops the ring being drained, unless
// the queue's mode is OverflowBlock.
type pump struct {
	r        ringReader
	q        *batchQueue
	interval time.Duration
	// stopping is set by the consumer once nothing more is produced
	// (detached): the pump then makes one more pass over the ring, sends
	// everything, waiting for room, and ends with a last batch.
	stopping atomic.Bool
	// done is closed by the consumer when it stops reading the queue.
	done   chan struct{}
	exited chan struct{}
	// wait polls the ring's fill level while the queue is full.
	wait *time.Timer
}

// Drop mode: while the queue is full the reader waits as long as the ring
// is less than dropFillEighths/8 full, re-checking every overflowPoll; past
// that it drops batches to keep the ring drained. The ring's room is used
// as a buffer first (a consumer short of CPU in a storm catches up once it
// is over); the kernel never finds it full because output is slow.
const overflowPoll = time.Millisecond

// dropFillEighths: how full (in eighths) the ring is when the reader starts
// dropping. The eighth left is the kernel's room while the reader, short of
// CPU itself, is not scheduled (at 10 us per record, 1 MiB of an 8 MiB ring
// is about 8,000 records).
const dropFillEighths = 7

func newPump(r ringReader, q *batchQueue, interval time.Duration) *pump {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pump{r: r, q: q, interval: interval, done: make(chan struct{}), exited: make(chan struct{}), wait: t}
}

// ringFilling reports whether the ring is at least dropFillEighths/8 full.
func (p *pump) ringFilling() bool {
	return 8*p.r.AvailableBytes() >= dropFillEighths*p.r.BufferSize()
}

// run reads the ring until the consumer stops it; every interval without
// records, and on every Flush, it sends the batch so far marked drained
// (possibly empty): the consumer's clock for ticks that depend on it.
func (p *pump) run() {
	defer close(p.exited)
	var raw ringbuf.Record
	b := p.q.get(p.done)
	if b == nil {
		return
	}
	p.r.SetDeadline(time.Now().Add(p.interval))
	final := false
	for {
		err := p.r.ReadInto(&raw)
		switch {
		case err == nil:
			if !b.add(raw.RawSample) {
				if b = p.send(b); b == nil {
					return
				}
				b.add(raw.RawSample)
			}
			if b.full() {
				if b = p.send(b); b == nil {
					return
				}
			}
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			if final {
				b.drained, b.last = true, true
				p.send(b)
				return
			}
			if p.stopping.Load() {
				// The ring may have been read empty before the last
				// producer detached: one more pass, up to what is
				// there now.
				final = true
				p.r.SetDeadline(time.Now())
				continue
			}
			b.drained = true
			if b = p.send(b); b == nil {
				return
			}
			p.r.SetDeadline(time.Now().Add(p.interval))
		default:
			b.err, b.last = fmt.Errorf("read ring buffer: %w", err), true
			p.send(b)
			return
		}
	}
}

// send hands b to the consumer and returns the next batch to fill, or nil
// when the consumer has stopped. When the queue is full in drop mode and
// the ring is nearly full (ringFilling), b's records are counted as dropped and b is
// returned, emptied.
func (p *pump) send(b *batch) *batch {
	if p.q.mode == OverflowDrop && !p.stopping.Load() {
	wait:
		for {
			select {
			case p.q.full <- b:
				break wait
			case <-p.done:
				return nil
			default:
			}
			if p.ringFilling() {
				p.q.drop(b)
				return b
			}
			p.wait.Reset(overflowPoll)
			select {
			case p.q.full <- b:
				p.wait.Stop()
				break wait
			case <-p.done:
				p.wait.Stop()
				return nil
			case <-p.wait.C:
			}
		}
	} else {
		select {
		case p.q.full <- b:
		case <-p.done:
			return nil
		}
	}
	return p.q.get(p.done)
}
