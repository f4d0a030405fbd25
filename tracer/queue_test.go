package tracer

import "testing"

// TestBatchQueueAllocatesWithBacklog: the queue allocates no batch before
// the reader asks for one, at most its capacity plus two while the
// consumer lags, and gives back to the garbage collector all but
// idleBatches once the consumer has caught up.
func TestBatchQueueAllocatesWithBacklog(t *testing.T) {
	const n = 32
	q := newBatchQueue(n, OverflowBlock)
	if got := q.made.Load(); got != 0 {
		t.Fatalf("new queue made %d batches, want 0", got)
	}
	done := make(chan struct{})
	// The reader fills the queue while the consumer takes nothing.
	for range n {
		b := q.get(done)
		b.add([]byte{byte(tcpscopeEventKindEVENT_STATE)})
		q.full <- b
	}
	filling := q.get(done)
	consuming := <-q.full
	spare := q.get(done)
	if got := q.made.Load(); got != n+2 {
		t.Fatalf("made %d batches with the queue full, want %d", got, n+2)
	}
	// None is left to make: get waits for a consumed batch, or done.
	close(done)
	if b := q.get(done); b != nil {
		t.Fatalf("get made batch %d of a queue of %d", q.made.Load(), n)
	}
	done = make(chan struct{})
	// Consumed while others are queued: kept for reuse.
	q.put(consuming)
	if got, want := q.made.Load(), int32(n+2); got != want {
		t.Fatalf("a batch consumed with %d queued was given back: made %d, want %d", len(q.full), got, want)
	}
	inHand := q.get(done)
	if inHand == nil || inHand.len() != 0 {
		t.Fatalf("get after put = %v, want the consumed batch, emptied", inHand)
	}
	// The consumer catches up: a batch it ends while others are still
	// queued is kept; one it ends with the queue empty goes back, as
	// long as more than idleBatches exist.
	for len(q.full) > 1 {
		q.put(<-q.full)
	}
	if got := q.made.Load(); got != n+2 {
		t.Fatalf("made %d while the backlog drained, want %d", got, n+2)
	}
	q.put(<-q.full)
	for _, b := range []*batch{filling, spare, inHand} {
		q.put(b)
	}
	if got, want := q.made.Load(), int32(n+2-4); got != want {
		t.Fatalf("made %d after four batches came back to an empty queue, want %d", got, want)
	}
	for q.made.Load() > idleBatches {
		q.put(q.get(done))
	}
	if got := q.made.Load(); got != idleBatches {
		t.Fatalf("made %d once idle, want %d", got, idleBatches)
	}
	if got := len(q.free); got != idleBatches {
		t.Fatalf("free list holds %d batches, want %d", got, idleBatches)
	}
}

// TestBatchRoom: a batch holds 256 records of 128 bytes (what records
// average in a storm) in its 32 KiB, and is sent with fewer when they are
// longer: the room goes by bytes, not by the longest kind.
func TestBatchRoom(t *testing.T) {
	for _, c := range []struct {
		size, want int
	}{{128, batchRecords}, {96, batchRecords}, {maxEventSize, batchBytes / maxEventSize}} {
		b := newBatch()
		raw := make([]byte, c.size)
		n := 0
		for b.add(raw) {
			n++
			if b.full() {
				break
			}
		}
		if n != c.want || cap(b.buf) != batchBytes {
			t.Errorf("%d-byte records: %d in a batch of %d bytes, want %d in %d", c.size, n, cap(b.buf), c.want, batchBytes)
		}
	}
}
