package analysis

import (
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// Serial-number comparisons of TCP sequence numbers (RFC 1982).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool { return int32(a-b) > 0 }

// flow is what one capture point saw of one direction of a connection.
// Its fields follow tshark's per-direction analysis state.
type flow struct {
	seen            bool      // a packet of this direction was seen here
	nextSeq         uint32    // highest seq + segment length seen
	nextSeqTime     time.Time // when nextSeq last advanced
	maxSeqToBeAcked uint32    // end of the contiguous sequence space seen
	lastAck         uint32    // ack field of the last packet
	lastTime        time.Time // when the last packet was seen (tshark's lastacktime)
	lastWin         uint32    // raw window of the last packet
	// dupAcks counts duplicate ACKs in a row; -1 (as tshark) after an
	// "ACKed unseen segment" verdict on the peer's ACK, until this
	// direction's ack changes.
	dupAcks  int32
	verdicts result.Verdicts // of the last packet
}

// point is one capture point (an interface in a namespace): verdicts are
// computed per point, so a packet seen on two interfaces is not a
// retransmission.
type point struct {
	flows [2]flow // by side
	// tshark's iRTT at this point: mruSyn is the most recent SYN without
	// ACK, firstRTT the time from it to the first packet with ACK and
	// without SYN (0 until then).
	mruSyn   time.Time
	firstRTT time.Duration
}

// Timing thresholds, as tshark's defaults.
const (
	// fastRetransWindow: a retransmission this soon after the peer's
	// last packet, with two or more duplicate ACKs asking for it, is a
	// fast retransmission.
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
// -1 when unknown, -2 when not in use; oooWindow is the out-of-order
// window.
//
// The checks and their order are tshark's (4.0, default preferences:
// fast retransmission before out-of-order), so that the same packets get
// the same verdicts; docs/analysis.md lists the definitions.
func analyze(pt *point, side int, r *tracer.Record, scale [2]int, oooWindow time.Duration) (v result.Verdicts, dupCount uint32) {
	f, rev := &pt.flows[side], &pt.flows[1-side]
	syn, fin := r.Flags&tracer.FlagSYN != 0, r.Flags&tracer.FlagFIN != 0
	ack := r.Flags&tracer.FlagACK != 0
	seg := segLen(r)
	win := uint32(r.Win)
	t := r.Time

	// A zero-window probe: one byte at the next sequence number into the
	// peer's zero window. Nothing else is checked of it but its ACK.
	if f.seen && r.Len == 1 && r.Seq == f.nextSeq && rev.seen && rev.lastWin == 0 {
		v |= result.VerdictZeroWindowProbe
	} else {
		v = forwardChecks(f, rev, r, scale[1-side])
		if v&result.VerdictDuplicateACK != 0 {
			dupCount = uint32(f.dupAcks)
		}
	}
	if f.seen && r.Ack != f.lastAck {
		f.dupAcks = 0
	}
	if ack && rev.seen && seqGT(r.Ack, rev.maxSeqToBeAcked) {
		// A plain comparison, as tshark's: true only when the gap spans
		// the wrap of the sequence space.
		if rev.maxSeqToBeAcked > rev.nextSeq {
			rev.maxSeqToBeAcked = rev.nextSeq
			v |= result.VerdictAckUnseenSegment
		} else {
			// Once per gap: again only after the peer's ack moved.
			if rev.dupAcks == 0 {
				v |= result.VerdictAckUnseenSegment
			}
			rev.dupAcks = -1
		}
	}
	if (r.Len > 0 || syn || fin) && v&result.VerdictKeepAlive == 0 {
		v |= retransmissionKind(f, rev, r, seg, oooWindow)
	}

	// Update this direction's state. A zero-window probe moves neither
	// next seq nor the contiguous end (as tshark): the peer has not taken
	// its byte.
	zwp := v&result.VerdictZeroWindowProbe != 0
	if (!f.seen || seqGT(r.Seq+seg, f.nextSeq)) && !zwp {
		f.nextSeq = r.Seq + seg
		f.nextSeqTime = t
	}
	if (!f.seen || r.Seq == f.maxSeqToBeAcked) && !zwp {
		f.maxSeqToBeAcked = f.nextSeq
	}
	f.seen = true
	f.lastWin, f.lastAck, f.lastTime = win, r.Ack, t
	f.verdicts = v
	return v, dupCount
}

// forwardChecks gives the verdicts that compare a packet with its own
// direction's history: zero window, lost segment, keep-alive, window
// update and full, keep-alive ACK and duplicate ACK.
func forwardChecks(f, rev *flow, r *tracer.Record, revScale int) (v result.Verdicts) {
	syn, fin, rst := r.Flags&tracer.FlagSYN != 0, r.Flags&tracer.FlagFIN != 0, r.Flags&tracer.FlagRST != 0
	control := syn || fin || rst
	win := uint32(r.Win)
	if win == 0 && !control {
		v |= result.VerdictZeroWindow
	}
	// The peer's window edge, when its scaling is known (-2: none).
	windowFull := rev.seen && r.Len > 0 && !control && revScale != -1 &&
		r.Seq+r.Len == rev.lastAck+rev.lastWin<<uint(max(revScale, 0))
	if !f.seen {
		if windowFull {
			v |= result.VerdictWindowFull
		}
		return v
	}
	if seqGT(r.Seq, f.nextSeq) && !rst {
		v |= result.VerdictLostSegment
	}
	if r.Len <= 1 && !control && r.Seq == f.nextSeq-1 {
		v |= result.VerdictKeepAlive
	}
	// A segment without data that repeats seq and ack: it updates the
	// window, answers a keep-alive or a zero-window probe, or duplicates
	// the last ACK.
	same := r.Len == 0 && !control && r.Seq == f.nextSeq && r.Ack == f.lastAck
	if same && win != 0 && win != f.lastWin {
		v |= result.VerdictWindowUpdate
	}
	if windowFull {
		v |= result.VerdictWindowFull
	}
	switch {
	case !same || win != f.lastWin:
	case win != 0 && rev.verdicts&result.VerdictKeepAlive != 0:
		v |= result.VerdictKeepAliveACK
	case win == 0 && rev.verdicts&result.VerdictZeroWindowProbe != 0:
		// A zero-window probe's ACK: no duplicate (tshark's
		// zero_window_probe_ack, not reported).
	case win != 0:
		if f.dupAcks < 0 {
			f.dupAcks = 1
		} else {
			f.dupAcks++
		}
		v |= result.VerdictDuplicateACK
	}
	return v
}

// retransmissionKind says what a segment carrying data, SYN or FIN is
// when it does not advance its direction's sequence number: a spurious,
// fast or plain retransmission, or out of order.
func retransmissionKind(f, rev *flow, r *tracer.Record, seg uint32, oooWindow time.Duration) result.Verdicts {
	t := r.Time
	notAdvanced := f.seen && seqLT(r.Seq, f.nextSeq)
	// More than one byte starting one before next seq adds data (after a
	// zero-window probe): not a retransmission.
	if r.Len > 1 && f.seen && f.nextSeq-1 == r.Seq {
		notAdvanced = false
	}
	// As tshark, a fast or spurious retransmission is also a
	// retransmission (tcp.analysis.retransmission is set for both).
	switch {
	case r.Len > 0 && rev.seen && rev.lastAck != 0 && seqLE(r.Seq+r.Len, rev.lastAck):
		// Every byte of it was acknowledged already.
		return result.VerdictSpuriousRetransmission | result.VerdictRetransmission
	case !notAdvanced:
		return 0
	case rev.dupAcks >= 2 && rev.lastAck == r.Seq && within(t.Sub(rev.lastTime), fastRetransWindow):
		return result.VerdictFastRetransmission | result.VerdictRetransmission
	case within(t.Sub(f.nextSeqTime), oooWindow) && f.nextSeq != r.Seq+seg:
		return result.VerdictOutOfOrder
	}
	return result.VerdictRetransmission
}

// within reports whether d is in [0, window): like tshark's unsigned
// difference, a packet stamped before the reference is never within.
func within(d, window time.Duration) bool { return d >= 0 && d < window }
