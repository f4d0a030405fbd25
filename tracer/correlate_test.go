package tracer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

var base = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func pkt(ms int, src, dst string, flags uint8, seq uint32, cookie uint64) Record {
	return Record{Type: TypePacket, Time: base.Add(time.Duration(ms) * time.Millisecond), Netns: 1,
		Src: ap(src), Dst: ap(dst), Flags: flags, Seq: seq, Cookie: cookie}
}

// synAck is a SYN-ACK acknowledging the peer's ISN isn.
func synAck(ms int, src, dst string, seq, isn uint32) Record {
	r := pkt(ms, src, dst, FlagSYN|FlagACK, seq, 0)
	r.Ack = isn + 1
	return r
}

func state(ms int, local, remote string, old, new TCPState, cookie uint64, netns uint32) Record {
	return Record{Type: TypeState, Time: base.Add(time.Duration(ms) * time.Millisecond), Netns: netns,
		Local: ap(local), Remote: ap(remote), OldState: old, State: new, HasState: true, Cookie: cookie}
}

// sweepBeforeEachRecord makes run sweep the correlator at each record's
// time before the record (TestCorrelatorCompacted).
var sweepBeforeEachRecord bool

// run feeds records through a correlator and returns what it emitted.
func run(t *testing.T, c *correlator, in []Record) []Record {
	t.Helper()
	var out []Record
	emit := func(r *Record) error { out = append(out, *r); return nil }
	for i := range in {
		r := in[i]
		if sweepBeforeEachRecord {
			c.settle(r.Time)
			c.sweep(r.Time)
		}
		if err := c.process(&r, emit); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.expire(time.Time{}, emit); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOneConnForBothEnds: a loopback connection seen as packets and as both
// sockets' state changes gets one conn id, and the SYN_SENT record held for
// its port comes out before the SYN, with the port filled in.
func TestOneConnForBothEnds(t *testing.T) {
	const cli, srv = "127.0.0.1:40000", "127.0.0.1:8080"
	in := []Record{
		state(0, "127.0.0.1:0", srv, StateClose, StateSynSent, 11, 1),
		pkt(1, cli, srv, FlagSYN, 100, 11),
		synAck(2, srv, cli, 900, 100),
		state(3, cli, srv, StateSynSent, StateEstablished, 11, 1),
		pkt(4, cli, srv, FlagACK, 101, 11),
		state(5, srv, cli, StateListen, StateSynRecv, 22, 1),
		state(6, srv, cli, StateSynRecv, StateEstablished, 22, 1),
		state(7, cli, srv, StateEstablished, StateFinWait1, 11, 1),
		state(8, srv, cli, StateLastAck, StateClose, 22, 1),
	}
	out := run(t, newCorrelator(0), in)
	if len(out) != len(in) {
		t.Fatalf("%d records out, %d in", len(out), len(in))
	}
	for _, r := range out {
		if r.Conn != out[0].Conn || r.Conn == 0 {
			t.Errorf("record %v %s: conn %d, want %d", r.Type, r.State, r.Conn, out[0].Conn)
		}
	}
	if out[0].Type != TypeState || out[0].Local != ap(cli) {
		t.Errorf("first record %v local %s: want the SYN_SENT with local %s", out[0].Type, out[0].Local, cli)
	}
	if out[1].Type != TypePacket {
		t.Errorf("second record is %v, want the SYN", out[1].Type)
	}
}

// TestReusedTupleGetsNewConn: a new SYN with another ISN (or a new connect)
// on the same 4-tuple is a new connection; a retransmitted SYN is not.
func TestReusedTupleGetsNewConn(t *testing.T) {
	const a, b = "10.0.0.1:40000", "10.0.0.2:80"
	out := run(t, newCorrelator(0), []Record{
		pkt(0, a, b, FlagSYN, 100, 0),
		pkt(1000, a, b, FlagSYN, 100, 0), // retransmitted SYN
		synAck(1001, b, a, 5, 100),
		pkt(1002, a, b, FlagFIN|FlagACK, 101, 0),
		pkt(5000, a, b, FlagSYN, 777, 0), // new connection, same tuple
		state(5001, a, b, StateSynSent, StateEstablished, 0, 9),
		state(6000, a, b, StateClose, StateSynSent, 0, 9), // yet another connect
	})
	conns := []uint64{}
	for _, r := range out {
		conns = append(conns, r.Conn)
	}
	want := []uint64{1, 1, 1, 1, 2, 2, 3}
	for i := range want {
		if conns[i] != want[i] {
			t.Fatalf("conns %v, want %v", conns, want)
		}
	}
}

// TestNetnsInKeyOnlyForLoopback: 127.0.0.1 in two namespaces are two
// connections; routable addresses in two namespaces are the two ends of one.
func TestNetnsInKeyOnlyForLoopback(t *testing.T) {
	out := run(t, newCorrelator(0), []Record{
		state(0, "127.0.0.1:5000", "127.0.0.1:80", StateSynSent, StateEstablished, 1, 100),
		state(1, "127.0.0.1:5000", "127.0.0.1:80", StateSynSent, StateEstablished, 2, 200),
		state(2, "10.0.0.1:5000", "10.0.0.2:80", StateSynSent, StateEstablished, 3, 100),
		state(3, "10.0.0.2:80", "10.0.0.1:5000", StateSynRecv, StateEstablished, 4, 200),
	})
	if out[0].Conn == out[1].Conn {
		t.Error("loopback connections in different namespaces share a conn")
	}
	if out[2].Conn != out[3].Conn {
		t.Error("the two ends of a connection between namespaces have different conns")
	}
}

// TestRefusedConnection: the client's states, its SYN, the RST and both
// reset events (the sent one without a socket) share one conn.
func TestRefusedConnection(t *testing.T) {
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:81"
	out := run(t, newCorrelator(0), []Record{
		state(0, "10.0.0.1:0", srv, StateClose, StateSynSent, 7, 1),
		pkt(1, cli, srv, FlagSYN, 100, 7),
		{Type: TypeReset, Time: base, Local: ap(srv), Remote: ap(cli), ResetDir: ResetSent, Reason: "NO_SOCKET"},
		pkt(2, srv, cli, FlagRST|FlagACK, 0, 0),
		{Type: TypeReset, Time: base, Local: ap(cli), Remote: ap(srv), ResetDir: ResetReceived, Cookie: 7, HasState: true, State: StateSynSent},
		state(3, cli, srv, StateSynSent, StateClose, 7, 1),
	})
	for _, r := range out {
		if r.Conn != out[0].Conn {
			t.Fatalf("refused connection split over conns: %+v", out)
		}
	}
	if out[0].Local != ap(cli) {
		t.Errorf("SYN_SENT local %s, want %s", out[0].Local, cli)
	}
}

// TestHeldRecordExpires: a SYN_SENT whose port never shows up is released
// by expire, port 0, and is not lost.
func TestHeldRecordExpires(t *testing.T) {
	c := newCorrelator(0)
	var out []Record
	emit := func(r *Record) error { out = append(out, *r); return nil }
	r := state(0, "10.0.0.1:0", "10.0.0.2:80", StateClose, StateSynSent, 5, 1)
	if err := c.process(&r, emit); err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Fatal("SYN_SENT without port was not held")
	}
	if err := c.expire(base.Add(pendingTimeout/2), emit); err != nil || len(out) != 0 {
		t.Fatalf("released too early: %v %d", err, len(out))
	}
	if err := c.expire(base.Add(2*pendingTimeout), emit); err != nil || len(out) != 1 || out[0].Conn == 0 {
		t.Fatalf("not released after the timeout: %v %+v", err, out)
	}
}

// TestTableIsBounded: the table never exceeds its cap; the least recently
// seen entries go first.
func TestTableIsBounded(t *testing.T) {
	c := newCorrelator(100)
	var in []Record
	for i := range 1000 {
		in = append(in, pkt(i, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)).String(), "10.0.0.2:80", FlagACK, 1, 0))
	}
	run(t, c, in)
	if c.keys() > 100 {
		t.Errorf("table holds %d entries, cap 100", c.keys())
	}
	if c.evicted == 0 {
		t.Error("no evictions counted")
	}
	newest := makeConnKey(ap("10.0.0.1:1999"), ap("10.0.0.2:80"), 0)
	if c.lookup(newest) == nil {
		t.Error("the most recent connection was evicted")
	}
}

