package tracer

import (
	"hash/maphash"
	"time"
)

// compactAfter is how long a closed connection stays quiet before the
// correlator keeps only its compactConn for the rest of its linger (a
// variable: tests compact at once).
var compactAfter = 5 * time.Second

// compactConn is what the correlator keeps of a closed, quiet connection
// for the rest of its linger (through TIME_WAIT): its id, and what tells
// its late records (the end of its TIME_WAIT, a retransmitted FIN, the RST
// that answers it) from a new connection on its 4-tuple. 16 bytes by
// value in a map keyed by the key's hash (about 50 bytes a connection
// with the map's own overhead), where a connEntry takes 128 and a
// pointer. Numbers are kept as their low 32 bits and completed from a
// nearby one (compactID, compactTime, compactCookie): ids and cookies only
// grow, and an entry lives minutes, not the 2^32 ids, cookies or
// milliseconds (49 days) that would make them ambiguous.
//
// A record that needs more than the id revives the full entry, which
// then knows one socket cookie or one ISN, the tag: the cookie of the
// socket in TIME_WAIT (or of a local end), or, when neither end got past
// its handshake, the ISN of the end that opened (a SYN retransmitted
// after an ignored RST keeps the id). The other end's socket is taken on
// trust: its next event names it again. A connection whose two sockets
// are both in TIME_WAIT keeps its full entry while they are.
type compactConn struct {
	id     uint32 // low 32 bits of the id
	seenMs uint32 // low 32 bits of the latest record's Unix ms
	tag    uint32 // low 32 bits of the tag end's cookie, or its ISN
	check  uint16 // low 16 bits of connKeyCheck of the key
	flags  compactFlags
	tw     int8 // connEntry.tw
}

// compactFlags say what a compactConn's tag is, and its TIME_WAIT state.
type compactFlags uint8

const (
	tagEnd1   compactFlags = 1 << iota // the tag is end 1's (else end 0's)
	tagCookie                          // the tag is a socket cookie
	tagISN                             // the tag is an ISN
	ccTWDone                           // connEntry.twDone
)

// tagEnd is the end the tag belongs to.
func (f compactFlags) tagEnd() int {
	if f&tagEnd1 != 0 {
		return 1
	}
	return 0
}

// lastSeen is the Unix ns of cc's latest record (rounded up to the
// millisecond), given a time t within 24 days of it.
func (cc *compactConn) lastSeen(t int64) int64 { return compactTime(cc.seenMs, t) }

// lingerOver is connEntry.lingerOver of a closed connection.
func (cc *compactConn) lingerOver(t int64) bool {
	if cc.flags&ccTWDone != 0 {
		return t-cc.lastSeen(t) > int64(TimeWaitLinger)
	}
	return t-cc.lastSeen(t) > int64(closedLinger)
}

