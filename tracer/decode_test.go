package tracer

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"unsafe"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// rawBytes returns the in-memory bytes of a generated event struct, exactly
// as the kernel writes them to the ring buffer.
func rawBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

func testDecoder() *decoder {
	return &decoder{
		clock:   &monoClock{},
		ifaces:  map[uint32]ifaceInfo{7: {name: "veth0", netns: 4026531840}},
		reasons: map[uint32]string{1: "NO_SOCKET", 13: "TCP_STATE"},
	}
}

func TestDecodePacketIPv4(t *testing.T) {
	ev := tcpscopePacketEvent{
		Kind: uint8(tcpscopeEventKindEVENT_PACKET), Family: afInet, Dir: uint8(tcpscopePacketDirDIR_EGRESS),
		TcpFlags: FlagSYN | FlagACK, Ifindex: 7, TsNs: 1_000_000_123,
		Sport: 5555, Dport: 80, Seq: 4000000000, Ack: 17, Len: 0, Window: 65535,
		Options: uint16(tcpscopeTcpOptionBitOPT_MSS | tcpscopeTcpOptionBitOPT_WSCALE | tcpscopeTcpOptionBitOPT_SACK), Mss: 1460, Wscale: 7,
		SackBlocks: 2, Sack: [8]uint32{10, 20, 30, 40},
		OptOrder: uint64(tcpscopeTcpOptCodeOPTC_MSS) | uint64(tcpscopeTcpOptCodeOPTC_NOP)<<4 | uint64(tcpscopeTcpOptCodeOPTC_WSCALE)<<8,
		Cookie:   99,
	}
	copy(ev.Saddr[:], []byte{10, 0, 0, 1})
	copy(ev.Daddr[:], []byte{10, 0, 0, 2})
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != TypePacket || r.Dir != DirOut || r.Ifname != "veth0" || r.Netns != 4026531840 {
		t.Errorf("header fields: %+v", r)
	}
	if r.Src != netip.MustParseAddrPort("10.0.0.1:5555") || r.Dst != netip.MustParseAddrPort("10.0.0.2:80") {
		t.Errorf("endpoints %s > %s", r.Src, r.Dst)
	}
	if r.Seq != 4000000000 || r.Ack != 17 || r.Win != 65535 || FlagString(r.Flags) != "S." || r.Cookie != 99 {
		t.Errorf("tcp fields: %+v", r)
	}
	if r.Options.Present != OptMSS|OptWScale|OptSack || r.Options.MSS != 1460 || r.Options.WScale != 7 {
		t.Errorf("options: %+v", r.Options)
	}
	if r.Options.SackKept() != 2 || r.Options.Sack[0] != [2]uint32{10, 20} || r.Options.Sack[1] != [2]uint32{30, 40} {
		t.Errorf("sack: %+v", r.Options)
	}
	if got := r.Options.Codes(); len(got) != 3 || got[0] != OptCodeMSS || got[1] != OptCodeNOP || got[2] != OptCodeWScale {
		t.Errorf("option order %v, want mss,nop,wscale", got)
	}
	if r.Time.UnixNano() != 1_000_000_123 {
		t.Errorf("time %d", r.Time.UnixNano())
	}
}

func TestDecodeSockEventIPv6AndMapped(t *testing.T) {
	ev := tcpscopeSockEvent{
		Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet6, State: uint8(StateEstablished),
		Netns: 42, Cookie: 5, Lport: 80, Rport: 40000, Reason: 13, ResetDir: uint8(tcpscopeResetDirRESET_RECEIVED),
		Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE | tcpscopeSockEventFlagSOCK_HAS_REASON | tcpscopeSockEventFlagSOCK_HAS_OWNER),
	}
	ev.Laddr = netip.MustParseAddr("fd00::1").As16()
	ev.Raddr = netip.MustParseAddr("::ffff:10.0.0.2").As16()
	ev.Owner.Pid, ev.Owner.Tgid, ev.Owner.Uid, ev.Owner.CgroupId = 11, 10, 1000, 77
	for i, c := range "nginx" {
		ev.Owner.Comm[i] = int8(c)
	}
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeReset || r.ResetDir != ResetReceived || r.Reason != "TCP_STATE" || !r.HasState || r.State != StateEstablished {
		t.Errorf("reset fields: %+v", r)
	}
	if r.Local.String() != "[fd00::1]:80" || r.Remote.String() != "10.0.0.2:40000" {
		t.Errorf("endpoints %s %s (v4-mapped must show as IPv4)", r.Local, r.Remote)
	}
	if !r.Owner.Known || r.Owner.PID != 10 || r.Owner.TID != 11 || string(r.Owner.CommBytes()) != "nginx" || r.Owner.CgroupID != 77 {
		t.Errorf("owner: %+v", r.Owner)
	}
}