func TestSweepForgetsClosedAfterLinger(t *testing.T) {
	c := newCorrelator(0)
	run(t, c, []Record{
		state(0, "10.0.0.1:1", "10.0.0.2:2", StateLastAck, StateClose, 1, 1),
		state(0, "10.0.0.1:3", "10.0.0.2:4", StateSynSent, StateEstablished, 2, 1),
	})
	c.sweep(base.Add(closedLinger + time.Second))
	if c.keys() != 1 {
		t.Errorf("%d entries after sweep, want only the open one", c.keys())
	}
	c.sweep(base.Add(idleLinger + time.Second))
	if c.keys() != 0 {
		t.Errorf("%d entries after idle sweep", c.keys())
	}
}

// TestIdleLingerOutlastsIdleTimeout: with an analyzer idle timeout above
// the default linger (--idle-timeout 45m), an idle connection keeps its
// id until the analyzer has summarized it and the id's linger passed.
func TestIdleLingerOutlastsIdleTimeout(t *testing.T) {
	c := newCorrelator(0)
	c.setIdleTimeout(45 * time.Minute)
	run(t, c, []Record{state(0, "10.0.0.1:3", "10.0.0.2:4", StateSynSent, StateEstablished, 2, 1)})
	c.sweep(base.Add(45*time.Minute + time.Second))
	if c.keys() != 1 {
		t.Fatal("the correlator forgot an idle connection before the analyzer's idle timeout")
	}
	c.sweep(base.Add(45*time.Minute + ClosedLinger + time.Second))
	if c.keys() != 0 {
		t.Errorf("%d entries after the idle linger", c.keys())
	}
	if IdleLinger(time.Minute) != idleLinger {
		t.Errorf("IdleLinger(1m) = %v, want the %v floor", IdleLinger(time.Minute), idleLinger)
	}
}

// TestLateSynSentJoinsItsConnection: when the SYN cannot be tied to its
// socket by cookie, the held SYN_SENT is released by the socket's next
// event, after the SYN: it must join that connection, not open a new one.
func TestLateSynSentJoinsItsConnection(t *testing.T) {
	const cli, srv = "127.0.0.1:40000", "127.0.0.1:8080"
	out := run(t, newCorrelator(0), []Record{
		state(0, "127.0.0.1:0", srv, StateClose, StateSynSent, 11, 1),
		pkt(1, cli, srv, FlagSYN, 100, 0), // no cookie
		synAck(2, srv, cli, 900, 100),
		state(3, cli, srv, StateSynSent, StateEstablished, 11, 1),
	})
	for _, r := range out {
		if r.Conn != out[0].Conn {
			t.Fatalf("split into several conns: %+v", out)
		}
	}
}

// TestPacketsAloneCloseAConnection: with packet records only, a RST or a
// FIN from each side marks the connection closed, so sweep can forget it.
func TestPacketsAloneCloseAConnection(t *testing.T) {
	c := newCorrelator(0)
	run(t, c, []Record{
		pkt(0, "10.0.0.1:1", "10.0.0.2:80", FlagFIN|FlagACK, 5, 0),
		pkt(1, "10.0.0.2:80", "10.0.0.1:1", FlagFIN|FlagACK, 9, 0),
		pkt(2, "10.0.0.1:2", "10.0.0.2:80", FlagRST, 5, 0),
		pkt(3, "10.0.0.1:3", "10.0.0.2:80", FlagFIN|FlagACK, 5, 0), // half-closed only
	})
	c.sweep(base.Add(closedLinger + time.Minute))
	if c.keys() != 1 || c.lookup(makeConnKey(ap("10.0.0.1:3"), ap("10.0.0.2:80"), 0)) == nil {
		t.Errorf("after sweep %d entries, want only the half-closed connection", c.keys())
	}
}

// TestListenersPerNetns: 0.0.0.0:80 listening in two namespaces are two
// listeners.
func TestListenersPerNetns(t *testing.T) {
	out := run(t, newCorrelator(0), []Record{
		state(0, "0.0.0.0:80", "0.0.0.0:0", StateClose, StateListen, 1, 100),
		state(1, "0.0.0.0:80", "0.0.0.0:0", StateClose, StateListen, 2, 200),
	})
	if out[0].Conn == out[1].Conn {
		t.Error("listeners in different namespaces share a conn")
	}
}

