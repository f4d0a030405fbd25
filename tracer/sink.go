package tracer

import "errors"

// ErrStop may be returned by Sink.Write to end Run without error (for
// example after --count records).
var ErrStop = errors.New("stop tracing")

// Sink receives records from Run, one at a time, from one goroutine.
type Sink interface {
	// Write handles one record. The record is reused after Write returns.
	Write(r *Record) error
	// Flush pushes buffered output; called after every drain and at exit.
	Flush() error
}

// Where records were lost (the `where` of `lost` records).
const (
	// LostInRing: the kernel found the ring buffer full.
	LostInRing = "ring"
	// LostInQueue: the queue from the ring reader to the rest of the
	// pipeline was full (--on-overflow drop).
	LostInQueue = "queue"
)
