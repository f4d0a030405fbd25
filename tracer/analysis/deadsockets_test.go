package analysis

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// TestEndDeadSockets: a connection open while records were lost, quiet
// since before the kernel's listing, whose socket the listing lacks, is
// summarized (incomplete, events lost) once, and a late record starts no
// second summary; connections whose socket is listed, that began after
// the loss, that were seen since, or whose namespace was not listed are
// left alone.
func TestEndDeadSockets(t *testing.T) {
	open := func(conn uint64, at int, port int, cookie uint64, netns uint32) tracer.Record {
		r := sockEvent(at, tracer.TypeState, fmt.Sprintf("10.0.0.1:%d", port), srv, tracer.StateSynSent, tracer.StateEstablished, cookie)
		r.Conn, r.Netns = conn, netns
		return r
	}
	// A reset the listener (cookie 900) sent for a connection.
	listenerReset := func(conn uint64, at int, port int) tracer.Record {
		r := sockEvent(at, tracer.TypeReset, srv, fmt.Sprintf("10.0.0.1:%d", port), 0, 0, 900)
		r.Conn, r.HasState = conn, false
		return r
	}
	// A TIME_WAIT socket listed at start-up that showed nothing since.
	preexistingTimeWait := func(conn uint64, at int, port int) tracer.Record {
		r := sockEvent(at, tracer.TypeSocket, fmt.Sprintf("10.0.0.1:%d", port), srv, 0, tracer.StateTimeWait, 100+conn)
		r.Conn, r.Netns = conn, 7
		return r
	}
	preexisting := func(conn uint64, at int, port int, state tracer.TCPState) tracer.Record {
		r := sockEvent(at, tracer.TypeSocket, fmt.Sprintf("10.0.0.1:%d", port), srv, 0, state, 100+conn)
		r.Conn, r.Netns = conn, 7
		return r
	}
	timeWaitStart := func(conn uint64, at int, port int, cookie uint64) tracer.Record {
		r := twRec(at, fmt.Sprintf("10.0.0.1:%d", port), srv, tracer.StateFinWait2, tracer.StateTimeWait, cookie, "", 0)
		r.Conn, r.Netns = conn, 7
		return r
	}
	out := &collect{}
	a := New(out, Config{TimeWaitTracked: true})
	feed(t, a, []tracer.Record{
		open(1, 0, 40001, 101, 7), // socket gone: ended
		open(3, 1, 40003, 103, 7), // socket listed: alive
		open(4, 2, 40004, 104, 8), // namespace 8 not listed
		open(6, 3, 40006, 106, 7), // socket gone, and a reset from the listener: ended
		listenerReset(6, 4, 40006),
		listenerReset(7, 5, 40007),                         // only the listener's cookie: no socket of its own
		preexistingTimeWait(8, 6, 40008),                   // waits for its TIME_WAIT's end
		preexisting(10, 6, 40010, tracer.StateEstablished), // silent since start-up: left to the idle timeout
		open(9, 7, 40009, 109, 7),                          // in TIME_WAIT, its CLOSE lost: ended (a TIME_WAIT is not listed)
		timeWaitStart(9, 8, 40009, 109),
		{Type: tracer.TypeLost, Time: at(10), LostCount: 5, LostKind: "state", LostWhere: tracer.LostInRing},
		open(2, 20, 40002, 102, 7),        // began after the loss: lost nothing
		open(5, 3_000_000, 40005, 105, 7), // seen after the listing
	})
	out.recs = nil
	live := tracer.NewLiveSockets(at(2_000_000), at(2_000_000), []uint32{7}, []uint64{103, 900}, []uint64{900})
	n, err := a.EndDeadSockets(live)
	if err != nil {
		t.Fatal(err)
	}
	var ended []uint64
	for _, r := range out.recs {
		if r.Type == tracer.TypeConn {
			ended = append(ended, r.Conn)
			if r.Summary.Complete || r.Summary.Incomplete != "events lost" {
				t.Errorf("conn %d: complete %v, incomplete %q; want incomplete, events lost", r.Conn, r.Summary.Complete, r.Summary.Incomplete)
			}
		}
	}
	if n != 3 || len(ended) != 3 || ended[0] != 1 || ended[1] != 6 || ended[2] != 9 {
		t.Fatalf("ended %d: %v, want connections 1, 6 and 9", n, ended)
	}
	late := open(1, 4_000_000, 40001, 101, 7)
	late.OldState, late.State = tracer.StateFinWait2, tracer.StateClose
	feed(t, a, []tracer.Record{late})
	if n := out.count(tracer.TypeConn); n != 3 {
		t.Errorf("%d summaries after a late record of an ended connection, want the 3 before", n)
	}
	if len(a.conns) != 7 {
		t.Errorf("%d connections open, want 2, 3, 4, 5, 7, 8, 10", len(a.conns))
	}
}