// TestHeldPortOnlyFromOwnAddress: a SYN whose source address differs from
// the socket's (SNAT on egress) does not name the held record's port.
func TestHeldPortOnlyFromOwnAddress(t *testing.T) {
	const srv = "10.0.0.2:80"
	out := run(t, newCorrelator(0), []Record{
		state(0, "10.0.0.1:0", srv, StateClose, StateSynSent, 7, 1),
		pkt(1, "192.0.2.1:61000", srv, FlagSYN, 100, 7), // rewritten source
		state(2, "10.0.0.1:40000", srv, StateSynSent, StateEstablished, 7, 1),
	})
	if out[0].Type != TypePacket {
		t.Fatalf("SYN_SENT released by a SYN from another address: %+v", out[0])
	}
	if out[1].Type != TypeState || out[1].Local != ap("10.0.0.1:40000") || out[1].Conn != out[2].Conn {
		t.Errorf("held SYN_SENT %+v, want local 10.0.0.1:40000 and the conn of its socket", out[1])
	}
}

// TestEvictionIsLeastRecentlySeen: touching an old entry keeps it.
func TestEvictionIsLeastRecentlySeen(t *testing.T) {
	c := newCorrelator(16)
	var in []Record
	for i := range 16 {
		in = append(in, pkt(i, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)).String(), "10.0.0.2:80", FlagACK, 1, 0))
	}
	in = append(in, pkt(100, "10.0.0.1:1000", "10.0.0.2:80", FlagACK, 2, 0)) // the oldest, seen again
	in = append(in, pkt(101, "10.0.0.1:5000", "10.0.0.2:80", FlagACK, 1, 0)) // forces one eviction
	run(t, c, in)
	if c.lookup(makeConnKey(ap("10.0.0.1:1000"), ap("10.0.0.2:80"), 0)) == nil {
		t.Error("a recently seen entry was evicted")
	}
	if c.lookup(makeConnKey(ap("10.0.0.1:1001"), ap("10.0.0.2:80"), 0)) != nil {
		t.Error("the least recently seen entry was kept")
	}
	if c.evicted != 1 || c.keys() != 16 {
		t.Errorf("evicted %d, table %d", c.evicted, c.keys())
	}
}

// TestLateEventAfterTupleReuse: the server's TIME_WAIT is killed by a new
// SYN on the same 4-tuple, and the kill's record (with the cookie of the
// socket TIME_WAIT replaced) comes after the new connection's first
// records: it joins the old connection, by cookie. A listener's reset on
// that tuple carries the listener's cookie and joins by tuple.
func TestLateEventAfterTupleReuse(t *testing.T) {
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:80"
	kill := state(30, srv, cli, StateTimeWait, StateClose, 22, 1)
	kill.TimeWait = true
	listenerReset := Record{Type: TypeReset, Time: base.Add(40 * time.Millisecond), Netns: 1,
		Local: ap(srv), Remote: ap(cli), State: StateListen, HasState: true, Cookie: 5}
	in := []Record{
		pkt(0, cli, srv, FlagSYN, 100, 0),
		state(1, srv, cli, StateSynRecv, StateEstablished, 22, 1),
		state(2, srv, cli, StateFinWait2, StateClose, 22, 1), // to TIME_WAIT
		pkt(20, cli, srv, FlagSYN, 5000, 0),                  // the tuple reused
		state(21, srv, cli, StateSynRecv, StateEstablished, 33, 1),
		kill, // 50 ms hold: emitted late, stamped earlier
		listenerReset,
	}
	out := run(t, newCorrelator(0), in)
	first, second := out[0].Conn, out[3].Conn
	if first == second {
		t.Fatalf("the reused tuple kept conn %d", first)
	}
	if out[5].Conn != first {
		t.Errorf("TIME_WAIT end in conn %d, want the old connection %d", out[5].Conn, first)
	}
	if out[6].Conn != second {
		t.Errorf("listener reset in conn %d, want the current connection %d", out[6].Conn, second)
	}
}

// TestReplacedEntriesBounded: connections replaced on their tuple count
// toward the cap until swept, so reuse storms cannot grow the table.
func TestReplacedEntriesBounded(t *testing.T) {
	c := newCorrelator(10)
	var in []Record
	for i := range 100 {
		in = append(in, pkt(i, "10.0.0.1:40000", "10.0.0.2:80", FlagSYN, uint32(1000*i), 0),
			state(i, "10.0.0.2:80", "10.0.0.1:40000", StateSynRecv, StateEstablished, uint64(100+i), 1))
	}
	run(t, c, in)
	if n := len(c.replaced[makeConnKey(ap("10.0.0.1:40000"), ap("10.0.0.2:80"), 1)]); c.size > 10 || n > 9 {
		t.Errorf("%d entries, %d replaced after 100 reuses of one tuple, cap 10", c.size, n)
	}
	c.sweep(base.Add(time.Hour))
	if c.size != 0 || len(c.replaced) != 0 || c.keys() != 0 {
		t.Errorf("after the idle sweep: %d entries, %d replaced keys, %d keys", c.size, len(c.replaced), c.keys())
	}
	// A table with room: the replaced entries searched by cookie stay
	// few, the newest; the rest wait in the list for the sweep.
	c = newCorrelator(1000)
	run(t, c, in)
	if n := len(c.replaced[makeConnKey(ap("10.0.0.1:40000"), ap("10.0.0.2:80"), 1)]); c.size != 100 || n != maxReplacedPerKey {
		t.Errorf("%d entries, %d replaced searched after 100 reuses of one tuple, want 100, %d", c.size, n, maxReplacedPerKey)
	}
	c.sweep(base.Add(time.Hour))
	if c.size != 0 || len(c.replaced) != 0 || c.keys() != 0 {
		t.Errorf("after the idle sweep: %d entries, %d replaced keys, %d keys", c.size, len(c.replaced), c.keys())
	}
}

