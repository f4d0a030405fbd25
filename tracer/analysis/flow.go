package analysis

import (
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// Serial-number comparisons of TCP sequence numbers (RFC 1982).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool { return int32(a-b) > 0 }

// flow is what one capture point saw of one direction of a connection.
type flow struct {
	seen        bool      // a packet of this direction was seen here
	nextSeq     uint32    // highest seq + segment length seen
	nextSeqTime time.Time // when nextSeq last advanced
	ackSeen     bool
	lastAck     uint32
	lastAckTime time.Time // when lastAck last changed, or the last duplicate
	lastWin     uint32    // raw window of the last packet
	winSeen     bool
	dupAcks     uint32
	keepAlive   bool // the last segment was a keep-alive
}

// point is one capture point (an interface in a namespace): verdicts are
// computed per point, so a packet seen on two interfaces is not a
// retransmission.
type point struct {
	flows [2]flow // by side
}

// Timing thresholds, as tshark's defaults.
const (
	// fastRetransWindow: a retransmission this soon after the peer's
	// duplicate ACKs is a fast retransmission.
	fastRetransWindow = 20 * time.Millisecond
	// defaultOutOfOrderWindow: an earlier sequence number this soon after
	// the direction's last new segment is reordering, not a
	// retransmission. Like tshark, the window is the connection's initial
	// RTT (SYN to the handshake's last ACK) when known, else this.
	defaultOutOfOrderWindow = 3 * time.Millisecond
)

// segLen is the sequence space a packet occupies (SYN and FIN count one).
func segLen(r *tracer.Record) uint32 {
	n := r.Len
	if r.Flags&tracer.FlagSYN != 0 {
		n++
	}
	if r.Flags&tracer.FlagFIN != 0 {
		n++
	}
	return n
}

// analyze computes the verdicts of packet r sent by side, seen at pt, and
// updates the point's state. scale holds each side's window scale shift,
// or -1 when unknown; oooWindow is the out-of-order window.
func analyze(pt *point, side int, r *tracer.Record, scale [2]int, oooWindow time.Duration) (v tracer.Verdicts, dupCount uint32) {
	f, rev := &pt.flows[side], &pt.flows[1-side]
	syn, fin, rst := r.Flags&tracer.FlagSYN != 0, r.Flags&tracer.FlagFIN != 0, r.Flags&tracer.FlagRST != 0
	ack := r.Flags&tracer.FlagACK != 0
	control := syn || fin || rst
	seg := segLen(r)
	t := r.Time

	if r.Win == 0 && !control {
		v |= tracer.VerdictZeroWindow
	}
	if f.seen {
		if r.Len == 1 && r.Seq == f.nextSeq && rev.winSeen && rev.lastWin == 0 {
			v |= tracer.VerdictZeroWindowProbe
		}
		if seqGT(r.Seq, f.nextSeq) && !rst {
			v |= tracer.VerdictLostSegment
		}
		if r.Len <= 1 && !control && r.Seq == f.nextSeq-1 {
			v |= tracer.VerdictKeepAlive
		}
		pure := r.Len == 0 && !control && ack && r.Seq == f.nextSeq && f.ackSeen && r.Ack == f.lastAck
		switch {
		case pure && f.winSeen && r.Win != 0 && uint32(r.Win) != f.lastWin: // as tshark: never to a zero window
			v |= tracer.VerdictWindowUpdate
		case pure && rev.keepAlive:
			v |= tracer.VerdictKeepAliveACK
		case pure && r.Win != 0: // as tshark: a repeated zero-window ACK is no duplicate
			f.dupAcks++
			f.lastAckTime = t
			v |= tracer.VerdictDuplicateACK
			dupCount = f.dupAcks
		}
	}
	if rev.ackSeen && r.Len > 0 && !control && scale[1-side] >= 0 &&
		r.Seq+r.Len == rev.lastAck+rev.lastWin<<uint(scale[1-side]) {
		v |= tracer.VerdictWindowFull
	}
	if ack && rev.seen && seqGT(r.Ack, rev.nextSeq) && !rst {
		v |= tracer.VerdictAckUnseenSegment
	}
	if f.seen && (r.Len > 0 || syn || fin) && seqLT(r.Seq, f.nextSeq) && v&tracer.VerdictKeepAlive == 0 {
		// As tshark, a fast or spurious retransmission is also a
		// retransmission (tcp.analysis.retransmission is set for both).
		switch {
		case rev.dupAcks >= 2 && rev.lastAck == r.Seq && t.Sub(rev.lastAckTime) < fastRetransWindow:
			v |= tracer.VerdictFastRetransmission | tracer.VerdictRetransmission
		case t.Sub(f.nextSeqTime) < oooWindow && f.nextSeq != r.Seq+seg:
			v |= tracer.VerdictOutOfOrder
		case r.Len > 0 && rev.ackSeen && seqLE(r.Seq+seg, rev.lastAck):
			v |= tracer.VerdictSpuriousRetransmission | tracer.VerdictRetransmission
		default:
			v |= tracer.VerdictRetransmission
		}
	}

	// Update this direction's state. A zero-window probe does not move
	// next seq (as tshark): the peer has not taken its byte.
	if !f.seen || seqGT(r.Seq+seg, f.nextSeq) && v&tracer.VerdictZeroWindowProbe == 0 {
		f.nextSeq = r.Seq + seg
		f.nextSeqTime = t
	}
	f.seen = true
	f.keepAlive = v&tracer.VerdictKeepAlive != 0
	if ack && (!f.ackSeen || r.Ack != f.lastAck) {
		f.lastAck, f.ackSeen = r.Ack, true
		f.lastAckTime = t
		f.dupAcks = 0
	}
	if !syn || ack { // a SYN's window is never scaled
		f.lastWin, f.winSeen = uint32(r.Win), true
	}
	return v, dupCount
}
