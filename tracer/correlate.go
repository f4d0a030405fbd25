package tracer

import (
	"net/netip"
	"time"
)

// Correlation defaults.
const (
	// DefaultMaxConns caps the connection table of the correlator.
	DefaultMaxConns = 1 << 18
	// closedLinger keeps a closed connection's id for late packets
	// (retransmitted FINs, TIME_WAIT ACKs): Linux TIME_WAIT lasts 60 s.
	closedLinger = 90 * time.Second
	// idleLinger forgets a connection that showed nothing for this long.
	idleLinger = 30 * time.Minute
	// pendingTimeout bounds how long a SYN_SENT record waits for its port.
	pendingTimeout = time.Second
)

// connKey identifies a TCP connection regardless of direction: the two
// endpoints in a fixed order. Both ends of a connection between network
// namespaces of one host share a key, so they share a conn id. Loopback
// addresses are only unique within a namespace, and a listener's key
// (remote unspecified) is one per namespace: for them netns is part of the
// key.
type connKey struct {
	a, b  netip.AddrPort
	netns uint32
}

func makeConnKey(x, y netip.AddrPort, netns uint32) connKey {
	if !x.Addr().IsLoopback() && !y.Addr().IsLoopback() && !x.Addr().IsUnspecified() && !y.Addr().IsUnspecified() {
		netns = 0
	}
	if x.Compare(y) > 0 {
		x, y = y, x
	}
	return connKey{a: x, b: y, netns: netns}
}

// connEntry is one connection of the table, also a node of its
// least-recently-seen list.
type connEntry struct {
	key        connKey
	id         uint64
	lastSeen   time.Time
	synSeen    bool      // a SYN_SENT transition or a SYN was seen
	synTime    time.Time // when the first of them happened
	isn        uint32    // sequence number of the opening SYN, when synISN
	synISN     bool
	finA, finB bool // a FIN was seen from endpoint a, from endpoint b
	closed     bool // a socket reached CLOSE, a RST passed, or both sides sent FIN
	// cookies of the local sockets whose events joined this connection
	// (both ends when both are local), for byCookie.
	cookies    [2]uint64
	prev, next *connEntry
}

func (e *connEntry) markSyn(t time.Time) {
	if !e.synSeen || t.Before(e.synTime) {
		e.synTime = t
	}
	e.synSeen = true
}

// correlator gives every record of one connection the same conn id: both
// directions, packets and socket events, both ends. A new connection on a
// reused 4-tuple (a new SYN with another ISN, or a new connect) gets a new
// id. The table is capped; the least recently seen connection goes first.
// It is used by the single reader goroutine only.
type correlator struct {
	next    uint64
	conns   map[connKey]*connEntry
	max     int
	evicted uint64
	// lru is a sentinel: lru.next is the most recently seen entry,
	// lru.prev the least.
	lru connEntry
	// pending holds CLOSE -> SYN_SENT records by socket cookie until the
	// local port is known: connect() enters SYN_SENT before the kernel
	// picks the port, so that record alone cannot be keyed.
	pending map[uint64]*Record
	// byCookie finds a socket's connection by the socket's cookie, so that
	// its late events (the end of its TIME_WAIT, 50 ms after the kill)
	// join the right connection after a new one took over the 4-tuple.
	// An entry replaced on its key stays in the LRU list (and here) until
	// swept or evicted; size counts every entry of the list.
	byCookie map[uint64]*connEntry
	size     int
}

