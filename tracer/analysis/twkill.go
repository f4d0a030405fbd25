package analysis

import (
	"hash/maphash"
	"sort"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// What killed a TIME_WAIT socket early. The kernel kills one while it
// handles the peer's SYN or a RST to it, or inside connect() taking its
// 4-tuple over (tcp_tw_reuse): the sign is a record microseconds from the
// kill on the same 4-tuple. The tracer holds a kill record back twHold
// (50 ms) to tell it from a re-arm, so the signs around a kill have mostly
// been seen when its record comes. The analyzer keeps the signs of the
// last signKeep of record time, by the 4-tuple of the TIME_WAIT socket
// each would kill, and looks the kill's up when a TIME_WAIT end record
// says "killed": a socket in TIME_WAIT costs nothing here for its 60 s,
// and the signs held are a second's worth of SYNs and RSTs. A kill of a
// connection not summarized yet that no sign explains waits killWindow
// for one that comes after it (its summary names it).

// killWindow: how close to a TIME_WAIT socket's early end a sign of its
// killer must be. The kernel kills it while handling the SYN or RST (after
// the ingress hook saw it) or inside connect() (between the new socket's
// SYN_SENT and its SYN): microseconds apart on the same CPU.
const killWindow = 50 * time.Millisecond

// signKeep: how long (record time, behind the latest record) a sign is
// kept: the kill record it explains comes twHold after the kill and at
// the next tick of the tracer.
const signKeep = time.Second

// killSign is what may have killed a TIME_WAIT socket early.
type killSign uint8

// Kill signs; their names are result.ConnSummary.TimeWaitKill's.
const (
	noSign killSign = iota
	signSYN
	signRST
	signReuse
)

var killSignNames = [...]string{noSign: "", signSYN: "syn", signRST: "rst", signReuse: "tw_reuse"}

// String returns the sign's name ("" for none).
func (k killSign) String() string { return killSignNames[k] }

// withinKillWindow reports whether Unix ns times a and b are at most
// killWindow apart.
func withinKillWindow(a, b int64) bool { return max(a-b, b-a) <= int64(killWindow) }

// twKill is a kill at a time (Unix ns) that no sign explained yet, of
// the TIME_WAIT socket that replaced socket cookie of connection conn,
// not summarized.
type twKill struct {
	at     int64
	cookie uint64
	conn   uint64
}

// twSign is a sign seen at a time (Unix ns) for a TIME_WAIT socket of a
// 4-tuple (t; h its hash, compared first).
type twSign struct {
	at   int64
	h    uint64
	t    tuple
	sign killSign
}

// signSeed seeds the signs' tuple hashes.
var signSeed = maphash.MakeSeed()

// killSigns holds the recent signs, in the order they came (by time but
// for the few records out of order), and the unexplained kills. A kill
// looks its sign up among those within killWindow of it (a binary search,
// then a short scan): signs are many (every SYN), kills few, so no index
// is kept per sign (a map's churn cost more than the signs' own work).
type killSigns struct {
	q    []twSign // q[head:] are kept
	head int
	// most is the most signs kept at once since the last expire: q's
	// storage is given back only when it is far larger (a storm is over),
	// not regrown every tick of a storm.
	most  int
	kills map[tuple]twKill
}

func newKillSigns() killSigns { return killSigns{kills: map[tuple]twKill{}} }

// note records sign s at time at for a TIME_WAIT socket of 4-tuple t.
func (k *killSigns) note(t tuple, at int64, s killSign) {
	k.q = append(k.q, twSign{at: at, h: maphash.Comparable(signSeed, t), t: t, sign: s})
	k.most = max(k.most, len(k.q)-k.head)
}

// signSlack: how far out of time order a sign may come (the reorder
// stage's window, with room): the search for a kill's signs reaches
// that much further.
const signSlack = 10 * time.Millisecond

// of returns the sign of a kill at time at of a TIME_WAIT socket of t:
// the latest sign on t within killWindow of it.
func (k *killSigns) of(t tuple, at int64) killSign {
	q := k.q[k.head:]
	// The first sign after the window (give or take the slack).
	end := sort.Search(len(q), func(i int) bool { return q[i].at > at+int64(killWindow+signSlack) })
	h := maphash.Comparable(signSeed, t)
	for i := end - 1; i >= 0 && q[i].at >= at-int64(killWindow+signSlack); i-- {
		if e := &q[i]; e.h == h && e.t == t && withinKillWindow(e.at, at) {
			return e.sign
		}
	}
	return noSign
}

// expire forgets the signs older than signKeep before now (Unix ns,
// record time) and the kills older than killWindow.
func (k *killSigns) expire(now int64) {
	for k.head < len(k.q) && k.q[k.head].at < now-int64(signKeep) {
		k.head++
	}
	switch {
	case k.head == len(k.q) && cap(k.q) > 4096 && k.most < cap(k.q)/8:
		k.q, k.head = nil, 0 // give a storm's backlog back
	case k.head == len(k.q):
		k.q, k.head = k.q[:0], 0
	case k.head >= 1024 && k.head*2 >= len(k.q):
		n := copy(k.q, k.q[k.head:])
		k.q, k.head = k.q[:n], 0
	}
	k.most = len(k.q) - k.head
	for t, kl := range k.kills {
		if kl.at < now-int64(killWindow) {
			delete(k.kills, t)
		}
	}
}

// timeWaitSign notes r's sign, if it is one, of what may kill a TIME_WAIT
// socket early: the peer's SYN (a new connection reusing the 4-tuple) or
// RST, or a local connect() taking the 4-tuple over (tcp_tw_reuse: the
// new socket's SYN_SENT, its SYN). A kill that came first, of a
// connection not summarized yet, gets it.
func (a *Analyzer) timeWaitSign(r *tracer.Record) {
	at := r.Time.UnixNano()
	switch {
	case r.Type == tracer.TypeState:
		if r.TimeWait || r.State != tracer.StateSynSent {
			return
		}
		a.sign(makeTuple(r.Local, r.Remote), at, signReuse)
	case r.Flags&tracer.FlagRST != 0:
		a.sign(makeTuple(r.Dst, r.Src), at, signRST)
	case r.Flags&(tracer.FlagSYN|tracer.FlagACK) == tracer.FlagSYN:
		// Our own new SYN for a TIME_WAIT socket at its source, the
		// peer's for one at its destination.
		a.sign(makeTuple(r.Src, r.Dst), at, signReuse)
		a.sign(makeTuple(r.Dst, r.Src), at, signSYN)
	}
}

// sign notes sign s at time at for a TIME_WAIT socket of t, and names a
// kill of t that came first.
func (a *Analyzer) sign(t tuple, at int64, s killSign) {
	a.kill.note(t, at, s)
	if len(a.kill.kills) == 0 {
		return
	}
	kl, ok := a.kill.kills[t]
	if !ok || !withinKillWindow(kl.at, at) {
		return
	}
	delete(a.kill.kills, t)
	if c := a.conns[kl.conn]; c != nil {
		for i := range c.sockets {
			if sk := &c.sockets[i]; sk.cookie == kl.cookie && sk.twKill == noSign {
				sk.twKill = s
			}
		}
	}
}

// timeWaitKilled names on r, the end record of a TIME_WAIT killed early,
// its sign (time_wait_kill) and returns it; noSign when none came yet.
func (a *Analyzer) timeWaitKilled(r *tracer.Record) killSign {
	s := a.kill.of(makeTuple(r.Local, r.Remote), r.Time.UnixNano())
	r.TimeWaitKill = s.String()
	return s
}

// lateTimeWait sees the records of summarized connections: signs of what
// kills a TIME_WAIT (a RST to it) and the TIME_WAIT ends.
func (a *Analyzer) lateTimeWait(r *tracer.Record) {
	a.timeWaitSign(r)
	if r.Type == tracer.TypeState && r.TimeWait && r.State != tracer.StateTimeWait && r.TimeWaitEnd == "killed" {
		a.timeWaitKilled(r)
	}
}

// timeWaitRecord applies a TIME_WAIT start or end record to socket sk
// of c; it returns the TIME_WAIT's duration when r ends it.
func (a *Analyzer) timeWaitRecord(c *conn, sk *socket, r *tracer.Record) time.Duration {
	if r.State == tracer.StateTimeWait {
		sk.twStart, sk.twActive, sk.twKill = r.Time, true, noSign
		return 0
	}
	sk.twActive, sk.twEnd, sk.twDur = false, r.TimeWaitEnd, r.TimeWaitDur
	if r.TimeWaitEnd == "killed" {
		if sk.twKill = a.timeWaitKilled(r); sk.twKill == noSign {
			a.kill.kills[makeTuple(r.Local, r.Remote)] = twKill{at: r.Time.UnixNano(), cookie: sk.cookie, conn: c.id}
		}
	}
	return r.TimeWaitDur
}
