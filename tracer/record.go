package tracer

import (
	"net/netip"
	"strconv"
	"time"
)

// RecordType is the kind of a Record; its String is the JSON `type` value.
type RecordType uint8

// Record types, one per JSON `type`.
const (
	TypePacket RecordType = iota + 1
	TypeState
	TypeRetransmit
	TypeReset
	TypeLost
	TypeConn
	TypeSocket
)

var recordTypeNames = [...]string{
	TypePacket:     "packet",
	TypeState:      "state",
	TypeRetransmit: "retransmit",
	TypeReset:      "reset",
	TypeLost:       "lost",
	TypeConn:       "conn",
	TypeSocket:     "socket",
}

// String returns the JSON name of the record type.
func (t RecordType) String() string {
	if int(t) < len(recordTypeNames) && recordTypeNames[t] != "" {
		return recordTypeNames[t]
	}
	return "type" + strconv.Itoa(int(t))
}

// Direction is the TC hook a packet was seen on.
type Direction uint8

// Packet directions.
const (
	DirIn Direction = iota
	DirOut
)

// String returns "in" or "out".
func (d Direction) String() string {
	if d == DirOut {
		return "out"
	}
	return "in"
}

// ResetDir says whether this host sent or received a reset.
type ResetDir uint8

// Reset directions.
const (
	ResetSent ResetDir = iota
	ResetReceived
)

// String returns "sent" or "received".
func (d ResetDir) String() string {
	if d == ResetReceived {
		return "received"
	}
	return "sent"
}

// TCP header flag bits (byte 13 of the TCP header).
const (
	FlagFIN uint8 = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// tcpdumpFlagOrder is the order and the letters tcpdump prints flags with.
var tcpdumpFlagOrder = [...]struct {
	bit    uint8
	letter byte
}{
	{FlagFIN, 'F'}, {FlagSYN, 'S'}, {FlagRST, 'R'}, {FlagPSH, 'P'},
	{FlagACK, '.'}, {FlagURG, 'U'}, {FlagECE, 'E'}, {FlagCWR, 'W'},
}

// AppendFlags appends the flags as tcpdump prints them inside the brackets
// of `Flags [...]`: "S", "S.", "P.", "FP.", "R.", or "none".
func AppendFlags(dst []byte, flags uint8) []byte {
	if flags == 0 {
		return append(dst, "none"...)
	}
	for _, f := range tcpdumpFlagOrder {
		if flags&f.bit != 0 {
			dst = append(dst, f.letter)
		}
	}
	return dst
}

// FlagString returns AppendFlags as a string.
func FlagString(flags uint8) string { return string(AppendFlags(nil, flags)) }

// TCPState is a kernel TCP state (include/net/tcp_states.h).
type TCPState uint8

var tcpStateNames = [...]string{
	1:  "ESTABLISHED",
	2:  "SYN_SENT",
	3:  "SYN_RECV",
	4:  "FIN_WAIT1",
	5:  "FIN_WAIT2",
	6:  "TIME_WAIT",
	7:  "CLOSE",
	8:  "CLOSE_WAIT",
	9:  "LAST_ACK",
	10: "LISTEN",
	11: "CLOSING",
	12: "NEW_SYN_RECV",
	13: "BOUND_INACTIVE",
}

// TCP states used by the tracer itself.
const (
	StateEstablished TCPState = 1
	StateSynSent     TCPState = 2
	StateSynRecv     TCPState = 3
	StateFinWait1    TCPState = 4
	StateFinWait2    TCPState = 5
	StateTimeWait    TCPState = 6
	StateClose       TCPState = 7
	StateCloseWait   TCPState = 8
	StateLastAck     TCPState = 9
	StateListen      TCPState = 10
	StateClosing     TCPState = 11
)

// String returns the kernel's name of the state ("ESTABLISHED", ...).
func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) && tcpStateNames[s] != "" {
		return tcpStateNames[s]
	}
	return "STATE_" + strconv.Itoa(int(s))
}

// TCP option presence bits of TCPOptions.Present.
const (
	OptMSS uint16 = 1 << iota
	OptWScale
	OptSackOK
	OptTimestamp
	OptSack
)

// Option codes of TCPOptions.Order, one per option in wire order.
const (
	OptCodeEnd uint8 = iota
	OptCodeNOP
	OptCodeMSS
	OptCodeWScale
	OptCodeSackOK
	OptCodeSack
	OptCodeTimestamp
	OptCodeEOL
	OptCodeOther
)

// TCPOptions holds the TCP options of a packet; Present says which are set.
type TCPOptions struct {
	Present    uint16
	MSS        uint16
	WScale     uint8
	SackBlocks uint8 // blocks in the option; at most 4 are in Sack
	TSVal      uint32
	TSEcr      uint32
	Sack       [4][2]uint32 // left and right edge of each SACK block
	// Order lists the options as they appear on the wire, NOPs included:
	// 4 bits per option (OptCode*), first in the low bits, OptCodeEnd ends.
	// It holds the first 16 options.
	Order uint64
}