func TestDecodeAbsentFieldsStayAbsent(t *testing.T) {
	ev := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet, Reason: 1}
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	if r.Owner.Known || r.HasState || r.Reason != "" {
		t.Errorf("fields without their flag must stay absent: %+v", r)
	}
}

func TestDecodeUnknownReasonIsNumbered(t *testing.T) {
	ev := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet, Reason: 250,
		Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_REASON)}
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	if r.Reason != "REASON_250" {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestDecodeRejectsShortAndUnknown(t *testing.T) {
	d := testDecoder()
	var r Record
	pkt := tcpscopePacketEvent{Kind: uint8(tcpscopeEventKindEVENT_PACKET)}
	sock := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_STATE)}
	for name, raw := range map[string][]byte{
		"empty":        nil,
		"short packet": rawBytes(&pkt)[:packetEventShortSize-1],
		"short sock":   rawBytes(&sock)[:sockEventShortSize-8],
		"unknown kind": {200, 0, 0, 0, 0, 0, 0, 0},
	} {
		if err := d.decode(raw, &r); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if err := d.decode(rawBytes(&pkt)[:10], &r); !errors.Is(err, errShortRecord) {
		t.Errorf("short packet: %v, want errShortRecord", err)
	}
}

// TestABISizes pins the event sizes: a change to bpf/tcpscope.h must be
// deliberate (the records are an ABI between kernel and Go).
func TestABISizes(t *testing.T) {
	if packetEventSize != 128 || sockEventSize != 248 {
		t.Errorf("packet_event %d bytes, sock_event %d bytes; want 128 and 248", packetEventSize, sockEventSize)
	}
	countersSize := int(unsafe.Offsetof(tcpscopeSockEvent{}.Pkt))
	if packetEventShortSize != 96 || sockEventShortSize != 88 || sockEventOwnerSize != 128 || countersSize != 184 {
		t.Errorf("short packet_event %d bytes, short sock_event %d, %d and %d bytes; want 96, 88, 128 and 184",
			packetEventShortSize, sockEventShortSize, sockEventOwnerSize, countersSize)
	}
	if packetEventSize%8 != 0 || sockEventSize%8 != 0 || packetEventShortSize%8 != 0 || sockEventShortSize%8 != 0 ||
		sockEventOwnerSize%8 != 0 || countersSize%8 != 0 {
		t.Error("event sizes must be multiples of 8")
	}
}

// TestDecodeShortRecords: a record the kernel cut before its empty tail
// (a packet without SACK blocks, a socket event without an owner) decodes
// as the whole record with that tail zero, whatever bytes follow it in
// the reader's buffer.
func TestDecodeShortRecords(t *testing.T) {
	d := testDecoder()
	pkt := tcpscopePacketEvent{Kind: uint8(tcpscopeEventKindEVENT_PACKET), Family: afInet, Ifindex: 7,
		Sport: 1, Dport: 2, Seq: 3, Ack: 4, Len: 5, Options: uint16(tcpscopeTcpOptionBitOPT_TIMESTAMP),
		TsVal: 6, TsEcr: 7, OptOrder: 0x611, Cookie: 8}
	state := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_STATE), Family: afInet, State: 1, OldState: 2,
		Netns: 9, Cookie: 10, Lport: 11, Rport: 12, Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE)}
	stateOwner := state
	stateOwner.Flags |= uint8(tcpscopeSockEventFlagSOCK_HAS_OWNER)
	stateOwner.Owner = tcpscopeOwner{Pid: 13, Tgid: 14, Comm: [16]int8{'c', 'u', 'r', 'l'}}
	for name, c := range map[string]struct {
		raw  []byte
		size int
	}{
		"packet": {rawBytes(&pkt), packetEventShortSize},
		"state":  {rawBytes(&state), sockEventShortSize},
		// An owner and no counters: every record but a CLOSE.
		"state with owner": {rawBytes(&stateOwner), sockEventOwnerSize},
	} {
		var whole, short Record
		if err := d.decode(c.raw, &whole); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The short record followed by garbage, as in a batch buffer.
		buf := append(append([]byte(nil), c.raw[:c.size]...), bytes.Repeat([]byte{0xff}, 64)...)
		if err := d.decode(buf[:c.size:c.size], &short); err != nil {
			t.Fatalf("%s: short: %v", name, err)
		}
		if !reflect.DeepEqual(whole, short) {
			t.Errorf("%s: short record decodes as\n%+v\nwant\n%+v", name, short, whole)
		}
	}
}

