package tracer

import (
	"math/rand"
	"testing"
	"time"
)

// sameIDs runs in through a correlator that never compacts and through
// one that settles at each record's time before it, with compactAfter
// after, and fails where the two disagree on which records share a
// connection.
func sameIDs(t *testing.T, in []Record, after time.Duration) {
	t.Helper()
	saved := compactAfter
	compactAfter = after
	defer func() { compactAfter = saved }()
	full, comp := newCorrelator(0), newCorrelator(0)
	var outFull, outComp []Record
	for i := range in {
		r1, r2 := in[i], in[i]
		if err := full.process(&r1, func(r *Record) error { outFull = append(outFull, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		comp.settle(r2.Time)
		if err := comp.process(&r2, func(r *Record) error { outComp = append(outComp, *r); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	toComp, toFull := map[uint64]uint64{}, map[uint64]uint64{}
	for i := range outFull {
		x, y := outFull[i].Conn, outComp[i].Conn
		if v, ok := toComp[x]; ok && v != y {
			t.Errorf("record %d (%v %v->%v cookie %d): conn %d compacted, %d not (its earlier records: %d)",
				i, outFull[i].Type, outFull[i].OldState, outFull[i].State, outFull[i].Cookie, y, x, v)
		} else if v, ok := toFull[y]; ok && v != x {
			t.Errorf("record %d (%v %v->%v cookie %d): conn %d compacted joins %d's records, not compacted %d",
				i, outFull[i].Type, outFull[i].OldState, outFull[i].State, outFull[i].Cookie, y, v, x)
		}
		toComp[x], toFull[y] = y, x
	}
}

// timeWaitRec is a TIME_WAIT record of the tracker (start or end).
func timeWaitRec(ms int, local, remote string, old, new TCPState, cookie uint64) Record {
	r := state(ms, local, remote, old, new, cookie, 1)
	r.TimeWait = true
	return r
}

// simultaneousClose: both ends local (a, cookie 5; b, cookie 6) close at
// once: both sockets go through CLOSING into TIME_WAIT.
func simultaneousClose(a, b string) []Record {
	return []Record{
		state(0, a, b, StateSynSent, StateEstablished, 5, 1),
		state(0, b, a, StateSynRecv, StateEstablished, 6, 1),
		state(1, a, b, StateEstablished, StateFinWait1, 5, 1),
		state(1, b, a, StateEstablished, StateFinWait1, 6, 1),
		state(2, a, b, StateFinWait1, StateClosing, 5, 1),
		state(2, b, a, StateFinWait1, StateClosing, 6, 1),
		timeWaitRec(3, a, b, StateClosing, StateTimeWait, 5),
		state(3, a, b, StateClosing, StateClose, 5, 1),
		timeWaitRec(4, b, a, StateClosing, StateTimeWait, 6),
		state(4, b, a, StateClosing, StateClose, 6, 1),
	}
}

// TestCompactSameIDs: for each sequence, a correlator that keeps compact
// entries gives the records the same connections as one that keeps full
// entries, whether it compacts at once or after the real compactAfter.
func TestCompactSameIDs(t *testing.T) {
	const a, b = "10.0.0.1:40000", "10.0.0.9:80"
	const srv, cli = "10.0.0.2:80", "10.0.0.9:40000"
	isnRetransmits := []Record{pkt(0, a, srv, FlagSYN, 100, 0), pkt(1, srv, a, FlagRST|FlagACK, 0, 0)}
	for _, ms := range []int{1000, 3000, 7000, 15000, 31000, 63000} {
		isnRetransmits = append(isnRetransmits, pkt(ms, a, srv, FlagSYN, 100, 0))
	}
	rst := pkt(0, a, srv, FlagRST, 0, 0)
	rst.Time = rst.Time.Add(900 * time.Microsecond)
	late := data(0, srv, a, FlagACK|FlagFIN, 5000, 1001)
	late.Time = rst.Time.Add(closedLinger - 50*time.Microsecond)
	for name, in := range map[string][]Record{
		// Both sockets in TIME_WAIT; a connects again on the 4-tuple
		// (tcp_tw_reuse): the kills of both TIME_WAITs, either first.
		"simultaneous close, reuse": append(simultaneousClose(a, b),
			state(10000, a, b, StateClose, StateSynSent, 7, 1),
			timeWaitRec(10001, b, a, StateTimeWait, StateClose, 6),
			state(10002, b, a, StateListen, StateSynRecv, 8, 1),
			timeWaitRec(10050, a, b, StateTimeWait, StateClose, 5)),
		"simultaneous close, reuse, a's kill first": append(simultaneousClose(a, b),
			state(10000, a, b, StateClose, StateSynSent, 7, 1),
			timeWaitRec(10050, a, b, StateTimeWait, StateClose, 5),
			timeWaitRec(10051, b, a, StateTimeWait, StateClose, 6)),
		// a's TIME_WAIT ends; b's goes on (re-armed); a's new SYN on the
		// 4-tuple kills it, before or after the new child socket.
		"simultaneous close, one TIME_WAIT over, reuse": append(simultaneousClose(a, b),
			timeWaitRec(60003, a, b, StateTimeWait, StateClose, 5),
			state(70000, a, b, StateClose, StateSynSent, 7, 1),
			state(70001, b, a, StateListen, StateSynRecv, 8, 1),
			timeWaitRec(70050, b, a, StateTimeWait, StateClose, 6)),
		"simultaneous close, one TIME_WAIT over, reuse, kill first": append(simultaneousClose(a, b),
			timeWaitRec(60003, a, b, StateTimeWait, StateClose, 5),
			state(70000, a, b, StateClose, StateSynSent, 7, 1),
			timeWaitRec(70050, b, a, StateTimeWait, StateClose, 6),
			state(70001, b, a, StateListen, StateSynRecv, 8, 1),
			state(70060, b, a, StateSynRecv, StateEstablished, 8, 1)),
		// The same when b's TIME_WAIT began first: a's, over first,
		// was the last to begin.
		"simultaneous close, b's TIME_WAIT first, a's over, reuse": {
			state(0, a, b, StateSynSent, StateEstablished, 5, 1),
			state(0, b, a, StateSynRecv, StateEstablished, 6, 1),
			timeWaitRec(3, b, a, StateClosing, StateTimeWait, 6),
			state(3, b, a, StateClosing, StateClose, 6, 1),
			timeWaitRec(4, a, b, StateClosing, StateTimeWait, 5),
			state(4, a, b, StateClosing, StateClose, 5, 1),
			timeWaitRec(60004, a, b, StateTimeWait, StateClose, 5),
			state(70000, a, b, StateClose, StateSynSent, 7, 1),
			state(70001, b, a, StateListen, StateSynRecv, 8, 1),
			timeWaitRec(70050, b, a, StateTimeWait, StateClose, 6),
		},
		// A SYN answered by a RST it ignores, retransmitted with backoff
		// (each gap longer than compactAfter): one connection.
		"SYN retransmitted after an ignored RST": isnRetransmits,
		// The same when the SYN-ACK came too, the opener being end b.
		"SYN retransmitted after SYN-ACK and RST, opener end b": {
			pkt(0, cli, srv, FlagSYN, 100, 0),
			synAck(1, srv, cli, 900, 100),
			pkt(2, srv, cli, FlagRST, 901, 0),
			pkt(1000, cli, srv, FlagSYN, 100, 0),
			pkt(3000, cli, srv, FlagSYN, 100, 0),
			pkt(7000, cli, srv, FlagSYN, 100, 0),
			pkt(15000, cli, srv, FlagSYN, 100, 0),
		},
		// A late FIN just within the linger (the compact entry's time is
		// to the millisecond).
		"late FIN at the end of the linger": {state(0, a, srv, StateSynSent, StateEstablished, 1, 1), rst, late},
	} {
		t.Run(name+"/at once", func(t *testing.T) { sameIDs(t, in, 0) })
		t.Run(name+"/after 5 s", func(t *testing.T) { sameIDs(t, in, compactAfter) })
	}
}

// TestCompactOldCookie: a connection that lived while more than 2^31
// sockets were made keeps its full entry (its cookie could not be
// completed from a recent one): the kill of its TIME_WAIT by the peer's
// new SYN on the 4-tuple still joins it.
func TestCompactOldCookie(t *testing.T) {
	const srv, cli = "10.0.0.2:80", "10.0.0.1:40000"
	const old, recent = 5, 5 + 3<<31
	sameIDs(t, []Record{
		state(0, srv, cli, StateSynRecv, StateEstablished, old, 1),
		state(100, srv, "10.0.0.7:5554", StateSynRecv, StateEstablished, recent-9, 1),
		state(200, srv, cli, StateEstablished, StateFinWait1, old, 1),
		state(201, srv, cli, StateFinWait1, StateFinWait2, old, 1),
		timeWaitRec(202, srv, cli, StateFinWait2, StateTimeWait, old),
		state(202, srv, cli, StateFinWait2, StateClose, old, 1),
		state(300, srv, "10.0.0.7:5553", StateSynRecv, StateEstablished, recent-5, 1),
		state(9000, srv, "10.0.0.7:5555", StateSynRecv, StateEstablished, recent, 1),
		pkt(10000, cli, srv, FlagSYN, 777777, 0),
		state(10001, srv, cli, StateListen, StateSynRecv, recent+1, 1),
		timeWaitRec(10050, srv, cli, StateTimeWait, StateClose, old),
	}, compactAfter)
}

// TestCompactOldID: a connection whose id is more than 2^31 ids old when
// it closes keeps its full entry (the id could not be completed from the
// next one): the end of its TIME_WAIT gets its id.
func TestCompactOldID(t *testing.T) {
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:80"
	c := newCorrelator(0)
	id := run(t, c, []Record{state(0, cli, srv, StateSynSent, StateEstablished, 1, 1)})[0].Conn
	c.next += 1 << 32 // a day at 50,000 connections/s
	run(t, c, []Record{
		state(86400000, cli, srv, StateEstablished, StateFinWait1, 1, 1),
		state(86400001, cli, srv, StateFinWait1, StateFinWait2, 1, 1),
		timeWaitRec(86400002, cli, srv, StateFinWait2, StateTimeWait, 1),
		state(86400002, cli, srv, StateFinWait2, StateClose, 1, 1),
	})
	c.settle(base.Add(86400002*time.Millisecond + compactAfter + time.Second))
	if len(c.compact) != 0 {
		t.Errorf("%d compact entries, want the full entry kept", len(c.compact))
	}
	if out := run(t, c, []Record{timeWaitRec(86460002, cli, srv, StateTimeWait, StateClose, 1)}); out[0].Conn != id {
		t.Errorf("TIME_WAIT end: conn %d, want %d", out[0].Conn, id)
	}
}

// checkCompactInvariants fails when a key is current both in the full
// table and among the compact entries, or the LRU list and size disagree.
func checkCompactInvariants(t *testing.T, c *correlator) {
	t.Helper()
	for h, cc := range c.compact {
		if e := c.conns[h]; e != nil && connKeyCheck(e.key) == cc.check {
			t.Fatalf("key %v both full and compact", e.key)
		}
		for k := range c.collided {
			if connKeyHash(k) == h && connKeyCheck(k) == cc.check {
				t.Fatalf("collided key %v also compact", k)
			}
		}
	}
	n := 0
	for e := c.lru.next; e != &c.lru; e = e.next {
		n++
	}
	if n != c.size {
		t.Fatalf("%d entries in the list, size %d", n, c.size)
	}
}

// TestCompactRandomSequences feeds random records of three endpoints to
// small correlators that settle (compactAfter 0) or sweep before each:
// no key is ever both full and compact, and two hours after the last
// record nothing is left; also with every key's hash the same.
func TestCompactRandomSequences(t *testing.T) {
	saved := compactAfter
	compactAfter = 0
	defer func() { compactAfter = saved }()
	randomSequences(t)
	hash := connKeyHash
	connKeyHash = func(connKey) uint64 { return 7 }
	defer func() { connKeyHash = hash }()
	randomSequences(t)
}

func randomSequences(t *testing.T) {
	ends := []string{"10.0.0.1:1000", "10.0.0.2:80", "10.0.0.3:80"}
	states := []TCPState{StateSynSent, StateEstablished, StateFinWait1, StateFinWait2, StateClose, StateTimeWait,
		StateCloseWait, StateLastAck, StateListen, StateSynRecv}
	emit := func(*Record) error { return nil }
	for seed := range int64(1000) {
		rng := rand.New(rand.NewSource(seed))
		c := newCorrelator(4 + rng.Intn(8))
		ms := 0
		var cookie uint64 = 1
		for range 300 {
			ms += rng.Intn(20000)
			x, y := ends[rng.Intn(3)], ends[rng.Intn(3)]
			if x == y {
				continue
			}
			var r Record
			switch rng.Intn(4) {
			case 0:
				r = pkt(ms, x, y, []uint8{FlagSYN, FlagSYN | FlagACK, FlagACK, FlagACK | FlagFIN, FlagRST}[rng.Intn(5)],
					uint32(rng.Intn(3)*1000), 0)
				r.Ack = uint32(rng.Intn(3)*1000 + 1)
			case 1:
				r = timeWaitRec(ms, x, y, StateFinWait2, StateTimeWait, cookie-uint64(rng.Intn(3)))
			case 2:
				r = timeWaitRec(ms, x, y, StateTimeWait, StateClose, cookie-uint64(rng.Intn(4)))
			default:
				if rng.Intn(4) == 0 {
					cookie++
				}
				r = state(ms, x, y, states[rng.Intn(len(states))], states[rng.Intn(len(states))], cookie-uint64(rng.Intn(3)), 1)
			}
			c.settle(r.Time)
			if rng.Intn(5) == 0 {
				c.sweep(r.Time)
			}
			if err := c.process(&r, emit); err != nil {
				t.Fatal(err)
			}
			checkCompactInvariants(t, c)
		}
		settleSweep(c, base.Add(time.Duration(ms)*time.Millisecond+2*time.Hour))
		if c.size != 0 || len(c.conns)+len(c.collided)+len(c.compact)+len(c.replaced)+len(c.closing)+len(c.twDone) != 0 {
			t.Fatalf("seed %d, two hours after the last record: %d entries, %d current, %d collided, %d compact, %d replaced keys, %d closing, %d TIME_WAIT done",
				seed, c.size, len(c.conns), len(c.collided), len(c.compact), len(c.replaced), len(c.closing), len(c.twDone))
		}
	}
}

// TestSettleTime: the correlator settles at the clock, or at the newest
// record's time while the reader is behind the ring.
func TestSettleTime(t *testing.T) {
	now := base.Add(time.Minute)
	behind := base.Add(50 * time.Second).UnixNano()
	for _, c := range []struct {
		newest int64
		idle   bool
		want   time.Time
	}{
		{behind, false, time.Unix(0, behind)},
		{behind, true, now},
		{0, false, now},
		{now.Add(time.Second).UnixNano(), false, now},
	} {
		if got := settleTime(now, c.newest, c.idle); !got.Equal(c.want) {
			t.Errorf("settleTime(newest %d, idle %v) = %v, want %v", c.newest, c.idle, got, c.want)
		}
	}
}

// TestCompactRevivedKeepsTag: a compact entry revived by a late packet,
// then told the other local socket's cookie by a late event of it, is
// compacted again with the same tag (the socket in TIME_WAIT, end b
// here): the end of that TIME_WAIT is still handled in place.
func TestCompactRevivedKeepsTag(t *testing.T) {
	const a, b = "10.0.0.1:40000", "10.0.0.9:80" // ends 0 and 1
	c := newCorrelator(0)
	id := run(t, c, []Record{
		state(0, b, a, StateSynSent, StateEstablished, 6, 1),
		state(0, a, b, StateSynRecv, StateEstablished, 5, 1),
		timeWaitRec(3, b, a, StateFinWait2, StateTimeWait, 6),
		state(3, b, a, StateFinWait2, StateClose, 6, 1),
		state(4, a, b, StateLastAck, StateClose, 5, 1),
	})[0].Conn
	settleSweep(c, base.Add(compactAfter+time.Second))
	lateReset := Record{Type: TypeReset, Time: base.Add(10001 * time.Millisecond), Netns: 1, Local: ap(a), Remote: ap(b),
		State: StateClose, HasState: true, Cookie: 5}
	run(t, c, []Record{data(10000, a, b, FlagACK|FlagFIN, 5000, 1001), lateReset})
	settleSweep(c, base.Add(10001*time.Millisecond+compactAfter+time.Second))
	if len(c.compact) != 1 {
		t.Fatalf("%d compact entries after the late records went quiet, want 1", len(c.compact))
	}
	if out := run(t, c, []Record{timeWaitRec(60003, b, a, StateTimeWait, StateClose, 6)}); out[0].Conn != id || c.size != 0 {
		t.Errorf("TIME_WAIT end: conn %d (want %d), %d full entries (want 0: in place)", out[0].Conn, id, c.size)
	}
}

// TestCompactAfterBothTimeWaits: a connection with both sockets in
// TIME_WAIT keeps its full entry, and is compacted once one of them
// ended (and it is quiet again).
func TestCompactAfterBothTimeWaits(t *testing.T) {
	const a, b = "10.0.0.1:40000", "10.0.0.9:80"
	c := newCorrelator(0)
	run(t, c, simultaneousClose(a, b))
	settleSweep(c, base.Add(compactAfter+time.Second))
	if len(c.compact) != 0 || c.size != 1 {
		t.Fatalf("both in TIME_WAIT: %d compact entries, %d full, want the full entry", len(c.compact), c.size)
	}
	run(t, c, []Record{timeWaitRec(60003, a, b, StateTimeWait, StateClose, 5)})
	c.settle(base.Add(60003*time.Millisecond + compactAfter + time.Second))
	if len(c.compact) != 1 || c.size != 0 {
		t.Errorf("one TIME_WAIT over, quiet: %d compact entries, %d full, want it compacted", len(c.compact), c.size)
	}
}
