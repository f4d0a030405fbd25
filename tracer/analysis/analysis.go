// Package analysis reasons about each connection the way an engineer reads
// tcpdump -S: it gives every packet relative sequence numbers and tshark's
// TCP analysis verdicts (per capture point), checks the handshake and the
// close, confirms retransmissions against the kernel's own retransmit
// events, and emits one summary record per connection.
//
// An Analyzer sits between the tracer and the output as a tracer.Sink. It
// keeps bounded per-connection state and is used by one goroutine.
package analysis

import (
	"container/list"
	"errors"
	"net/netip"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// Defaults for Config.
const (
	DefaultMaxConns    = 65536
	DefaultIdleTimeout = 10 * time.Minute
	// quietAfterClose is how long a connection whose sockets are all gone
	// (or whose packets show both FINs or a RST) stays, for late packets,
	// before its summary.
	quietAfterClose = time.Second
	kernelRtxKept   = 64
)

// Config configures an Analyzer.
type Config struct {
	// SummaryOnly passes only conn (and lost) records on.
	SummaryOnly bool
	// MaxConns caps the connections analyzed at once; the least recently
	// seen is summarized with evicted: true to make room.
	MaxConns int
	// IdleTimeout summarizes (evicted: true) connections idle this long.
	IdleTimeout time.Duration
}

// Analyzer annotates records and adds conn summary records. It implements
// tracer.Sink.
type Analyzer struct {
	next  tracer.Sink
	cfg   Config
	conns map[uint64]*conn
	lru   *list.List // of *conn, most recently seen first
	now   time.Time  // time of the latest record
	out   tracer.Record
}

// New returns an Analyzer writing to next.
func New(next tracer.Sink, cfg Config) *Analyzer {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	return &Analyzer{next: next, cfg: cfg, conns: make(map[uint64]*conn), lru: list.New()}
}

// pointKey names a capture point.
type pointKey struct {
	ifindex uint32
	netns   uint32
}

type rtxEvent struct {
	seq, end uint32
}

// socket is one local socket of a connection, from its socket events.
type socket struct {
	local     netip.AddrPort
	netns     uint32
	state     tracer.TCPState
	since     time.Time
	stateTime [16]time.Duration
	owner     tracer.Owner
	closed    bool
	timeWait  bool // went FIN_WAIT2/CLOSING -> CLOSE: a TIME_WAIT socket replaced it
	srtt      time.Duration
	cwnd      uint32
}

// conn is the analysis state of one connection (one conn id).
type conn struct {
	id      uint64
	elem    *list.Element
	netns   uint32
	start   time.Time
	last    time.Time
	ends    [2]netip.AddrPort // side 0 is the client (SYN sender) when known
	endsSet bool
	client  bool // ends[0] is known to be the client

	base    [2]uint32 // relative-number base: ISN, or first seq seen
	baseSet [2]bool
	isnSeen [2]bool // base is a real ISN (SYN seen)
	scale   [2]int  // window scale shift, -1 unknown
	wsOpt   [2]int  // window scale option of each side's SYN, -1 none

	synTime, synAckTime, ackTime time.Time
	synCount, synAckCount        int
	outcome                      string

	points  map[pointKey]*point
	primary pointKey
	primSet bool

	bytes, segs [2]uint64
	kernelRtx   [2][]rtxEvent
	sockets     map[uint64]*socket

	retransKernel, retransSeen, fast, spurious, zeroWin uint64
	resetsBy                                            [2]uint64
	resetsSent, resetsRecv                              uint64
	resetReason                                         string
	finTime                                             [2]time.Time
	finAcked                                            [2]bool
	finSeq                                              [2]uint32
	simultaneousClose                                   bool
	rstSide                                             int // -1 none
	rstTime                                             time.Time
	incomplete                                          string
}

func (a *Analyzer) conn(r *tracer.Record) *conn {
	c := a.conns[r.Conn]
	if c != nil {
		a.lru.MoveToFront(c.elem)
		return c
	}
	if len(a.conns) >= a.cfg.MaxConns {
		if oldest := a.lru.Back(); oldest != nil {
			a.summarize(oldest.Value.(*conn), false, true)
		}
	}
	c = &conn{id: r.Conn, netns: r.Netns, start: r.Time, points: map[pointKey]*point{}, sockets: map[uint64]*socket{},
		scale: [2]int{-1, -1}, wsOpt: [2]int{-1, -1}, rstSide: -1}
	c.elem = a.lru.PushFront(c)
	a.conns[r.Conn] = c
	return c
}

// side returns which side sent from ep, setting the sides up on first use.
func (c *conn) side(src, dst netip.AddrPort, syn, ack bool) int {
	if !c.endsSet {
		c.ends = [2]netip.AddrPort{src, dst}
		c.endsSet = true
		c.client = syn && !ack
		if syn && ack { // a SYN-ACK first: the destination is the client
			c.ends = [2]netip.AddrPort{dst, src}
			c.client = true
		}
	}
	if src == c.ends[0] {
		return 0
	}
	return 1
}

// Write analyzes r, passes it on (unless SummaryOnly) and emits the
// summaries of connections that ended.
func (a *Analyzer) Write(r *tracer.Record) error {
	if r.Time.After(a.now) {
		a.now = r.Time
	}
	if r.Type == tracer.TypeLost {
		for _, c := range a.conns {
			if c.incomplete == "" {
				c.incomplete = "events lost (ring buffer full)"
			}
		}
		return a.next.Write(r)
	}
	if r.Conn == 0 || r.Type == tracer.TypeConn {
		return a.pass(r)
	}
	c := a.conn(r)
	c.last = r.Time
	switch r.Type {
	case tracer.TypePacket:
		a.packet(c, r)
	case tracer.TypeState:
		c.stateEvent(r)
	case tracer.TypeRetransmit:
		c.retransmitEvent(r)
	case tracer.TypeReset:
		c.resetEvent(r)
	}
	return a.pass(r)
}

func (a *Analyzer) pass(r *tracer.Record) error {
	if a.cfg.SummaryOnly && r.Type != tracer.TypeConn {
		return nil
	}
	return a.next.Write(r)
}

func (a *Analyzer) packet(c *conn, r *tracer.Record) {
	syn, ack := r.Flags&tracer.FlagSYN != 0, r.Flags&tracer.FlagACK != 0
	s := c.side(r.Src, r.Dst, syn, ack)
	o := 1 - s
	if syn {
		c.handshake(r, s, ack)
	}
	if !c.baseSet[s] {
		c.base[s], c.baseSet[s] = r.Seq, true
		if !syn && c.incomplete == "" {
			c.incomplete = "capture started after the handshake"
		}
	}
	r.Analyzed = true
	r.RelSeq = r.Seq - c.base[s]
	if ack && c.baseSet[o] {
		r.RelAck, r.RelAckValid = r.Ack-c.base[o], true
	}
	if ack && !syn && c.synAckTime != (time.Time{}) && c.ackTime.IsZero() && s == 0 && c.isnSeen[1] && r.Ack == c.base[1]+1 {
		c.ackTime = r.Time
		c.outcome = "established"
	}

	key := pointKey{ifindex: r.Ifindex, netns: r.Netns}
	pt := c.points[key]
	if pt == nil {
		pt = &point{}
		c.points[key] = pt
	}
	if !c.primSet {
		c.primary, c.primSet = key, true
	}
	ooo := defaultOutOfOrderWindow
	if !c.synTime.IsZero() && !c.ackTime.IsZero() {
		ooo = c.ackTime.Sub(c.synTime) // tshark's iRTT
	}
	r.Verdicts, r.DupAckCount = analyze(pt, s, r, c.scale, ooo)
	// Out-of-order is a timing guess too: the kernel says whether it was
	// in fact a retransmission.
	if r.Verdicts&(tracer.Retransmissions|tracer.VerdictOutOfOrder) != 0 {
		r.KernelConfirmed = c.confirm(s, r)
	}

	if key == c.primary {
		c.countPacket(s, r)
	}
}

// handshake tracks ISNs, SYN retransmissions, window scaling and RTTs.
func (c *conn) handshake(r *tracer.Record, s int, ack bool) {
	ws := -1
	if r.Options.Present&tracer.OptWScale != 0 {
		ws = int(r.Options.WScale)
	}
	if !c.isnSeen[s] {
		c.base[s], c.baseSet[s], c.isnSeen[s] = r.Seq, true, true
		c.wsOpt[s] = ws
	}
	if ack {
		c.synAckCount++
		if c.synAckTime.IsZero() {
			c.synAckTime = r.Time
		}
	} else {
		c.synCount++
		if c.synTime.IsZero() {
			c.synTime = r.Time
		}
	}
	// RFC 7323: scaling is in effect only when both SYNs carried it.
	if c.wsOpt[0] >= 0 && c.wsOpt[1] >= 0 {
		c.scale = [2]int{c.wsOpt[0], c.wsOpt[1]}
	} else if c.isnSeen[0] && c.isnSeen[1] {
		c.scale = [2]int{0, 0}
	}
}

// confirm checks a retransmission verdict against the kernel's retransmit
// events of the sending socket: 1 when it retransmitted that sequence, -1
// when it did not, 0 when the sender is not a socket of this host.
func (c *conn) confirm(s int, r *tracer.Record) int8 {
	if !c.isLocal(s) {
		return 0
	}
	for _, e := range c.kernelRtx[s] {
		if !seqLT(r.Seq, e.seq) && seqLT(r.Seq, e.end) {
			return 1
		}
	}
	return -1
}

func (c *conn) countPacket(s int, r *tracer.Record) {
	c.segs[s]++
	if r.Verdicts&(tracer.Retransmissions) == 0 {
		c.bytes[s] += uint64(r.Len)
	}
	if r.Verdicts&tracer.Retransmissions != 0 {
		c.retransSeen++
	}
	if r.Verdicts&tracer.VerdictFastRetransmission != 0 {
		c.fast++
	}
	if r.Verdicts&tracer.VerdictSpuriousRetransmission != 0 {
		c.spurious++
	}
	if r.Verdicts&tracer.VerdictZeroWindow != 0 {
		c.zeroWin++
	}
	o := 1 - s
	if r.Flags&tracer.FlagFIN != 0 && c.finTime[s].IsZero() {
		c.finTime[s] = r.Time
		c.finSeq[s] = r.Seq + r.Len
		// Simultaneous close: this FIN was sent before the peer's FIN
		// arrived, so it does not acknowledge it.
		if !c.finTime[o].IsZero() && (r.Flags&tracer.FlagACK == 0 || r.Ack != c.finSeq[o]+1) {
			c.simultaneousClose = true
		}
	}
	// The ack of a FIN is its seq + len + 1: the FIN takes one number.
	if r.Flags&tracer.FlagACK != 0 && !c.finTime[o].IsZero() && r.Ack == c.finSeq[o]+1 {
		c.finAcked[o] = true
	}
	if r.Flags&tracer.FlagRST != 0 && c.rstSide < 0 {
		c.rstSide, c.rstTime = s, r.Time
		c.resetsBy[s]++
		if c.outcome == "" && c.synTime != (time.Time{}) {
			if r.Flags&tracer.FlagACK != 0 && c.synAckTime.IsZero() {
				c.outcome = "refused"
			} else {
				c.outcome = "reset"
			}
		}
	}
}

func (c *conn) stateEvent(r *tracer.Record) {
	sk := c.socketOf(r)
	if sk == nil {
		return
	}
	if !sk.since.IsZero() && int(sk.state) < len(sk.stateTime) {
		sk.stateTime[sk.state] += r.Time.Sub(sk.since)
	}
	sk.state, sk.since = r.State, r.Time
	if r.HasTCPInfo && r.SRTTMicros > 0 {
		sk.srtt, sk.cwnd = time.Duration(r.SRTTMicros)*time.Microsecond, r.Cwnd
	}
	if r.State == tracer.StateClose {
		sk.closed = true
		sk.timeWait = r.OldState == tracer.StateFinWait2 || r.OldState == 11 /* CLOSING */
	}
	if !c.endsSet && r.Remote.Port() != 0 && r.Local.Port() != 0 {
		client := r.State == tracer.StateSynSent || r.OldState == tracer.StateSynSent
		if client {
			c.ends, c.endsSet, c.client = [2]netip.AddrPort{r.Local, r.Remote}, true, true
		} else if r.OldState == tracer.StateListen || r.OldState == tracer.StateSynRecv {
			c.ends, c.endsSet, c.client = [2]netip.AddrPort{r.Remote, r.Local}, true, true
		}
	}
	if c.outcome == "" && r.OldState == tracer.StateSynSent && r.State == tracer.StateClose && c.synAckTime.IsZero() {
		c.outcome = "timeout"
	}
}

// socketOf returns the local socket of a socket event (by cookie) and
// marks its side as local.
func (c *conn) socketOf(r *tracer.Record) *socket {
	if r.Cookie == 0 || r.Remote.Port() == 0 && r.Remote.Addr().IsUnspecified() {
		return nil // a reset with no socket, or a listener
	}
	sk := c.sockets[r.Cookie]
	if sk == nil {
		sk = &socket{local: r.Local, netns: r.Netns}
		c.sockets[r.Cookie] = sk
	}
	if r.Local.Port() != 0 {
		sk.local = r.Local
	}
	if r.Owner.Known {
		sk.owner = r.Owner
	}
	return sk
}

// isLocal reports whether a socket of this host owns side s.
func (c *conn) isLocal(s int) bool {
	if !c.endsSet {
		return false
	}
	for _, sk := range c.sockets {
		if sk.local == c.ends[s] {
			return true
		}
	}
	return false
}

func (c *conn) retransmitEvent(r *tracer.Record) {
	c.retransKernel++
	sk := c.socketOf(r)
	if sk == nil || !c.endsSet {
		return
	}
	s := 0
	if r.Local == c.ends[1] {
		s = 1
	}
	end := r.Seq + r.Len
	if r.Flags&(tracer.FlagSYN|tracer.FlagFIN) != 0 {
		end++
	}
	if len(c.kernelRtx[s]) >= kernelRtxKept {
		c.kernelRtx[s] = c.kernelRtx[s][1:]
	}
	c.kernelRtx[s] = append(c.kernelRtx[s], rtxEvent{seq: r.Seq, end: end})
}

func (c *conn) resetEvent(r *tracer.Record) {
	c.socketOf(r)
	if r.ResetDir == tracer.ResetSent {
		c.resetsSent++
		if r.Reason != "" && c.resetReason == "" {
			c.resetReason = r.Reason
		}
	} else {
		c.resetsRecv++
		if r.State == tracer.StateSynSent && c.outcome == "" {
			c.outcome = "refused"
		}
	}
}

// ended reports whether the connection is fully gone: every local socket
// closed and none replaced by a TIME_WAIT socket, or, with no local socket,
// both FINs acknowledged or a RST.
func (c *conn) ended() bool {
	if len(c.sockets) > 0 {
		for _, sk := range c.sockets {
			if !sk.closed || sk.timeWait {
				return false
			}
		}
		return true
	}
	return c.rstSide >= 0 || c.finAcked[0] && c.finAcked[1]
}

// Flush summarizes connections that ended and stayed quiet for a second
// (late packets of a connection still arrive after its sockets closed),
// and those idle past IdleTimeout, then flushes the next sink.
func (a *Analyzer) Flush() error {
	return a.flushAt(time.Now())
}

func (a *Analyzer) flushAt(now time.Time) error {
	for e := a.lru.Back(); e != nil; {
		prev := e.Prev()
		c := e.Value.(*conn)
		switch {
		case c.ended() && now.Sub(c.last) >= quietAfterClose:
			if err := a.summarize(c, true, false); err != nil {
				return err
			}
		case now.Sub(c.last) > a.cfg.IdleTimeout:
			if err := a.summarize(c, false, true); err != nil {
				return err
			}
		}
		e = prev
	}
	return a.next.Flush()
}

// Finish summarizes every connection still open (complete: false) and
// flushes; call it once tracing has stopped.
func (a *Analyzer) Finish() error {
	for e := a.lru.Back(); e != nil; {
		prev := e.Prev()
		if err := a.summarize(e.Value.(*conn), false, false); err != nil && !errors.Is(err, tracer.ErrStop) {
			return err
		}
		e = prev
	}
	return a.next.Flush()
}

// summarize emits c's conn record and forgets c.
func (a *Analyzer) summarize(c *conn, complete, evicted bool) error {
	a.lru.Remove(c.elem)
	delete(a.conns, c.id)
	if !c.endsSet {
		return nil // a listening socket: not a connection
	}

	sum := &tracer.ConnSummary{Complete: complete, Evicted: evicted, Incomplete: c.incomplete,
		Outcome: c.outcome, SynRetrans: max(c.synCount-1, 0) + max(c.synAckCount-1, 0),
		Start: c.start, End: c.last, RetransKernel: c.retransKernel, RetransSeen: c.retransSeen,
		FastRetrans: c.fast, Spurious: c.spurious, ZeroWindows: c.zeroWin,
		ResetsSent: c.resetsSent, ResetsRecv: c.resetsRecv, ResetReason: c.resetReason}
	// The local end: the client when both ends are local, else the one
	// that is; side 0 when neither is.
	l := 0
	if !c.isLocal(0) && c.isLocal(1) {
		l = 1
	}
	r := 1 - l
	if c.endsSet {
		sum.Local, sum.Remote = c.ends[l], c.ends[r]
		if c.client {
			sum.Role = [2]string{"client", "server"}[l]
		}
	}
	netns := c.netns
	for _, sk := range c.sockets {
		if sk.local != sum.Local {
			continue
		}
		sum.Owner, netns = sk.owner, sk.netns
		sum.StateTime = sk.stateTime
		sum.SRTT, sum.Cwnd = sk.srtt, sk.cwnd
		if !sk.closed && !sk.since.IsZero() && int(sk.state) < len(sum.StateTime) {
			sum.StateTime[sk.state] += c.last.Sub(sk.since)
		}
		if sk.timeWait {
			sum.TimeWait = c.last.Sub(sk.since) // so far: TIME_WAIT end not seen yet
		}
	}
	if c.isnSeen[l] && c.isnSeen[r] {
		sum.ISNLocal, sum.ISNRemote, sum.HasISN = c.base[l], c.base[r], true
	}
	if !c.synTime.IsZero() && !c.synAckTime.IsZero() {
		sum.HandshakeRTT = c.synAckTime.Sub(c.synTime)
	}
	if !c.synAckTime.IsZero() && !c.ackTime.IsZero() {
		sum.SynAckToAck = c.ackTime.Sub(c.synAckTime)
	}
	sum.BytesOut, sum.BytesIn, sum.SegsOut, sum.SegsIn = c.bytes[l], c.bytes[r], c.segs[l], c.segs[r]

	// Who closed first, and how.
	fl, fr := c.finTime[l], c.finTime[r]
	switch {
	case c.rstSide >= 0 && (fl.IsZero() || c.rstTime.Before(fl)) && (fr.IsZero() || c.rstTime.Before(fr)):
		sum.CloseKind, sum.ClosedBy = "reset", "remote"
		if c.rstSide == l {
			sum.ClosedBy = "local"
		}
	case !fl.IsZero() || !fr.IsZero():
		sum.CloseKind = "fin"
		switch {
		case c.simultaneousClose:
			sum.ClosedBy = "both"
		case !fl.IsZero() && (fr.IsZero() || fl.Before(fr)):
			sum.ClosedBy = "local"
		default:
			sum.ClosedBy = "remote"
		}
		if !fl.IsZero() && !fr.IsZero() {
			sum.HalfClose = absDur(fr.Sub(fl))
		}
	case c.outcome == "timeout":
		sum.CloseKind = "timeout"
	}

	rec := &a.out
	*rec = tracer.Record{Type: tracer.TypeConn, Time: c.last, Conn: c.id, Netns: netns, Summary: sum}
	return a.next.Write(rec)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
