package tracer

import (
	"reflect"
	"slices"
	"testing"
)

// Every kernel event kind has one row, and what is derived from the table
// is what the tracer used before the table existed.
func TestKindTable(t *testing.T) {
	for id := tcpscopeEventKindEVENT_PACKET; id < tcpscopeEventKindEVENT_KIND_MAX; id++ {
		if kindByID[id] == nil {
			t.Errorf("kernel event kind %d has no row in eventKinds", id)
		}
	}
	if want := EventSet(1<<TypePacket | 1<<TypeState | 1<<TypeRetransmit | 1<<TypeReset); AllEvents != want {
		t.Errorf("AllEvents = %b, want %b", AllEvents, want)
	}
	if want := EventSet(1<<TypeState | 1<<TypeRetransmit | 1<<TypeReset); socketEvents != want {
		t.Errorf("socketEvents = %b, want %b", socketEvents, want)
	}
	if got, want := lostKindNames, [...]string{"", "packet", "state", "retransmit", "reset", "timewait", "counts"}; got != want {
		t.Errorf("lostKindNames = %q, want %q", got, want)
	}
	if got, want := EventNames(), []string{"packet", "state", "retransmit", "reset"}; !slices.Equal(got, want) {
		t.Errorf("EventNames = %q, want %q", got, want)
	}
	// The timer programs' TIMEWAIT kind is enabled with state.
	for _, c := range []struct {
		set  EventSet
		mask uint32
	}{
		{AllEvents, 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5},
		{1 << TypePacket, 1 << 1},
		{1 << TypeState, 1<<2 | 1<<5},
		{1<<TypeRetransmit | 1<<TypeReset, 1<<3 | 1<<4},
		// --packets control adds TypeCounts to the selection.
		{1<<TypePacket | 1<<TypeCounts, 1<<1 | 1<<6},
	} {
		if got := emitMask(c.set); got != c.mask {
			t.Errorf("emitMask(%s) = %b, want %b", c.set, got, c.mask)
		}
	}
	needed := map[string]EventSet{
		tcpscopeProgOnSetState:     socketEvents,
		tcpscopeProgOnDestroySock:  socketEvents,
		tcpscopeProgOnSendLength:   socketEvents,
		tcpscopeProgOnRecvLength:   socketEvents,
		tcpscopeProgOnRetransmit:   1 << TypeRetransmit,
		tcpscopeProgOnSendReset:    1 << TypeReset,
		tcpscopeProgOnReceiveReset: 1 << TypeReset,
		tcpscopeProgOnTimerStart:   1 << TypeState,
		tcpscopeProgOnTimerExpire:  1 << TypeState,
		tcpscopeProgOnTimerCancel:  1 << TypeState,
		tcpscopeProgTcIngress:      1 << TypePacket,
		tcpscopeProgTcEgress:       1 << TypePacket,
		tcpscopeProgTcLoEgress:     1 << TypePacket,
	}
	for p, want := range needed {
		if got := programNeededBy(p); got != want {
			t.Errorf("programNeededBy(%s) = %s, want %s", p, got, want)
		}
	}
	// Every program of the BPF object is needed by some kind.
	v := reflect.TypeOf(tcpscopeProgramSpecs{})
	for i := range v.NumField() {
		name := v.Field(i).Tag.Get("ebpf")
		if programNeededBy(name) == 0 {
			t.Errorf("BPF program %s is in no kind's programs", name)
		}
	}
	for _, p := range tracepointPrograms {
		if programNeededBy(p.program) == 0 {
			t.Errorf("tracepoint program %s is in no kind's programs", p.program)
		}
	}
}

// Every kind decodes through its row; a record shorter than its kind's
// minSize is malformed.
func TestDecodeEveryKind(t *testing.T) {
	d := &decoder{clock: newMonoClock(), ifaces: map[uint32]ifaceInfo{}}
	for _, k := range eventKinds {
		raw := rawEvent(t, k.id, 0)
		var r Record
		if err := d.decode(raw, &r); err != nil {
			t.Errorf("%s: %v", k.name, err)
			continue
		}
		if r.Type != k.typ {
			t.Errorf("%s: type %s, want %s", k.name, r.Type, k.typ)
		}
		if err := d.decode(raw[:k.minSize-1], &r); err == nil {
			t.Errorf("%s: short record decoded", k.name)
		}
	}
}

// rawEvent returns the raw bytes of a kernel event of kind id stamped ts
// (ns since boot), built from the generated types.
func rawEvent(t testing.TB, id tcpscopeEventKind, ts uint64) []byte {
	t.Helper()
	if id == tcpscopeEventKindEVENT_PACKET {
		ev := tcpscopePacketEvent{Kind: uint8(id), Family: afInet, TsNs: ts, Sport: 40000, Dport: 80, TcpFlags: FlagACK}
		copy(ev.Saddr[:], []byte{10, 0, 0, 1})
		copy(ev.Daddr[:], []byte{10, 0, 0, 2})
		return append([]byte(nil), rawBytes(&ev)...)
	}
	ev := tcpscopeSockEvent{Kind: uint8(id), Family: afInet, TsNs: ts, Lport: 40000, Rport: 80,
		State: uint8(StateEstablished), OldState: uint8(StateSynSent), Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE)}
	copy(ev.Laddr[:], []byte{10, 0, 0, 1})
	copy(ev.Raddr[:], []byte{10, 0, 0, 2})
	return append([]byte(nil), rawBytes(&ev)...)
}
