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
	"errors"
	"math"
	"net/netip"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/deadline"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// Defaults for Config.
const (
	DefaultIdleTimeout = 10 * time.Minute
	// quietAfterClose is how long a connection whose sockets are all gone
	// (or whose packets show both FINs or a RST) stays, for late packets,
	// before its summary.
	quietAfterClose = time.Second
	// confirmWait is how long a retransmission guess from a local sender
	// waits for the kernel's retransmit event: the kernel reports it
	// after the segment went through TC, so after its packet record.
	confirmWait   = 200 * time.Millisecond
	kernelRtxKept = 64
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
	// KernelRetransmits: retransmit events are traced, so a retransmission
	// guess can be confirmed or contradicted by the kernel.
	KernelRetransmits bool
	// ResetEvents: reset events are traced, so the summary's reset
	// counters are known (absent otherwise).
	ResetEvents bool
	// TimeWaitTracked: TIME_WAIT start and end records come (the tracer
	// observes the TIME_WAIT timer), so a connection whose local end is in
	// TIME_WAIT is summarized when TIME_WAIT ends.
	TimeWaitTracked bool
	// Events are the record types traced (0: all). Without state events a
	// connection ends with a reset, or its packets' FINs or RST; without
	// any end it is summarized when idle or at exit.
	Events tracer.EventSet
	// PacketsCounted: the kernel counts most packets instead of reporting
	// them (--packets control). A reported packet's predecessors may have
	// been counted, so only verdicts the packet alone supports are given
	// (countedModeVerdicts): no guessed retransmission, duplicate ACK,
	// out of order, lost or ACKed-unseen segment.
	PacketsCounted bool
}

// countedModeVerdicts are the verdicts a packet supports on its own,
// without the packets before it: what --packets control can give.
const countedModeVerdicts = result.VerdictZeroWindow

// Analyzer annotates records and adds conn summary records. It implements
// tracer.Sink.
type Analyzer struct {
	next    tracer.Sink
	cfg     Config
	conns   map[uint64]*conn
	lru     conn                  // sentinel of the list of conns: lru.next most recently seen
	free    []*conn               // summarized conns for reuse (bounded by maxFree)
	ended   map[uint64]*conn      // connections waiting for their quiet period
	endedQ  deadline.Heap[uint64] // ended ids by end of quiet period (stale ones skipped)
	holding []*conn               // connections with packets waiting for kernel confirmation
	// gone: summarized conn ids, so that a late record of a connection
	// does not start a second summary. An id is kept at least as long as
	// the correlator may still give it to a record (goneSet).
	gone goneSet
	// latest is the latest record time (Unix ns): gone ids expire by
	// record time, so that a backlog of records cannot outlast them.
	latest  int64
	losses  uint64 // lost records seen so far
	lossKnd string
	// lossAt is the time (Unix ns) of the latest lost record, and
	// lossesBefore how many lost records came before its report (the
	// lost records of one report share its time). A loss report comes
	// by the clock, ahead of records read after it but stamped before:
	// their connections may have lost records in it (addConn).
	lossAt       int64
	lossesBefore uint64
	// kill: recent signs of what may kill a TIME_WAIT socket early
	// (twkill.go).
	kill    killSigns
	peaks   [3]int    // of the maps above (tracer.ShrinkMap), noted on insert
	stopped bool      // the next sink asked to stop
	exitAt  time.Time // when tracing stopped (Finish), zero before
	out     tracer.Record
	sum     result.ConnSummary // of out: the record and its summary are reused after Write
}

// backlogSlack: how far behind the clock records may come (a backlog in
// the ring and the queue) and still find their connection's gone id.
const backlogSlack = 10 * time.Second

// maxFree bounds the summarized conns kept for reuse: enough for the
// summaries of one flush interval in a storm.
const maxFree = 4096

// held is a packet record kept back until the kernel's retransmit event
// confirms it, or confirmWait passes.
type held struct {
	rec   tracer.Record
	side  int
	since time.Time
}

// quietAt is when a connection last seen at last has been quiet for
// quietAfterClose (Unix ns); the earliest time for the zero time.
func quietAt(last time.Time) int64 {
	if last.IsZero() {
		return math.MinInt64
	}
	return last.UnixNano() + int64(quietAfterClose)
}

// New returns an Analyzer writing to next.
func New(next tracer.Sink, cfg Config) *Analyzer {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = tracer.DefaultMaxConns
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	a := &Analyzer{next: next, cfg: cfg, conns: make(map[uint64]*conn),
		ended: make(map[uint64]*conn), gone: newGoneSet(), kill: newKillSigns()}
	a.lru.prev, a.lru.next = &a.lru, &a.lru
	return a
}

// tuple is a socket's 4-tuple as a map key: its local end, then the
// peer, addresses as 16 bytes (IPv4 mapped; records carry them unmapped,
// so no two differ only so) and ports apart. 36 bytes, hashed as plain
// memory, where two netip.AddrPort take 64.
type tuple struct {
	local, remote [16]byte
	lport, rport  uint16
}

// makeTuple returns the tuple of local and remote.
func makeTuple(local, remote netip.AddrPort) tuple {
	return tuple{local: local.Addr().As16(), remote: remote.Addr().As16(), lport: local.Port(), rport: remote.Port()}
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
	cookie    uint64
	local     netip.AddrPort
	netns     uint32
	state     tracer.TCPState
	since     time.Time
	stateTime [16]time.Duration
	owner     result.Owner
	closed    bool
	gotReset  bool
	srtt      time.Duration
	cwnd      uint32
	// counters: the socket's kernel counters at CLOSE (hasCounters).
	hasCounters bool
	counters    result.KernelCounters
	twState
}

// twState is what a socket's TIME_WAIT records told.
type twState struct {
	timeWait bool // went FIN_WAIT2/CLOSING -> CLOSE: a TIME_WAIT socket replaced it
	// The TIME_WAIT socket that replaced this one (same cookie).
	twStart  time.Time
	twActive bool
	twEnd    string // "expired", "killed"
	twDur    time.Duration
	twKill   killSign // what killed it (twEnd "killed"), when a sign came
}

// waiting reports whether the TIME_WAIT goes on: started and not ended,
// or (tracked) its socket was replaced and no end came yet.
func (t *twState) waiting(tracked bool) bool {
	return t.twActive || tracked && t.timeWait && t.twEnd == ""
}