// BenchmarkCorrelatorMemoryPerConnection reports the live heap per
// connection the correlator tracks (B/conn): N client connections, each
// with its SYN, SYN-ACK and both sockets' state changes, held open.
func BenchmarkCorrelatorMemoryPerConnection(b *testing.B) {
	const n = 20000
	discard := func(*Record) error { return nil }
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := newCorrelator(n)
		for i := range n {
			recs := clientConnRecords(i, false)
			for j := range recs {
				if err := c.process(&recs[j], discard); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/conn")
		runtime.KeepAlive(c)
	}
}

// sock is a socket record listed at start-up.
func sock(local, remote string, st TCPState, cookie uint64) Record {
	return Record{Type: TypeSocket, Time: base, Netns: 1, Local: ap(local), Remote: ap(remote), State: st,
		HasState: true, Preexisting: true, Cookie: cookie}
}

func data(ms int, src, dst string, flags uint8, seq, ack uint32) Record {
	r := pkt(ms, src, dst, flags, seq, 0)
	r.Ack = ack
	return r
}

// checkConns runs in through a correlator and checks that the records
// out carry the same conn exactly where want has the same label.
func checkConns(t *testing.T, in []Record, want []int) {
	t.Helper()
	out := run(t, newCorrelator(0), in)
	if len(out) != len(want) {
		t.Fatalf("%d records out, want %d", len(out), len(want))
	}
	ids := map[int]uint64{}
	labels := map[uint64]int{}
	for i, r := range out {
		id, ok := ids[want[i]]
		lb, seen := labels[r.Conn]
		if r.Conn == 0 || ok && id != r.Conn || seen && lb != want[i] {
			got := make([]uint64, len(out))
			for j := range out {
				got[j] = out[j].Conn
			}
			t.Fatalf("record %d (%v %s %s): conns %v, want the grouping %v", i, r.Type, r.OldState, r.State, got, want)
		}
		ids[want[i]], labels[r.Conn] = r.Conn, want[i]
	}
}

// TestTupleReuse: every way a 4-tuple is reused by a new connection gives
// the new one its own conn; late records of the old one keep the old.
func TestTupleReuse(t *testing.T) {
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:80"
	rstIn := Record{Type: TypeReset, Time: base.Add(2 * time.Millisecond), Netns: 1, Local: ap(cli), Remote: ap(srv),
		ResetDir: ResetReceived, Cookie: 1, HasState: true, State: StateEstablished}
	for _, c := range []struct {
		name string
		in   []Record
		want []int
	}{
		{"preexisting reset, then connect and SYN on the same tuple", []Record{
			sock(cli, srv, StateEstablished, 1),
			sock(srv, cli, StateEstablished, 2),
			data(1, srv, cli, FlagRST|FlagACK, 7000, 5000),
			rstIn,
			state(3, cli, srv, StateEstablished, StateClose, 1, 1),
			state(500, cli, srv, StateClose, StateSynSent, 3, 1),
			pkt(501, cli, srv, FlagSYN, 9000, 3),
			synAck(502, srv, cli, 1234, 9000),
			state(503, cli, srv, StateSynSent, StateEstablished, 3, 1),
			data(504, cli, srv, FlagACK, 9001, 1235),
			state(505, srv, cli, StateListen, StateSynRecv, 4, 1),
			state(505, srv, cli, StateSynRecv, StateEstablished, 4, 1),
		}, []int{1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2}},
		{"preexisting closed by RST, then a SYN alone (packets only)", []Record{
			sock(cli, srv, StateEstablished, 1),
			data(1, cli, srv, FlagRST, 5000, 0),
			pkt(500, cli, srv, FlagSYN, 9000, 0),
			synAck(501, srv, cli, 1234, 9000),
		}, []int{1, 1, 2, 2}},
		{"preexisting whose close was lost, then a SYN: the end was established", []Record{
			sock(cli, srv, StateEstablished, 1),
			data(1, cli, srv, FlagACK, 5000, 7000),
			pkt(500, cli, srv, FlagSYN, 9000, 0),
		}, []int{1, 1, 2}},
		{"SYN lost: the SYN-ACK gave both ISNs; a retransmitted SYN joins, another ISN does not", []Record{
			synAck(1, srv, cli, 1234, 9000),
			data(2, cli, srv, FlagACK, 9001, 1235),
			pkt(3, cli, srv, FlagSYN, 9000, 0), // late copy of the lost SYN
			data(4, cli, srv, FlagFIN|FlagACK, 9001, 1235),
			data(5, srv, cli, FlagFIN|FlagACK, 1235, 9002),
			pkt(800, cli, srv, FlagSYN, 4444, 0),
		}, []int{1, 1, 1, 1, 1, 2}},
		{"SYN and connect lost: a SYN-ACK acknowledging another ISN", []Record{
			pkt(0, cli, srv, FlagSYN, 9000, 0),
			synAck(1, srv, cli, 1234, 9000),
			data(2, cli, srv, FlagACK, 9001, 1235),
			synAck(900, srv, cli, 5555, 3000),
			data(901, cli, srv, FlagACK, 3001, 5556),
		}, []int{1, 1, 1, 2, 2}},
		{"state events only: closed, then a new connect", []Record{
			state(0, cli, srv, StateClose, StateSynSent, 1, 1),
			state(1, cli, srv, StateSynSent, StateEstablished, 1, 1),
			state(2, cli, srv, StateEstablished, StateClose, 1, 1),
			state(3, cli, srv, StateClose, StateSynSent, 5, 1),
			state(4, cli, srv, StateSynSent, StateEstablished, 5, 1),
		}, []int{1, 1, 1, 2, 2}},
		{"server side only: closed, then a new child socket", []Record{
			state(0, srv, cli, StateListen, StateSynRecv, 2, 1),
			state(1, srv, cli, StateSynRecv, StateEstablished, 2, 1),
			state(2, srv, cli, StateLastAck, StateClose, 2, 1),
			state(3, srv, cli, StateListen, StateSynRecv, 6, 1),
			state(3, srv, cli, StateSynRecv, StateEstablished, 6, 1),
		}, []int{1, 1, 1, 2, 2}},
		{"another socket at the same end, its first events lost", []Record{
			sock(srv, cli, StateEstablished, 2),
			state(700, srv, cli, StateEstablished, StateCloseWait, 8, 1),
			state(701, srv, cli, StateCloseWait, StateLastAck, 8, 1),
			// The old socket's late event still finds its connection.
			state(702, srv, cli, StateEstablished, StateFinWait1, 2, 1),
		}, []int{1, 2, 2, 1}},
		{"late packets of a closed connection join it", []Record{
			pkt(0, cli, srv, FlagSYN, 9000, 0),
			synAck(1, srv, cli, 1234, 9000),
			data(2, cli, srv, FlagFIN|FlagACK, 9001, 1235),
			data(3, srv, cli, FlagFIN|FlagACK, 1235, 9002),
			data(300, cli, srv, FlagFIN|FlagACK, 9001, 1235), // retransmitted FIN
			data(301, srv, cli, FlagACK, 1236, 9002),         // TIME_WAIT ACK
			data(302, cli, srv, FlagRST, 9002, 0),
			state(303, srv, cli, StateTimeWait, StateClose, 2, 1),
		}, []int{1, 1, 1, 1, 1, 1, 1, 1}},
		{"a RST the client ignores, then its retransmitted SYN", []Record{
			pkt(0, cli, srv, FlagSYN, 9000, 0),
			data(1, srv, cli, FlagRST|FlagACK, 0, 77), // acks nothing of ours
			pkt(1000, cli, srv, FlagSYN, 9000, 0),
		}, []int{1, 1, 1}},
		{"Fast Open: the SYN-ACK acknowledges the SYN's data too", []Record{
			pkt(0, cli, srv, FlagSYN, 9000, 0),
			synAck(1, srv, cli, 1234, 9000+1200),
			data(2, cli, srv, FlagACK, 10201, 1235),
		}, []int{1, 1, 1}},
		{"simultaneous open: a SYN from each end", []Record{
			pkt(0, cli, srv, FlagSYN, 9000, 0),
			pkt(0, srv, cli, FlagSYN, 1234, 0),
			synAck(1, cli, srv, 9000, 1234),
			synAck(1, srv, cli, 1234, 9000),
		}, []int{1, 1, 1, 1}},
		{"one socket connects again after a refusal (bound port)", []Record{
			state(0, cli, srv, StateClose, StateSynSent, 1, 1),
			pkt(0, cli, srv, FlagSYN, 9000, 1),
			data(1, srv, cli, FlagRST|FlagACK, 0, 9001),
			state(1, cli, srv, StateSynSent, StateClose, 1, 1),
			state(50, cli, srv, StateClose, StateSynSent, 1, 1),
			pkt(50, cli, srv, FlagSYN, 12000, 1),
		}, []int{1, 1, 1, 1, 2, 2}},
		{"listeners: listen again after a close; SO_REUSEPORT listeners keep their ids", []Record{
			state(0, "0.0.0.0:80", "0.0.0.0:0", StateClose, StateListen, 1, 1),
			state(1, "0.0.0.0:80", "0.0.0.0:0", StateListen, StateClose, 1, 1),
			state(2, "0.0.0.0:80", "0.0.0.0:0", StateClose, StateListen, 2, 1),
			state(3, "0.0.0.0:80", "0.0.0.0:0", StateClose, StateListen, 3, 1),
			state(4, "0.0.0.0:80", "0.0.0.0:0", StateListen, StateClose, 2, 1),
		}, []int{1, 1, 2, 3, 2}},
	} {
		t.Run(c.name, func(t *testing.T) { checkConns(t, c.in, c.want) })
	}
}

// TestShrinkMapAfterStorm: a map emptied to under an eighth of its peak
// is rebuilt (Go maps keep their peak capacity), with the same entries;
// a map near its peak, or small, is kept as is.
func TestShrinkMapAfterStorm(t *testing.T) {
	m := make(map[uint64]int)
	peak := 0
	for i := range 10000 {
		m[uint64(i)] = i
	}
	if m2 := ShrinkMap(m, &peak); reflect.ValueOf(m2).UnsafePointer() != reflect.ValueOf(m).UnsafePointer() || peak != 10000 {
		t.Fatalf("a full map was rebuilt, or peak %d", peak)
	}
	for i := range 9900 {
		delete(m, uint64(i))
	}
	m2 := ShrinkMap(m, &peak)
	if reflect.ValueOf(m2).UnsafePointer() == reflect.ValueOf(m).UnsafePointer() {
		t.Fatal("a map at 1% of its peak was not rebuilt")
	}
	if len(m2) != 100 || m2[9950] != 9950 || peak != 100 {
		t.Errorf("rebuilt map: %d entries, peak %d", len(m2), peak)
	}
}

// TestTimeWaitEndShortensLinger: a closed connection whose TIME_WAITs all
// ended keeps its id TimeWaitLinger after its last record, not
// ClosedLinger: a late packet within it keeps the id, one after it gets a
// new id even before a sweep, and the sweep forgets the entry. A
// connection with one of two TIME_WAITs still going keeps the long linger.
func TestTimeWaitEndShortensLinger(t *testing.T) {
	tw := timeWaitRec
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:80"
	open := []Record{
		state(0, cli, srv, StateClose, StateSynSent, 1, 1),
		state(1, cli, srv, StateSynSent, StateEstablished, 1, 1),
		state(2, cli, srv, StateEstablished, StateFinWait1, 1, 1),
		state(3, cli, srv, StateFinWait1, StateFinWait2, 1, 1),
		tw(4, cli, srv, StateFinWait2, StateTimeWait, 1),
		state(4, cli, srv, StateFinWait2, StateClose, 1, 1),
	}
	end := tw(60004, cli, srv, StateTimeWait, StateClose, 1)
	lateAck := func(ms int) Record { return data(ms, srv, cli, FlagACK|FlagFIN, 5000, 1001) }

	c := newCorrelator(0)
	out := run(t, c, append(append([]Record{}, open...), end, lateAck(62000), lateAck(62000+5001+2000)))
	id := out[0].Conn
	if out[6].Conn != id || out[7].Conn != id {
		t.Errorf("TIME_WAIT end %d and the late FIN 2 s after it %d, want the connection's %d", out[6].Conn, out[7].Conn, id)
	}
	if out[8].Conn == id {
		t.Errorf("a packet %v after the last record (TIME_WAIT over) kept the id %d", TimeWaitLinger+time.Second, id)
	}
	c.sweep(base.Add(80 * time.Second))
	if c.lookup(makeConnKey(ap(cli), ap(srv), 1)) == nil || c.size != 1 {
		t.Errorf("sweep: %d entries, want only the new one", c.size)
	}

	// Two TIME_WAITs (both ends local), one ended: the id stays.
	c = newCorrelator(0)
	recs := append(append([]Record{}, open...), tw(5, srv, cli, StateFinWait2, StateTimeWait, 2), end, lateAck(62000+5001+2000))
	out = run(t, c, recs)
	if out[len(out)-1].Conn != out[0].Conn {
		t.Error("a late packet while the peer's TIME_WAIT goes on got a new id")
	}
}

// TestCorrelatorEntryCompact: a connection's entry is 40 bytes of key and
// at most 144 in all (16 of them the later stages' slot), and the entries
// the sweep removed are reused: a storm in steady state allocates none.
func TestCorrelatorEntryCompact(t *testing.T) {
	if k, e := unsafe.Sizeof(connKey{}), unsafe.Sizeof(connEntry{}); k != 40 || e > 144 {
		t.Errorf("key %d bytes, entry %d, want 40 and at most 144", k, e)
	}
	c := newCorrelator(0)
	insert := func(port int) {
		k := makeConnKey(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 1}), uint16(port)), ap("10.0.0.2:80"), 0)
		c.insert(k, connKeyHash(k))
	}
	for i := range 100 {
		insert(1000 + i)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		c.remove(c.lru.prev)
		insert(2000 + i%50)
		i++
	}); n != 0 {
		t.Errorf("%v allocations per entry once entries are removed, want 0", n)
	}
}

