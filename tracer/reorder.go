package tracer

import (
	"errors"
	"time"
)

// The kernel side writes every event to one ring buffer shared by all
// CPUs, in the order the events reserve their slot, and stamps each one a
// moment later (bpf_ktime_get_ns after bpf_ringbuf_reserve). A program
// interrupted or preempted between the two, or two CPUs racing, put
// records in the ring out of timestamp order: measured here on a veth pair
// with four client threads, 0.4% of the records, by up to 46 us. The
// reorder stage, the last before the sink, holds each record until
// records stamped reorderWindow later have been read, or until a drained
// ring buffer shows that nothing older can come, and writes them out
// sorted by timestamp (stable: records with equal times keep their
// order).

// Reorder stage bounds.
const (
	// reorderWindow is how far behind the newest record a record is held.
	reorderWindow = 4 * time.Millisecond
	// reorderCap bounds the records held (480 B each: 2 MiB); when it is
	// full the oldest is written at once.
	reorderCap = 4096
)

// reorder sorts the records it is given by Record.Time within a
// time window and passes it on to next. It copies records into a ring of
// preallocated slots: nothing is allocated per record. Records come
// nearly sorted, so a new one is placed by a short walk back from the
// newest. Used by the reader goroutine only.
type reorder struct {
	next   Sink
	window int64 // ns
	slots  []Record
	ts     []int64 // Time of each slot in Unix ns, for cheap compares
	mask   int
	head   int // index of the oldest record
	n      int // records held
	newest int64
	// lastOut is the Time of the last record written; late counts records
	// that came after a later-stamped one had been written (held
	// elsewhere longer than the window), early those written before their
	// window passed because the stage was full.
	lastOut     int64
	late, early uint64
	stopped     bool // next returned ErrStop: write nothing more
}

// newReorder returns a reorder stage writing to next; capacity is rounded
// up to a power of two.
func newReorder(next Sink, window time.Duration, capacity int) *reorder {
	size := 1
	for size < capacity {
		size <<= 1
	}
	return &reorder{next: next, window: int64(window), slots: make([]Record, size), ts: make([]int64, size), mask: size - 1}
}

func (q *reorder) at(i int) int { return (q.head + i) & q.mask }

// Write takes a copy of r, then writes out, oldest first, the records
// that are more than the window older than the newest one.
func (q *reorder) Write(r *Record) error {
	if q.stopped {
		return ErrStop
	}
	if q.n == len(q.slots) {
		q.early++
		if err := q.pop(); err != nil {
			return err
		}
	}
	t := r.Time.UnixNano()
	if t <= q.newest-q.window {
		// Due already, so older than every held record (those are
		// not): out at once. A record held elsewhere longer than the
		// window (a TIME_WAIT record the tracker held back) would
		// otherwise walk past and shift every held record.
		return q.out(r, t)
	}
	// Find the place: after every held record stamped at or before t.
	i := q.n
	for i > 0 && q.ts[q.at(i-1)] > t {
		i--
	}
	for j := q.n; j > i; j-- {
		q.slots[q.at(j)], q.ts[q.at(j)] = q.slots[q.at(j-1)], q.ts[q.at(j-1)]
	}
	q.slots[q.at(i)], q.ts[q.at(i)] = *r, t
	q.n++
	if t > q.newest {
		q.newest = t
	}
	return q.release(q.newest - q.window)
}

// releaseBefore writes out the records stamped at or before t: nothing
// older than t can still come (the ring buffer was drained).
func (q *reorder) releaseBefore(t time.Time) error {
	return q.release(t.UnixNano())
}

func (q *reorder) release(upTo int64) error {
	if q.stopped {
		return ErrStop
	}
	for q.n > 0 && q.ts[q.head] <= upTo {
		if err := q.pop(); err != nil {
			return err
		}
	}
	return nil
}

// pop writes out the oldest held record.
func (q *reorder) pop() error {
	i := q.head
	q.head = (q.head + 1) & q.mask
	q.n--
	return q.out(&q.slots[i], q.ts[i])
}

// out writes r, stamped t (Unix ns), to the next stage.
func (q *reorder) out(r *Record, t int64) error {
	if t < q.lastOut {
		q.late++
	} else {
		q.lastOut = t
	}
	err := q.next.Write(r)
	if err != nil && errors.Is(err, ErrStop) {
		q.stopped = true
	}
	return err
}

// held reports how many records are held.
func (q *reorder) held() int { return q.n }
