package tracer

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

func twRec(ms int, ev uint8) *Record {
	return &Record{Type: TypeState, Time: base.Add(time.Duration(ms) * time.Millisecond), Cookie: 5,
		Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:80"), twEvent: ev, HasState: true}
}

func TestTimeWaitTracker(t *testing.T) {
	var out []Record
	emit := func(r *Record) error { out = append(out, *r); return nil }
	tr := newTWTracker()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Armed, then the replaced socket's CLOSING -> CLOSE names the old state.
	must(tr.handle(twRec(0, twArmed), emit))
	if len(out) != 0 {
		t.Fatal("start emitted before the replaced socket's close")
	}
	closing := &Record{Type: TypeState, Time: base, Cookie: 5, OldState: 11, State: StateClose,
		Owner: result.Owner{Known: true, PID: 7}}
	must(tr.before(closing, emit))
	if len(out) != 1 || !out[0].TimeWait || out[0].OldState != 11 || out[0].State != StateTimeWait || out[0].Owner.PID != 7 {
		t.Fatalf("start: %+v", out)
	}
	// A re-arm (cancel + arm) is no end.
	must(tr.handle(twRec(1000, twCancelled), emit))
	must(tr.handle(twRec(1000, twArmed), emit))
	must(tr.tick(base.Add(2*time.Second), emit))
	if len(out) != 1 {
		t.Fatalf("re-arm ended TIME_WAIT: %+v", out[1:])
	}
	// Expiry: TIME_WAIT -> CLOSE, expired, 60 s after the start.
	must(tr.handle(twRec(60000, twExpired), emit))
	if len(out) != 2 || out[1].State != StateClose || out[1].TimeWaitEnd != "expired" || out[1].TimeWaitDur != time.Minute ||
		out[1].Owner.PID != 7 {
		t.Fatalf("end: %+v", out[1:])
	}
	// A cancel that no arm follows is a kill, found at the next tick.
	must(tr.handle(twRec(70000, twArmed), emit))
	must(tr.handle(twRec(70500, twCancelled), emit))
	must(tr.tick(base.Add(70510*time.Millisecond), emit))
	// The start (no close named its old state in time) comes out; the
	// cancel is still held.
	if len(out) != 3 || out[2].State != StateTimeWait {
		t.Fatalf("after the first tick: %+v", out[2:])
	}
	must(tr.tick(base.Add(71*time.Second), emit))
	if len(out) != 4 || out[2].State != StateTimeWait || out[2].OldState != StateFinWait2 ||
		out[3].TimeWaitEnd != "killed" || out[3].TimeWaitDur != 500*time.Millisecond {
		t.Fatalf("kill: %+v", out[2:])
	}
	if len(tr.socks) != 0 {
		t.Errorf("%d TIME_WAIT sockets left", len(tr.socks))
	}
}

// BenchmarkTimeWaitTick is the cost of one tick while n sockets are in
// TIME_WAIT, nothing held (their starts were released): what every tick
// costs under a storm. It should not grow with n.
func BenchmarkTimeWaitTick(b *testing.B) {
	emit := func(*Record) error { return nil }
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			tr := newTWTracker()
			for i := range n {
				r := twRec(0, twArmed)
				r.Cookie = uint64(i + 1)
				if err := tr.handle(r, emit); err != nil {
					b.Fatal(err)
				}
				cl := &Record{Type: TypeState, Time: base, Cookie: r.Cookie, OldState: StateFinWait2, State: StateClose}
				if err := tr.before(cl, emit); err != nil {
					b.Fatal(err)
				}
			}
			now := base.Add(time.Second)
			if err := tr.tick(now, emit); err != nil { // released starts go
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := tr.tick(now, emit); err != nil {
					b.Fatal(err)
				}
			}
			if len(tr.socks) != n {
				b.Fatalf("%d sockets, want %d", len(tr.socks), n)
			}
		})
	}
}

// TestTimeWaitHeldByTime: a tick releases exactly the held records older
// than twHold, whatever else the socket went through: a cancel undone by
// a re-arm is no kill, a later cancel is held from its own time, and a
// new socket with the cookie of one that ended is held anew.
func TestTimeWaitHeldByTime(t *testing.T) {
	var out []Record
	emit := func(r *Record) error { out = append(out, *r); return nil }
	tr := newTWTracker()
	step := func(err error, n int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != n {
			t.Fatalf("%d records, want %d: %+v", len(out), n, out)
		}
	}
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	step(tr.handle(twRec(0, twArmed), emit), 0)
	step(tr.handle(twRec(10, twCancelled), emit), 0)
	step(tr.handle(twRec(10, twArmed), emit), 0) // re-arm
	step(tr.handle(twRec(30, twCancelled), emit), 0)
	step(tr.tick(at(70), emit), 1) // the start, not the undone cancel
	if out[0].State != StateTimeWait || out[0].OldState != StateFinWait2 {
		t.Fatalf("start: %+v", out[0])
	}
	step(tr.tick(at(80), emit), 1) // held 50 ms: not yet
	step(tr.tick(at(81), emit), 2)
	if out[1].TimeWaitEnd != "killed" || out[1].TimeWaitDur != 30*time.Millisecond {
		t.Fatalf("kill: %+v", out[1])
	}
	// The cookie again: a TIME_WAIT that expires at once, then a new one.
	step(tr.handle(twRec(100, twArmed), emit), 2)
	step(tr.handle(twRec(110, twExpired), emit), 4)
	step(tr.handle(twRec(120, twArmed), emit), 4)
	step(tr.tick(at(165), emit), 4)
	step(tr.tick(at(171), emit), 5)
	if out[4].State != StateTimeWait || !out[4].Time.Equal(at(120)) {
		t.Fatalf("second start: %+v", out[4])
	}
	step(tr.tick(time.Time{}, emit), 5)
	if tr.held.Len() != 0 || len(tr.socks) != 1 {
		t.Errorf("%d held, %d sockets, want 0 and 1", tr.held.Len(), len(tr.socks))
	}
}

