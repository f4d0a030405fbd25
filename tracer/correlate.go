package tracer

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"time"
)

// Correlation defaults.
const (
	// DefaultMaxConns caps the connection table of the correlator.
	DefaultMaxConns = 1 << 18
	// ClosedLinger is how long the correlator keeps a closed connection's
	// id after its last record, for late packets (retransmitted FINs,
	// TIME_WAIT ACKs; Linux TIME_WAIT lasts 60 s). A consumer that must
	// know an id it saw before (the analyzer's "already summarized") keeps
	// it as long, from the id's last record.
	ClosedLinger = 90 * time.Second
	// closedLinger is ClosedLinger, for this file.
	closedLinger = ClosedLinger
	// idleLinger forgets a connection that showed nothing for this long,
	// at least (IdleLinger).
	idleLinger = 30 * time.Minute
	// pendingTimeout bounds how long a SYN_SENT record waits for its port.
	pendingTimeout = time.Second
)

// TimeWaitLinger is how long the correlator keeps a closed connection's
// id after the end of its last TIME_WAIT (every TIME_WAIT that began
// ended), instead of ClosedLinger: late packets of a connection whose
// TIME_WAIT is over are rare (the peer's retransmitted FIN, answered by a
// RST), and a storm's connections then take 60 s of table, not 90.
const TimeWaitLinger = 5 * time.Second

// IdleLinger is how long the correlator keeps the id of a connection that
// is not closed after its last record, given the analyzer's idle timeout:
// longer than that timeout by ClosedLinger, so that the analyzer has
// summarized an idle connection (and remembers its id, as long) before
// the correlator could give a later record of it a new id. Never less
// than 30 minutes.
func IdleLinger(idleTimeout time.Duration) time.Duration {
	return max(idleLinger, idleTimeout+ClosedLinger)
}

// connKey identifies a TCP connection regardless of direction: the two
// endpoints in a fixed order. Both ends of a connection between network
// namespaces of one host share a key, so they share a conn id. Loopback
// addresses are only unique within a namespace, and a listener's key
// (remote unspecified) is one per namespace: for them netns is part of the
// key. Addresses are kept as 16 bytes (IPv4 mapped into IPv6) and ports
// apart: 40 bytes, hashed as plain memory, where two netip.AddrPort take 48
// and hash through their zone.
type connKey struct {
	a, b   [16]byte
	pa, pb uint16
	netns  uint32
}

func makeConnKey(x, y netip.AddrPort, netns uint32) connKey {
	if !x.Addr().IsLoopback() && !y.Addr().IsLoopback() && !x.Addr().IsUnspecified() && !y.Addr().IsUnspecified() {
		netns = 0
	}
	xa, ya := x.Addr().As16(), y.Addr().As16()
	xp, yp := x.Port(), y.Port()
	if addrPortAfter(&xa, &ya, xp, yp) {
		xa, ya, xp, yp = ya, xa, yp, xp
	}
	return connKey{a: xa, b: ya, pa: xp, pb: yp, netns: netns}
}

// addrPortAfter reports whether address x and port xp sort after y and
// yp: the bytes of the addresses in order (as bytes.Compare), then the
// ports. Compared as two big-endian words each, without a call.
func addrPortAfter(x, y *[16]byte, xp, yp uint16) bool {
	xh, yh := binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(y[:8])
	if xh != yh {
		return xh > yh
	}
	xl, yl := binary.BigEndian.Uint64(x[8:]), binary.BigEndian.Uint64(y[8:])
	if xl != yl {
		return xl > yl
	}
	return xp > yp
}

