package tracer

import (
	"errors"
	"time"
)

// stages is the user-space path of a decoded record in Run: the TIME_WAIT
// tracker, the correlator, then the reorder stage, which writes to the
// sink. Records that wait in the tracker or the correlator (a TIME_WAIT
// start until its socket's CLOSE, a SYN_SENT until its port is known) are
// released in front of the record that completes them and keep their
// timestamps; the reorder stage puts them in place when they waited less
// than its window.
type stages struct {
	corr *correlator
	tw   *twTracker
	out  *reorder
}

func newStages(corr *correlator, tw *twTracker, sink Sink, window time.Duration) *stages {
	return &stages{corr: corr, tw: tw, out: newReorder(sink, window, reorderCap)}
}

// emit gives r its conn id and queues it for the sink.
func (s *stages) emit(r *Record) error { return s.corr.process(r, s.out.Write) }

// record handles one decoded record.
func (s *stages) record(r *Record) error {
	if r.twEvent != 0 {
		return s.tw.handle(r, s.emit)
	}
	if err := s.tw.before(r, s.emit); err != nil {
		return err
	}
	return s.emit(r)
}

// tick releases what waited too long, and, when the ring buffer was just
// drained (nothing stamped earlier can still come), the records held for
// ordering that are older than the reorder window.
func (s *stages) tick(now time.Time, drained bool) error {
	if err := s.corr.expire(now, s.out.Write); err != nil {
		return err
	}
	if err := s.tw.tick(now, s.emit); err != nil {
		return err
	}
	if drained {
		return s.out.releaseBefore(now.Add(-time.Duration(s.out.window)))
	}
	return nil
}

// finish releases everything still held, in order; the sink is not
// flushed. Call it once no more records come.
func (s *stages) finish() error {
	if err := s.tw.tick(time.Time{}, s.emit); err != nil {
		return err
	}
	if err := s.corr.expire(time.Time{}, s.out.Write); err != nil {
		return err
	}
	return s.out.release(1<<63 - 1)
}

// held reports whether records wait for ordering.
func (s *stages) held() bool { return s.out.held() > 0 }

// Write handles one decoded record (Stage).
func (s *stages) Write(r *Record) error { return s.record(r) }

// Flush flushes the sink behind the stages (Stage).
func (s *stages) Flush() error { return s.out.next.Flush() }

// End releases everything still held, in order (Stage); the sink is not
// ended.
func (s *stages) End() error { return s.finish() }

// Stage is a step of the record path after decoding: TIME_WAIT tracking
// and correlation (stages), analysis, the count limit, namespace names,
// the output writer, side consumers (Fanout). Records arrive in order from
// one goroutine.
type Stage interface {
	Sink
	// End is the end of the stream: release everything held to the next
	// stage (which Pipeline ends after this one). Nothing is written
	// after End.
	End() error
}

// Ender is a Sink with an end-of-stream call: Pipeline calls End once,
// in data order, after the last record.
type Ender interface {
	End() error
}

// Pipeline is the chain of stages that consume records, wired in one
// place (BuildPipeline). It is a Stage: Write enters the first stage,
// Flush flushes the chain, End ends every stage in data order.
type Pipeline struct {
	head   Sink
	stages []Sink // in data order, the output last
}

// BuildPipeline wires stages in data order in front of out, the last
// stage: each make function receives the stage after it. Stages that
// implement Ender are ended in data order by Pipeline.End.
func BuildPipeline(out Sink, makers ...func(next Sink) Sink) *Pipeline {
	p := &Pipeline{head: out, stages: []Sink{out}}
	for i := len(makers) - 1; i >= 0; i-- {
		p.head = makers[i](p.head)
		p.stages = append([]Sink{p.head}, p.stages...)
	}
	return p
}

// Write passes r to the first stage.
func (p *Pipeline) Write(r *Record) error { return p.head.Write(r) }

// Flush flushes the chain (each stage flushes the next).
func (p *Pipeline) Flush() error { return p.head.Flush() }

// Progress calls Progress on the stages that are Progressers, in data
// order (Progresser).
func (p *Pipeline) Progress(now time.Time, counts *CountsSnapshot) error {
	for _, s := range p.stages {
		if pr, ok := s.(Progresser); ok {
			if err := pr.Progress(now, counts); err != nil {
				return err
			}
		}
	}
	return nil
}

// End ends the stages in data order, then flushes. ErrStop from a stage
// (a count limit reached while summaries are written) ends it normally.
func (p *Pipeline) End() error {
	var err error
	for _, s := range p.stages {
		if e, ok := s.(Ender); ok {
			if err = e.End(); err != nil && !errors.Is(err, ErrStop) {
				return err
			}
		}
	}
	if err = p.head.Flush(); errors.Is(err, ErrStop) {
		err = nil
	}
	return err
}