// TestHeldSynSentReused: a client's SYN_SENT, held until its SYN names the
// port, costs no allocation once connections come and go (its storage is
// reused after release).
func TestHeldSynSentReused(t *testing.T) {
	c := newCorrelator(64)
	emit := func(*Record) error { return nil }
	i := 0
	ss0 := state(0, "10.0.0.1:0", "10.0.0.2:80", StateClose, StateSynSent, 0, 1)
	syn0 := pkt(0, "10.0.0.1:40000", "10.0.0.2:80", FlagSYN, 0, 0)
	var ss, syn Record
	one := func() {
		ss, syn = ss0, syn0
		ss.Cookie, syn.Cookie = uint64(1+i%32), uint64(1+i%32)
		ss.Time = base.Add(time.Duration(i) * time.Millisecond)
		syn.Time, syn.Seq = ss.Time, uint32(1000*i)
		if err := c.process(&ss, emit); err != nil {
			t.Fatal(err)
		}
		if err := c.process(&syn, emit); err != nil {
			t.Fatal(err)
		}
		i++
	}
	for range 200 {
		one()
	}
	if len(c.pending) != 0 {
		t.Fatalf("%d records still held", len(c.pending))
	}
	if n := testing.AllocsPerRun(1000, one); n != 0 {
		t.Errorf("%v allocations per client connection, want 0", n)
	}
}

