package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

const (
	afInet  = 2
	afInet6 = 10

	packetEventSize = int(unsafe.Sizeof(tcpscopePacketEvent{}))
	sockEventSize   = int(unsafe.Sizeof(tcpscopeSockEvent{}))
	// The kernel cuts a record before its empty tail (bpf/tcpscope.h):
	// a packet without SACK blocks before Sack, a socket event without
	// an owner before Owner. These are the shortest records of each.
	packetEventShortSize = int(unsafe.Offsetof(tcpscopePacketEvent{}.Sack))
	sockEventShortSize   = int(unsafe.Offsetof(tcpscopeSockEvent{}.Owner))
	// sockEventOwnerSize is a socket event with an owner and no counters
	// (all but the state changes to CLOSE).
	sockEventOwnerSize = int(unsafe.Offsetof(tcpscopeSockEvent{}.Counters))
	pktCountsEventSize = int(unsafe.Sizeof(tcpscopePktCountsEvent{}))
)

// errShortRecord is returned for a ring-buffer record smaller than its kind.
var errShortRecord = errors.New("short record")

// ifaceInfo is what the decoder knows about an attached interface.
type ifaceInfo struct {
	name  string
	netns uint32
}

// decoder turns raw ring-buffer records into Records. It keeps no
// reference to the raw bytes after decode returns.
type decoder struct {
	clock   *monoClock
	ifaces  map[uint32]ifaceInfo
	reasons map[uint32]string // enum sk_rst_reason value -> name
	// inferReasons: the kernel's tcp_send_reset has no reason (before
	// ~6.10), so sent resets get one from their context.
	inferReasons bool
}

// decode fills r from one raw record. r is overwritten entirely.
func (d *decoder) decode(raw []byte, r *Record) error {
	if len(raw) == 0 {
		return errShortRecord
	}
	*r = Record{}
	k := raw[0]
	if int(k) >= len(kindByID) || kindByID[k] == nil {
		return fmt.Errorf("unknown event kind %d", k)
	}
	kind := kindByID[k]
	if len(raw) < kind.minSize {
		return fmt.Errorf("%s event of %d bytes, want %d: %w", kind.name, len(raw), kind.minSize, errShortRecord)
	}
	kind.decode(d, raw, r)
	return nil
}

// padded returns raw as a *T: in place when raw holds a whole T, else
// copied into *buf with the missing tail zero (a record cut short by the
// kernel; see packetEventShortSize).
func padded[T any](raw []byte, buf *T) *T {
	if len(raw) >= int(unsafe.Sizeof(*buf)) {
		return (*T)(unsafe.Pointer(&raw[0]))
	}
	*buf = *new(T)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(buf)), unsafe.Sizeof(*buf)), raw)
	return buf
}