// Codes returns the option codes in wire order.
func (o *TCPOptions) Codes() []uint8 {
	var codes []uint8
	for order := o.Order; order&0xf != uint64(OptCodeEnd); order >>= 4 {
		codes = append(codes, uint8(order&0xf))
	}
	return codes
}

// SackKept is the number of SACK blocks held in Sack.
func (o *TCPOptions) SackKept() int { return min(int(o.SackBlocks), len(o.Sack)) }

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

// Record is one output record. The tracer reuses one Record for every
// event, so a sink must not keep a pointer to it after Write returns.
// Fields that do not belong to Type are zero.
type Record struct {
	Time  time.Time
	Type  RecordType
	Conn  uint64
	Netns uint32
	// NetnsName is the name user space gave the namespace (ip netns,
	// Docker), "" when it has none; set by NetnsNamer.
	NetnsName string

	// Packet fields.
	Ifindex  uint32
	Ifname   string
	Dir      Direction
	Src, Dst netip.AddrPort
	// TCP flags; for retransmits, the retransmitted segment's; for resets
	// sent in reply to a segment, that segment's (0 for an active reset).
	Flags    uint8
	Seq, Ack uint32
	Win      uint16
	Len      uint32
	Options  TCPOptions

	// Socket event fields (state, retransmit, reset).
	Local, Remote netip.AddrPort
	Cookie        uint64
	OldState      TCPState
	State         TCPState // new state for TypeState, current state otherwise
	HasState      bool
	ResetDir      ResetDir
	Reason        string // reset reason (kernel name); "" when the kernel gives none
	Owner         Owner
	// Segs: for retransmits, how many segments the kernel retransmitted
	// (tcp_skb_pcount: a GSO skb counts one per MSS, as TcpRetransSegs).
	Segs uint16
	// TimeWait marks the state records of a TIME_WAIT socket
	// (FIN_WAIT2/CLOSING -> TIME_WAIT, TIME_WAIT -> CLOSE); the end one
	// says how TIME_WAIT ended ("expired", "killed") and how long it was.
	TimeWait    bool
	TimeWaitEnd string
	TimeWaitDur time.Duration
	twEvent     uint8 // a raw TIME_WAIT timer event, for the tracker only

	// Preexisting marks socket records: the socket existed when tracing
	// started (a snapshot, not an event).
	Preexisting bool

	// State events of connected sockets: the kernel's smoothed RTT (us)
	// and congestion window (segments) at the transition.
	HasTCPInfo bool
	SRTTMicros uint32
	Cwnd       uint32

	// Lost fields.
	LostCount uint64
	LostKind  string
	// LostWhere is where the records were lost: LostInRing (the kernel's
	// ring buffer was full) or LostInQueue (the queue after the ring
	// reader was full); "" for malformed records.
	LostWhere string

	// Analysis of a packet (set by the analysis package).
	Analyzed        bool   // RelSeq (and RelAck with ACK) are set
	RelSeq, RelAck  uint32 // relative to each side's ISN
	RelAckValid     bool   // the peer's ISN is known
	Verdicts        Verdicts
	DupAckCount     uint32 // with VerdictDuplicateACK: how many in a row
	KernelConfirmed int8   // retransmission verdicts: 1 the kernel retransmitted it, -1 it did not, 0 unknown

	// Summary of a connection (TypeConn).
	Summary *ConnSummary
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
	TimeWait          time.Duration
	TimeWaitEnd       string // expired, killed, ""
	// TimeWaitKill: what killed TIME_WAIT early, when a sign of it was
	// seen: "syn" (the peer's new SYN on the 4-tuple), "rst" (a RST
	// received), "tw_reuse" (a local connect() took the 4-tuple over).
	TimeWaitKill string
	// TimeWaitSide: whose TIME_WAIT the fields above describe, "local" or
	// "remote" (both ends on this host and the peer closed first); ""
	// when none.
	TimeWaitSide string
	Complete     bool   // the connection is fully gone
	Evicted      bool   // forgotten to bound memory
	Preexisting  bool   // the connection existed when tracing started
	Incomplete   string // why events may be missing, "" when none
	// Which counters are known. A counter whose source was not traced is
	// absent from the output, never zero.
	PacketsSeen   bool // packets were captured: bytes, segments, capture-seen retransmits, zero windows
	KernelCounted bool // tcp_retransmit_skb was traced for a local socket: RetransKernel
	ResetsCounted bool // reset events were traced for a local socket: ResetsSent, ResetsRecv
}

// HasAck reports whether the ACK flag is set (and so Ack is meaningful).
func (r *Record) HasAck() bool { return r.Flags&FlagACK != 0 }
