package tracer

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
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
	// TypeCounts carries the packets the kernel counted instead of
	// reporting them (--packets control), for one connection as its local
	// end saw them.
	TypeCounts
)

var recordTypeNames = [...]string{
	TypePacket:     "packet",
	TypeState:      "state",
	TypeRetransmit: "retransmit",
	TypeReset:      "reset",
	TypeLost:       "lost",
	TypeConn:       "conn",
	TypeSocket:     "socket",
	TypeCounts:     "counts",
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

// ConnSlot is storage that lives with a connection's entry in the
// correlator, for the stages after it: one keeps its own state of the
// connection there and finds it again from the next record (Record.Slot)
// without a lookup of its own. The correlator clears it when the entry
// goes (a closed connection compacted, forgotten, evicted) and reuses the
// entry for other connections, so a stage checks that what it finds is
// its live state of Record.Conn, and falls back to its own table.
type ConnSlot struct {
	// Analysis is the analyzer's state of the connection.
	Analysis any
}

// Record is one output record. The tracer reuses one Record for every
// event, so a sink must not keep a pointer to it after Write returns.
// Fields that do not belong to Type are zero.
type Record struct {
	Time time.Time
	Type RecordType
	Conn uint64
	// Slot is the correlator's storage for connection Conn, while it
	// keeps the connection's full entry; nil otherwise (ConnSlot). Only
	// the stages of the record path's goroutine use it: Fanout's copies
	// for side consumers have none.
	Slot  *ConnSlot
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
	Owner         result.Owner
	// Segs: for retransmits, how many segments the kernel retransmitted
	// (tcp_skb_pcount: a GSO skb counts one per MSS, as TcpRetransSegs).
	Segs uint16
	// TimeWait marks the state records of a TIME_WAIT socket
	// (FIN_WAIT2/CLOSING -> TIME_WAIT, TIME_WAIT -> CLOSE); the end one
	// says how TIME_WAIT ended ("expired", "killed") and how long it was.
	TimeWait    bool
	TimeWaitEnd string
	TimeWaitDur time.Duration
	// TimeWaitKill: for a TIME_WAIT "killed", what killed it, when the
	// analysis saw a sign of it: "syn", "rst" or "tw_reuse" (as the
	// summary's TimeWaitKill); "" otherwise.
	TimeWaitKill string
	twEvent      uint8 // a raw TIME_WAIT timer event, for the tracker only

	// Preexisting marks socket records: the socket existed when tracing
	// started (a snapshot, not an event).
	Preexisting bool

	// State events of connected sockets: the kernel's smoothed RTT (us)
	// and congestion window (segments) at the transition.
	HasTCPInfo bool
	SRTTMicros uint32
	Cwnd       uint32
	// State events to CLOSE of a full socket: the socket's lifetime
	// counters (HasCounters).
	HasCounters bool
	Counters    result.KernelCounters

	// TypeCounts, and a CLOSE state record with HasPktCounts (--packets
	// control: the connection's count entry, taken at the socket's
	// close): what the local end sent (PktCounts[0], egress) and
	// received ([1], ingress) in the packets that were counted.
	PktCounts    [2]PacketCounts
	HasPktCounts bool

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
	Verdicts        result.Verdicts
	DupAckCount     uint32 // with VerdictDuplicateACK: how many in a row
	KernelConfirmed int8   // retransmission verdicts: 1 the kernel retransmitted it, -1 it did not, 0 unknown

	// Summary of a connection (TypeConn).
	Summary *result.ConnSummary
}

// HasAck reports whether the ACK flag is set (and so Ack is meaningful).
func (r *Record) HasAck() bool { return r.Flags&FlagACK != 0 }

// PacketCounts are one direction's packets counted in the kernel instead
// of reported (--packets control).
type PacketCounts struct {
	Segs  uint64 // segments (a GSO super-packet counts one, as tcpdump shows it)
	Bytes uint64 // payload bytes
	// HasData: FirstSeq and EndSeq are set: the counted payload lies in
	// [FirstSeq, EndSeq) (sequence numbers).
	HasData          bool
	FirstSeq, EndSeq uint32
}