// lookup returns the current entry of key.
func (c *correlator) lookup(key connKey) *connEntry { return c.current(key, connKeyHash(key)) }

// TestCorrelatorKeyCollisions runs the correlator's tests again with every
// key's hash the same: the table must tell keys apart (current compares
// them), not trust the hash.
func TestCorrelatorKeyCollisions(t *testing.T) {
	hash := connKeyHash
	connKeyHash = func(connKey) uint64 { return 7 }
	t.Cleanup(func() { connKeyHash = hash })
	for name, test := range correlatorBehaviour {
		t.Run(name, test)
	}
}

// correlatorBehaviour are the correlator's tests of which record gets
// which id (TestCorrelatorKeyCollisions, TestCorrelatorCompacted).
var correlatorBehaviour = map[string]func(*testing.T){
	"OneConnForBothEnds": TestOneConnForBothEnds, "ReusedTupleGetsNewConn": TestReusedTupleGetsNewConn,
	"NetnsInKeyOnlyForLoopback": TestNetnsInKeyOnlyForLoopback, "TableIsBounded": TestTableIsBounded,
	"SweepForgetsClosedAfterLinger": TestSweepForgetsClosedAfterLinger, "PacketsAloneCloseAConnection": TestPacketsAloneCloseAConnection,
	"ListenersPerNetns": TestListenersPerNetns, "EvictionIsLeastRecentlySeen": TestEvictionIsLeastRecentlySeen,
	"LateEventAfterTupleReuse": TestLateEventAfterTupleReuse, "ReplacedEntriesBounded": TestReplacedEntriesBounded,
	"TupleReuse": TestTupleReuse, "TimeWaitEndShortensLinger": TestTimeWaitEndShortensLinger,
}

// TestCorrelatorCompacted runs the correlator's tests again with a sweep
// before every record that keeps only the compact entry of every closed
// connection: a compact entry must give each record the id the full one
// gives (in place, or by reviving it). With every key's hash the same
// too, compact entries must tell keys apart by their check.
func TestCorrelatorCompacted(t *testing.T) {
	after := compactAfter
	compactAfter, sweepBeforeEachRecord = 0, true
	t.Cleanup(func() { compactAfter, sweepBeforeEachRecord = after, false })
	for name, test := range correlatorBehaviour {
		t.Run(name, test)
	}
	hash := connKeyHash
	connKeyHash = func(connKey) uint64 { return 7 }
	t.Cleanup(func() { connKeyHash = hash })
	for name, test := range correlatorBehaviour {
		t.Run("collisions/"+name, test)
	}
}