// conn is the analysis state of one connection (one conn id).
type conn struct {
	id         uint64
	prev, next *conn // in Analyzer.lru
	netns      uint32
	// start and lastOwn: the first and the last packet, state change of a
	// full socket, retransmit or reset (not TIME_WAIT records, not the
	// start-up snapshot); opened: the connection's beginning was seen
	// (a SYN, or a socket's opening state change). last: any record.
	start, lastOwn time.Time
	last           time.Time
	ends           [2]netip.AddrPort // side 0 is the client (SYN sender) when known
	endsSet        bool
	client         bool // ends[0] is known to be the client
	opened         bool
	// Which ends are on this host, bit 1<<side: localEv from socket events
	// (their local end, also of a reset sent with no socket), localPkt
	// from the packets' directions at the capture points (egress source,
	// ingress destination).
	localEv, localPkt uint8
	losses            uint64

	base    [2]uint32 // relative-number base: ISN, or first seq seen
	baseSet [2]bool
	isnSeen [2]bool // base is a real ISN (SYN seen)
	// scale is each side's window scale shift as tshark tracks it: -1
	// unknown (no SYN of that side seen yet), -2 no scaling, else the
	// shift.
	scale  [2]int
	synLen [2]uint32 // data on each side's SYN (TCP Fast Open)

	// Handshake, at the primary capture point. synTime is the most recent
	// SYN before the SYN-ACK, as tshark's iRTT uses.
	synTime, synAckTime, ackTime time.Time
	synCount, synAckCount        int32
	outcome                      string
	// The handshake's acknowledgment checks: hsProblem names the first
	// that failed; finalAck is set once the client's first ACK after
	// the SYN-ACK was checked.
	hsProblem string

	points   []pointAt // capture points, in the order first seen (most connections have one)
	primary  pointKey
	primSet  bool
	finalAck bool

	segs [2]uint64
	// counted: segs and the data range include packets the kernel
	// counted instead of reporting (--packets control).
	counted bool
	// Sequence progress of each side's data at the primary point: bytes
	// sent are dataEnd - dataStart (retransmissions and reordering do not
	// count twice, segments the capture missed do count).
	dataStart, dataEnd [2]uint32
	dataBytes          [2]uint64 // dataEnd - dataStart, without wrapping
	dataSeen           [2]bool
	kernelRtx          [2][]rtxEvent
	sockets            []socket // local sockets, by cookie (one or two)

	retransKernel, retransSeen, fast, spurious, zeroWin uint64
	retransSegs, retransBytes                           uint64 // of the kernel's retransmit events
	resetsSent, resetsRecv                              uint64
	resetReason                                         string
	finTime                                             [2]time.Time
	finAcked                                            [2]bool
	finSeq                                              [2]uint32
	simultaneousClose                                   bool
	rstSide                                             int8 // -1 none
	rstTime                                             time.Time
	rstBy                                               [2]bool // a RST was seen from each side
	// The close as the local sockets saw it, for when no packet of it was
	// captured: when each side's FIN was sent (FIN_WAIT1) or arrived
	// (CLOSE_WAIT, CLOSING), and the first reset a socket sent or got.
	stateFin     [2]time.Time
	stateActive  [2]bool // the side's socket closed first (FIN_WAIT1)
	stateClosing bool    // a socket went FIN_WAIT1 -> CLOSING
	stateRstSide int8    // -1 none
	stateRstTime time.Time
	stateRstBy   [2]bool
	incomplete   string
	twTracked    bool
	preexisting  bool
	observed     bool   // a record other than the start-up listing came
	held         []held // packets waiting for kernel confirmation
	holding      bool   // c is in Analyzer.holding
}

// pointAt is a capture point's state, by its key.
type pointAt struct {
	key pointKey
	pt  point
}

// addConn starts the state of r's connection, summarizing the least
// recently seen one when the table is full.
func (a *Analyzer) addConn(r *tracer.Record) (*conn, error) {
	if len(a.conns) >= a.cfg.MaxConns {
		if oldest := a.lru.prev; oldest != &a.lru {
			if err := a.summarize(oldest, false, true); err != nil {
				return nil, err
			}
		}
	}
	c := a.newConn()
	c.id, c.netns, c.losses, c.twTracked = r.Conn, r.Netns, a.losses, a.cfg.TimeWaitTracked
	if a.losses > 0 && r.Time.UnixNano() <= a.lossAt {
		c.losses = a.lossesBefore // stamped before the latest loss report
	}
	c.scale, c.rstSide, c.stateRstSide = [2]int{-1, -1}, -1, -1
	a.pushFront(c)
	a.conns[r.Conn] = c
	a.peaks[0] = max(a.peaks[0], len(a.conns))
	return c, nil
}

// connOf returns the live state of r's connection, nil when there is
// none: from the correlator's slot when it holds it (no lookup), else
// from the table, and then the slot keeps it for the next record. A conn
// in the slot is this connection's only while it is in the table (drop
// unlinks it: prev is nil) under the same id (a recycled conn is zeroed
// and reused for others).
func (a *Analyzer) connOf(r *tracer.Record) *conn {
	if r.Slot != nil {
		if c, ok := r.Slot.Analysis.(*conn); ok && c.id == r.Conn && c.prev != nil {
			return c
		}
	}
	c := a.conns[r.Conn]
	if c != nil && r.Slot != nil {
		r.Slot.Analysis = c
	}
	return c
}

// newConn returns a zero conn, a summarized one reused when there is one:
// a storm then allocates no connection state.
func (a *Analyzer) newConn() *conn {
	if n := len(a.free); n > 0 {
		c := a.free[n-1]
		a.free[n-1] = nil
		a.free = a.free[:n-1]
		return c
	}
	return &conn{}
}

// recycle keeps c, summarized and forgotten, for reuse: zeroed, its
// slices' storage kept. A conn still listed in Analyzer.holding is left
// to the garbage collector.
func (a *Analyzer) recycle(c *conn) {
	if c.holding || len(a.free) >= maxFree {
		return
	}
	clear(c.sockets) // the TIME_WAIT entries went back at the summary
	points, sockets := c.points[:0], c.sockets[:0]
	rtx := [2][]rtxEvent{c.kernelRtx[0][:0], c.kernelRtx[1][:0]}
	*c = conn{points: points, sockets: sockets, kernelRtx: rtx}
	a.free = append(a.free, c)
}

// pushFront makes c the most recently seen conn.
func (a *Analyzer) pushFront(c *conn) {
	c.prev, c.next = &a.lru, a.lru.next
	a.lru.next.prev = c
	a.lru.next = c
}

func (a *Analyzer) unlink(c *conn) {
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = nil, nil
}

// toFront moves c to the front of the list of conns.
func (a *Analyzer) toFront(c *conn) {
	if a.lru.next != c {
		a.unlink(c)
		a.pushFront(c)
	}
}

