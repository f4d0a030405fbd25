package tracer

import "time"

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