// TestCompactEntry follows a connection through its compact entry: a
// closed connection quiet for compactAfter keeps only that; the end of its
// TIME_WAIT gets its id in place; a TIME_WAIT record of another socket on
// its 4-tuple is another connection; a late FIN revives the full entry;
// the sweep forgets it TimeWaitLinger after its TIME_WAIT ended. The
// compact entries are bounded.
func TestCompactEntry(t *testing.T) {
	tw := timeWaitRec
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:80"
	c := newCorrelator(0)
	out := run(t, c, []Record{
		state(0, cli, srv, StateClose, StateSynSent, 1, 1),
		pkt(0, cli, srv, FlagSYN, 100, 0),
		state(1, cli, srv, StateSynSent, StateEstablished, 1, 1),
		state(2, cli, srv, StateEstablished, StateFinWait1, 1, 1),
		state(3, cli, srv, StateFinWait1, StateFinWait2, 1, 1),
		tw(4, cli, srv, StateFinWait2, StateTimeWait, 1),
		state(4, cli, srv, StateFinWait2, StateClose, 1, 1),
	})
	id := out[0].Conn
	settleSweep(c, base.Add(compactAfter+time.Second))
	if c.size != 0 || len(c.compact) != 1 || c.keys() != 1 {
		t.Fatalf("after the sweep: %d full entries, %d compact, want 0 and 1", c.size, len(c.compact))
	}
	if out = run(t, c, []Record{tw(60004, cli, srv, StateTimeWait, StateClose, 1)}); out[0].Conn != id || c.size != 0 {
		t.Errorf("TIME_WAIT end: id %d (want %d), %d full entries (want 0: in place)", out[0].Conn, id, c.size)
	}
	if cc := c.compact[connKeyHash(makeConnKey(ap(cli), ap(srv), 1))]; cc.flags&ccTWDone == 0 || cc.tw != 0 || cc.lastSeen(base.UnixNano()) != base.Add(60004*time.Millisecond).UnixNano() {
		t.Errorf("compact entry after the TIME_WAIT end: %+v", cc)
	}
	if out = run(t, c, []Record{tw(60005, cli, srv, StateTimeWait, StateClose, 9)}); out[0].Conn == id {
		t.Error("a TIME_WAIT record of another socket on the 4-tuple got the compact entry's id")
	}

	c = newCorrelator(0)
	out = run(t, c, []Record{
		pkt(0, cli, srv, FlagSYN, 100, 0),
		state(1, cli, srv, StateSynSent, StateEstablished, 1, 1),
		tw(4, cli, srv, StateFinWait2, StateTimeWait, 1),
		state(4, cli, srv, StateFinWait2, StateClose, 1, 1),
	})
	id = out[0].Conn
	settleSweep(c, base.Add(compactAfter+time.Second))
	out = run(t, c, []Record{data(30000, srv, cli, FlagACK|FlagFIN, 5000, 1001)})
	if out[0].Conn != id || c.size != 1 || len(c.compact) != 0 {
		t.Errorf("late FIN: id %d (want %d), %d full entries, %d compact (want it revived)", out[0].Conn, id, c.size, len(c.compact))
	}
	settleSweep(c, base.Add(30*time.Second+compactAfter+time.Second))
	if c.size != 0 || len(c.compact) != 1 {
		t.Errorf("compacted again: %d full entries, %d compact", c.size, len(c.compact))
	}
	if out = run(t, c, []Record{tw(60004, cli, srv, StateTimeWait, StateClose, 1)}); out[0].Conn != id {
		t.Errorf("TIME_WAIT end: id %d, want %d", out[0].Conn, id)
	}
	settleSweep(c, base.Add(60004*time.Millisecond+TimeWaitLinger-time.Second))
	if c.keys() != 1 {
		t.Errorf("%d keys within TimeWaitLinger after the TIME_WAIT ended, want 1", c.keys())
	}
	settleSweep(c, base.Add(60004*time.Millisecond+TimeWaitLinger+time.Second))
	if c.keys() != 0 {
		t.Errorf("%d keys TimeWaitLinger after the TIME_WAIT ended", c.keys())
	}

	// Both ends local: the tag is the cookie of the socket in TIME_WAIT
	// (end b here), whose end is handled in place. A revived entry knows
	// the tagged socket: an event of another socket at that end is
	// another connection, one of the same socket is not.
	const a, b = "10.0.0.1:40000", "10.0.0.9:80"
	c = newCorrelator(0)
	out = run(t, c, []Record{
		state(0, a, b, StateSynSent, StateEstablished, 5, 1),
		state(0, b, a, StateSynRecv, StateEstablished, 6, 1),
		state(2, a, b, StateLastAck, StateClose, 5, 1),
		tw(3, b, a, StateFinWait2, StateTimeWait, 6),
		state(3, b, a, StateFinWait2, StateClose, 6, 1),
	})
	id = out[0].Conn
	settleSweep(c, base.Add(compactAfter+time.Second))
	if out = run(t, c, []Record{tw(60003, b, a, StateTimeWait, StateClose, 6)}); out[0].Conn != id || c.size != 0 {
		t.Errorf("TIME_WAIT end of the second end: id %d (want %d), %d full entries (want 0: in place)", out[0].Conn, id, c.size)
	}
	c = newCorrelator(0)
	id = run(t, c, []Record{
		state(0, a, b, StateSynSent, StateEstablished, 5, 1),
		state(2, a, b, StateLastAck, StateClose, 5, 1),
	})[0].Conn
	settleSweep(c, base.Add(compactAfter+time.Second))
	late := Record{Type: TypeReset, Time: base.Add(10002 * time.Millisecond), Netns: 1, Local: ap(a), Remote: ap(b),
		State: StateClose, HasState: true, Cookie: 5}
	other := state(10001, a, b, StateEstablished, StateFinWait1, 7, 1)
	if out = run(t, c, []Record{other, late}); out[1].Conn != id || out[0].Conn == id {
		t.Errorf("an event of another socket at the tagged end (conn %d), then a late one of the socket (conn %d): want a new id, then %d",
			out[0].Conn, out[1].Conn, id)
	}

	// Bounded: at most maxCompactPerEntry per entry of the table.
	c = newCorrelator(4)
	var in []Record
	for i := range 40 {
		a := fmt.Sprintf("10.0.0.1:%d", 1000+i)
		in = append(in, pkt(i, a, srv, FlagRST, 0, 0))
		if i%4 == 3 {
			run(t, c, in)
			in = in[:0]
			settleSweep(c, base.Add(time.Duration(i)*time.Millisecond+compactAfter+time.Second))
		}
	}
	if len(c.compact) > 4*maxCompactPerEntry || c.evicted == 0 {
		t.Errorf("%d compact entries (bound %d), %d evicted", len(c.compact), 4*maxCompactPerEntry, c.evicted)
	}
}

// TestCompactNumbers: a compact entry's 32-bit id, time and cookie are
// completed to the full numbers near a reference, across a wrap of their
// low 32 bits, also when the reference is a little before the number.
func TestCompactNumbers(t *testing.T) {
	if n := unsafe.Sizeof(compactConn{}); n != 16 {
		t.Errorf("compactConn is %d bytes, want 16", n)
	}
	for _, id := range []uint64{1, 1<<32 - 1, 1 << 32, 1<<32 + 5, 7<<40 + 3} {
		for _, later := range []uint64{1, 1000, 1 << 20} {
			if got := compactID(uint32(id), id+later); got != id {
				t.Errorf("id %d, %d ids later: %d", id, later, got)
			}
		}
	}
	ms := int64(time.Millisecond)
	for _, at := range []int64{base.UnixNano(), (1<<32 - 2) * ms, (1<<32 + 3) * ms, (5<<32 - 1) * ms} {
		for _, d := range []time.Duration{-time.Second, 0, time.Millisecond, 90 * time.Second, 20 * 24 * time.Hour} {
			if got := compactTime(uint32(at/ms), at+int64(d)); got != at {
				t.Errorf("time %d seen from %v later: %d", at, d, got)
			}
		}
	}
	for _, cookie := range []uint64{1, 1<<32 - 1, 1 << 32, 9<<32 + 17} {
		for _, d := range []int64{-5000, 0, 1, 1 << 30} {
			if got := compactCookie(uint32(cookie), uint64(int64(cookie)+d)); got != cookie {
				t.Errorf("cookie %d from a cookie %d away: %d", cookie, d, got)
			}
		}
	}
}