// side returns which side sent from src, setting the sides up on first use.
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
	if a.stopped {
		return tracer.ErrStop
	}
	if r.Type == tracer.TypeLost {
		if t := r.Time.UnixNano(); t != a.lossAt {
			a.lossesBefore, a.lossAt = a.losses, t
		}
		a.losses++
		a.lossKnd = r.LostKind
		return a.next.Write(r)
	}
	if r.Conn == 0 || r.Type == tracer.TypeConn {
		return a.pass(r)
	}
	if t := r.Time.UnixNano(); t > a.latest {
		a.latest = t
	}
	c := a.connOf(r)
	if c != nil {
		a.toFront(c)
	} else {
		if ok, idle := a.gone.has(r.Conn); ok {
			// A late record of a summarized connection: passed on as
			// is. The correlator keeps the id for its linger after
			// this record.
			a.lateRecord(r, idle)
			if a.cfg.TimeWaitTracked && (r.Type == tracer.TypePacket || r.Type == tracer.TypeState) {
				a.lateTimeWait(r)
			}
			return a.pass(r)
		}
		var err error
		if c, err = a.addConn(r); err != nil {
			return err
		}
		if r.Slot != nil {
			r.Slot.Analysis = c
		}
	}
	if r.Time.Before(c.last) && a.ended[c.id] != nil {
		a.endedQ.Push(quietAt(r.Time), c.id) // out of order: quiet sooner
	}
	c.last = r.Time
	c.observed = c.observed || r.Type != tracer.TypeSocket
	if r.Type != tracer.TypeSocket && r.Type != tracer.TypeCounts && !r.TimeWait {
		// The connection's own life: TIME_WAIT and the start-up
		// snapshot are apart.
		if c.start.IsZero() || r.Time.Before(c.start) {
			c.start = r.Time
		}
		if r.Time.After(c.lastOwn) {
			c.lastOwn = r.Time
		}
	}
	if a.cfg.TimeWaitTracked && (r.Type == tracer.TypePacket || r.Type == tracer.TypeState) {
		a.timeWaitSign(r)
	}
	switch r.Type {
	case tracer.TypePacket:
		if a.packet(c, r) {
			return nil // held for kernel confirmation
		}
	case tracer.TypeState:
		if r.TimeWait {
			if sk := c.socketOf(r); sk != nil {
				sk.stateTime[tracer.StateTimeWait] += a.timeWaitRecord(c, sk, r)
			}
		} else {
			c.stateEvent(r, a.cfg.PacketsCounted)
		}
	case tracer.TypeRetransmit:
		if err := a.retransmitEvent(c, r); err != nil {
			return err
		}
	case tracer.TypeReset:
		a.resetEvent(c, r)
	case tracer.TypeSocket:
		c.snapshot(r)
	case tracer.TypeCounts:
		c.addCounts(r)
		if a.cfg.SummaryOnly {
			return nil
		}
	}
	if r.Type != tracer.TypePacket {
		c.socketEnds(r)
	}
	if r.HasPktCounts {
		// The connection's packet counts, taken at the socket's CLOSE
		// (--packets control): its ends are set just above.
		c.addCountsOf(r.Local, r.Remote, &r.PktCounts)
	}
	// A packet can end only a connection whose end its sockets do not
	// tell, and only once a FIN or RST was seen: spare the check on the
	// rest.
	if r.Type != tracer.TypePacket || (len(c.sockets) == 0 || !a.stateTraced()) &&
		(c.rstSide >= 0 || !c.finTime[0].IsZero() || !c.finTime[1].IsZero()) {
		if a.connEnded(c) || a.onlyTimeWait(c) {
			if a.ended[c.id] == nil {
				a.endedQ.Push(quietAt(c.last), c.id)
			}
			a.ended[c.id] = c
			a.peaks[1] = max(a.peaks[1], len(a.ended))
		}
	}
	return a.pass(r)
}

// onlyTimeWait reports whether all of c's sockets are closed and c waits
// only for the end of a TIME_WAIT: then its summary need not wait.
func (a *Analyzer) onlyTimeWait(c *conn) bool {
	if len(c.sockets) == 0 || !a.stateTraced() {
		return false
	}
	wait := false
	for i := range c.sockets {
		sk := &c.sockets[i]
		if !sk.closed {
			return false
		}
		wait = wait || sk.waiting(c.twTracked)
	}
	return wait
}

// stateTraced reports whether state events are traced.
func (a *Analyzer) stateTraced() bool {
	return a.cfg.Events == 0 || a.cfg.Events.Has(tracer.TypeState)
}

// socketEnds sets the connection's ends from a socket event when nothing
// did before (a reset or a retransmit the first record of it), and notes
// that the event's local end is on this host.
func (c *conn) socketEnds(r *tracer.Record) {
	if r.Remote.Port() == 0 || r.Local.Port() == 0 {
		return // a listener, or a SYN_SENT whose port is unknown
	}
	if !c.endsSet {
		c.ends, c.endsSet = [2]netip.AddrPort{r.Local, r.Remote}, true
		syn := r.Flags&(tracer.FlagSYN|tracer.FlagACK) == tracer.FlagSYN
		switch {
		case r.Type == tracer.TypeReset && r.ResetDir == tracer.ResetSent && r.Cookie == 0 && syn:
			// A reset answering a SYN: the peer is the client.
			c.ends, c.client = [2]netip.AddrPort{r.Remote, r.Local}, true
		case r.HasState && r.State == tracer.StateSynSent, r.Type == tracer.TypeRetransmit && syn:
			c.client = true
		}
	}
	if s := c.sideOf(r.Local); s >= 0 {
		c.localEv |= 1 << s
	}
}

// timeWaitOf fills sum's TIME_WAIT fields from sk; false when sk had no
// TIME_WAIT. One still going on lasted until until, when its start was
// seen.
func timeWaitOf(tracked bool, sk *twState, sum *result.ConnSummary, until time.Time) bool {
	switch {
	case sk.twEnd != "":
		sum.TimeWait, sum.TimeWaitEnd = sk.twDur, sk.twEnd
		sum.TimeWaitKill = sk.twKill.String()
	case sk.twActive:
		// Still in TIME_WAIT: at exit (or eviction) the time so far;
		// in a summary written while it goes on, only that it began
		// (its end comes in the TIME_WAIT -> CLOSE record).
		if !until.IsZero() && !sk.twStart.IsZero() && until.After(sk.twStart) {
			sum.TimeWait = until.Sub(sk.twStart)
		}
	case sk.timeWait && !tracked:
		sum.TimeWaitEnd = "not_observed"
	case sk.timeWait:
		// Replaced by a TIME_WAIT socket whose start record did not come
		// (lost): it began all the same.
	default:
		return false
	}
	return true
}

func (a *Analyzer) pass(r *tracer.Record) error {
	if a.cfg.SummaryOnly && r.Type != tracer.TypeConn {
		return nil
	}
	err := a.next.Write(r)
	if errors.Is(err, tracer.ErrStop) {
		a.stopped = true
	}
	return err
}

