package tracer

import (
	"net/netip"
	"slices"
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
)

// connKey identifies a TCP connection regardless of direction: the two
// endpoints in a fixed order. Both ends of a connection between network
// namespaces of one host share a key, so they share a conn id. Loopback
// addresses are only unique within a namespace, so for them netns is part
// of the key.
type connKey struct {
	a, b  netip.AddrPort
	netns uint32
}

func makeConnKey(x, y netip.AddrPort, netns uint32) connKey {
	if x.Addr().IsLoopback() || y.Addr().IsLoopback() {
		// keep netns
	} else {
		netns = 0
	}
	if x.Compare(y) > 0 {
		x, y = y, x
	}
	return connKey{a: x, b: y, netns: netns}
}

type connEntry struct {
	id       uint64
	lastSeen time.Time
	synSeen  bool      // a SYN_SENT transition or a SYN was seen
	synTime  time.Time // when the first of them happened
	isn      uint32    // sequence number of the opening SYN, when synISN
	synISN   bool
	closed   bool // some socket of this connection reached CLOSE
}

// correlator gives every record of one connection the same conn id: both
// directions, packets and socket events, both ends. A new connection on a
// reused 4-tuple (a new SYN with another ISN, or a new connect) gets a new
// id. It is used by the single reader goroutine only.
type correlator struct {
	next    uint64
	conns   map[connKey]*connEntry
	max     int
	evicted uint64
	// pending holds CLOSE -> SYN_SENT records by socket cookie until the
	// local port is known: connect() enters SYN_SENT before the kernel
	// picks the port, so that record alone cannot be keyed.
	pending map[uint64]*Record
}

// pendingTimeout bounds how long a SYN_SENT record waits for its port.
const pendingTimeout = time.Second

func newCorrelator(max int) *correlator {
	if max <= 0 {
		max = DefaultMaxConns
	}
	return &correlator{conns: make(map[connKey]*connEntry), max: max, pending: make(map[uint64]*Record)}
}

// process assigns r its conn id and passes it to emit, releasing first any
// held record that r completes. A SYN_SENT record without a local port is
// held (copied) instead; it is released, with the port filled in, by the
// socket's SYN (matched by cookie) or its next socket event, or by expire.
func (c *correlator) process(r *Record, emit func(*Record) error) error {
	if r.Cookie != 0 && len(c.pending) > 0 {
		if p, ok := c.pending[r.Cookie]; ok {
			switch {
			case r.Type == TypePacket && r.Flags&(FlagSYN|FlagACK) == FlagSYN:
				p.Local = r.Src
			case r.Type == TypePacket:
				p = nil // not this socket's SYN: keep waiting
			case r.Local.Port() != 0:
				p.Local = r.Local
			}
			if p != nil {
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

// assign sets r.Conn. Lost records belong to no connection (conn 0).
func (c *correlator) assign(r *Record) {
	var key connKey
	switch r.Type {
	case TypePacket:
		key = makeConnKey(r.Src, r.Dst, r.Netns)
	case TypeState, TypeRetransmit, TypeReset:
		key = makeConnKey(r.Local, r.Remote, r.Netns)
	default:
		r.Conn = 0
		return
	}
	e := c.conns[key]
	if e == nil || c.startsNew(e, r) {
		e = c.insert(key)
	}
	c.observe(e, r)
	e.lastSeen = r.Time
	r.Conn = e.id
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
		if r.Flags&(FlagSYN|FlagACK) == FlagSYN {
			e.markSyn(r.Time)
			if !e.synISN {
				e.isn, e.synISN = r.Seq, true
			}
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

func (e *connEntry) markSyn(t time.Time) {
	if !e.synSeen || t.Before(e.synTime) {
		e.synTime = t
	}
	e.synSeen = true
}

func (c *correlator) insert(key connKey) *connEntry {
	if len(c.conns) >= c.max {
		c.evictOldest()
	}
	c.next++
	e := &connEntry{id: c.next}
	c.conns[key] = e
	return e
}

// evictOldest drops the least recently seen tenth of the table. It runs
// only when the table is full, which sweep normally prevents.
func (c *correlator) evictOldest() {
	seen := make([]time.Time, 0, len(c.conns))
	for _, e := range c.conns {
		seen = append(seen, e.lastSeen)
	}
	slices.SortFunc(seen, time.Time.Compare)
	cutoff := seen[len(seen)/10]
	for k, e := range c.conns {
		if !e.lastSeen.After(cutoff) {
			delete(c.conns, k)
			c.evicted++
		}
	}
}

// sweep forgets closed connections after closedLinger and idle ones after
// idleLinger.
func (c *correlator) sweep(now time.Time) {
	for k, e := range c.conns {
		idle := now.Sub(e.lastSeen)
		if e.closed && idle > closedLinger || idle > idleLinger {
			delete(c.conns, k)
		}
	}
}
