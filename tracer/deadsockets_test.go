package tracer

import (
	"log/slog"
	"testing"
	"time"
)

// deadSink counts the listings it is given to end connections with.
type deadSink struct {
	discard
	calls []*LiveSockets
}

func (s *deadSink) EndDeadSockets(live *LiveSockets) (int, error) {
	s.calls = append(s.calls, live)
	return 1, nil
}

// TestDeadSocketsTick: the kernel's sockets are listed only after records
// were lost, at most once every deadSocketsEvery, and a listing is applied
// once the records reached its time plus deadSocketsSettle (or the ring
// was drained by then), not before.
func TestDeadSocketsTick(t *testing.T) {
	start := time.Unix(1000, 0)
	lists := 0
	tr := &Tracer{log: slog.New(slog.DiscardHandler)}
	tr.dead.list = func() (*LiveSockets, error) {
		lists++ // read only after the listing came back (done channel)
		return NewLiveSockets(start, []uint32{1}, nil, nil), nil
	}
	sink := &deadSink{}
	tick := func(now time.Time, newest time.Time, drained bool) {
		t.Helper()
		if err := tr.deadSocketsTick(now, newest.UnixNano(), drained, sink); err != nil {
			t.Fatal(err)
		}
	}
	// settle lets the listing's goroutine come back.
	settle := func(now time.Time) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); tr.dead.running && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			tick(now, now.Add(-time.Hour), false)
		}
		if tr.dead.running {
			t.Fatal("the listing did not come back")
		}
	}

	tick(start, start, true)
	if tr.dead.running || tr.dead.pending != nil {
		t.Fatal("sockets listed while nothing was lost")
	}
	tr.lostTotal = 3
	tick(start, start, false)
	settle(start)
	if lists != 1 || tr.dead.pending == nil {
		t.Fatalf("%d listings after a loss, pending %v; want 1, pending", lists, tr.dead.pending != nil)
	}
	tick(start.Add(500*time.Millisecond), start.Add(500*time.Millisecond), false)
	if len(sink.calls) != 0 {
		t.Fatal("a listing applied before the records reached its time")
	}
	tick(start.Add(deadSocketsSettle), start.Add(deadSocketsSettle), false)
	if len(sink.calls) != 1 || tr.dead.ended != 1 {
		t.Fatalf("%d applications, %d ended once records reached the listing's time + settle; want 1, 1", len(sink.calls), tr.dead.ended)
	}

	tr.lostTotal = 4
	tick(start.Add(2*time.Second), start.Add(2*time.Second), true)
	if tr.dead.running || tr.dead.pending != nil {
		t.Fatal("a second listing within deadSocketsEvery")
	}
	later := start.Add(deadSocketsEvery)
	tick(later, later, false)
	settle(later)
	// Drained: the records have all come; the listing (stamped start)
	// is applied by the clock.
	tick(later, later.Add(-time.Hour), true)
	if lists != 2 || len(sink.calls) != 2 {
		t.Fatalf("%d listings, %d applications after a loss deadSocketsEvery later, want 2, 2", lists, len(sink.calls))
	}
	tick(later.Add(time.Minute), later.Add(time.Minute), true)
	if lists != 2 || tr.dead.running {
		t.Error("sockets listed again with no loss since")
	}
}