// BenchmarkCorrelatorMemoryCompact reports the live heap per closed
// connection once the correlator keeps only its compact entry (B/conn):
// N client connections opened and closed (the client's socket in
// TIME_WAIT), then swept compactAfter later.
func BenchmarkCorrelatorMemoryCompact(b *testing.B) {
	const n = 20000
	discard := func(*Record) error { return nil }
	for b.Loop() {
		c := newCorrelator(n)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range n {
			recs := clientConnRecords(i, true)
			for j := range recs {
				if err := c.process(&recs[j], discard); err != nil {
					b.Fatal(err)
				}
			}
		}
		settleSweep(c, base.Add(compactAfter+time.Second)) // the sweep gives the emptied table's memory back
		c.free = nil                                       // the free list's entries are reused by the next connections
		if len(c.compact) != n {
			b.Fatalf("%d compact entries, want %d", len(c.compact), n)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/conn")
		runtime.KeepAlive(c)
	}
}

// settleSweep settles and sweeps c at now, as the tracer does every 10 s.
func settleSweep(c *correlator, now time.Time) {
	c.settle(now)
	c.sweep(now)
}

// clientConnRecords are the records of the i-th client connection of a
// memory benchmark: connect(), SYN, SYN-ACK, ESTABLISHED, and, when
// closed, its active close into TIME_WAIT.
func clientConnRecords(i int, closed bool) []Record {
	cli := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 40000)
	srv := netip.MustParseAddrPort("10.0.0.2:80")
	cookie := uint64(2*i + 1)
	st := func(old, new TCPState) Record {
		return Record{Type: TypeState, Time: base, Netns: 1, Local: cli, Remote: srv, OldState: old, State: new, HasState: true, Cookie: cookie}
	}
	recs := []Record{
		st(StateClose, StateSynSent),
		{Type: TypePacket, Time: base, Netns: 1, Src: cli, Dst: srv, Flags: FlagSYN, Cookie: cookie},
		{Type: TypePacket, Time: base, Netns: 1, Src: srv, Dst: cli, Flags: FlagSYN | FlagACK, Ack: 1},
		st(StateSynSent, StateEstablished),
	}
	if closed {
		tw := st(StateFinWait2, StateTimeWait)
		tw.TimeWait = true
		recs = append(recs, st(StateEstablished, StateFinWait1), st(StateFinWait1, StateFinWait2), tw, st(StateFinWait2, StateClose))
	}
	return recs
}

// TestCorrelatorSlot: every record of a connection whose full entry the
// correlator keeps carries that entry's slot (Record.Slot), one per
// connection; a record handled by a compact entry carries none, and a
// reused entry comes with an empty slot.
func TestCorrelatorSlot(t *testing.T) {
	c := newCorrelator(0)
	a, b := run(t, c, clientConnRecords(1, false)), run(t, c, clientConnRecords(2, false))
	for _, out := range [][]Record{a, b} {
		for _, r := range out {
			if r.Slot == nil || r.Slot != out[0].Slot {
				t.Fatalf("conn %d: records with slots %p and %p", r.Conn, out[0].Slot, r.Slot)
			}
		}
	}
	if a[0].Slot == b[0].Slot {
		t.Fatal("two connections share a slot")
	}
	a[0].Slot.Analysis = "state of a later stage"
	late := Record{Type: TypeState, Time: base, Netns: 1, Local: a[0].Local, Remote: a[0].Remote,
		OldState: StateEstablished, State: StateFinWait1, HasState: true, Cookie: a[0].Cookie}
	if out := run(t, c, []Record{late}); out[0].Slot != a[0].Slot || out[0].Slot.Analysis != "state of a later stage" {
		t.Fatal("a later record of the connection lost its slot or what it held")
	}

	// Closed, then compacted: the end of its TIME_WAIT is handled by the
	// compact entry, without a slot.
	saved := compactAfter
	compactAfter = 0
	t.Cleanup(func() { compactAfter = saved })
	closed := run(t, c, clientConnRecords(3, true))
	c.settle(base.Add(time.Second))
	if len(c.compact) == 0 {
		t.Fatal("nothing compacted")
	}
	end := timeWaitRec(2000, closed[0].Local.String(), closed[0].Remote.String(), StateTimeWait, StateClose, closed[0].Cookie)
	end.Slot = a[0].Slot // the tracer reuses its Record: a stale slot
	if out := run(t, c, []Record{end}); out[0].Conn != closed[0].Conn || out[0].Slot != nil {
		t.Fatalf("TIME_WAIT end: conn %d slot %p, want conn %d and no slot", out[0].Conn, out[0].Slot, closed[0].Conn)
	}
	// Entries are reused: the next connection's slot starts empty.
	if next := run(t, c, clientConnRecords(4, false)); next[0].Slot == nil || next[0].Slot.Analysis != nil {
		t.Fatal("a new connection's slot is not empty")
	}
}

// addrPortAfter orders as bytes.Compare of the addresses, then the ports.
func TestAddrPortAfter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addr := func() [16]byte {
		var a [16]byte
		for i := range a {
			// Few distinct bytes: equal prefixes of every length.
			a[i] = byte(rng.IntN(3)) * 127
		}
		return a
	}
	for range 200000 {
		x, y := addr(), addr()
		xp, yp := uint16(rng.IntN(3)), uint16(rng.IntN(3))
		c := bytes.Compare(x[:], y[:])
		if want := c > 0 || c == 0 && xp > yp; addrPortAfter(&x, &y, xp, yp) != want {
			t.Fatalf("addrPortAfter(%x:%d, %x:%d) = %v, want %v", x, xp, y, yp, !want, want)
		}
	}
}
