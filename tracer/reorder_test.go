package tracer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// sinkRecorder is a Sink that keeps copies of what it is given.
type sinkRecorder struct {
	recs    []Record
	stopAt  int // return ErrStop from the stopAt-th write (1-based); 0 never
	flushes int
}

func (s *sinkRecorder) Write(r *Record) error {
	s.recs = append(s.recs, *r)
	if s.stopAt > 0 && len(s.recs) >= s.stopAt {
		return ErrStop
	}
	return nil
}

func (s *sinkRecorder) Flush() error { s.flushes++; return nil }

// at returns a record stamped us microseconds after base, tagged with seq.
func at(us int, seq uint32) *Record {
	return &Record{Type: TypePacket, Time: base.Add(time.Duration(us) * time.Microsecond), Seq: seq}
}

func seqs(recs []Record) []uint32 {
	var out []uint32
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func equalSeqs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReorderSortsWithinWindow: records that come out of timestamp order
// by less than the window come out sorted; equal times keep their order;
// a record is held until one stamped a window later arrives.
func TestReorderSortsWithinWindow(t *testing.T) {
	out := &sinkRecorder{}
	q := newReorder(out, time.Millisecond, 16)
	for _, r := range []*Record{at(0, 1), at(30, 4), at(10, 2), at(20, 3), at(20, 33), at(5, 11)} {
		if err := q.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.recs) != 0 {
		t.Fatalf("written before the window passed: %v", seqs(out.recs))
	}
	if err := q.Write(at(1025, 5)); err != nil { // 1 ms after 20 us: releases up to 25 us
		t.Fatal(err)
	}
	if want := []uint32{1, 11, 2, 3, 33}; !equalSeqs(seqs(out.recs), want) {
		t.Errorf("written %v, want %v", seqs(out.recs), want)
	}
	if err := q.releaseBefore(base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if want := []uint32{1, 11, 2, 3, 33, 4, 5}; !equalSeqs(seqs(out.recs), want) || q.held() != 0 {
		t.Errorf("after releaseBefore: %v (%d held), want %v", seqs(out.recs), q.held(), want)
	}
	if q.late != 0 || q.early != 0 {
		t.Errorf("late %d, early %d", q.late, q.early)
	}
	// A record older than what was written goes out at once, counted.
	if err := q.Write(at(2, 6)); err != nil || len(out.recs) != 8 || q.late != 1 {
		t.Errorf("late record: err %v, %d written, late %d", err, len(out.recs), q.late)
	}
}

// TestReorderBounded: a full stage writes its oldest record at once.
func TestReorderBounded(t *testing.T) {
	out := &sinkRecorder{}
	q := newReorder(out, time.Hour, 4)
	for i := range 6 {
		if err := q.Write(at(6-i, uint32(6-i))); err != nil {
			t.Fatal(err)
		}
	}
	if q.held() != 4 || q.early != 2 || len(out.recs) != 2 {
		t.Fatalf("%d held, %d early, %d written", q.held(), q.early, len(out.recs))
	}
	// The two written early were the oldest held at the time.
	if want := []uint32{3, 2}; !equalSeqs(seqs(out.recs), want) {
		t.Errorf("written %v, want %v", seqs(out.recs), want)
	}
}

// TestReorderStops: after the sink says stop nothing more is written.
func TestReorderStops(t *testing.T) {
	out := &sinkRecorder{stopAt: 2}
	q := newReorder(out, time.Microsecond, 8)
	var err error
	for i := 0; i < 5 && err == nil; i++ {
		err = q.Write(at(10*i, uint32(i)))
	}
	if !errors.Is(err, ErrStop) {
		t.Fatalf("Write returned %v, want ErrStop", err)
	}
	if err := q.releaseBefore(base.Add(time.Hour)); !errors.Is(err, ErrStop) || len(out.recs) != 2 {
		t.Errorf("after stop: %v, %d written", err, len(out.recs))
	}
}

// TestStagesTimeWaitOrder: the TIME_WAIT start (timer armed) comes out
// just before the replaced socket's FIN_WAIT2 -> CLOSE, which the kernel
// stamps later but which completes the start record, also without the
// reorder window; the TIME_WAIT end after both. With the window, a record
// of another socket read in between falls into place.
func TestStagesTimeWaitOrder(t *testing.T) {
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:80"
	for _, window := range []time.Duration{0, reorderWindow} {
		out := &sinkRecorder{}
		s := newStages(newCorrelator(0), newTWTracker(), out, window)
		armed := &Record{Type: TypeState, Time: base, Cookie: 5, Local: ap(cli), Remote: ap(srv), twEvent: twArmed, HasState: true}
		other := state(0, srv, cli, StateFinWait1, StateClose, 6, 0)
		other.Time = base.Add(40 * time.Microsecond) // another socket, another CPU
		closed := state(0, cli, srv, StateFinWait2, StateClose, 5, 0)
		closed.Time = base.Add(82 * time.Microsecond)
		expired := &Record{Type: TypeState, Time: base.Add(time.Minute), Cookie: 5, Local: ap(cli), Remote: ap(srv), twEvent: twExpired, HasState: true}
		for _, r := range []*Record{armed, &other, &closed} {
			if err := s.record(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.tick(base.Add(time.Second), true); err != nil {
			t.Fatal(err)
		}
		if err := s.record(expired); err != nil {
			t.Fatal(err)
		}
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range out.recs {
			if window > 0 || r.Local == ap(cli) {
				got = append(got, r.Local.String()+" "+r.OldState.String()+">"+r.State.String())
			}
		}
		want := []string{cli + " FIN_WAIT2>TIME_WAIT", cli + " FIN_WAIT2>CLOSE", cli + " TIME_WAIT>CLOSE"}
		if window > 0 {
			want = append(want[:1:1], srv+" FIN_WAIT1>CLOSE", want[1], want[2])
		}
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Errorf("window %s: out %q, want %q", window, got, want)
		}
	}
}

// BenchmarkReorder: the stage's cost per record on a nearly sorted stream
// (one record in 16 arrives 3 us late), at 1 and 10 us between records
// (a million and 100,000 records/s: about 4,000 and 400 held).
func BenchmarkReorder(b *testing.B) {
	for _, gap := range []time.Duration{time.Microsecond, 10 * time.Microsecond} {
		b.Run(gap.String(), func(b *testing.B) {
			q := newReorder(discardSink{}, reorderWindow, reorderCap)
			recs := make([]Record, 4096)
			for i := range recs {
				recs[i] = Record{Type: TypePacket, Seq: uint32(i)}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := &recs[i&4095]
				d := time.Duration(i) * gap
				if i%16 == 0 {
					d -= 3 * time.Microsecond
				}
				r.Time = base.Add(d)
				if err := q.Write(r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkReorderLate: a record stamped 50 ms before the newest (a
// TIME_WAIT record the tracker held back) while about 400 records are
// held (100,000 records/s).
func BenchmarkReorderLate(b *testing.B) {
	q := newReorder(discardSink{}, reorderWindow, reorderCap)
	recs := make([]Record, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &recs[i&4095]
		d := time.Duration(i) * 10 * time.Microsecond
		if i%2 == 0 {
			d -= 50 * time.Millisecond
		}
		r.Time = base.Add(d)
		if err := q.Write(r); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkReorderBaseline: the same stream written straight to the sink.
func BenchmarkReorderBaseline(b *testing.B) {
	var s Sink = discardSink{}
	recs := make([]Record, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &recs[i&4095]
		r.Time = base.Add(time.Duration(i) * time.Microsecond)
		if err := s.Write(r); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

type discardSink struct{}

func (discardSink) Write(*Record) error { return nil }
func (discardSink) Flush() error        { return nil }