// TestLossReportedBeforeItsRecords: a loss is reported by the clock, so
// records stamped before its report can be read after it: a connection
// whose first record is such may have lost records in it (its summary
// says so, and the dead socket sweep looks at it); one stamped after the
// report lost nothing.
func TestLossReportedBeforeItsRecords(t *testing.T) {
	open := func(conn uint64, at int, port int) tracer.Record {
		r := sockEvent(at, tracer.TypeState, fmt.Sprintf("10.0.0.1:%d", port), srv, tracer.StateSynSent, tracer.StateEstablished, 100+conn)
		r.Conn = conn
		return r
	}
	out := &collect{}
	a := New(out, Config{})
	feed(t, a, []tracer.Record{
		{Type: tracer.TypeLost, Time: at(100), LostCount: 5, LostKind: "packet", LostWhere: tracer.LostInRing},
		{Type: tracer.TypeLost, Time: at(100), LostCount: 3, LostKind: "state", LostWhere: tracer.LostInRing},
		open(1, 50, 40001),  // stamped before the report
		open(2, 200, 40002), // after it
	})
	if err := a.finishAt(at(300)); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]string{}
	for _, r := range out.recs {
		if r.Type == tracer.TypeConn {
			got[r.Conn] = r.Summary.Incomplete
		}
	}
	if got[1] != "events lost" || got[2] != "" {
		t.Errorf("incomplete reasons %v, want events lost for connection 1 only", got)
	}
}

// TestKillSignsLookup: a kill finds the latest sign on its own 4-tuple
// within killWindow among many on others, also one that came a little
// out of time order; not one outside the window; expired signs go.
func TestKillSignsLookup(t *testing.T) {
	ms := func(n int) int64 { return t0.Add(time.Duration(n) * time.Millisecond).UnixNano() }
	tup := func(port int) tuple {
		return makeTuple(netip.MustParseAddrPort(fmt.Sprintf("10.0.0.1:%d", port)), netip.MustParseAddrPort(srv))
	}
	k := newKillSigns()
	for i := range 5000 { // a sign every 0.1 ms on other 4-tuples
		k.note(tup(10000+i), ms(0)+int64(i)*int64(100*time.Microsecond), signSYN)
		switch i {
		case 1000: // 100 ms: too early for a kill at 200 ms
			k.note(tup(1), ms(100), signRST)
		case 1900:
			k.note(tup(1), ms(190), signSYN)
		case 2300: // came late: stamped before the entries around it
			k.note(tup(2), ms(225), signReuse)
		}
	}
	if s := k.of(tup(1), ms(200)); s != signSYN {
		t.Errorf("kill at 200 ms: %q, want syn (190 ms)", s)
	}
	if s := k.of(tup(1), ms(260)); s != noSign {
		t.Errorf("kill at 260 ms: %q, want none (the signs are 70 ms and more before)", s)
	}
	if s := k.of(tup(2), ms(220)); s != signReuse {
		t.Errorf("kill at 220 ms: %q, want tw_reuse (a sign out of order)", s)
	}
	if s := k.of(tup(3), ms(200)); s != noSign {
		t.Errorf("kill on a 4-tuple without signs: %q", s)
	}
	k.expire(ms(500) + int64(signKeep))
	if n := len(k.q) - k.head; n != 0 {
		t.Errorf("%d signs kept signKeep after the last", n)
	}
}

// TestKillSignsStorageKept: in a storm whose signs all expire between two
// ticks (records behind the clock), the signs' storage is kept from tick
// to tick, not given back and regrown; once the storm is over it is given
// back.
func TestKillSignsStorageKept(t *testing.T) {
	k := newKillSigns()
	var at int64
	for tick := range 10 {
		for i := range 10000 {
			k.note(tuple{lport: uint16(i)}, at, signSYN)
			at += int64(time.Microsecond)
		}
		before := cap(k.q)
		k.expire(at + int64(signKeep) + 1)
		if len(k.q)-k.head != 0 {
			t.Fatalf("tick %d: %d signs kept, want 0", tick, len(k.q)-k.head)
		}
		if cap(k.q) != before {
			t.Fatalf("tick %d of a storm: storage %d signs, was %d: given back", tick, cap(k.q), before)
		}
	}
	k.expire(at + 2*int64(signKeep))
	k.expire(at + 3*int64(signKeep))
	if cap(k.q) != 0 {
		t.Errorf("after the storm: storage for %d signs kept", cap(k.q))
	}
}
