package tracer

import (
	"fmt"
	"sync/atomic"
)

// OverflowMode says what the ring reader does when the queue to the rest
// of the pipeline is full.
type OverflowMode string

// Overflow modes (--on-overflow).
const (
	// OverflowDrop waits while the ring is less than 7/8 full, then
	// drops the batch and counts its records per kind: they are reported
	// in `lost` records with "where":"queue". The ring keeps being
	// drained: the kernel never finds it full because output is slow.
	OverflowDrop OverflowMode = "drop"
	// OverflowBlock makes the reader wait for room: the ring fills and
	// the kernel drops instead (counted, "where":"ring").
	OverflowBlock OverflowMode = "block"
)

// ParseOverflow parses an --on-overflow value.
func ParseOverflow(s string) (OverflowMode, error) {
	switch m := OverflowMode(s); m {
	case OverflowDrop, OverflowBlock:
		return m, nil
	}
	return "", &ConfigError{Msg: fmt.Sprintf("bad --on-overflow %s: want drop or block", QuoteArg(s))}
}

// Sizes of the queue between the ring reader and the consumer.
const (
	// batchRecords is how many records a batch holds at most.
	batchRecords = 256
	// batchBytes is a batch's room for raw records: 128 bytes a record,
	// about what records average in a storm (state changes with their
	// owner are 128 bytes, packets 96, a CLOSE with counters up to 248).
	// A batch of larger records is sent before it has 256.
	batchBytes = batchRecords * 128
	// DefaultQueueBatches is the queue's capacity in batches: 131,072
	// records, 16 MiB of raw records when full. With the 8 MiB ring
	// that is what a consumer short of CPU falls behind in a storm of
	// 100,000 short connections on two busy cores (docs/benchmarks.md):
	// 64 batches lost records in most such storms, 512 in none.
	DefaultQueueBatches = 512
	// idleBatches is how many batches the queue keeps allocated once the
	// consumer has caught up; the others, allocated while it fell
	// behind, go back to the garbage collector.
	idleBatches = 8
)

// DefaultQueueRecords is the queue's default capacity in records
// (--queue-size).
const DefaultQueueRecords = DefaultQueueBatches * batchRecords

// Bounds of --queue-size, in records: one batch to the most batches a
// Config takes.
const (
	MinQueueRecords = batchRecords
	MaxQueueRecords = maxQueueBatches * batchRecords
)

// maxQueueBatches bounds Config.QueueBatches.
const maxQueueBatches = 1 << 16

// QueueBatchesFor returns the number of batches that hold a --queue-size
// of n records (rounded up to whole batches of 256), or a ConfigError.
func QueueBatchesFor(n int) (int, error) {
	if n < MinQueueRecords || n > MaxQueueRecords {
		return 0, &ConfigError{Msg: fmt.Sprintf("bad --queue-size %d: want %d to %d records", n, MinQueueRecords, MaxQueueRecords)}
	}
	return (n + batchRecords - 1) / batchRecords, nil
}

// batch is raw ring records copied back to back into a preallocated
// buffer. Batches are recycled through the queue's free list: nothing is
// allocated per record or per batch once the queue exists.
type batch struct {
	buf  []byte
	ends []int32 // end offset of each record in buf
	// drained: the ring was read empty after these records.
	drained bool
	// last: the reader's last batch; err, why it stopped (nil at the end
	// of the stream).
	last bool
	err  error
}

func newBatch() *batch {
	return &batch{buf: make([]byte, 0, batchBytes), ends: make([]int32, 0, batchRecords)}
}

func (b *batch) reset() {
	b.buf, b.ends = b.buf[:0], b.ends[:0]
	b.drained, b.last, b.err = false, false, nil
}

// add copies raw into b; false when b has no room. A record longer than
// any kind is cut to maxEventSize (the decoder reads no further).
func (b *batch) add(raw []byte) bool {
	if len(raw) > maxEventSize {
		raw = raw[:maxEventSize]
	}
	if len(b.ends) == cap(b.ends) || len(b.buf)+len(raw) > cap(b.buf) {
		return false
	}
	b.buf = append(b.buf, raw...)
	b.ends = append(b.ends, int32(len(b.buf)))
	return true
}

func (b *batch) full() bool { return len(b.ends) == cap(b.ends) }

// len is the number of records in b.
func (b *batch) len() int { return len(b.ends) }

// record returns the i-th raw record; valid until b is recycled.
func (b *batch) record(i int) []byte {
	start := int32(0)
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.buf[start:b.ends[i]:b.ends[i]]
}

// batchQueue is the bounded queue from the ring reader to the consumer,
// with its free list of batches. Batches are allocated as the backlog
// needs them, up to the capacity plus the two in hand, and given back
// once the consumer has caught up: memory follows the backlog, bounded.
type batchQueue struct {
	full chan *batch
	free chan *batch
	mode OverflowMode
	// made counts the batches allocated and not given back; at most
	// maxMade. Only the reader adds, only the consumer takes away.
	made    atomic.Int32
	maxMade int32
	// dropped counts the records dropped on overflow, per kernel event
	// kind (index 0: a kind byte no kind has). Written by the reader,
	// read by the consumer.
	dropped [tcpscopeEventKindEVENT_KIND_MAX]atomic.Uint64
}

// newBatchQueue makes a queue of n batches, which can need n+2 batches:
// n queued, one being filled, one being consumed. They are allocated
// when first needed.
func newBatchQueue(n int, mode OverflowMode) *batchQueue {
	return &batchQueue{full: make(chan *batch, n), free: make(chan *batch, n+2), mode: mode, maxMade: int32(n + 2)}
}

// get takes an empty batch from the free list, or a new one while fewer
// than the queue can need exist (nil once done is closed). Called by
// the reader only.
func (q *batchQueue) get(done <-chan struct{}) *batch {
	select {
	case b := <-q.free:
		b.reset()
		return b
	default:
	}
	if q.made.Load() < q.maxMade {
		q.made.Add(1)
		return newBatch()
	}
	select {
	case b := <-q.free:
		b.reset()
		return b
	case <-done:
		return nil
	}
}

// put returns a consumed batch to the free list, or to the garbage
// collector when the queue is empty and more than idleBatches exist;
// it never blocks. Called by the consumer only.
func (q *batchQueue) put(b *batch) {
	if len(q.full) == 0 && q.made.Load() > idleBatches {
		q.made.Add(-1)
		return
	}
	q.free <- b
}

// drop counts b's records per kind as lost and empties b.
func (q *batchQueue) drop(b *batch) {
	for i := range b.len() {
		q.dropped[kindIndex(b.record(i))].Add(1)
	}
	b.reset()
}

// kindIndex is a raw record's kernel kind, 0 for none known.
func kindIndex(raw []byte) int {
	if len(raw) == 0 || int(raw[0]) >= len(kindByID) || kindByID[raw[0]] == nil {
		return 0
	}
	return int(raw[0])
}