// TestTimeWaitCompact: a socket in TIME_WAIT costs the tracker no
// allocation once a storm runs (its held records' storage and its owner
// are reused), and what it keeps for the 60 s is tens of bytes.
func TestTimeWaitCompact(t *testing.T) {
	tr := newTWTracker()
	emit := func(*Record) error { return nil }
	owner := result.Owner{Known: true, PID: 7, Comm: [16]byte{'s'}}
	now := base
	const live = 512
	i := 0
	step := func() {
		cookie := uint64(i + 1)
		now = now.Add(100 * time.Microsecond)
		arm := Record{Type: TypeState, Time: now, Cookie: cookie, twEvent: twArmed, HasState: true}
		closed := Record{Type: TypeState, Time: now, Cookie: cookie, OldState: StateFinWait2, State: StateClose, Owner: owner}
		if err := tr.handle(&arm, emit); err != nil {
			t.Fatal(err)
		}
		if err := tr.before(&closed, emit); err != nil {
			t.Fatal(err)
		}
		if i >= live {
			exp := Record{Type: TypeState, Time: now, Cookie: uint64(i - live + 1), twEvent: twExpired, HasState: true}
			if err := tr.handle(&exp, emit); err != nil {
				t.Fatal(err)
			}
		}
		if i%100 == 0 {
			if err := tr.tick(now, emit); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	for range 4 * live {
		step()
	}
	if n := testing.AllocsPerRun(2000, step); n != 0 {
		t.Errorf("%v allocations per TIME_WAIT socket, want 0", n)
	}
	if size := unsafe.Sizeof(twSocket{}); size > 32 {
		t.Errorf("%d bytes per TIME_WAIT socket, want at most 32", size)
	}
}

// BenchmarkTimeWaitMemory reports the heap the tracker keeps per socket in
// TIME_WAIT (B/tw-socket): N sockets armed, their starts released, owned
// by one process.
func BenchmarkTimeWaitMemory(b *testing.B) {
	const n = 20000
	emit := func(*Record) error { return nil }
	owner := result.Owner{Known: true, PID: 7, Comm: [16]byte{'s'}}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tr := newTWTracker()
		for i := range n {
			arm := Record{Type: TypeState, Time: base, Cookie: uint64(i + 1), twEvent: twArmed, HasState: true}
			closed := Record{Type: TypeState, Time: base, Cookie: uint64(i + 1), OldState: StateFinWait2, State: StateClose, Owner: owner}
			if err := tr.handle(&arm, emit); err != nil {
				b.Fatal(err)
			}
			if err := tr.before(&closed, emit); err != nil {
				b.Fatal(err)
			}
		}
		if err := tr.tick(base.Add(time.Second), emit); err != nil {
			b.Fatal(err)
		}
		tr.free = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/tw-socket")
		runtime.KeepAlive(tr)
	}
}

// TestTimeWaitStartCompact: a TIME_WAIT socket is 8 bytes, and its
// duration comes out exact to the µs from the low 32 bits of its start,
// also across their wrap, and 0 when the clock stepped back past its
// start; a start whose low bits are 0 is not taken for "began before
// tracing".
func TestTimeWaitStartCompact(t *testing.T) {
	if n := unsafe.Sizeof(twSocket{}); n != 8 {
		t.Errorf("twSocket is %d bytes, want 8", n)
	}
	for _, startUs := range []int64{1_700_000_000_123_456, 1<<32 - 10, 5<<32 - 1, 5 << 32} {
		start := time.UnixMicro(startUs).Add(700 * time.Nanosecond)
		for _, d := range []time.Duration{time.Millisecond, 60*time.Second + 1234*time.Microsecond, 35 * time.Minute} {
			s := twStartOf(start)
			if s == 0 {
				t.Fatalf("start %d µs: 0, the mark of a TIME_WAIT that began before tracing", startUs)
			}
			want := d
			if uint32(startUs) == 0 {
				want -= time.Microsecond // counted from one µs later
			}
			if got := twDuration(s, start.Add(d)); got != want {
				t.Errorf("start %d µs, %v later: %v", startUs, d, got)
			}
		}
		if got := twDuration(twStartOf(start), start.Add(-3*time.Microsecond)); got != 0 {
			t.Errorf("start %d µs, ended 3 µs before it (clock stepped back): %v, want 0", startUs, got)
		}
	}
}