// connEntry is one connection of the table, also a node of its
// least-recently-seen list. Per-endpoint fields are indexed by end: 0 for
// key.a, 1 for key.b.
type connEntry struct {
	key      connKey
	id       uint64
	lastSeen int64 // Unix ns of the latest record
	// first is the timestamp (Unix ns) of the earliest record of the
	// connection, closedAt of the first sign of its end (with closed).
	first, closedAt int64
	isn             [2]uint32 // each end's initial sequence number, when isnKnown
	// tw counts the TIME_WAITs of the connection's sockets that began and
	// did not end yet; twDone: one ended and none goes on (TimeWaitLinger).
	tw       int8
	twDone   bool
	twEnd    uint8 // 1 + the end whose socket went into TIME_WAIT last; 0 none
	synEnd   uint8 // 1 + the end that sent a SYN without ACK (the opener); 0 none
	isnKnown [2]bool
	// synced: the end is past its handshake (it sent an ACK without SYN,
	// or its socket reached ESTABLISHED or a later state): it sends no
	// more SYNs on this connection.
	synced [2]bool
	fin    [2]bool // a FIN was seen from each end
	closed bool    // a socket reached CLOSE, a RST passed, or both ends sent FIN
	// cookies of the local sockets whose events joined this connection,
	// one per end (both when both ends are local): known tells a
	// socket's own connection by them, replacedOf its late events.
	cookies    [2]uint64
	prev, next *connEntry
	slot       ConnSlot // for the later stages (Record.Slot)
}

// lingerOver reports whether e, closed, is past its linger at t (Unix ns):
// a record then starts a new connection, also before the sweep forgets e.
func (e *connEntry) lingerOver(t int64) bool {
	if !e.closed {
		return false
	}
	if e.twDone {
		return t-e.lastSeen > int64(TimeWaitLinger)
	}
	return t-e.lastSeen > int64(closedLinger)
}

// end returns which end of k addr is: 0 for a, 1 for b.
func (k *connKey) end(addr netip.AddrPort) int {
	if addr.Port() == k.pa && addr.Addr().As16() == k.a {
		return 0
	}
	return 1
}

// end returns which end of e's key addr is.
func (e *connEntry) end(addr netip.AddrPort) int { return e.key.end(addr) }

// close notes the first sign of e's end, at t (Unix ns).
func (c *correlator) close(e *connEntry, t int64) {
	if !e.closed {
		e.closed, e.closedAt = true, t
		c.closing = append(c.closing, e)
	}
}

// correlator gives every record of one connection the same conn id: both
// directions, packets and socket events, both ends. A new connection on a
// reused 4-tuple gets a new id (startsNew says when). The table is capped;
// the least recently seen connection goes first. It is used by the single
// reader goroutine only.
type correlator struct {
	next uint64
	// conns: the current entry of each key, by the key's hash
	// (connKeyHash): 8 bytes of key instead of 40 for every connection
	// the table knows. An entry whose hash the current entry of another
	// key holds is in collided instead (lookup compares keys).
	conns    map[uint64]*connEntry
	collided map[connKey]*connEntry
	// compact: closed connections quiet for compactAfter, by the key's
	// hash, for the rest of their linger. A key is current in conns (or
	// collided) or here, never both. At most max*maxCompactPerEntry.
	compact map[uint64]compactConn
	// cookieRef is the latest socket cookie seen (compactCookie).
	cookieRef uint64
	max       int
	evicted   uint64
	// lru is a sentinel: lru.next is the most recently seen entry,
	// lru.prev the least.
	lru connEntry
	// pending holds CLOSE -> SYN_SENT records by socket cookie until the
	// local port is known: connect() enters SYN_SENT before the kernel
	// picks the port, so that record alone cannot be keyed.
	pending map[uint64]*Record
	// replaced: by key, the entries a newer connection took their
	// 4-tuple from, oldest first. They stay in the LRU list until swept or
	// evicted, so that late events of their sockets (the end of a
	// TIME_WAIT, 50 ms after the kill) still join them, found by cookie.
	// Rare (a 4-tuple reused within the linger), so a socket's cookie is
	// looked up here, not in a map of every socket: the common case, a
	// socket's own connection, is found by its key. size counts every
	// entry of the list.
	replaced map[connKey][]*connEntry
	size     int
	// idle is how long a connection not closed is kept after its last
	// record (idleLinger unless setIdleTimeout).
	idle time.Duration
	// Peak sizes of the maps (ShrinkMap).
	connsPeak, replacedPeak, pendingPeak, compactPeak int
	// twDone: entries whose TIME_WAITs all ended, in that order, for the
	// sweep (TimeWaitLinger); an entry touched since is looked at again.
	twDone []*connEntry
	// closing: entries that closed, in that order, for settle (compact
	// entries); an entry touched since is looked at again.
	closing []*connEntry
	// lastSettle, lastSweep: when upkeep last settled and swept.
	lastSettle, lastSweep time.Time
	// free: removed entries for reuse, at most maxFreeEntries.
	free []*connEntry
	// heldFree: storage of released pending records, for reuse.
	heldFree []*Record
}