// packet analyzes a packet record; it returns true when the record is
// held back for kernel confirmation.
func (a *Analyzer) packet(c *conn, r *tracer.Record) bool {
	syn, ack, rst := r.Flags&tracer.FlagSYN != 0, r.Flags&tracer.FlagACK != 0, r.Flags&tracer.FlagRST != 0
	s := c.side(r.Src, r.Dst, syn, ack)
	o := 1 - s
	if syn {
		c.opened = true
	}
	if r.Dir == tracer.DirOut {
		c.localPkt |= 1 << s
	} else {
		c.localPkt |= 1 << o
	}

	key := pointKey{ifindex: r.Ifindex, netns: r.Netns}
	pt := c.point(key)
	if !c.primSet {
		c.primary, c.primSet = key, true
	}
	primary := key == c.primary

	if syn {
		c.isn(r, s)
		if primary {
			c.handshake(r, ack)
		}
	}
	if !c.baseSet[s] {
		c.base[s], c.baseSet[s] = r.Seq, true
		// A RST answering a SYN (refused) is no sign of a late start.
		if !syn && !(rst && c.isnSeen[o]) && c.incomplete == "" {
			c.incomplete = "capture started after the handshake"
		}
	}
	r.Analyzed = true
	r.RelSeq = r.Seq - c.base[s]
	if ack && c.baseSet[o] {
		r.RelAck, r.RelAckValid = r.Ack-c.base[o], true
	}
	if primary && ack && !syn && !rst && s == 0 && !c.synAckTime.IsZero() && c.isnSeen[1] && !c.finalAck {
		// The handshake's last ACK acknowledges the server's ISN + 1.
		c.finalAck = true
		if r.Ack == c.base[1]+1 {
			c.ackTime = r.Time
			c.outcome = "established"
		} else if c.hsProblem == "" {
			c.hsProblem = "ack_mismatch"
		}
	}

	// tshark's iRTT, per capture point: the most recent SYN (without
	// ACK) to the first packet with ACK and without SYN, either way.
	switch {
	case syn && !ack:
		pt.mruSyn = r.Time
	case ack && !syn && pt.firstRTT == 0 && !pt.mruSyn.IsZero():
		pt.firstRTT = max(r.Time.Sub(pt.mruSyn), 1)
	}
	ooo := defaultOutOfOrderWindow
	if pt.firstRTT > 0 {
		ooo = pt.firstRTT
	}
	r.Verdicts, r.DupAckCount = analyze(pt, s, r, c.scale, ooo)
	if a.cfg.PacketsCounted {
		r.Verdicts &= countedModeVerdicts
	}
	if primary {
		c.countPacket(s, r)
	}
	if r.Verdicts&(result.Retransmissions|result.VerdictOutOfOrder) == 0 {
		return false
	}
	// Retransmissions and out-of-order are guesses; the kernel knows.
	switch {
	case !a.cfg.KernelRetransmits || !c.isLocal(s):
		r.KernelConfirmed = 0
	case c.kernelRetransmitted(s, r):
		r.KernelConfirmed = 1
	default:
		// The kernel reports a retransmission after its segment passed
		// TC: wait a little for the event.
		c.held = append(c.held, held{rec: *r, side: s, since: r.Time})
		if !c.holding {
			c.holding = true
			a.holding = append(a.holding, c)
		}
		return true
	}
	return false
}

// point returns the state of capture point key, added when new. The
// pointer is valid until the next point is added.
func (c *conn) point(key pointKey) *point {
	for i := range c.points {
		if c.points[i].key == key {
			return &c.points[i].pt
		}
	}
	c.points = append(c.points, pointAt{key: key})
	return &c.points[len(c.points)-1].pt
}

// isn records a side's initial sequence number and window scale option.
func (c *conn) isn(r *tracer.Record, s int) {
	if c.isnSeen[s] {
		return
	}
	ws := -1
	if r.Options.Present&tracer.OptWScale != 0 {
		ws = int(r.Options.WScale)
	}
	c.base[s], c.baseSet[s], c.isnSeen[s] = r.Seq, true, true
	c.synLen[s] = r.Len
	// RFC 7323: scaling is in effect only when both SYNs carry it. As
	// tshark: a SYN without the option turns scaling off both ways at
	// once; a SYN-ACK with it after a SYN without it changes nothing.
	switch {
	case ws < 0:
		c.scale = [2]int{-2, -2}
	case r.Flags&tracer.FlagACK != 0 && c.scale[1-s] == -2:
		c.scale[s] = -2
	default:
		c.scale[s] = ws
	}
}

// handshake counts SYNs and SYN-ACKs and times them, at the primary point.
func (c *conn) handshake(r *tracer.Record, ack bool) {
	if ack {
		// The SYN-ACK acknowledges the client's ISN + 1.
		// With TCP Fast Open, also its SYN's data.
		if c.isnSeen[0] && r.Ack != c.base[0]+1 && r.Ack != c.base[0]+1+c.synLen[0] && c.hsProblem == "" {
			c.hsProblem = "synack_ack_mismatch"
		}
		c.synAckCount++
		if c.synAckTime.IsZero() {
			c.synAckTime = r.Time
		}
		return
	}
	c.synCount++
	if c.synAckTime.IsZero() {
		c.synTime = r.Time // the most recent SYN before the answer
	}
}

// kernelRetransmitted reports whether the kernel retransmitted the
// sequence number of r from side s (within the last events kept).
func (c *conn) kernelRetransmitted(s int, r *tracer.Record) bool {
	for _, e := range c.kernelRtx[s] {
		if !seqLT(r.Seq, e.seq) && seqLT(r.Seq, e.end) {
			return true
		}
	}
	return false
}

// addCounts adds the packets the kernel counted instead of reporting them
// (--packets control): their segments, and their payload as one range of
// sequence numbers, which the data bytes take as from the packets.
func (c *conn) addCounts(r *tracer.Record) {
	c.socketEnds(r)
	c.addCountsOf(r.Local, r.Remote, &r.PktCounts)
}

// addCountsOf adds counts as the end local saw them ([0] sent by local,
// [1] by remote), as addCounts.
func (c *conn) addCountsOf(local, remote netip.AddrPort, counts *[2]tracer.PacketCounts) {
	for i, pc := range counts {
		sender := local
		if i == 1 {
			sender = remote
		}
		s := c.sideOf(sender)
		if s < 0 || pc.Segs == 0 {
			continue
		}
		c.segs[s] += pc.Segs
		c.counted = true
		if pc.HasData && pc.EndSeq != pc.FirstSeq {
			c.addData(s, pc.FirstSeq, pc.EndSeq-pc.FirstSeq)
		}
	}
}

// addData takes n bytes of side s's data from sequence number start into
// the data range (dataStart, dataEnd) and dataBytes.
func (c *conn) addData(s int, start, n uint32) {
	end := start + n
	advanced := true
	switch {
	case !c.dataSeen[s]:
		c.dataStart[s], c.dataEnd[s], c.dataBytes[s], c.dataSeen[s] = start, end, uint64(n), true
	case seqGT(end, c.dataEnd[s]):
		c.dataBytes[s] += uint64(end - c.dataEnd[s])
		c.dataEnd[s] = end
	default:
		advanced = false
	}
	// Data begins right after the SYN; without one, at the lowest
	// byte seen: an earlier segment that comes late (not one that
	// just moved the end, which past 2 GiB compares as earlier).
	first := start
	switch {
	case c.isnSeen[s]:
		first = c.base[s] + 1
	case advanced || c.dataStart[s]-start >= 1<<30:
		first = c.dataStart[s] // only a late segment from before the start extends it
	}
	if seqLT(first, c.dataStart[s]) {
		c.dataBytes[s] += uint64(c.dataStart[s] - first)
		c.dataStart[s] = first
	}
}