func BenchmarkDecodePacket(b *testing.B) {
	ev := tcpscopePacketEvent{Kind: uint8(tcpscopeEventKindEVENT_PACKET), Family: afInet, Ifindex: 7, Sport: 1, Dport: 2}
	raw := rawBytes(&ev)
	d := testDecoder()
	var r Record
	b.ReportAllocs()
	for b.Loop() {
		if err := d.decode(raw, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAndCorrelatePacket(b *testing.B) {
	ev := tcpscopePacketEvent{Kind: uint8(tcpscopeEventKindEVENT_PACKET), Family: afInet, Ifindex: 7, Sport: 1, Dport: 2, TcpFlags: FlagACK}
	copy(ev.Saddr[:], []byte{10, 0, 0, 1})
	copy(ev.Daddr[:], []byte{10, 0, 0, 2})
	raw := rawBytes(&ev)
	d := testDecoder()
	c := newCorrelator(0)
	var r Record
	discard := func(*Record) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := d.decode(raw, &r); err != nil {
			b.Fatal(err)
		}
		if err := c.process(&r, discard); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInferredResetReasons: without a kernel reason, sent resets get one
// from their context; received resets never have one.
func TestInferredResetReasons(t *testing.T) {
	d := testDecoder()
	d.inferReasons = true
	for _, c := range []struct {
		ev   tcpscopeSockEvent
		want string
	}{
		{tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet}, "NO_SOCKET"},
		{tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet, State: uint8(StateTimeWait),
			Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE)}, "TCP_TIMEWAIT_SOCKET"},
		{tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet, State: uint8(StateClose),
			Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE)}, "NOT_SPECIFIED"},
		{tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet, ResetDir: uint8(tcpscopeResetDirRESET_RECEIVED),
			Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE)}, ""},
	} {
		var r Record
		if err := d.decode(rawBytes(&c.ev), &r); err != nil {
			t.Fatal(err)
		}
		if r.Reason != c.want {
			t.Errorf("state %d dir %d: reason %q, want %q", c.ev.State, c.ev.ResetDir, r.Reason, c.want)
		}
	}
}

// TestDecodeRetransmitSegments: a retransmit event carries the segments
// the kernel retransmitted (GSO: several per skb) besides seq and bytes,
// and a sent reset the flags of the segment it answers.
func TestDecodeRetransmitSegments(t *testing.T) {
	ev := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RETRANSMIT), Family: afInet, Cookie: 3,
		Seq: 1001, Len: 14480, Segs: 10, TcpFlags: FlagACK | FlagPSH}
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeRetransmit || r.Seq != 1001 || r.Len != 14480 || r.Segs != 10 || r.Flags != FlagACK|FlagPSH {
		t.Errorf("retransmit fields: seq %d len %d segs %d flags %s", r.Seq, r.Len, r.Segs, FlagString(r.Flags))
	}
	rst := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_RESET), Family: afInet, TcpFlags: FlagSYN}
	if err := testDecoder().decode(rawBytes(&rst), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeReset || r.Flags != FlagSYN {
		t.Errorf("sent reset answering a SYN: flags %s", FlagString(r.Flags))
	}
}

// TestDecodeCloseCounters: a state change to CLOSE carries the socket's
// counters in the record's last part; they decode into the Record, and
// bytes_sent/bytes_retrans only when the kernel had them.
func TestDecodeCloseCounters(t *testing.T) {
	ev := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_STATE), Family: afInet, OldState: 5, State: 7,
		Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE | tcpscopeSockEventFlagSOCK_HAS_COUNTERS),
		Counters: tcpscopeTcpCounters{BytesAcked: 1 << 33, BytesReceived: 200, BytesSent: 1<<33 + 10, BytesRetrans: 10,
			SegsIn: 7, SegsOut: 9, DataSegsIn: 3, DataSegsOut: 5, TotalRetrans: 1,
			Flags: uint32(tcpscopeTcpCountersFlagCOUNTERS_HAS_BYTES_SENT)}}
	raw := rawBytes(&ev)
	if len(raw) != sockEventSize {
		t.Fatalf("record of %d bytes, want %d", len(raw), sockEventSize)
	}
	var r Record
	if err := testDecoder().decode(raw, &r); err != nil {
		t.Fatal(err)
	}
	want := result.KernelCounters{BytesAcked: 1 << 33, BytesReceived: 200, BytesSent: 1<<33 + 10, BytesRetrans: 10,
		SegsIn: 7, SegsOut: 9, DataSegsIn: 3, DataSegsOut: 5, TotalRetrans: 1, HasBytesSent: true}
	if !r.HasCounters || r.Counters != want {
		t.Errorf("counters %v %+v, want %+v", r.HasCounters, r.Counters, want)
	}
	if r.Owner.Known {
		t.Error("a CLOSE record with counters and no owner decodes with an owner")
	}
	// The same transition without counters (a record cut before them,
	// e.g. a listener's close): none, and garbage after the cut is not
	// read.
	ev.Flags = uint8(tcpscopeSockEventFlagSOCK_HAS_STATE)
	buf := append(append([]byte(nil), rawBytes(&ev)[:sockEventShortSize]...), bytes.Repeat([]byte{0xff}, 96)...)
	if err := testDecoder().decode(buf[:sockEventShortSize:sockEventShortSize], &r); err != nil {
		t.Fatal(err)
	}
	if r.HasCounters || r.Counters != (result.KernelCounters{}) {
		t.Errorf("short record: counters %v %+v, want none", r.HasCounters, r.Counters)
	}
}