func newCorrelator(max int) *correlator {
	if max <= 0 {
		max = DefaultMaxConns
	}
	c := &correlator{conns: make(map[connKey]*connEntry), max: max, pending: make(map[uint64]*Record),
		byCookie: make(map[uint64]*connEntry)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
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
				if err := c.release(p, emit); err != nil {
					return err
				}
			}
		}
	}
	if r.Type == TypeState && r.OldState == StateClose && r.State == StateSynSent &&
		r.Local.Port() == 0 && r.Cookie != 0 {
		held := *r
		c.pending[r.Cookie] = &held
		return nil
	}
	return c.release(r, emit)
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
			if err := c.release(p, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// assign sets r.Conn.
func (c *correlator) assign(r *Record) {
	var key connKey
	switch r.Type {
	case TypePacket:
		key = makeConnKey(r.Src, r.Dst, r.Netns)
	case TypeState, TypeRetransmit, TypeReset, TypeSocket:
		key = makeConnKey(r.Local, r.Remote, r.Netns)
	default:
		r.Conn = 0
		return
	}
	e := c.conns[key]
	sockCookie := uint64(0)
	if r.Type != TypePacket && r.Cookie != 0 && r.State != StateListen && !r.Remote.Addr().IsUnspecified() {
		sockCookie = r.Cookie // a connected socket's event; a listener's reset is none
	}
	if old := c.byCookie[sockCookie]; sockCookie != 0 && old != nil && old != e && old.key == key {
		// A late event of a socket whose 4-tuple a new connection took.
		e = old
	} else if e == nil || c.startsNew(e, r) {
		e = c.insert(key)
	}
	c.observe(e, r)
	e.lastSeen = r.Time
	c.touch(e)
	r.Conn = e.id
	if sockCookie != 0 && e.cookies[0] != sockCookie && e.cookies[1] != sockCookie {
		if prev := c.byCookie[e.cookies[1]]; e.cookies[1] != 0 && prev == e {
			delete(c.byCookie, e.cookies[1])
		}
		e.cookies[0], e.cookies[1] = sockCookie, e.cookies[0]
		c.byCookie[sockCookie] = e
	}
}

// startsNew reports whether r opens a new connection on a known key.
func (c *correlator) startsNew(e *connEntry, r *Record) bool {
	switch r.Type {
	case TypePacket:
		if r.Flags&(FlagSYN|FlagACK) == FlagSYN {
			return e.synISN && e.isn != r.Seq
		}
	case TypeState:
		if r.State == StateSynSent && r.OldState == StateClose {
			// A connect after this connection's SYN is a new connection.
			// One before it is this connection's own SYN_SENT, released
			// late because its SYN could not be tied to it by cookie.
			return e.synSeen && !r.Time.Before(e.synTime)
		}
		if r.State == StateListen {
			return e.closed
		}
	}
	return false
}

func (c *correlator) observe(e *connEntry, r *Record) {
	switch r.Type {
	case TypePacket:
		switch {
		case r.Flags&(FlagSYN|FlagACK) == FlagSYN:
			e.markSyn(r.Time)
			if !e.synISN {
				e.isn, e.synISN = r.Seq, true
			}
		case r.Flags&FlagRST != 0:
			e.closed = true
		case r.Flags&FlagFIN != 0:
			if r.Src == e.key.a {
				e.finA = true
			} else {
				e.finB = true
			}
			e.closed = e.closed || e.finA && e.finB
		}
	case TypeState:
		if r.State == StateSynSent {
			e.markSyn(r.Time)
		}
		if r.State == StateClose {
			e.closed = true
		}
	}
}

func (c *correlator) insert(key connKey) *connEntry {
	// A replaced entry (a new connection on the same tuple) stays in the
	// list for its sockets' late events, until swept or evicted.
	if c.size >= c.max {
		c.evict(c.lru.prev)
	}
	c.next++
	e := &connEntry{key: key, id: c.next}
	c.conns[key] = e
	c.pushFront(e)
	c.size++
	return e
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
	if c.conns[e.key] == e {
		delete(c.conns, e.key)
	}
	for _, ck := range e.cookies {
		if ck != 0 && c.byCookie[ck] == e {
			delete(c.byCookie, ck)
		}
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

// sweep forgets closed connections after closedLinger and idle ones after
// idleLinger. Only the least recently seen end of the list is visited.
func (c *correlator) sweep(now time.Time) {
	for e := c.lru.prev; e != &c.lru; {
		prev := e.prev
		idle := now.Sub(e.lastSeen)
		if idle <= closedLinger {
			break // everything further is more recent
		}
		if e.closed || idle > idleLinger {
			c.remove(e)
		}
		e = prev
	}
}