func (c *conn) countPacket(s int, r *tracer.Record) {
	c.segs[s]++
	if r.Len > 0 {
		start := r.Seq
		if r.Flags&tracer.FlagSYN != 0 {
			start++ // data on a SYN (TCP Fast Open) follows the SYN's number
		}
		c.addData(s, start, r.Len)
	}
	if r.Verdicts&result.Retransmissions != 0 {
		c.retransSeen++
	}
	if r.Verdicts&result.VerdictFastRetransmission != 0 {
		c.fast++
	}
	if r.Verdicts&result.VerdictSpuriousRetransmission != 0 {
		c.spurious++
	}
	if r.Verdicts&result.VerdictZeroWindow != 0 {
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
	if r.Flags&tracer.FlagRST != 0 {
		c.rstBy[s] = true
	}
	if r.Flags&tracer.FlagRST != 0 && c.rstSide < 0 {
		c.rstSide, c.rstTime = int8(s), r.Time
		if c.outcome == "" && !c.synTime.IsZero() {
			if r.Flags&tracer.FlagACK != 0 && c.synAckTime.IsZero() {
				c.outcome = "refused"
			} else {
				c.outcome = "reset"
			}
		}
	}
}

// stateEvent applies a full socket's state change r; counted: the
// kernel counts most packets (--packets control).
func (c *conn) stateEvent(r *tracer.Record, counted bool) {
	sk := c.socketOf(r)
	if sk == nil {
		return
	}
	if !sk.since.IsZero() && int(sk.state) < len(sk.stateTime) {
		sk.stateTime[sk.state] += r.Time.Sub(sk.since)
	}
	sk.state, sk.since = r.State, r.Time
	if r.State == tracer.StateSynSent || r.State == tracer.StateSynRecv || r.OldState == tracer.StateSynRecv {
		c.opened = true
	}
	if r.HasTCPInfo && r.SRTTMicros > 0 {
		sk.srtt, sk.cwnd = time.Duration(r.SRTTMicros)*time.Microsecond, r.Cwnd
	}
	if r.HasCounters {
		sk.hasCounters, sk.counters = true, r.Counters
	}
	if r.State == tracer.StateClose {
		sk.closed = true
		// From FIN_WAIT2 or CLOSING a TIME_WAIT socket takes over,
		// unless a RST ended the connection.
		sk.timeWait = (r.OldState == tracer.StateFinWait2 || r.OldState == tracer.StateClosing) && !sk.gotReset
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
	c.closeFromState(sk, r, counted)
}

// closeFromState notes what a socket's state change says about the
// handshake and the close, for connections whose packets were not (all)
// captured: the summary prefers what the packets show.
func (c *conn) closeFromState(sk *socket, r *tracer.Record, counted bool) {
	s := c.sideOf(sk.local)
	if s < 0 {
		return
	}
	o := 1 - s
	switch {
	case r.State == tracer.StateEstablished && (r.OldState == tracer.StateSynSent || r.OldState == tracer.StateSynRecv):
		if c.outcome == "" {
			c.outcome = "established"
		}
	case r.State == tracer.StateFinWait1:
		setOnce(&c.stateFin[s], r.Time)
		c.stateActive[s] = true
	case r.State == tracer.StateCloseWait: // the peer's FIN came first
		setOnce(&c.stateFin[o], r.Time)
	case r.State == tracer.StateLastAck: // our FIN after the peer's
		setOnce(&c.stateFin[s], r.Time)
	case r.State == tracer.StateClosing: // the peer's FIN crossed ours
		setOnce(&c.stateFin[o], r.Time)
		c.stateClosing = true
	}
	// FIN_WAIT2 -> CLOSE says nothing of the peer: an orphaned socket
	// (closed by its owner) hands over to a TIME_WAIT socket as soon as
	// its own FIN is acknowledged.
	if counted {
		c.finAckedFromState(sk, o, r)
	}
}

// finAckedFromState notes the ACK of the peer's FIN that a local socket's
// state change says the kernel sent at once (tcp_fin: FIN_WAIT1 -> CLOSING,
// FIN_WAIT2 -> TIME_WAIT): with --packets control that pure ACK is only
// counted, not reported. FIN_WAIT2 -> CLOSE counts only after the peer's
// FIN was seen: an orphaned socket also leaves FIN_WAIT2 when its own FIN
// is acknowledged. o is the peer's side.
func (c *conn) finAckedFromState(sk *socket, o int, r *tracer.Record) {
	switch {
	case r.State == tracer.StateClosing:
		c.finAcked[o] = true
	case r.OldState == tracer.StateFinWait2 && r.State == tracer.StateClose && sk.timeWait &&
		!c.finTime[o].IsZero() && !r.Time.Before(c.finTime[o]):
		c.finAcked[o] = true
	}
}

func setOnce(t *time.Time, at time.Time) {
	if t.IsZero() {
		*t = at
	}
}

// sideOf returns the side whose address is a, or -1.
func (c *conn) sideOf(a netip.AddrPort) int {
	switch {
	case !c.endsSet:
		return -1
	case a == c.ends[0]:
		return 0
	case a == c.ends[1]:
		return 1
	}
	return -1
}

// snapshot starts a connection that existed before tracing from its
// socket's current state.
func (c *conn) snapshot(r *tracer.Record) {
	sk := c.socketOf(r)
	if sk == nil {
		return // a listener
	}
	c.preexisting = true
	if c.incomplete == "" {
		c.incomplete = "began before tracing"
	}
	// The state found at start-up was entered at an unknown time: its
	// time is not counted (since stays zero), nor a TIME_WAIT's so far.
	sk.state = r.State
	if r.State == tracer.StateTimeWait {
		// A TIME_WAIT socket: its end comes from its timer.
		sk.closed, sk.timeWait, sk.twActive = true, true, true
	}
}

// socketOf returns the local socket of a socket event (by cookie); valid
// until the next socket is added.
func (c *conn) socketOf(r *tracer.Record) *socket {
	if r.Cookie == 0 || r.Remote.Port() == 0 && r.Remote.Addr().IsUnspecified() {
		return nil // a reset with no socket, or a listener
	}
	var sk *socket
	for i := range c.sockets {
		if c.sockets[i].cookie == r.Cookie {
			sk = &c.sockets[i]
			break
		}
	}
	if sk == nil {
		// The pointers to sockets live no longer than one record:
		// adding one may move the others.
		c.sockets = append(c.sockets, socket{cookie: r.Cookie, local: r.Local, netns: r.Netns})
		sk = &c.sockets[len(c.sockets)-1]
	}
	if r.Local.Port() != 0 {
		sk.local = r.Local
	}
	if r.Owner.Known {
		sk.owner = r.Owner
	}
	return sk
}

// localSide is the end a summary is written from: the one on this host,
// by its socket events (also a reset sent with no socket), else by the
// packets' directions at the capture points; the client (side 0) when
// both ends are on this host or neither is known to be.
func (c *conn) localSide() int {
	for _, bits := range [2]uint8{c.localEv, c.localPkt} {
		switch bits & 3 {
		case 1, 3:
			return 0
		case 2:
			return 1
		}
	}
	return 0
}

// isLocal reports whether a socket of this host owns side s.
func (c *conn) isLocal(s int) bool {
	if !c.endsSet {
		return false
	}
	for i := range c.sockets {
		if c.sockets[i].local == c.ends[s] {
			return true
		}
	}
	return false
}

// retransmitEvent records the kernel's retransmission and releases the
// held packets it confirms.
func (a *Analyzer) retransmitEvent(c *conn, r *tracer.Record) error {
	c.retransKernel++
	c.retransSegs += max(uint64(r.Segs), 1)
	c.retransBytes += uint64(r.Len)
	sk := c.socketOf(r)
	c.socketEnds(r)
	if sk == nil || !c.endsSet {
		return nil
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
		copy(c.kernelRtx[s], c.kernelRtx[s][1:])
		c.kernelRtx[s] = c.kernelRtx[s][:kernelRtxKept-1]
	}
	c.kernelRtx[s] = append(c.kernelRtx[s], rtxEvent{seq: r.Seq, end: end})
	if len(c.held) == 0 {
		return nil
	}
	return a.release(c, func(h *held) bool {
		if h.side != s || !c.kernelRetransmitted(s, &h.rec) {
			return false
		}
		h.rec.KernelConfirmed = 1
		return true
	})
}

// release passes on, in order, c's held packets for which pick is true.
func (a *Analyzer) release(c *conn, pick func(*held) bool) error {
	kept := c.held[:0]
	var err error
	for i := range c.held {
		h := &c.held[i]
		if err == nil && pick(h) {
			err = a.pass(&h.rec)
			continue
		}
		kept = append(kept, *h)
	}
	clear(c.held[len(kept):])
	c.held = kept
	if len(kept) == 0 {
		c.held = nil
	}
	return err
}

// unconfirmed marks a held packet as not retransmitted by the kernel.
func unconfirmed(h *held) bool {
	h.rec.KernelConfirmed = -1
	return true
}

func (a *Analyzer) resetEvent(c *conn, r *tracer.Record) {
	var sk *socket
	// A listener answers segments of a connection whose socket is gone:
	// its reset belongs to no socket of the connection.
	if r.State != tracer.StateListen {
		sk = c.socketOf(r)
	}
	c.socketEnds(r)
	if sk != nil && !a.stateTraced() {
		// No state event will say the socket closed: a reset ends it
		// (tcp_reset and active resets move it to CLOSE).
		sk.closed = true
	}
	if s := c.sideOf(r.Local); s >= 0 {
		if r.ResetDir == tracer.ResetReceived {
			s = 1 - s
		}
		c.stateRstBy[s] = true
		if c.stateRstSide < 0 {
			c.stateRstSide, c.stateRstTime = int8(s), r.Time
		}
	}
	if r.ResetDir == tracer.ResetSent {
		c.resetsSent++
		if r.Reason != "" && c.resetReason == "" {
			c.resetReason = r.Reason
		}
		// With no socket, in answer to a SYN: refused here.
		if r.Cookie == 0 && r.Flags&(tracer.FlagSYN|tracer.FlagACK) == tracer.FlagSYN && c.outcome == "" {
			c.outcome = "refused"
		}
		return
	}
	c.resetsRecv++
	if sk != nil {
		sk.gotReset = true
	}
	if r.State == tracer.StateSynSent && c.outcome == "" {
		c.outcome = "refused"
	}
}

// connEnded reports whether the connection is gone: every local socket
// closed, and TIME_WAIT over where it is observed, or, with no local
// socket or without state events, both FINs acknowledged or a RST (seen
// or a reset event). Where TIME_WAIT is not observed a socket replaced by
// a TIME_WAIT socket counts as closed (the summary says time_wait_end
// "not_observed").
func (a *Analyzer) connEnded(c *conn) bool {
	if len(c.sockets) > 0 && a.stateTraced() {
		for i := range c.sockets {
			sk := &c.sockets[i]
			if !sk.closed || sk.twActive || c.twTracked && sk.timeWait && sk.twEnd == "" {
				return false // TIME_WAIT goes on
			}
		}
		return true
	}
	return c.rstSide >= 0 || c.stateRstSide >= 0 || c.finAcked[0] && c.finAcked[1]
}

// Flush releases packets whose kernel confirmation did not come,
// summarizes connections that ended and stayed quiet for a second (late
// packets still arrive after the sockets closed) and those idle past
// IdleTimeout, then flushes the next sink.
func (a *Analyzer) Flush() error {
	return a.flushAt(time.Now())
}

// FlushAt is Flush as of now, for a caller that runs on record time (a
// benchmark or a replay that simulates it).
func (a *Analyzer) FlushAt(now time.Time) error {
	return a.flushAt(now)
}

func (a *Analyzer) flushAt(now time.Time) error {
	var err error
	kept := a.holding[:0]
	for _, c := range a.holding {
		if err == nil && len(c.held) > 0 {
			err = a.release(c, func(h *held) bool {
				if now.Sub(h.since) < confirmWait {
					return false
				}
				h.rec.KernelConfirmed = -1 // the kernel did not retransmit it
				return true
			})
		}
		if len(c.held) > 0 {
			kept = append(kept, c)
		} else {
			c.holding = false
		}
	}
	clear(a.holding[len(kept):])
	a.holding = kept
	// Ended connections whose quiet period may be over: the queues give
	// them in time order, so only those due are touched.
	nowNs := now.UnixNano()
	for err == nil {
		id, at, ok := a.endedQ.Due(nowNs)
		if !ok {
			break
		}
		c := a.ended[id]
		switch {
		case c == nil: // summarized or dropped since
		case now.Sub(c.last) < quietAfterClose:
			a.endedQ.Push(quietAt(c.last), id) // a later record
		case a.connEnded(c):
			err = a.summarize(c, true, false)
		case a.onlyTimeWait(c) && (c.observed || !c.preexisting):
			// Only a TIME_WAIT goes on: the connection's own life is
			// over, its summary is written now (it says that TIME_WAIT
			// began; the TIME_WAIT -> CLOSE record says how it ended),
			// and only its id is remembered. A TIME_WAIT socket listed
			// at start-up that showed nothing waits for its end.
			err = a.summarize(c, true, false)
		default:
			delete(a.ended, id) // a new socket joined it
		}
		if err != nil && a.ended[id] != nil {
			a.endedQ.Push(at, id) // not done: stays due
		}
	}
	// Idle connections sit at the back of the list.
	for c := a.lru.prev; c != &a.lru && err == nil; {
		prev := c.prev
		if now.Sub(c.last) <= a.cfg.IdleTimeout {
			break
		}
		err = a.summarize(c, false, true)
		c = prev
	}
	// Gone ids expire by record time: a backlog of records (up to
	// backlogSlack behind the clock) still finds its ids.
	recordNow := min(now.UnixNano(), max(a.latest, now.UnixNano()-int64(backlogSlack)))
	a.gone.sweep(recordNow)
	a.kill.expire(recordNow)
	// Maps keep their peak capacity: give a storm's memory back.
	a.conns = tracer.ShrinkMap(a.conns, &a.peaks[0])
	a.ended = tracer.ShrinkMap(a.ended, &a.peaks[1])
	a.gone.blocks = tracer.ShrinkMap(a.gone.blocks, &a.gone.peak)
	if ferr := a.next.Flush(); err == nil {
		err = ferr
	}
	return err
}

// lateRecord keeps gone id r.Conn (idle: summarized as idle) as long
// as the correlator keeps it after r: ClosedLinger after its last record
// (the correlator's TimeWaitLinger after a TIME_WAIT's end is shorter),
// or the idle linger.
func (a *Analyzer) lateRecord(r *tracer.Record, idle bool) {
	linger := tracer.ClosedLinger
	if idle {
		linger = tracer.IdleLinger(a.cfg.IdleTimeout)
	}
	a.gone.extend(r.Conn, r.Time.UnixNano()+int64(linger))
}

// markGone remembers that id was summarized, as long as the correlator
// may still give it to a record: ClosedLinger after its last record for a
// connection that ended, else the correlator's idle linger.
func (a *Analyzer) markGone(id uint64, last time.Time, ended bool) {
	linger := tracer.ClosedLinger
	if !ended {
		linger = tracer.IdleLinger(a.cfg.IdleTimeout)
	}
	a.gone.add(id, last.UnixNano()+int64(linger), !ended)
}

// Finish summarizes every connection still open (complete: false) and
// flushes; call it once tracing has stopped.
func (a *Analyzer) Finish() error {
	return a.finishAt(time.Now())
}

// Progress writes a conn record marked progress for each connection still
// open (neither ended nor a start-up listing that showed nothing since):
// its summary so far, stamped now (tracer.Progresser). counts holds the
// kernel's counts not flushed yet (--packets control; nil otherwise):
// they are shown in the record, not added to the connection, whose flush
// adds them once.
func (a *Analyzer) Progress(now time.Time, counts *tracer.CountsSnapshot) error {
	if a.stopped {
		return tracer.ErrStop
	}
	var err error
	for c := a.lru.prev; c != &a.lru && err == nil; c = c.prev {
		if c.endsSet && a.ended[c.id] == nil && (c.observed || !c.preexisting) {
			err = a.progress(c, now, counts)
		}
	}
	return err
}

// progress writes c's progress record.
func (a *Analyzer) progress(c *conn, now time.Time, counts *tracer.CountsSnapshot) error {
	// What the snapshot's counts and fill change is put back after.
	segs, counted, outcome := c.segs, c.counted, c.outcome
	dataStart, dataEnd, dataBytes, dataSeen := c.dataStart, c.dataEnd, c.dataBytes, c.dataSeen
	if counts.Len() > 0 {
		for s := range c.ends {
			local, remote := c.ends[s], c.ends[1-s]
			var netns uint32 // no socket at this end: the classifiers' namespace
			for i := range c.sockets {
				if c.sockets[i].local == local {
					netns = c.sockets[i].netns
				}
			}
			if pc, ok := counts.Counts(netns, local, remote); ok {
				c.addCountsOf(local, remote, &pc)
			}
		}
	}
	sum := &a.sum
	netns := a.fill(c, sum)
	c.segs, c.counted, c.outcome = segs, counted, outcome
	c.dataStart, c.dataEnd, c.dataBytes, c.dataSeen = dataStart, dataEnd, dataBytes, dataSeen
	sum.Progress = true
	rec := &a.out
	*rec = tracer.Record{Type: tracer.TypeConn, Time: now, Conn: c.id, Netns: netns, Summary: sum}
	return a.pass(rec)
}

func (a *Analyzer) finishAt(now time.Time) error {
	a.exitAt = now
	var err error
	for c := a.lru.prev; c != &a.lru && err == nil; {
		prev := c.prev
		err = a.summarize(c, a.ended[c.id] != nil && a.connEnded(c), false)
		c = prev
	}
	if ferr := a.next.Flush(); err == nil || errors.Is(err, tracer.ErrStop) {
		err = ferr
	}
	return err
}

// drop forgets c's full state; its held packets go first, unconfirmed.
func (a *Analyzer) drop(c *conn) error {
	if len(c.held) > 0 {
		if err := a.release(c, unconfirmed); err != nil {
			return err
		}
	}
	a.unlink(c)
	delete(a.conns, c.id)
	delete(a.ended, c.id)
	return nil
}

// summarize emits c's conn record and forgets c, but for its id (gone).
func (a *Analyzer) summarize(c *conn, complete, evicted bool) error {
	if err := a.drop(c); err != nil {
		return err
	}
	a.markGone(c.id, c.last, complete)
	defer a.recycle(c)
	if !c.endsSet {
		return nil // a listening socket: not a connection
	}
	if c.preexisting && !c.observed {
		// Listed at start-up, silent since: its socket record said all
		// that is known; a summary of zeros would only bury the others.
		return nil
	}
	a.noteLosses(c.losses, &c.incomplete)
	sum := &a.sum
	netns := a.fill(c, sum)
	// TIME_WAIT still going on lasted until the stop, or (evicted) until
	// the connection's last record; otherwise it goes on after the
	// summary, which says only that it began.
	twUntil := a.exitAt
	if twUntil.IsZero() && evicted {
		twUntil = c.last
	}
	// Both ends on this host: the TIME_WAIT is the active closer's,
	// whichever end that was; the summary says when it is the peer's.
	for i := range c.sockets {
		if sk := &c.sockets[i]; sk.local == sum.Local {
			timeWaitFields(c.twTracked, &sk.twState, true, sum, twUntil)
		}
	}
	for i := range c.sockets {
		if sk := &c.sockets[i]; sk.local != sum.Local {
			timeWaitFields(c.twTracked, &sk.twState, false, sum, twUntil)
		}
	}
	sum.Complete, sum.Evicted = complete && sum.Incomplete == "", evicted
	rec := &a.out
	*rec = tracer.Record{Type: tracer.TypeConn, Time: c.last, Conn: c.id, Netns: netns, Summary: sum}
	return a.pass(rec)
}

// noteLosses marks a connection incomplete when records were lost since it
// began (losses: the count then).
func (a *Analyzer) noteLosses(losses uint64, incomplete *string) {
	if a.losses > losses && *incomplete == "" {
		*incomplete = "events lost"
		if a.lossKnd == "malformed" {
			*incomplete = "records could not be decoded"
		}
	}
}

// timeWaitFields fills sum's TIME_WAIT fields from sk, the summary's local
// end's socket (local) or the peer's when both are on this host and no
// local TIME_WAIT was found before.
func timeWaitFields(tracked bool, sk *twState, local bool, sum *result.ConnSummary, until time.Time) {
	if sum.TimeWaitSide != "" || !timeWaitOf(tracked, sk, sum, until) {
		return
	}
	if !local {
		sum.TimeWaitSide = "remote"
		return
	}
	sum.TimeWaitSide = "local"
	if sk.twActive {
		sum.StateTime[tracer.StateTimeWait] += sum.TimeWait
	}
}

// fill sets sum's fields from c, all but Complete, Evicted and the
// TIME_WAIT fields; it returns the netns of the summary's local end.
func (a *Analyzer) fill(c *conn, sum *result.ConnSummary) uint32 {
	if c.outcome == "timeout" && !a.resetsTraced() && c.segs[0]+c.segs[1] == 0 {
		// SYN_SENT -> CLOSE without a SYN-ACK is a timeout only when a
		// refusal would have shown: a reset event or a captured RST.
		// From state events alone it may be either: unknown.
		c.outcome = ""
	}
	*sum = result.ConnSummary{Incomplete: c.incomplete,
		Outcome: c.outcome, SynRetrans: int(max(c.synCount-1, 0) + max(c.synAckCount-1, 0)),
		End: c.lastOwn, RetransKernel: c.retransKernel, RetransSegs: c.retransSegs, RetransBytes: c.retransBytes,
		RetransSeen: c.retransSeen, FastRetrans: c.fast, Spurious: c.spurious, ZeroWindows: c.zeroWin,
		ResetsSent: c.resetsSent, ResetsRecv: c.resetsRecv, ResetReason: c.resetReason, Preexisting: c.preexisting}
	if c.opened {
		sum.Start = c.start
	}
	l := c.localSide()
	r := 1 - l
	sum.Local, sum.Remote = c.ends[l], c.ends[r]
	// A connection with a full socket still open when tracing stopped
	// lasted until then: its end, and the time in its last state. Its
	// TIME_WAIT is apart.
	for i := range c.sockets {
		if sk := &c.sockets[i]; !sk.closed && a.stateTraced() && a.exitAt.After(sum.End) {
			sum.End = a.exitAt
		}
	}
	if c.client {
		sum.Role = [2]string{"client", "server"}[l]
	}
	netns := c.netns
	for i := range c.sockets {
		sk := &c.sockets[i]
		if sk.local != sum.Local {
			continue
		}
		sum.Owner, netns = sk.owner, sk.netns
		sum.StateTime = sk.stateTime
		sum.SRTT, sum.Cwnd = sk.srtt, sk.cwnd
		sum.Kernel, sum.HasKernel = sk.counters, sk.hasCounters
		if !sk.closed && !sk.since.IsZero() && int(sk.state) < len(sum.StateTime) {
			sum.StateTime[sk.state] += sum.End.Sub(sk.since)
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
	switch {
	case c.hsProblem != "":
		sum.HandshakeCheck = c.hsProblem
	case c.isnSeen[0] && !c.synAckTime.IsZero() && !c.ackTime.IsZero():
		sum.HandshakeCheck = "ok"
	}
	sum.FinSeen = [2]bool{!c.finTime[l].IsZero(), !c.finTime[r].IsZero()}
	sum.FinAcked = [2]bool{c.finAcked[l], c.finAcked[r]}
	sum.BytesOut, sum.BytesIn, sum.SegsOut, sum.SegsIn = c.sent(l), c.sent(r), c.segs[l], c.segs[r]
	sum.PacketsSeen = c.segs[l]+c.segs[r] > 0
	sum.PacketsCounted = c.counted
	sum.KernelCounted = a.cfg.KernelRetransmits && len(c.sockets) > 0 || c.retransKernel > 0
	sum.ResetsCounted = a.cfg.ResetEvents && len(c.sockets) > 0 || c.resetsSent+c.resetsRecv > 0

	// Who closed first, and how: from the packets when the capture saw
	// the close, else from the sockets' state changes and reset events.
	fl, fr := c.finTime[l], c.finTime[r]
	if fl.IsZero() && fr.IsZero() {
		fl, fr = c.stateFin[l], c.stateFin[r]
	}
	rstSide, rstTime, rstBy := c.rstSide, c.rstTime, c.rstBy
	if rstSide < 0 {
		rstSide, rstTime, rstBy = c.stateRstSide, c.stateRstTime, c.stateRstBy
	}
	switch {
	case rstSide >= 0 && (fl.IsZero() || rstTime.Before(fl)) && (fr.IsZero() || rstTime.Before(fr)):
		sum.CloseKind = "reset"
		switch {
		case rstBy[0] && rstBy[1]: // a RST never answers a RST: they crossed
			sum.ClosedBy = "both"
		case int(rstSide) == l:
			sum.ClosedBy = "local"
		default:
			sum.ClosedBy = "remote"
		}
	case !fl.IsZero() || !fr.IsZero():
		sum.CloseKind = "fin"
		switch {
		case c.simultaneousClose || c.stateClosing || c.stateActive[0] && c.stateActive[1]:
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

	return netns
}

// sent is how many bytes of data side s sent, by sequence progress.
func (c *conn) sent(s int) uint64 {
	return c.dataBytes[s]
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// resetsTraced reports whether a refused connection would show as a reset
// event (a zero Config.Events means every kind).
func (a *Analyzer) resetsTraced() bool {
	return a.cfg.ResetEvents || a.cfg.Events == 0 || a.cfg.Events.Has(tracer.TypeReset)
}

// EndDeadSockets summarizes the connections that lost records, were quiet
// since before live was listed, and whose sockets it lists none of (closed,
// or in TIME_WAIT: tracer.DeadSocketsEnder): their closing records were
// lost, and without this they would keep their state until the idle
// timeout. Their
// summaries are incomplete ("events lost"); their ids are kept as long as
// the correlator keeps those of idle connections, since it saw no end.
func (a *Analyzer) EndDeadSockets(live *tracer.LiveSockets) (int, error) {
	if a.stopped {
		return 0, tracer.ErrStop
	}
	n := 0
	for c := a.lru.prev; c != &a.lru; {
		prev := c.prev
		if !c.last.Before(live.At) {
			break // the rest was seen later
		}
		// Not a start-up listing that showed nothing since: a TIME_WAIT
		// one waits for its end record, which its summary says.
		if a.losses > c.losses && a.ended[c.id] == nil && (c.observed || !c.preexisting) && socketsGone(c, live) {
			written := c.endsSet // a listener has no summary
			if err := a.summarize(c, false, false); err != nil {
				return n, err
			}
			if written {
				n++
			}
		}
		c = prev
	}
	return n, nil
}

// socketsGone reports whether c has local sockets of its own (not a
// listener's, which a reset it sent for c names), all in namespaces live
// listed, and live lists none of them as a full socket (one in TIME_WAIT
// is gone: the analysis summarizes a connection whose sockets are closed
// or in TIME_WAIT alike).
func socketsGone(c *conn, live *tracer.LiveSockets) bool {
	own := 0
	for i := range c.sockets {
		sk := &c.sockets[i]
		switch {
		case live.Listener(sk.cookie):
		case sk.cookie == 0 || !live.Listed(sk.netns) || live.Live(sk.cookie):
			return false
		default:
			own++
		}
	}
	return own > 0
}
