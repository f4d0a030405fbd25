// Package result holds what the analysis produces and the output formats
// print: per-packet verdicts and the one summary of a connection, with the
// socket owner both carry. It imports nothing of tcpscope's, so the record
// type (package tracer) can carry these and the analysis (package
// tracer/analysis) can fill them.
package result

import (
	"net/netip"
	"time"
)

// Owner is the process that owns a socket, as seen in process context.
type Owner struct {
	Known    bool
	PID      uint32 // process id (tgid)
	TID      uint32 // thread that last acted on the socket
	UID      uint32
	CgroupID uint64
	Comm     [16]byte // raw, NUL-padded; escape before printing
	// NoTID and NoCgroup mark TID and CgroupID unknown in a known owner
	// (a socket listed at start-up: /proc names no thread).
	NoTID, NoCgroup bool
}

// CommBytes returns the comm without its NUL padding.
func (o *Owner) CommBytes() []byte {
	for i, c := range o.Comm {
		if c == 0 {
			return o.Comm[:i]
		}
	}
	return o.Comm[:]
}

// Verdicts is a set of per-packet analysis verdicts, as tshark's TCP
// analysis names them (docs/analysis.md).
type Verdicts uint16

// Packet verdicts.
const (
	VerdictRetransmission Verdicts = 1 << iota
	VerdictFastRetransmission
	VerdictSpuriousRetransmission
	VerdictOutOfOrder
	VerdictLostSegment
	VerdictAckUnseenSegment
	VerdictDuplicateACK
	VerdictZeroWindow
	VerdictZeroWindowProbe
	VerdictWindowFull
	VerdictWindowUpdate
	VerdictKeepAlive
	VerdictKeepAliveACK
)

// VerdictNames lists the verdicts in output order: JSON name and the text
// tshark prints.
var VerdictNames = []struct {
	Verdict    Verdicts
	JSON, Text string
}{
	{VerdictRetransmission, "retransmission", "TCP Retransmission"},
	{VerdictFastRetransmission, "fast_retransmission", "TCP Fast Retransmission"},
	{VerdictSpuriousRetransmission, "spurious_retransmission", "TCP Spurious Retransmission"},
	{VerdictOutOfOrder, "out_of_order", "TCP Out-Of-Order"},
	{VerdictLostSegment, "lost_segment", "TCP Previous segment not captured"},
	{VerdictAckUnseenSegment, "ack_unseen_segment", "TCP ACKed unseen segment"},
	{VerdictDuplicateACK, "duplicate_ack", "TCP Dup ACK"},
	{VerdictZeroWindow, "zero_window", "TCP ZeroWindow"},
	{VerdictZeroWindowProbe, "zero_window_probe", "TCP ZeroWindowProbe"},
	{VerdictWindowFull, "window_full", "TCP Window Full"},
	{VerdictWindowUpdate, "window_update", "TCP Window Update"},
	{VerdictKeepAlive, "keep_alive", "TCP Keep-Alive"},
	{VerdictKeepAliveACK, "keep_alive_ack", "TCP Keep-Alive ACK"},
}

// Retransmissions are the verdicts the kernel can confirm.
const Retransmissions = VerdictRetransmission | VerdictFastRetransmission | VerdictSpuriousRetransmission

