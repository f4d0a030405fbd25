// Package deadline holds items until the time they fall due, so that a
// periodic tick touches only what is due instead of everything that waits
// (the TIME_WAIT tracker's held records, the analyzer's quiet periods).
package deadline

// Heap is a min-heap of values by due time (Unix ns), for deadlines that
// come out of order. Its storage is reused; a heap that drains after
// holding a storm's backlog gives the memory back. The zero Heap is empty
// and ready to use; it is not safe for concurrent use.
type Heap[T any] struct{ q []entry[T] }

type entry[T any] struct {
	at int64
	v  T
}

// shrinkAbove: a drained heap with more room than this lets it go.
const shrinkAbove = 4096

// Len is the number of values held.
func (h *Heap[T]) Len() int { return len(h.q) }

// Push adds v, due at at.
func (h *Heap[T]) Push(at int64, v T) {
	h.q = append(h.q, entry[T]{at, v})
	q := h.q
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p].at <= q[i].at {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

// Due removes and returns the earliest value when it is due at or before
// now; ok is false when nothing is.
func (h *Heap[T]) Due(now int64) (v T, at int64, ok bool) {
	if len(h.q) == 0 || h.q[0].at > now {
		return v, 0, false
	}
	return h.Pop()
}

// Pop removes and returns the earliest value, due or not; ok is false when
// the heap is empty.
func (h *Heap[T]) Pop() (v T, at int64, ok bool) {
	q := h.q
	if len(q) == 0 {
		return v, 0, false
	}
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = entry[T]{} // drop what the value references
	q = q[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && q[l].at < q[m].at {
			m = l
		}
		if l+1 < n && q[l+1].at < q[m].at {
			m = l + 1
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	if n == 0 && cap(q) > shrinkAbove {
		q = nil
	}
	h.q = q
	return top.v, top.at, true
}