func addrFrom(family uint8, b *[16]byte) netip.Addr {
	if family == afInet {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	// A v4-mapped address is an IPv4 peer of an AF_INET6 socket: show it
	// as IPv4 so that it matches the packets on the wire.
	return netip.AddrFrom16(*b).Unmap()
}

func (d *decoder) decodePacket(ev *tcpscopePacketEvent, r *Record) {
	r.Type = TypePacket
	r.Time = d.clock.wall(ev.TsNs)
	r.Cookie = ev.Cookie
	r.Ifindex = ev.Ifindex
	if info, ok := d.ifaces[ev.Ifindex]; ok {
		r.Ifname = info.name
		r.Netns = info.netns
	}
	if ev.Dir == uint8(tcpscopePacketDirDIR_EGRESS) {
		r.Dir = DirOut
	} else {
		r.Dir = DirIn
	}
	r.Src = netip.AddrPortFrom(addrFrom(ev.Family, &ev.Saddr), ev.Sport)
	r.Dst = netip.AddrPortFrom(addrFrom(ev.Family, &ev.Daddr), ev.Dport)
	r.Flags = ev.TcpFlags
	r.Seq = ev.Seq
	r.Ack = ev.Ack
	r.Win = ev.Window
	r.Len = ev.Len
	r.Options = TCPOptions{
		Present:    ev.Options,
		MSS:        ev.Mss,
		WScale:     ev.Wscale,
		SackBlocks: ev.SackBlocks,
		TSVal:      ev.TsVal,
		TSEcr:      ev.TsEcr,
		Order:      ev.OptOrder,
	}
	for i := range r.Options.Sack {
		r.Options.Sack[i] = [2]uint32{ev.Sack[2*i], ev.Sack[2*i+1]}
	}
}

func (d *decoder) decodeSock(ev *tcpscopeSockEvent, r *Record) {
	r.Type = TypeReset
	if int(ev.Kind) < len(kindByID) && kindByID[ev.Kind] != nil {
		r.Type = kindByID[ev.Kind].typ
	}
	r.Time = d.clock.wall(ev.TsNs)
	r.Netns = ev.Netns
	r.Cookie = ev.Cookie
	r.Local = netip.AddrPortFrom(addrFrom(ev.Family, &ev.Laddr), ev.Lport)
	r.Remote = netip.AddrPortFrom(addrFrom(ev.Family, &ev.Raddr), ev.Rport)
	r.HasState = ev.Flags&uint8(tcpscopeSockEventFlagSOCK_HAS_STATE) != 0
	r.State = TCPState(ev.State)
	r.OldState = TCPState(ev.OldState)
	r.Seq = ev.Seq
	r.Len = ev.Len
	r.Flags = ev.TcpFlags
	r.Segs = ev.Segs
	if ev.ResetDir == uint8(tcpscopeResetDirRESET_RECEIVED) {
		r.ResetDir = ResetReceived
	}
	if ev.Flags&uint8(tcpscopeSockEventFlagSOCK_HAS_REASON) != 0 {
		r.Reason = d.reasonName(ev.Reason)
	} else if d.inferReasons && r.Type == TypeReset && r.ResetDir == ResetSent {
		r.Reason = inferResetReason(r)
	}
	if ev.Flags&uint8(tcpscopeSockEventFlagSOCK_HAS_TCPINFO) != 0 {
		r.HasTCPInfo, r.SRTTMicros, r.Cwnd = true, ev.SrttUs, ev.SndCwnd
	}
	if ev.Flags&uint8(tcpscopeSockEventFlagSOCK_HAS_COUNTERS) != 0 {
		c := &ev.Counters
		r.HasCounters = true
		r.Counters = result.KernelCounters{
			BytesAcked:      c.BytesAcked,
			BytesReceived:   c.BytesReceived,
			BytesSent:       c.BytesSent,
			BytesRetrans:    c.BytesRetrans,
			SegsIn:          c.SegsIn,
			SegsOut:         c.SegsOut,
			DataSegsIn:      c.DataSegsIn,
			DataSegsOut:     c.DataSegsOut,
			TotalRetrans:    c.TotalRetrans,
			HasBytesSent:    c.Flags&uint32(tcpscopeTcpCountersFlagCOUNTERS_HAS_BYTES_SENT) != 0,
			HasBytesRetrans: c.Flags&uint32(tcpscopeTcpCountersFlagCOUNTERS_HAS_BYTES_RETRANS) != 0,
		}
	}
	if ev.Flags&uint8(tcpscopeSockEventFlagSOCK_HAS_PKT_COUNTS) != 0 {
		r.HasPktCounts = true
		packetCounts(&ev.Pkt, r)
	}
	if ev.Flags&uint8(tcpscopeSockEventFlagSOCK_HAS_OWNER) != 0 {
		o := &ev.Owner
		r.Owner = result.Owner{
			Known:    true,
			PID:      o.Tgid,
			TID:      o.Pid,
			UID:      o.Uid,
			CgroupID: o.CgroupId,
			NoTID:    o.Flags&uint32(tcpscopeOwnerFlagOWNER_NO_TID) != 0,
			NoCgroup: o.Flags&uint32(tcpscopeOwnerFlagOWNER_NO_CGROUP) != 0,
		}
		for i, c := range o.Comm {
			r.Owner.Comm[i] = byte(c)
		}
	}
}

// reasonName names an enum sk_rst_reason value from kernel BTF.
func (d *decoder) reasonName(v uint32) string {
	if name, ok := d.reasons[v]; ok {
		return name
	}
	return fmt.Sprintf("REASON_%d", v)
}

// inferResetReason names why a reset was sent on kernels whose tracepoint
// does not say, from what the event shows, with the names newer kernels
// use: no socket -> NO_SOCKET, a TIME_WAIT socket -> TCP_TIMEWAIT_SOCKET,
// anything else -> NOT_SPECIFIED.
func inferResetReason(r *Record) string {
	switch {
	case !r.HasState:
		return "NO_SOCKET"
	case r.State == StateTimeWait:
		return "TCP_TIMEWAIT_SOCKET"
	}
	return "NOT_SPECIFIED"
}

// decodeCounts fills r from a pkt_counts_event: a count map entry flushed
// by a socket (with its cookie and netns) or by the exit drain.
func (d *decoder) decodeCounts(ev *tcpscopePktCountsEvent, r *Record) {
	r.Type = TypeCounts
	r.Time = d.clock.wall(ev.TsNs)
	r.Netns = ev.Netns
	r.Cookie = ev.Cookie
	countsRecord(&ev.Key, &ev.Counts, r)
}

// countsRecord sets the endpoints and counts of a TypeCounts record from a
// count map entry.
func countsRecord(k *tcpscopePktKey, c *tcpscopePktCounts, r *Record) {
	r.Local = netip.AddrPortFrom(addrFrom(k.Family, &k.Laddr), k.Lport)
	r.Remote = netip.AddrPortFrom(addrFrom(k.Family, &k.Raddr), k.Rport)
	packetCounts(c, r)
}

// packetCounts sets r.PktCounts from a count map entry.
func packetCounts(c *tcpscopePktCounts, r *Record) {
	for i := range r.PktCounts {
		dc := &c.Dir[i]
		r.PktCounts[i] = PacketCounts{Segs: uint64(dc.Segs), Bytes: dc.Bytes, HasData: dc.Seen != 0,
			FirstSeq: dc.FirstSeq, EndSeq: dc.HighEnd}
	}
}