// ConnSummary is the one summary of a connection, emitted when it is gone
// (or at exit, or when evicted). Zero durations and times are absent.
type ConnSummary struct {
	Local, Remote netip.AddrPort // the client's view when both ends are local
	Owner         Owner          // of the local end
	Role          string         // "client" or "server": what the local end is; "" unknown
	Outcome       string         // handshake: established, refused, timeout, reset, "" (not seen)
	ISNLocal      uint32
	ISNRemote     uint32
	HasISN        bool
	HandshakeRTT  time.Duration // SYN to SYN-ACK, at the capture point
	SynAckToAck   time.Duration
	SynRetrans    int // SYN (or SYN-ACK) retransmissions seen
	// HandshakeCheck: "ok" when the SYN-ACK acked the client's ISN + 1
	// and the client's first ACK the server's ISN + 1;
	// "synack_ack_mismatch" or "ack_mismatch" when one did not; "" when
	// the handshake was not seen.
	HandshakeCheck string
	// Start: the connection's first packet or state change, zero when its
	// beginning (SYN or the opening state change) was not seen. End: its
	// last packet or state change of a full socket (TIME_WAIT is apart),
	// or the stop for a socket still open then; zero when none was seen.
	Start, End    time.Time
	StateTime     [16]time.Duration // time in each TCPState of the local end
	BytesOut      uint64            // payload the local end sent
	BytesIn       uint64
	SegsOut       uint64
	SegsIn        uint64
	RetransKernel uint64 // tcp_retransmit_skb events (one per skb, GSO or not)
	RetransSegs   uint64 // segments of those events (tcp_skb_pcount), as TcpRetransSegs counts
	RetransBytes  uint64 // payload bytes of those events
	RetransSeen   uint64 // packets with a retransmission verdict of any kind, at the capture point
	FastRetrans   uint64
	Spurious      uint64
	ResetsSent    uint64
	ResetsRecv    uint64
	ZeroWindows   uint64
	SRTT          time.Duration // last smoothed RTT the kernel had, 0 unknown
	Cwnd          uint32        // last congestion window, 0 unknown
	ClosedBy      string        // local, remote, both, ""
	CloseKind     string        // fin, reset, timeout, ""
	HalfClose     time.Duration // first FIN to last FIN
	// FinSeen and FinAcked: local, then remote. A FIN is acked by an ACK
	// of its seq + len + 1 (the FIN takes one sequence number).
	FinSeen, FinAcked [2]bool
	ResetReason       string
	// TimeWait and TimeWaitEnd: how long the TIME_WAIT of TimeWaitSide
	// lasted and how it ended, when it ended before the summary (or so
	// far, at exit); a TIME_WAIT that goes on after the summary has only
	// TimeWaitSide (its end is on its TIME_WAIT -> CLOSE state record).
	TimeWait    time.Duration
	TimeWaitEnd string // expired, killed, not_observed, ""
	// TimeWaitKill: what killed TIME_WAIT early, when a sign of it was
	// seen: "syn" (the peer's new SYN on the 4-tuple), "rst" (a RST
	// received), "tw_reuse" (a local connect() took the 4-tuple over).
	TimeWaitKill string
	// TimeWaitSide: whose TIME_WAIT began (the fields above describe
	// it), "local" or "remote" (both ends on this host and the peer
	// closed first); "" when none.
	TimeWaitSide string
	Complete     bool   // the connection is fully gone
	Evicted      bool   // forgotten to bound memory
	Progress     bool   // a progress record (--progress-interval): the summary so far of an open connection
	Preexisting  bool   // the connection existed when tracing started
	Incomplete   string // why events may be missing, "" when none
	// Which counters are known. A counter whose source was not traced is
	// absent from the output, never zero.
	PacketsSeen bool // packets were captured: bytes, segments, capture-seen retransmits, zero windows
	// PacketsCounted: --packets control counted some of the connection's
	// packets in the kernel instead of reporting them. BytesOut, BytesIn,
	// SegsOut and SegsIn include them and are exact; the verdicts and
	// the counters from packets (retransmits seen, zero windows) come
	// from the reported packets only.
	PacketsCounted bool
	KernelCounted  bool // tcp_retransmit_skb was traced for a local socket: RetransKernel
	ResetsCounted  bool // reset events were traced for a local socket: ResetsSent, ResetsRecv
	// Kernel: the local end's socket counters at its close, in every
	// --packets mode; valid only with HasKernel (the state change to
	// CLOSE of a full socket was traced).
	Kernel    KernelCounters
	HasKernel bool
}

// KernelCounters are a TCP socket's lifetime counters as the kernel kept
// them (struct tcp_sock, what tcp_info reports), read when the socket
// moved to CLOSE. BytesAcked and BytesReceived count sequence space as
// the kernel does: the payload plus one for an acknowledged SYN
// (BytesAcked) and one for a FIN (acknowledged, or received). BytesSent
// and BytesRetrans are payload only. Segments count each MSS of a GSO/TSO
// skb.
type KernelCounters struct {
	BytesAcked    uint64 // sent and acknowledged by the peer
	BytesReceived uint64 // received in sequence
	BytesSent     uint64 // bytes sent, retransmissions included; with HasBytesSent
	BytesRetrans  uint64 // bytes retransmitted; with HasBytesRetrans
	SegsIn        uint32 // segments received, pure ACKs included
	SegsOut       uint32 // segments sent, retransmissions included
	DataSegsIn    uint32 // segments received with payload
	DataSegsOut   uint32 // segments sent with payload
	TotalRetrans  uint32 // segments retransmitted
	// The kernel has bytes_sent / bytes_retrans (4.19 and later).
	HasBytesSent, HasBytesRetrans bool
}