// TestDecodeClosePacketCounts: a CLOSE record that took its connection's
// count map entry (--packets control) decodes its packet counts
// (HasPktCounts); the same record cut before them (SOCK_EVENT_COUNTERS
// bytes, no entry) has none, whatever follows the cut.
func TestDecodeClosePacketCounts(t *testing.T) {
	ev := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_STATE), Family: afInet, OldState: 9, State: 7,
		Lport: 40000, Rport: 80,
		Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE | tcpscopeSockEventFlagSOCK_HAS_COUNTERS |
			tcpscopeSockEventFlagSOCK_HAS_PKT_COUNTS)}
	ev.Pkt.Dir[0] = tcpscopePktDirCounts{Bytes: 1000, Segs: 3, FirstSeq: 11, HighEnd: 1011, Seen: 1}
	ev.Pkt.Dir[1] = tcpscopePktDirCounts{Segs: 2}
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	want := [2]PacketCounts{{Segs: 3, Bytes: 1000, HasData: true, FirstSeq: 11, EndSeq: 1011}, {Segs: 2}}
	if r.Type != TypeState || !r.HasPktCounts || r.PktCounts != want || !r.HasCounters {
		t.Errorf("CLOSE with packet counts: type %s, has %v, counts %+v, counters %v", r.Type, r.HasPktCounts, r.PktCounts, r.HasCounters)
	}
	cut := int(unsafe.Offsetof(ev.Pkt))
	ev.Flags &^= uint8(tcpscopeSockEventFlagSOCK_HAS_PKT_COUNTS)
	buf := append(append([]byte(nil), rawBytes(&ev)[:cut]...), bytes.Repeat([]byte{0xff}, 64)...)
	if err := testDecoder().decode(buf[:cut:cut], &r); err != nil {
		t.Fatal(err)
	}
	if r.HasPktCounts || r.PktCounts != ([2]PacketCounts{}) || !r.HasCounters {
		t.Errorf("CLOSE cut before the packet counts: has %v, counts %+v, counters %v", r.HasPktCounts, r.PktCounts, r.HasCounters)
	}
}

// TestDecodeCounts: a flushed count map entry (--packets control) decodes
// into a TypeCounts record: the local end as the key has it, what it sent
// and received, the socket's cookie and netns.
func TestDecodeCounts(t *testing.T) {
	if pktCountsEventSize != 136 {
		t.Errorf("pkt_counts_event %d bytes, want 136", pktCountsEventSize)
	}
	ev := tcpscopePktCountsEvent{Kind: uint8(tcpscopeEventKindEVENT_PKT_COUNTS), Family: afInet, Netns: 77,
		TsNs: 5, Cookie: 99}
	ev.Key = tcpscopePktKey{Family: afInet, Lport: 40000, Rport: 80}
	copy(ev.Key.Laddr[:], []byte{10, 0, 0, 1})
	copy(ev.Key.Raddr[:], []byte{10, 0, 0, 2})
	ev.Counts.Dir[0] = tcpscopePktDirCounts{Bytes: 1000, Segs: 3, FirstSeq: 11, HighEnd: 1011, Seen: 1}
	ev.Counts.Dir[1] = tcpscopePktDirCounts{Segs: 2}
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	want := [2]PacketCounts{{Segs: 3, Bytes: 1000, HasData: true, FirstSeq: 11, EndSeq: 1011}, {Segs: 2}}
	if r.Type != TypeCounts || r.Type.String() != "counts" || r.Netns != 77 || r.Cookie != 99 || r.PktCounts != want {
		t.Errorf("counts record: %+v", r)
	}
	if r.Local != netip.MustParseAddrPort("10.0.0.1:40000") || r.Remote != netip.MustParseAddrPort("10.0.0.2:80") {
		t.Errorf("endpoints %s %s", r.Local, r.Remote)
	}
	if err := testDecoder().decode(rawBytes(&ev)[:100], &r); !errors.Is(err, errShortRecord) {
		t.Errorf("short counts record: %v", err)
	}
}
