package analysis

import (
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// twConn is a client connection whose socket enters TIME_WAIT at 2.95 ms;
// the TIME_WAIT ends (expired) 60 s later.
func twConn() (open, end []tracer.Record) {
	const est, fw1, fw2 = tracer.StateEstablished, tracer.StateFinWait1, tracer.StateFinWait2
	open = []tracer.Record{sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9)}
	open = append(open, handshake()...)
	open = append(open,
		sockEvent(150, tracer.TypeState, cli, srv, tracer.StateSynSent, est, 9),
		seg(300, cli, srv, P|A, 1001, 5001, 100, 502),
		seg(2000, srv, cli, P|A, 5001, 1101, 50, 508),
		sockEvent(2100, tracer.TypeState, cli, srv, est, fw1, 9),
		seg(2100, cli, srv, F|A, 1101, 5051, 0, 502),
		seg(2900, srv, cli, F|A, 5051, 1102, 0, 508),
		sockEvent(2900, tracer.TypeState, cli, srv, fw1, fw2, 9),
		twRec(2950, cli, srv, fw2, tracer.StateTimeWait, 9, "", 0),
		sockEvent(2950, tracer.TypeState, cli, srv, fw2, tracer.StateClose, 9),
		seg(3000, cli, srv, A, 1102, 5052, 0, 502),
	)
	end = []tracer.Record{twRec(2950+60_000_000, cli, srv, tracer.StateTimeWait, tracer.StateClose, 9, "expired", 60*time.Second)}
	return open, end
}