// maxFreeEntries bounds the removed entries kept for reuse: a sweep's
// worth in a storm is reused by the next connections.
const maxFreeEntries = 8192

func newCorrelator(max int) *correlator {
	if max <= 0 {
		max = DefaultMaxConns
	}
	c := &correlator{conns: make(map[uint64]*connEntry), collided: make(map[connKey]*connEntry), max: max, pending: make(map[uint64]*Record),
		replaced: make(map[connKey][]*connEntry), compact: make(map[uint64]compactConn), idle: idleLinger}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

// setIdleTimeout makes the correlator keep idle connections' ids as long
// as an analyzer with this idle timeout needs (IdleLinger).
func (c *correlator) setIdleTimeout(d time.Duration) {
	c.idle = IdleLinger(d)
}

// process assigns r its conn id and passes it to emit, releasing first any
// held record that r completes. A SYN_SENT record without a local port is
// held (copied) instead; it is released, with the port filled in, by the
// socket's SYN (matched by cookie) or its next socket event, or by expire.
func (c *correlator) process(r *Record, emit func(*Record) error) error {
	if r.Cookie != 0 && len(c.pending) > 0 {
		if p, ok := c.pending[r.Cookie]; ok {
			local := r.Local
			if r.Type == TypePacket {
				local = netip.AddrPort{}
				// Only the socket's own SYN names its port; with SNAT
				// its address may differ, then the port is not ours.
				if r.Flags&(FlagSYN|FlagACK) == FlagSYN && r.Src.Addr() == p.Local.Addr() {
					local = r.Src
				}
			}
			if local.Port() != 0 || r.Type != TypePacket {
				if local.Port() != 0 {
					p.Local = netip.AddrPortFrom(p.Local.Addr(), local.Port())
				}
				delete(c.pending, r.Cookie)
				err := c.release(p, emit)
				c.unhold(p)
				if err != nil {
					return err
				}
			}
		}
	}
	if r.Type == TypeState && r.OldState == StateClose && r.State == StateSynSent &&
		r.Local.Port() == 0 && r.Cookie != 0 {
		if old := c.pending[r.Cookie]; old != nil {
			c.unhold(old)
		}
		c.pending[r.Cookie] = c.hold(r)
		c.pendingPeak = max(c.pendingPeak, len(c.pending))
		return nil
	}
	return c.release(r, emit)
}

// hold returns a copy of r in reused storage (a Record is 480 B).
func (c *correlator) hold(r *Record) *Record {
	var h *Record
	if n := len(c.heldFree); n > 0 {
		h, c.heldFree = c.heldFree[n-1], c.heldFree[:n-1]
	} else {
		h = new(Record)
	}
	*h = *r
	return h
}

// unhold gives a held record's storage back once it is emitted (the
// stages after the correlator copy what they keep).
func (c *correlator) unhold(h *Record) {
	if len(c.heldFree) < maxFreeRecords {
		*h = Record{}
		c.heldFree = append(c.heldFree, h)
	}
}

func (c *correlator) release(r *Record, emit func(*Record) error) error {
	c.assign(r)
	return emit(r)
}

// expire releases held records older than pendingTimeout (all of them
// when now is zero), port still unknown.
func (c *correlator) expire(now time.Time, emit func(*Record) error) error {
	for cookie, p := range c.pending {
		if now.IsZero() || now.Sub(p.Time) > pendingTimeout {
			delete(c.pending, cookie)
			err := c.release(p, emit)
			c.unhold(p)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// maxSynData bounds the data a SYN carries (TCP Fast Open): one segment.
const maxSynData = 1 << 16

// stateNewSynRecv is the state of a request socket (a listener's
// half-open connection): its cookie is not the one of the connection's
// socket, which does not exist yet.
const stateNewSynRecv TCPState = 12

// socketCookie returns the cookie of the connection's own socket when r is
// an event of one (a connected socket, or a listener on its own key), 0
// otherwise. A listener's or a request socket's reset names the
// connection's 4-tuple with the cookie of another socket: none.
func socketCookie(r *Record) uint64 {
	if r.Type == TypePacket || r.Cookie == 0 || r.State == stateNewSynRecv {
		return 0
	}
	if r.State == StateListen && !r.Remote.Addr().IsUnspecified() {
		return 0
	}
	return r.Cookie
}

// births reports whether r is the first event of a socket: connect()
// (CLOSE -> SYN_SENT), a child socket of a listener (LISTEN -> SYN_RECV),
// listen() (CLOSE -> LISTEN).
func births(r *Record) bool {
	if r.Type != TypeState {
		return false
	}
	return r.OldState == StateClose && (r.State == StateSynSent || r.State == StateListen) ||
		r.OldState == StateListen && r.State == StateSynRecv
}

// assign sets r.Conn.
func (c *correlator) assign(r *Record) {
	r.Slot = nil
	var key connKey
	switch r.Type {
	case TypePacket:
		key = makeConnKey(r.Src, r.Dst, r.Netns)
	case TypeState, TypeRetransmit, TypeReset, TypeSocket, TypeCounts:
		key = makeConnKey(r.Local, r.Remote, r.Netns)
	default:
		r.Conn = 0
		return
	}
	h := connKeyHash(key)
	e := c.current(key, h)
	cookie := socketCookie(r)
	birth := births(r)
	t := r.Time.UnixNano()
	if cookie != 0 {
		c.cookieRef = cookie
	}
	if e == nil && len(c.compact) > 0 {
		if cc, ok := c.compactLookup(key, h); ok {
			switch {
			case cc.lingerOver(t):
				delete(c.compact, h) // r starts a new connection
			case c.compactRecord(&cc, key, h, r, cookie, t):
				return
			default:
				e = c.revive(key, h, &cc, t, cookie)
			}
		}
	}
	// known: e is this socket's connection already: the common case.
	known := cookie != 0 && e != nil && e.cookies[e.end(r.Local)] == cookie
	if known {
		if e.lingerOver(t) || c.startsNew(e, r, cookie, birth) {
			e, known = c.insert(key, h), false
		}
	} else if old := c.replacedOf(key, cookie, r.Local); old != nil && !birth && !old.lingerOver(t) {
		// A late event of a socket whose 4-tuple a new connection took.
		e, known = old, true
	} else if e == nil || e.lingerOver(t) || c.startsNew(e, r, cookie, birth) {
		e = c.insert(key, h)
	}
	c.observe(e, r)
	e.lastSeen = max(e.lastSeen, t)
	c.touch(e)
	r.Conn, r.Slot = e.id, &e.slot
	if cookie != 0 && !known {
		if end := e.end(r.Local); e.cookies[end] == 0 {
			e.cookies[end] = cookie
		}
	}
}

// replacedOf returns the newest replaced entry of key (a connection a
// newer one took the 4-tuple from) whose socket at addr's end has cookie;
// nil when none (or cookie is 0).
func (c *correlator) replacedOf(key connKey, cookie uint64, addr netip.AddrPort) *connEntry {
	if cookie == 0 || len(c.replaced) == 0 {
		return nil
	}
	rs := c.replaced[key]
	for i := len(rs) - 1; i >= 0; i-- {
		if o := rs[i]; o.cookies[o.end(addr)] == cookie {
			return o
		}
	}
	return nil
}

// startsNew reports whether r, a record of e's 4-tuple, belongs to a new
// connection on that 4-tuple rather than to e. cookie is r's socket cookie
// (socketCookie), birth whether r is a socket's first event.
//
// A record that opens a connection opens a new one when e shows an
// earlier connection: a connect() after anything of e; a SYN (or SYN-ACK)
// whose sequence numbers contradict e's ISNs, or, when e knows no ISN of
// that end, after e closed or after that end was past its handshake; a
// new child socket or listener after e closed. A socket other than the
// one e knows at the same end is another connection whatever its record.
// Everything else joins e, also after e closed: retransmitted FINs,
// TIME_WAIT ACKs, the RST that answers them, the end of TIME_WAIT.
func (c *correlator) startsNew(e *connEntry, r *Record, cookie uint64, birth bool) bool {
	t := r.Time.UnixNano()
	after := e.closed && t > e.closedAt
	if r.Type == TypePacket {
		if r.Flags&FlagSYN == 0 {
			return false
		}
		s := e.end(r.Src)
		if r.Flags&FlagACK == 0 {
			if e.isnKnown[s] {
				return r.Seq != e.isn[s] // a retransmitted SYN has the same ISN
			}
			return after || e.synced[s]
		}
		// A SYN-ACK: its own ISN, and it acknowledges the peer's (and
		// the data of a Fast Open SYN, at most 64 KiB).
		o := 1 - s
		if e.isnKnown[s] || e.isnKnown[o] {
			return e.isnKnown[s] && r.Seq != e.isn[s] || e.isnKnown[o] && r.Ack-(e.isn[o]+1) > maxSynData
		}
		return after
	}
	if cookie != 0 {
		if known := e.cookies[e.end(r.Local)]; known != 0 && known != cookie {
			return true // another socket at this end
		}
	}
	if !birth {
		return false
	}
	if r.State == StateSynSent {
		// Nothing of a connection comes before its connect(). A
		// SYN_SENT stamped before e's first record is this connection's
		// own, released late because its SYN could not be tied to it by
		// cookie.
		return t > e.first
	}
	return after
}

// observe notes what r tells about e's connection: ISNs, handshake,
// close.
func (c *correlator) observe(e *connEntry, r *Record) {
	t := r.Time.UnixNano()
	if e.first == 0 || t < e.first {
		e.first = t
	}
	switch r.Type {
	case TypePacket:
		s := e.end(r.Src)
		switch {
		case r.Flags&FlagSYN != 0:
			if e.synEnd == 0 { // the opener: a SYN's sender, a SYN-ACK's peer
				opener := s
				if r.Flags&FlagACK != 0 {
					opener = 1 - s
				}
				e.synEnd = uint8(opener) + 1
			}
			if !e.isnKnown[s] {
				e.isn[s], e.isnKnown[s] = r.Seq, true
			}
			if o := 1 - s; r.Flags&FlagACK != 0 && !e.isnKnown[o] {
				e.isn[o], e.isnKnown[o] = r.Ack-1, true
			}
		case r.Flags&FlagRST != 0:
			c.close(e, t)
		default:
			if r.Flags&FlagACK != 0 {
				e.synced[s] = true
			}
			if r.Flags&FlagFIN != 0 {
				e.fin[s] = true
				if e.fin[1-s] {
					c.close(e, t)
				}
			}
		}
	case TypeState, TypeSocket:
		s := e.end(r.Local)
		if r.TimeWait {
			// A TIME_WAIT socket's start and end (timewait.go).
			if r.State == StateTimeWait {
				e.tw++
				e.twDone = false
				e.twEnd = uint8(s) + 1
			} else if r.State == StateClose && e.tw > 0 {
				if e.tw > 1 {
					e.twEnd = uint8(1-s) + 1 // the other end's TIME_WAIT goes on
				}
				if e.tw--; e.tw == 0 && !e.twDone {
					e.twDone = true
					c.twDone = append(c.twDone, e)
				}
			}
		}
		switch r.State {
		case StateClose, StateTimeWait:
			// A TIME_WAIT socket listed at start-up: its connection is over.
			if r.State == StateClose || r.Type == TypeSocket {
				c.close(e, t)
			}
			if r.State == StateTimeWait {
				e.synced[s] = true
			}
		case StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait, StateClosing, StateLastAck:
			e.synced[s] = true
		}
	}
}

// connKeySeed seeds connKeyHash.
var connKeySeed = maphash.MakeSeed()

// connKeyHash is k's key in the correlator's table (a variable: tests make
// every key collide).
var connKeyHash = func(k connKey) uint64 { return maphash.Comparable(connKeySeed, k) }

// current returns the current entry of key, whose hash is h; nil when
// none.
func (c *correlator) current(key connKey, h uint64) *connEntry {
	if e := c.conns[h]; e != nil && e.key == key {
		return e
	}
	if len(c.collided) > 0 {
		return c.collided[key]
	}
	return nil
}

// keys reports how many keys have a current entry.
func (c *correlator) keys() int { return len(c.conns) + len(c.collided) + len(c.compact) }

// setCurrent makes e the current entry of its key, whose hash is h.
func (c *correlator) setCurrent(e *connEntry, h uint64) {
	if cur := c.conns[h]; cur == nil || cur.key == e.key {
		c.conns[h] = e
		if len(c.collided) > 0 {
			delete(c.collided, e.key)
		}
		c.connsPeak = max(c.connsPeak, len(c.conns))
		return
	}
	c.collided[e.key] = e
}

// dropCurrent makes e, the current entry of its key, not current: false
// when it is not.
func (c *correlator) dropCurrent(e *connEntry) bool {
	h := connKeyHash(e.key)
	if c.conns[h] == e {
		delete(c.conns, h)
		return true
	}
	if len(c.collided) > 0 && c.collided[e.key] == e {
		delete(c.collided, e.key)
		return true
	}
	return false
}

func (c *correlator) insert(key connKey, h uint64) *connEntry {
	// A replaced entry (a new connection on the same tuple) stays in the
	// list for its sockets' late events, until swept or evicted.
	if c.size >= c.max {
		c.evict(c.lru.prev)
	}
	if old := c.current(key, h); old != nil {
		rs := c.replaced[key]
		if len(rs) >= maxReplacedPerKey {
			// A 4-tuple reused that fast (closed by RST, no TIME_WAIT):
			// the oldest is no longer found by cookie (it stays in the
			// list until swept), so that a lookup stays short.
			n := copy(rs, rs[1:])
			rs[n] = nil
			rs = rs[:n]
		}
		c.replaced[key] = append(rs, old)
		c.replacedPeak = max(c.replacedPeak, len(c.replaced))
	}
	c.next++
	e := c.newEntry()
	*e = connEntry{key: key, id: c.next}
	c.setCurrent(e, h)
	c.pushFront(e)
	c.size++
	return e
}

// newEntry returns storage for an entry: a removed one when there is.
func (c *correlator) newEntry() *connEntry {
	if n := len(c.free); n > 0 {
		e := c.free[n-1]
		c.free = c.free[:n-1]
		return e
	}
	return new(connEntry)
}

// evict forgets the least recently seen connection to make room.
func (c *correlator) evict(e *connEntry) {
	if e == &c.lru {
		return
	}
	c.remove(e)
	c.evicted++
}

func (c *correlator) remove(e *connEntry) {
	c.unlink(e)
	c.size--
	if !c.dropCurrent(e) {
		c.unreplace(e)
	}
	// Nothing points to e now but the twDone and closing lists, which
	// skip an entry that is unlinked, or not done or not closed (a
	// reused one is a connection of its own).
	if len(c.free) < maxFreeEntries {
		*e = connEntry{}
		c.free = append(c.free, e)
	}
}

// maxReplacedPerKey bounds the replaced entries of one 4-tuple searched
// by cookie (replacedOf, unreplace scan them).
const maxReplacedPerKey = 16

// unreplace takes e out of the replaced entries of its key.
func (c *correlator) unreplace(e *connEntry) {
	rs := c.replaced[e.key]
	for i, o := range rs {
		if o == e {
			rs = append(rs[:i], rs[i+1:]...)
			rs[len(rs):cap(rs)][0] = nil
			break
		}
	}
	if len(rs) == 0 {
		delete(c.replaced, e.key)
	} else {
		c.replaced[e.key] = rs
	}
}

func (c *correlator) unlink(e *connEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *correlator) pushFront(e *connEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// touch moves e to the front of the least-recently-seen list.
func (c *correlator) touch(e *connEntry) {
	if c.lru.next == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

// sweep forgets closed connections after their linger and idle ones
// after c.idle. Only the least recently seen end of the list is visited;
// every compact entry is. Call it every few seconds (settle every
// second).
func (c *correlator) sweep(now time.Time) {
	nowNs := now.UnixNano()
	for e := c.lru.prev; e != &c.lru; {
		prev := e.prev
		idle := time.Duration(nowNs - e.lastSeen)
		if idle <= closedLinger {
			break // everything further is more recent
		}
		if e.closed || idle > c.idle {
			c.remove(e)
		}
		e = prev
	}
	c.sweepCompact(nowNs)
	// Connections whose TIME_WAITs ended, oldest end first.
	n := 0
	for _, e := range c.twDone {
		switch {
		case e.prev == nil || !e.twDone: // removed since, or a new TIME_WAIT
		case e.lingerOver(nowNs):
			c.remove(e)
		default:
			c.twDone[n] = e // within its linger (or a later record)
			n++
		}
	}
	clear(c.twDone[n:])
	c.twDone = c.twDone[:n]
	if n == 0 && cap(c.twDone) > 4096 {
		c.twDone = nil
	}
	// Maps keep their peak capacity: give a storm's memory back.
	c.conns = ShrinkMap(c.conns, &c.connsPeak)
	c.replaced = ShrinkMap(c.replaced, &c.replacedPeak)
	c.pending = ShrinkMap(c.pending, &c.pendingPeak)
	c.compact = ShrinkMap(c.compact, &c.compactPeak)
}

// upkeep settles c every second, at settleAt (settleTime), and sweeps it
// every 10 s, at now: call it on every tick.
func (c *correlator) upkeep(now, settleAt time.Time) {
	if c.lastSweep.IsZero() {
		c.lastSettle, c.lastSweep = now, now
	}
	if now.Sub(c.lastSettle) >= time.Second {
		c.settle(settleAt)
		c.lastSettle = now
	}
	if now.Sub(c.lastSweep) > 10*time.Second {
		c.sweep(now)
		c.lastSweep = now
	}
}

// settle keeps only the compact entry of the closed connections quiet
// for compactAfter at now. It visits the connections closed since the
// last call and those not quiet then: call it every second, so that the
// full entries it frees are reused by the next second's connections.
func (c *correlator) settle(now time.Time) {
	nowNs := now.UnixNano()
	n := 0
	for _, e := range c.closing {
		switch {
		case e.prev == nil || !e.closed: // removed since (or reused, open)
		case time.Duration(nowNs-e.lastSeen) > compactAfter && e.lingerOver(nowNs):
			c.remove(e)
		case time.Duration(nowNs-e.lastSeen) > compactAfter && !c.compactEntry(e):
			// compacted, or it stays full until its linger ends
		default:
			c.closing[n] = e
			n++
		}
	}
	clear(c.closing[n:])
	c.closing = c.closing[:n]
	if n == 0 && cap(c.closing) > 4096 {
		c.closing = nil
	}
}

// ShrinkMap returns m, or a copy of it sized for what it holds once it
// holds less than an eighth of its peak (of at least 4096 entries); peak
// tracks m's largest size. Call it now and then (on a sweep), not per
// record: the copy is O(len(m)).
func ShrinkMap[K comparable, V any](m map[K]V, peak *int) map[K]V {
	n := len(m)
	if n > *peak {
		*peak = n
	}
	if *peak < 4096 || n >= *peak/8 {
		return m
	}
	c := make(map[K]V, n)
	for k, v := range m {
		c[k] = v
	}
	*peak = n
	return c
}
