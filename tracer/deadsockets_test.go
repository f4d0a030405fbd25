//go:build linux

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
// once the records reached the end of the listing plus deadSocketsSettle,
// or the ring was drained by then, or (idle: the reader may still hold a
// flush interval of records) a flush interval later; not before.
func TestDeadSocketsTick(t *testing.T) {
	start := time.Unix(1000, 0)
	const took = 2 * time.Second // the listing's own time
	interval := 100 * time.Millisecond
	lists := 0
	tr := &Tracer{log: slog.New(slog.DiscardHandler), cfg: Config{FlushInterval: interval}}
	var listedAt time.Time
	tr.dead.list = func() (*LiveSockets, error) {
		lists++ // read only after the listing came back (done channel)
		return NewLiveSockets(listedAt, listedAt.Add(took), []uint32{1}, nil, nil), nil
	}
	sink := &deadSink{}
	tick := func(now, newest time.Time, drained, idle bool) {
		t.Helper()
		if err := tr.deadSocketsTick(now, newest.UnixNano(), drained, idle, sink); err != nil {
			t.Fatal(err)
		}
	}
	// listed starts a listing at now and lets its goroutine come back.
	listed := func(now time.Time) {
		t.Helper()
		listedAt = now
		tick(now, now, false, false)
		for deadline := time.Now().Add(5 * time.Second); tr.dead.running && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			tick(now, now.Add(-time.Hour), false, false)
		}
		if tr.dead.running || tr.dead.pending == nil {
			t.Fatalf("no listing came back (running %v)", tr.dead.running)
		}
	}

	tick(start, start, true, true)
	if tr.dead.running || tr.dead.pending != nil {
		t.Fatal("sockets listed while nothing was lost")
	}
	tr.lostTotal = 3
	listed(start)
	if lists != 1 {
		t.Fatalf("%d listings after a loss, want 1", lists)
	}
	due := start.Add(took + deadSocketsSettle)
	tick(due.Add(-time.Millisecond), due.Add(-time.Millisecond), false, false)
	tick(due.Add(-time.Millisecond), due.Add(-time.Hour), true, true)
	if len(sink.calls) != 0 {
		t.Fatal("a listing applied before the records reached its end + deadSocketsSettle")
	}
	tick(due, due, false, false)
	if len(sink.calls) != 1 || tr.dead.ended != 1 {
		t.Fatalf("%d applications, %d ended once records reached the listing's end + settle; want 1, 1", len(sink.calls), tr.dead.ended)
	}

	tr.lostTotal = 4
	tick(start.Add(3*time.Second), start.Add(3*time.Second), true, true)
	if tr.dead.running || tr.dead.pending != nil {
		t.Fatal("a second listing within deadSocketsEvery")
	}
	later := start.Add(deadSocketsEvery)
	listed(later)
	due = later.Add(took + deadSocketsSettle)
	// Idle: a flush interval more, the reader's batch.
	tick(due, later, false, true)
	if len(sink.calls) != 1 {
		t.Fatal("a listing applied while idle, before the reader's flush interval passed")
	}
	tick(due.Add(interval), later, false, true)
	if lists != 2 || len(sink.calls) != 2 {
		t.Fatalf("%d listings, %d applications after a loss deadSocketsEvery later, want 2, 2", lists, len(sink.calls))
	}
	tick(later.Add(time.Minute), later.Add(time.Minute), true, true)
	if lists != 2 || tr.dead.running {
		t.Error("sockets listed again with no loss since")
	}
	// Drained: the records have all come, applied by the clock.
	tr.lostTotal = 5
	last := later.Add(2 * time.Minute)
	listed(last)
	due = last.Add(took + deadSocketsSettle)
	tick(due, last, true, false)
	if len(sink.calls) != 3 {
		t.Fatalf("%d applications once drained past the listing's end + settle, want 3", len(sink.calls))
	}
}