func feed(t testing.TB, a *Analyzer, recs []tracer.Record) {
	t.Helper()
	for i := range recs {
		r := recs[i]
		if err := a.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTimeWaitSummaryAtClose: a connection that waits only for its
// TIME_WAIT to end is summarized once its sockets are closed and quiet, not
// when TIME_WAIT ends: the summary says TIME_WAIT began (time_wait_side)
// and is otherwise the one the full state gives; what stays is its id,
// and the TIME_WAIT's end record starts no second summary.
func TestTimeWaitSummaryAtClose(t *testing.T) {
	open, end := twConn()
	cfg := Config{TimeWaitTracked: true}
	want := run(t, cfg, append(append([]tracer.Record{}, open...), end...)).summary(t)

	out := &collect{}
	a := New(out, cfg)
	feed(t, a, open)
	if err := a.flushAt(at(3000).Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// In TIME_WAIT, only the summarized id is kept.
	if len(a.conns) != 0 || a.gone.ids != 1 {
		t.Fatalf("%d full connections, %d gone ids in TIME_WAIT, want 0, 1", len(a.conns), a.gone.ids)
	}
	got := out.summary(t)
	if got.TimeWaitSide != "local" || got.TimeWait != 0 || got.TimeWaitEnd != "" || !got.Complete {
		t.Errorf("time_wait side %q %v %q complete %v, want local, no time, no end, complete",
			got.TimeWaitSide, got.TimeWait, got.TimeWaitEnd, got.Complete)
	}
	// The rest is what the full state gives.
	w := *want
	w.TimeWait, w.TimeWaitEnd, w.StateTime[tracer.StateTimeWait] = 0, "", 0
	if !reflect.DeepEqual(*got, w) {
		t.Errorf("summary at close\n%+v\nwant\n%+v", *got, w)
	}
	feed(t, a, end)
	if err := a.flushAt(end[0].Time.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := out.count(tracer.TypeConn); n != 1 || len(a.conns) != 0 {
		t.Errorf("%d summaries, %d full connections after the TIME_WAIT end, want 1 and 0", n, len(a.conns))
	}
}

// TestTimeWaitAtExit: a connection still in TIME_WAIT when tracing stops,
// within its quiet second, is summarized then, its TIME_WAIT so far, not
// complete.
func TestTimeWaitAtExit(t *testing.T) {
	open, _ := twConn()
	out := &collect{}
	a := New(out, Config{TimeWaitTracked: true})
	feed(t, a, open)
	stop := at(500_000)
	if err := a.finishAt(stop); err != nil {
		t.Fatal(err)
	}
	s := out.summary(t)
	if s.TimeWait != stop.Sub(at(2950)) || s.TimeWaitSide != "local" || s.Complete {
		t.Errorf("time_wait %v side %q complete %v", s.TimeWait, s.TimeWaitSide, s.Complete)
	}
	if s.StateTime[tracer.StateTimeWait] != s.TimeWait {
		t.Errorf("state_ms TIME_WAIT %v, time_wait %v", s.StateTime[tracer.StateTimeWait], s.TimeWait)
	}
}

// TestGoneOutlivesManySummaries: a summarized id stays known for the
// correlator's linger after its last record however many connections are
// summarized meanwhile (a ring of the last 4096 forgot it), then goes. Ids
// go by block: the late record keeps its id's block, the others go.
func TestGoneOutlivesManySummaries(t *testing.T) {
	a := New(&collect{}, Config{})
	a.markGone(1, t0, true)
	for i := range 10000 {
		a.markGone(uint64(i+2), t0.Add(time.Duration(i)*time.Microsecond), true)
	}
	late := seg(0, srv, cli, R|A, 0, 1001, 0, 0)
	late.Time = t0.Add(time.Minute)
	feed(t, a, []tracer.Record{late})
	if len(a.conns) != 0 {
		t.Fatal("a late record of a summarized connection started a new one")
	}
	// The late record extended its id's linger.
	a.gone.sweep(t0.Add(tracer.ClosedLinger + time.Second).UnixNano())
	if ok, _ := a.gone.has(1); !ok || a.gone.ids != goneBlockIDs-1 || len(a.gone.blocks) != 1 {
		t.Fatalf("gone has %d ids in %d blocks after the linger, want the late one's block (ids 1-%d)",
			a.gone.ids, len(a.gone.blocks), goneBlockIDs-1)
	}
	if ok, _ := a.gone.has(5000); ok {
		t.Error("id 5000 outlived its block's linger")
	}
	a.gone.sweep(late.Time.Add(tracer.ClosedLinger + time.Second).UnixNano())
	if a.gone.ids != 0 || len(a.gone.blocks) != 0 || a.gone.expiry.Len() != 0 {
		t.Errorf("%d ids (%d blocks, %d queued) left after every linger", a.gone.ids, len(a.gone.blocks), a.gone.expiry.Len())
	}
}

// TestGoneIdleLingerFollowsIdleTimeout: an id summarized as idle is kept
// as long as the correlator keeps idle ids for this idle timeout, also
// after a late record.
func TestGoneIdleLingerFollowsIdleTimeout(t *testing.T) {
	a := New(&collect{}, Config{IdleTimeout: 45 * time.Minute})
	a.markGone(1, t0, false)
	a.gone.sweep(t0.Add(45*time.Minute + time.Second).UnixNano())
	if a.gone.ids != 1 {
		t.Fatal("an idle-summarized id was forgotten before the correlator's idle linger")
	}
	late := seg(0, srv, cli, A, 0, 1001, 0, 0)
	late.Time = t0.Add(50 * time.Minute)
	feed(t, a, []tracer.Record{late})
	a.gone.sweep(t0.Add(tracer.IdleLinger(45*time.Minute) + time.Second).UnixNano())
	if a.gone.ids != 1 {
		t.Fatal("an idle-summarized id seen late was forgotten before the idle linger after that record")
	}
	a.gone.sweep(late.Time.Add(tracer.IdleLinger(45*time.Minute) + time.Second).UnixNano())
	if a.gone.ids != 0 {
		t.Error("the id outlived the correlator's idle linger")
	}
}

// TestGoneSetNeverEarly: whatever the order ids are added and extended
// in, none is forgotten before its own expiry, and a block's storage
// reused for other ids holds none of the old ones.
func TestGoneSetNeverEarly(t *testing.T) {
	g := newGoneSet()
	const n = 5 * goneBlockIDs
	until := make([]int64, n)
	for i := range n {
		id := uint64((i * 7919) % n) // out of order, across blocks
		until[id] = int64(1000 + (i*104729)%5000)
		g.add(id, until[id], i%3 == 0)
	}
	for now := int64(0); now <= 7000; now += 50 {
		g.sweep(now)
		for id := range uint64(n) {
			if ok, _ := g.has(id); !ok && until[id] > now {
				t.Fatalf("id %d forgotten at %d, before its expiry %d", id, now, until[id])
			}
		}
	}
	if g.ids != 0 || len(g.blocks) != 0 {
		t.Fatalf("%d ids in %d blocks after every expiry", g.ids, len(g.blocks))
	}
	g.add(3*goneBlockIDs+5, 9000, true) // a reused block
	if ok, _ := g.has(3*goneBlockIDs + 6); ok || g.ids != 1 {
		t.Errorf("a reused block holds ids it was not given (%d held)", g.ids)
	}
	if ok, idle := g.has(3*goneBlockIDs + 5); !ok || !idle {
		t.Errorf("has = %v, %v; want held, idle", ok, idle)
	}
}

// TestHeldPerConnection: a kernel retransmit event releases its own
// connection's held packet and leaves the other connections' held.
func TestHeldPerConnection(t *testing.T) {
	out := &collect{}
	a := New(out, Config{KernelRetransmits: true})
	const n = 50
	for i := range n {
		recs := connRecords(i)
		dup := recs[5] // the client's data again: a retransmission guess
		dup.Time = dup.Time.Add(time.Millisecond)
		feed(t, a, append(recs, dup))
	}
	if len(a.holding) != n {
		t.Fatalf("%d connections hold packets, want %d", len(a.holding), n)
	}
	for _, c := range a.conns {
		if len(c.held) != 1 {
			t.Fatalf("connection %d holds %d packets, want 1", c.id, len(c.held))
		}
	}
	rt := connRecords(7)[5]
	rt.Type, rt.Local, rt.Remote, rt.Cookie = tracer.TypeRetransmit, rt.Src, rt.Dst, 8
	rt.Time = rt.Time.Add(2 * time.Millisecond)
	before := len(out.recs)
	feed(t, a, []tracer.Record{rt})
	released := out.recs[before:]
	if len(released) != 2 || released[0].KernelConfirmed != 1 || released[0].Conn != 8 {
		t.Fatalf("released %d records (%+v), want the held packet of conn 8, confirmed, then the event", len(released), released)
	}
	if c := a.conns[8]; len(c.held) != 0 {
		t.Error("conn 8 still holds its confirmed packet")
	}
	if err := a.flushAt(rt.Time.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(a.holding) != 0 {
		t.Errorf("%d connections still hold packets after confirmWait", len(a.holding))
	}
}

// BenchmarkRetransmitUnderLoss: a kernel retransmit event while many
// connections hold retransmission guesses costs the same whatever their
// number (it looks at its own connection only).
func BenchmarkRetransmitUnderLoss(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(map[int]string{100: "held=100", 10000: "held=10000"}[n], func(b *testing.B) {
			a := New(discard{}, Config{KernelRetransmits: true})
			for i := range n {
				recs := connRecords(i)
				dup := recs[5]
				dup.Time = dup.Time.Add(time.Millisecond)
				feed(b, a, append(recs, dup))
			}
			rt := connRecords(0)[5]
			rt.Type, rt.Local, rt.Remote, rt.Cookie, rt.Seq = tracer.TypeRetransmit, rt.Src, rt.Dst, 1, 50000
			r := new(tracer.Record)
			for b.Loop() {
				*r = rt
				if err := a.Write(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemoryClosedConnection reports the heap the analyzer keeps
// per closed connection (B/closed-conn): N connections whose client socket
// is in TIME_WAIT, closed and quiet, so summarized; their ids are kept for
// the correlator's linger.
func BenchmarkMemoryClosedConnection(b *testing.B) {
	const n = 20000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		a := New(discard{}, Config{MaxConns: n, TimeWaitTracked: true})
		var last time.Time
		for i := range n {
			for _, r := range twRecords(i) {
				last = r.Time
				if err := a.Write(&r); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := a.flushAt(last.Add(2 * time.Second)); err != nil {
			b.Fatal(err)
		}
		if len(a.conns) != 0 || a.gone.ids != n {
			b.Fatalf("%d full, %d gone, want 0 and %d", len(a.conns), a.gone.ids, n)
		}
		a.free = nil // the reuse list is bounded, and no state of a closed connection
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/closed-conn")
		runtime.KeepAlive(a)
	}
}

// twRecords is connRecords(i) closed by the client: its socket goes
// FIN_WAIT1, FIN_WAIT2, then CLOSE with a TIME_WAIT socket in its place.
// The first record is the TIME_WAIT start.
func twRecords(i int) []tracer.Record {
	recs := connRecords(i)
	st := recs[0]
	mk := func(d time.Duration, old, new tracer.TCPState) tracer.Record {
		r := st
		r.Time, r.OldState, r.State = recs[len(recs)-1].Time.Add(d), old, new
		return r
	}
	tw := mk(3, tracer.StateFinWait2, tracer.StateTimeWait)
	tw.TimeWait = true
	return []tracer.Record{tw,
		mk(1, tracer.StateEstablished, tracer.StateFinWait1),
		mk(2, tracer.StateFinWait1, tracer.StateFinWait2),
		mk(4, tracer.StateFinWait2, tracer.StateClose),
	}
}

// TestGoneAfterTimeWaitEnd: the id of a connection summarized while in
// TIME_WAIT is kept ClosedLinger after its last record: the TIME_WAIT's
// end record, however late (the correlator keeps it TimeWaitLinger after
// that end, less). Ids expire by record time: a flush far ahead of the
// records (a backlog) keeps them.
func TestGoneAfterTimeWaitEnd(t *testing.T) {
	open, end := twConn()
	a := New(&collect{}, Config{TimeWaitTracked: true})
	feed(t, a, open)
	if err := a.flushAt(at(3000).Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.gone.has(1); !ok {
		t.Fatal("the summarized id is not held")
	}
	end[0].Time = at(3000).Add(tracer.ClosedLinger - time.Second) // near the linger's end
	feed(t, a, end)
	last := end[len(end)-1].Time
	if n := len(a.conns); n != 0 {
		t.Fatalf("the TIME_WAIT end started %d connections", n)
	}
	// A backlog: the clock is 8 s past the linger, within backlogSlack.
	if err := a.flushAt(last.Add(tracer.ClosedLinger + 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.gone.has(1); !ok {
		t.Fatal("the id went by the clock while records lag behind it")
	}
	if err := a.flushAt(last.Add(tracer.ClosedLinger + backlogSlack + time.Second)); err != nil {
		t.Fatal(err)
	}
	if a.gone.ids != 0 || a.gone.expiry.Len() != 0 {
		t.Errorf("%d ids, %d blocks queued after the linger", a.gone.ids, a.gone.expiry.Len())
	}
}

// TestConnStateReused: in a storm of short connections the state of a
// summarized connection (its struct, sockets, capture points, summary)
// is reused by the next: a connection allocates nothing but its share of
// the summarized ids' blocks and of the recent TIME_WAIT kill signs.
func TestConnStateReused(t *testing.T) {
	a := New(discard{}, Config{TimeWaitTracked: true})
	const n = 3100
	recs := make([][]tracer.Record, n) // built ahead: the test's own allocations stay out
	for i := range recs {
		recs[i] = twRecords(i)
		for j := range recs[i] {
			recs[i][j].Time = recs[i][j].Time.Add(time.Duration(i) * 9 * time.Millisecond) // 10 ms apart
		}
	}
	i := 0
	one := func() {
		for j := range recs[i] {
			if err := a.Write(&recs[i][j]); err != nil {
				t.Fatal(err)
			}
		}
		if i%100 == 0 {
			if err := a.flushAt(recs[i][len(recs[i])-1].Time); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	for range 1000 {
		one()
	}
	if n := testing.AllocsPerRun(2000, one); n > 0.1 {
		t.Errorf("%v allocations per connection, want about 0", n)
	}
}
