package tracer

import (
	"fmt"
	"strings"
)

// eventKind is one kind of kernel event (enum event_kind in
// bpf/tcpscope.h). Every list a kind appears in (the kernel's emit mask,
// the names of --events and of `lost` records, the programs a run loads,
// the decoder) is derived from eventKinds: adding a kind is one row here
// plus its BPF side.
type eventKind struct {
	id tcpscopeEventKind
	// typ is the record type the kind becomes, and the --events selection
	// that enables it.
	typ RecordType
	// name is the kind's name in --events (when selectable) and in the
	// `kind` of `lost` records.
	name string
	// selectable: --events takes name (and name+"s"); otherwise the kind
	// comes with its record type.
	selectable bool
	// programs are the BPF programs the kind needs: they are not loaded
	// when no kind that needs them is selected.
	programs []string
	// size is the size of the raw event.
	size int
	// minSize is the size of the shortest raw event: the kernel cuts an
	// empty tail (bpf/tcpscope.h). Shorter records are malformed.
	minSize int
	// decode fills r from a raw event of at least minSize bytes.
	decode func(d *decoder, raw []byte, r *Record)
	// socket: the kind comes from socket tracepoints and needs the
	// socket-owner bookkeeping.
	socket bool
}

// ownerPrograms keep the kernel's socket-owner table: every socket kind
// needs them.
var ownerPrograms = []string{tcpscopeProgOnSetState, tcpscopeProgOnDestroySock, tcpscopeProgOnSendLength, tcpscopeProgOnRecvLength}

// eventKinds is the table of event kinds, in --events order.
var eventKinds = []eventKind{
	{id: tcpscopeEventKindEVENT_PACKET, typ: TypePacket, name: "packet", selectable: true,
		programs: []string{tcpscopeProgTcIngress, tcpscopeProgTcEgress, tcpscopeProgTcLoEgress},
		size:     packetEventSize, minSize: packetEventShortSize, decode: decodePacketRaw},
	{id: tcpscopeEventKindEVENT_STATE, typ: TypeState, name: "state", selectable: true, socket: true,
		programs: ownerPrograms, size: sockEventSize, minSize: sockEventShortSize, decode: decodeSockRaw},
	{id: tcpscopeEventKindEVENT_RETRANSMIT, typ: TypeRetransmit, name: "retransmit", selectable: true, socket: true,
		programs: append([]string{tcpscopeProgOnRetransmit}, ownerPrograms...), size: sockEventSize, minSize: sockEventShortSize, decode: decodeSockRaw},
	{id: tcpscopeEventKindEVENT_RESET, typ: TypeReset, name: "reset", selectable: true, socket: true,
		programs: append([]string{tcpscopeProgOnSendReset, tcpscopeProgOnReceiveReset}, ownerPrograms...),
		size:     sockEventSize, minSize: sockEventShortSize, decode: decodeSockRaw},
	{id: tcpscopeEventKindEVENT_TIMEWAIT, typ: TypeState, name: "timewait", socket: true,
		programs: []string{tcpscopeProgOnTimerStart, tcpscopeProgOnTimerExpire, tcpscopeProgOnTimerCancel},
		size:     sockEventSize, minSize: sockEventShortSize, decode: decodeTimeWaitRaw},
	// Comes with packet (--packets control): the classifiers count, the
	// socket programs flush.
	{id: tcpscopeEventKindEVENT_PKT_COUNTS, typ: TypeCounts, name: "counts",
		size: pktCountsEventSize, minSize: pktCountsEventSize, decode: decodeCountsRaw},
}

// Derived from eventKinds.
var (
	// kindByID indexes eventKinds by kernel id (nil: no such kind).
	kindByID [tcpscopeEventKindEVENT_KIND_MAX]*eventKind
	// lostKindNames names each kind in `lost` records.
	lostKindNames [tcpscopeEventKindEVENT_KIND_MAX]string
	// socketEvents are the record types that come from socket tracepoints
	// and need the owner bookkeeping.
	socketEvents EventSet
	// selectableNames are the --events names, in table order.
	selectableNames []string
	// maxEventSize is the largest raw event.
	maxEventSize int
)

// AllEvents enables every selectable event type.
var AllEvents EventSet

func init() {
	for i := range eventKinds {
		k := &eventKinds[i]
		if k.id <= 0 || k.id >= tcpscopeEventKindEVENT_KIND_MAX || kindByID[k.id] != nil {
			panic(fmt.Sprintf("event kind table: bad or duplicate id %d", k.id))
		}
		kindByID[k.id] = k
		lostKindNames[k.id] = k.name
		maxEventSize = max(maxEventSize, k.size)
		if k.socket {
			socketEvents |= 1 << k.typ
		}
		if k.selectable {
			AllEvents |= 1 << k.typ
			selectableNames = append(selectableNames, k.name)
		}
	}
}

// EventNames returns the names --events takes (without "all").
func EventNames() []string { return append([]string(nil), selectableNames...) }

// emitMask is the kernel's emit_mask for a selection: bit (1 << id) for
// every kind whose record type is selected.
func emitMask(s EventSet) uint32 {
	var m uint32
	for i := range eventKinds {
		if s.Has(eventKinds[i].typ) {
			m |= 1 << eventKinds[i].id
		}
	}
	return m
}

// programNeededBy returns the record types whose kinds need a program
// (0: no kind names it).
func programNeededBy(program string) EventSet {
	var s EventSet
	for i := range eventKinds {
		for _, p := range eventKinds[i].programs {
			if p == program {
				s |= 1 << eventKinds[i].typ
			}
		}
	}
	return s
}

// kindNamed returns the selectable kind called name or name+"s".
func kindNamed(name string) *eventKind {
	for i := range eventKinds {
		k := &eventKinds[i]
		if k.selectable && (name == k.name || name == k.name+"s") {
			return k
		}
	}
	return nil
}

// eventNamesList is the selectable names for messages: "a, b, c".
func eventNamesList() string { return strings.Join(selectableNames, ", ") }

func decodePacketRaw(d *decoder, raw []byte, r *Record) {
	var buf tcpscopePacketEvent
	d.decodePacket(padded(raw, &buf), r)
}

func decodeSockRaw(d *decoder, raw []byte, r *Record) {
	var buf tcpscopeSockEvent
	d.decodeSock(padded(raw, &buf), r)
}

func decodeTimeWaitRaw(d *decoder, raw []byte, r *Record) {
	var buf tcpscopeSockEvent
	ev := padded(raw, &buf)
	d.decodeSock(ev, r)
	r.twEvent = ev.TwEvent
}

func decodeCountsRaw(d *decoder, raw []byte, r *Record) {
	var buf tcpscopePktCountsEvent
	d.decodeCounts(padded(raw, &buf), r)
}
