package tracer

import (
	"testing"
	"time"
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
		Owner: Owner{Known: true, PID: 7}}
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