// compactMs is compactConn.seenMs of t (Unix ns): the low 32 bits of its
// Unix ms, rounded up (a linger ends no sooner than the full entry's).
func compactMs(t int64) uint32 {
	return uint32((t + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

// compactTime completes ms, the low 32 bits of a Unix time in
// milliseconds, to Unix ns: the one nearest to ref (Unix ns).
func compactTime(ms uint32, ref int64) int64 {
	refMs := ref / int64(time.Millisecond)
	return (refMs - int64(int32(uint32(refMs)-ms))) * int64(time.Millisecond)
}

// compactID completes the low 32 bits of an id given out before next
// (ids count up).
func compactID(id uint32, next uint64) uint64 { return next - uint64(uint32(next)-id) }

// compactCookie completes the low 32 bits of a socket cookie to the
// cookie nearest to ref, a cookie of the same time (cookies count up,
// shared by all network namespaces).
func compactCookie(lo uint32, ref uint64) uint64 { return ref + uint64(int64(int32(lo-uint32(ref)))) }

// connKeyCheckSeed seeds connKeyCheck.
var connKeyCheckSeed = maphash.MakeSeed()

// connKeyCheck is a second hash of k, independent of connKeyHash: a
// compact entry keeps 16 bits of it instead of its 40-byte key. Two keys
// are taken for one only when both agree (80 bits): about once in 10^18
// lookups of a table of a million keys.
func connKeyCheck(k connKey) uint16 { return uint16(maphash.Comparable(connKeyCheckSeed, k)) }

// compactLookup returns the compact entry of key (hash h), if any.
func (c *correlator) compactLookup(key connKey, h uint64) (compactConn, bool) {
	cc, ok := c.compact[h]
	return cc, ok && cc.check == connKeyCheck(key)
}

// compactRecord gives r, a record of the compact entry cc of key (hash
// h), cc's id in place when r is the start or end of a TIME_WAIT of the
// socket cc knows at that end: the one record every storm connection has
// after it went quiet. False when r needs the full entry (revive).
func (c *correlator) compactRecord(cc *compactConn, key connKey, h uint64, r *Record, cookie uint64, t int64) bool {
	if !r.TimeWait || cookie == 0 || cc.flags&tagCookie == 0 || key.end(r.Local) != cc.flags.tagEnd() ||
		uint32(cookie) != cc.tag {
		return false
	}
	// connEntry.observe of a TIME_WAIT record, the entry closed already.
	if r.State == StateTimeWait {
		cc.tw++
		cc.flags &^= ccTWDone
	} else if r.State == StateClose && cc.tw > 0 {
		if cc.tw--; cc.tw == 0 {
			cc.flags |= ccTWDone
		}
	}
	if t > cc.lastSeen(t) {
		cc.seenMs = compactMs(t)
	}
	c.compact[h] = *cc
	r.Conn = compactID(cc.id, c.next)
	return true
}

// revive makes cc, the compact entry of key (hash h), its key's current
// entry again: closed, each end past its handshake unless the tag is its
// ISN, its first record and close taken as its last record (a SYN or a
// new socket after it is a new connection, as it would have been).
// t and cookie are the reviving record's time (Unix ns) and socket
// cookie (0 when none).
func (c *correlator) revive(key connKey, h uint64, cc *compactConn, t int64, cookie uint64) *connEntry {
	delete(c.compact, h)
	if c.size >= c.max {
		c.evict(c.lru.prev)
	}
	e := c.newEntry()
	seen := cc.lastSeen(t)
	*e = connEntry{key: key, id: compactID(cc.id, c.next), lastSeen: seen, first: seen, closedAt: seen,
		tw: cc.tw, twDone: cc.flags&ccTWDone != 0, synced: [2]bool{true, true}, closed: true}
	end := cc.flags.tagEnd()
	switch {
	case cc.flags&tagCookie != 0:
		ref := c.cookieRef
		if cookie != 0 {
			ref = cookie
		}
		e.cookies[end] = compactCookie(cc.tag, ref)
		if cc.tw > 0 {
			e.twEnd = uint8(end) + 1 // the tagged socket is the one in TIME_WAIT
		}
	case cc.flags&tagISN != 0:
		e.isn[end], e.isnKnown[end], e.synced = cc.tag, true, [2]bool{} // neither end got past its handshake
		e.synEnd = uint8(end) + 1
	}
	c.setCurrent(e, h)
	c.pushFront(e)
	c.size++
	if e.twDone {
		c.twDone = append(c.twDone, e)
	}
	c.closing = append(c.closing, e)
	return e
}

// maxCompactPerEntry bounds the compact entries: at most this many per
// entry the table holds (max).
const maxCompactPerEntry = 4

// compactEntry replaces e, closed, quiet and current, by its compact
// entry. e stays as it is when it is not current, its hash holds another
// key's compact entry, or 32 bits of it could not be completed later (an
// id older than 2^31 ids, a cookie 2^30 from the latest: ids and cookies
// date from the connection's start, not its end); again: it stays for
// now, while both ends' sockets are in TIME_WAIT (one tag cannot name
// both). When the compact entries are at their bound, e is forgotten
// (evicted).
func (c *correlator) compactEntry(e *connEntry) (again bool) {
	if e.tw > 1 {
		return true
	}
	h := connKeyHash(e.key)
	if c.current(e.key, h) != e {
		return false
	}
	if _, taken := c.compact[h]; taken {
		return false
	}
	if c.next-e.id >= 1<<31 {
		return false
	}
	for _, ck := range e.cookies {
		if d := int64(ck - c.cookieRef); ck != 0 && (d > 1<<30 || d < -(1<<30)) {
			return false
		}
	}
	if len(c.compact) >= c.max*maxCompactPerEntry {
		c.evict(e)
		return false
	}
	cc := compactConn{id: uint32(e.id), seenMs: compactMs(e.lastSeen),
		check: connKeyCheck(e.key), tw: e.tw}
	if e.twDone {
		cc.flags |= ccTWDone
	}
	// The tag: when neither end got past its handshake (refused, reset
	// or never answered), an ISN a retransmitted SYN would repeat; else
	// the cookie of the socket in TIME_WAIT, else of a local end.
	end, kind := 0, compactFlags(0)
	unsynced := !e.synced[0] && !e.synced[1]
	switch {
	case unsynced && e.synEnd != 0 && e.isnKnown[e.synEnd-1]:
		end, kind = int(e.synEnd)-1, tagISN
	case unsynced && e.isnKnown[0]:
		end, kind = 0, tagISN
	case unsynced && e.isnKnown[1]:
		end, kind = 1, tagISN
	case e.twEnd != 0 && e.cookies[e.twEnd-1] != 0:
		end, kind = int(e.twEnd)-1, tagCookie
	case e.cookies[0] != 0:
		end, kind = 0, tagCookie
	case e.cookies[1] != 0:
		end, kind = 1, tagCookie
	}
	switch kind {
	case tagISN:
		cc.tag = e.isn[end]
	case tagCookie:
		cc.tag = uint32(e.cookies[end])
	}
	cc.flags |= kind
	if end == 1 {
		cc.flags |= tagEnd1
	}
	c.compact[h] = cc
	c.compactPeak = max(c.compactPeak, len(c.compact))
	c.remove(e)
	return false
}

// sweepCompact forgets the compact entries past their linger at now
// (Unix ns).
func (c *correlator) sweepCompact(now int64) {
	for h, cc := range c.compact {
		if cc.lingerOver(now) {
			delete(c.compact, h)
		}
	}
}

// settleTime is the time the correlator settles at (correlator.settle):
// now, unless the reader is behind the ring (not idle), when it is the
// newest record's (Unix ns; 0 none yet): a connection is quiet when its
// records say so, not while they wait in the ring.
func settleTime(now time.Time, newest int64, idle bool) time.Time {
	if idle || newest == 0 || newest >= now.UnixNano() {
		return now
	}
	return time.Unix(0, newest)
}
