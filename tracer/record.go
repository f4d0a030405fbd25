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
)

var recordTypeNames = [...]string{
	TypePacket:     "packet",
	TypeState:      "state",
	TypeRetransmit: "retransmit",
	TypeReset:      "reset",
	TypeLost:       "lost",
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

	// Packet fields.
	Ifindex  uint32
	Ifname   string
	Dir      Direction
	Src, Dst netip.AddrPort
	Flags    uint8 // TCP flags; for retransmits, the retransmitted segment's
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

	// Lost fields.
	LostCount uint64
	LostKind  string
}

// HasAck reports whether the ACK flag is set (and so Ack is meaningful).
func (r *Record) HasAck() bool { return r.Flags&FlagACK != 0 }
