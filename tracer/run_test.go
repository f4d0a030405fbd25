//go:build linux

package tracer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// fakeRing is a ring buffer without a kernel: ReadInto returns the queued
// raw events in order, then waits for the deadline or a Flush, as
// ringbuf.Reader does.
type fakeRing struct {
	mu       sync.Mutex
	events   [][]byte
	next     int
	deadline time.Time
	flush    chan struct{}
	// empty is closed the first time every queued event has been read.
	empty     chan struct{}
	emptyOnce sync.Once
}

func newFakeRing(events [][]byte) *fakeRing {
	return &fakeRing{events: events, flush: make(chan struct{}, 1), empty: make(chan struct{})}
}

func (f *fakeRing) ReadInto(rec *ringbuf.Record) error {
	f.mu.Lock()
	if f.next < len(f.events) {
		rec.RawSample = append(rec.RawSample[:0], f.events[f.next]...)
		f.next++
		f.mu.Unlock()
		return nil
	}
	deadline := f.deadline
	f.mu.Unlock()
	f.emptyOnce.Do(func() { close(f.empty) })
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-f.flush:
		return ringbuf.ErrFlushed
	case <-timer.C:
		return os.ErrDeadlineExceeded
	}
}

func (f *fakeRing) SetDeadline(t time.Time) {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
}

func (f *fakeRing) Flush() error {
	select {
	case f.flush <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeRing) Close() error { return nil }

// AvailableBytes is what the queued events not read yet hold.
func (f *fakeRing) AvailableBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ev := range f.events[f.next:] {
		n += len(ev)
	}
	return n
}

// BufferSize is 256 KiB.
func (f *fakeRing) BufferSize() int { return 256 << 10 }

// fakeDrops is the kernel's drop counters: per kind, one CPU.
type fakeDrops struct {
	mu sync.Mutex
	n  [tcpscopeEventKindEVENT_KIND_MAX]uint64
}

func (d *fakeDrops) Lookup(key, valueOut any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	*valueOut.(*[]uint64) = []uint64{d.n[key.(uint32)]}
	return nil
}

func (d *fakeDrops) add(kind tcpscopeEventKind, n uint64) {
	d.mu.Lock()
	d.n[kind] += n
	d.mu.Unlock()
}

// collectSink keeps copies of the records written to it.
type collectSink struct {
	mu      sync.Mutex
	recs    []Record
	ended   bool
	flushes int
	// before, when set, is called before each Write (to block it).
	before func(n int)
	// stopAfter > 0: ErrStop once that many records are written.
	stopAfter int
	// wrote is signalled after each write.
	wrote chan struct{}
}

func (s *collectSink) Write(r *Record) error {
	if s.before != nil {
		s.before(len(s.recs))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		panic("write after End")
	}
	if s.stopAfter > 0 && len(s.recs) >= s.stopAfter {
		panic("write after ErrStop")
	}
	s.recs = append(s.recs, *r)
	if s.wrote != nil {
		select {
		case s.wrote <- struct{}{}:
		default:
		}
	}
	if s.stopAfter > 0 && len(s.recs) == s.stopAfter {
		return ErrStop
	}
	return nil
}

func (s *collectSink) Flush() error { s.flushes++; return nil }
func (s *collectSink) End() error   { s.ended = true; return nil }

func (s *collectSink) count(typ RecordType) (n int) {
	for _, r := range s.recs {
		if r.Type == typ {
			n++
		}
	}
	return n
}

// lost sums the lost records per kind and place.
func (s *collectSink) lost() map[[2]string]uint64 {
	m := map[[2]string]uint64{}
	for _, r := range s.recs {
		if r.Type == TypeLost {
			m[[2]string{r.LostKind, r.LostWhere}] += r.LostCount
		}
	}
	return m
}

// testTracer is a Tracer with no kernel behind it: r is its ring.
func testTracer(t testing.TB, r ringReader, drops dropCounters, mode OverflowMode, queueBatches int) *Tracer {
	t.Helper()
	cfg := Config{FlushInterval: 20 * time.Millisecond, Overflow: mode, QueueBatches: queueBatches,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if drops == nil {
		drops = &fakeDrops{}
	}
	return &Tracer{cfg: cfg, log: cfg.Logger, reader: r, drops: drops, netns: &Netns{},
		dec:  decoder{clock: &monoClock{}, ifaces: map[uint32]ifaceInfo{}},
		corr: newCorrelator(cfg.MaxConns), tw: newTWTracker()}
}

// packetEvent is a raw packet event of connection port, stamped ts.
func packetEvent(port uint16, ts uint64) []byte {
	ev := tcpscopePacketEvent{Kind: uint8(tcpscopeEventKindEVENT_PACKET), Family: afInet, TsNs: ts,
		Sport: port, Dport: 80, TcpFlags: FlagACK, Seq: uint32(ts)}
	copy(ev.Saddr[:], []byte{10, 0, 0, 1})
	copy(ev.Daddr[:], []byte{10, 0, 0, 2})
	return append([]byte(nil), rawBytes(&ev)...)
}

// stateEvent is a raw ESTABLISHED -> FIN_WAIT1 event of socket port.
func stateEvent(port uint16, ts uint64) []byte {
	ev := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_STATE), Family: afInet, TsNs: ts,
		Lport: port, Rport: 80, Cookie: uint64(port), State: uint8(StateFinWait1), OldState: uint8(StateEstablished),
		Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_STATE)}
	copy(ev.Laddr[:], []byte{10, 0, 0, 1})
	copy(ev.Raddr[:], []byte{10, 0, 0, 2})
	return append([]byte(nil), rawBytes(&ev)...)
}

// storm is n events alternating packets and state changes, stamped 1 us
// apart with each pair swapped: the stages must put them back in order.
func storm(n int) [][]byte {
	evs := make([][]byte, n)
	for i := range n {
		ts := uint64(1_000_000 + i*1000)
		if i%2 == 0 && i+1 < n {
			ts += 1000
		} else if i%2 == 1 {
			ts -= 1000
		}
		if i%3 == 0 {
			evs[i] = stateEvent(uint16(10000+i%5000), ts)
		} else {
			evs[i] = packetEvent(uint16(10000+i%5000), ts)
		}
	}
	return evs
}

func runTracer(t *testing.T, tr *Tracer, ctx context.Context, sink Sink) {
	t.Helper()
	if err := tr.Run(ctx, sink); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Every record read is written, sorted by time, and the sink is ended and
// flushed after the last one, also when the ring still holds records when
// the context ends: Run drains the ring and the queue first.
func TestRunDrainsAtEndInOrder(t *testing.T) {
	const n = 5000
	for _, mode := range []OverflowMode{OverflowDrop, OverflowBlock} {
		t.Run(string(mode), func(t *testing.T) {
			ring := newFakeRing(storm(n))
			tr := testTracer(t, ring, nil, mode, 0)
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // done before Run reads anything
			sink := &collectSink{}
			runTracer(t, tr, ctx, sink)
			if got := sink.count(TypePacket) + sink.count(TypeState); got != n {
				t.Fatalf("%d records written, want %d; lost: %v", got, n, sink.lost())
			}
			if !slices.IsSortedFunc(sink.recs, func(a, b Record) int { return a.Time.Compare(b.Time) }) {
				t.Error("records not in timestamp order")
			}
			if !sink.ended || sink.flushes == 0 {
				t.Errorf("sink ended %v, flushed %d times", sink.ended, sink.flushes)
			}
		})
	}
}

// Ring losses and malformed records become lost records with their kind
// and place; losses are reported while no record comes (the tick runs on
// a timer).
func TestRunReportsLosses(t *testing.T) {
	bad := append([]byte(nil), packetEvent(1, 1)...)
	bad[0] = 99 // no such kind
	ring := newFakeRing([][]byte{packetEvent(1, 1000), bad, packetEvent(1, 2000)})
	drops := &fakeDrops{}
	tr := testTracer(t, ring, drops, OverflowDrop, 0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sink := &collectSink{wrote: make(chan struct{}, 1)}
	done := make(chan error)
	go func() { done <- tr.Run(ctx, sink) }()
	<-ring.empty
	drops.add(tcpscopeEventKindEVENT_STATE, 7)
	// No more records come: the lost record comes from a tick.
	for {
		<-sink.wrote
		sink.mu.Lock()
		n := sink.lost()[[2]string{"state", LostInRing}]
		sink.mu.Unlock()
		if n == 7 {
			break
		}
	}
	drops.add(tcpscopeEventKindEVENT_PACKET, 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]uint64{{"state", "ring"}: 7, {"packet", "ring"}: 3, {"malformed", ""}: 1}
	if got := sink.lost(); !mapsEqual(got, want) {
		t.Errorf("lost %v, want %v", got, want)
	}
	if got := sink.count(TypePacket); got != 2 {
		t.Errorf("%d packets, want 2", got)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// After ErrStop nothing more is written (collectSink panics), Run returns
// nil and its reader goroutine has ended.
func TestRunErrStop(t *testing.T) {
	ring := newFakeRing(storm(3000))
	tr := testTracer(t, ring, nil, OverflowBlock, 0)
	sink := &collectSink{stopAfter: 100}
	runTracer(t, tr, t.Context(), sink)
	if len(sink.recs) != 100 {
		t.Errorf("%d records, want 100", len(sink.recs))
	}
}

// levelRing is a ring reader that only reports a fill level.
type levelRing struct {
	ringReader
	avail, size int
}

func (l levelRing) AvailableBytes() int { return l.avail }
func (l levelRing) BufferSize() int     { return l.size }

// TestRingFillingThreshold: drop mode starts dropping only when the ring
// is 7/8 full: the ring's room is the buffer that lets a consumer short of
// CPU in a storm catch up afterwards (at half full it lost records the
// ring could have held).
func TestRingFillingThreshold(t *testing.T) {
	for _, c := range []struct {
		avail int
		want  bool
	}{{0, false}, {512 << 10, false}, {800 << 10, false}, {895 << 10, false}, {896 << 10, true}, {1 << 20, true}} {
		p := &pump{r: levelRing{avail: c.avail, size: 1 << 20}}
		if got := p.ringFilling(); got != c.want {
			t.Errorf("ring %d of %d bytes: filling %v, want %v", c.avail, 1<<20, got, c.want)
		}
	}
}

// A consumer that does not keep up: in drop mode the reader waits while
// the ring is less than 7/8 full, then keeps reading it and drops whole
// batches, and every dropped record is reported per kind with
// "where":"queue", so that written + lost = read, per kind. In block mode
// nothing is dropped (the reader waits).
func TestRunQueueOverflow(t *testing.T) {
	const n = 20000
	for _, mode := range []OverflowMode{OverflowDrop, OverflowBlock} {
		t.Run(string(mode), func(t *testing.T) {
			ring := newFakeRing(storm(n))
			tr := testTracer(t, ring, nil, mode, 1)
			release := make(chan struct{})
			sink := &collectSink{}
			sink.before = func(int) { <-release }
			if mode == OverflowDrop {
				// The first write waits until the reader has dropped
				// records: the queue (1 batch) is full and the ring 7/8
				// full.
				tr.queue = newBatchQueue(1, mode)
				go func() {
					for tr.queue.dropped[tcpscopeEventKindEVENT_PACKET].Load() == 0 {
						time.Sleep(time.Millisecond)
					}
					close(release)
				}()
			} else {
				close(release)
			}
			ctx, cancel := context.WithCancel(t.Context())
			go func() { <-ring.empty; cancel() }()
			runTracer(t, tr, ctx, sink)
			lost := sink.lost()
			wantPackets, wantStates := 0, 0
			for _, ev := range storm(n) {
				if ev[0] == uint8(tcpscopeEventKindEVENT_PACKET) {
					wantPackets++
				} else {
					wantStates++
				}
			}
			gotP := uint64(sink.count(TypePacket)) + lost[[2]string{"packet", LostInQueue}]
			gotS := uint64(sink.count(TypeState)) + lost[[2]string{"state", LostInQueue}]
			if gotP != uint64(wantPackets) || gotS != uint64(wantStates) {
				t.Errorf("written + lost: %d packets, %d states; want %d, %d (lost %v)", gotP, gotS, wantPackets, wantStates, lost)
			}
			dropped := lost[[2]string{"packet", LostInQueue}] + lost[[2]string{"state", LostInQueue}]
			if mode == OverflowDrop && dropped == 0 {
				t.Error("nothing dropped although the consumer was blocked while the whole ring was read")
			}
			if mode == OverflowBlock && dropped != 0 {
				t.Errorf("block mode dropped %d records", dropped)
			}
		})
	}
}

// A ring read error ends Run with that error.
func TestRunReadError(t *testing.T) {
	tr := testTracer(t, errRing{}, nil, OverflowDrop, 0)
	err := tr.Run(t.Context(), &collectSink{})
	if err == nil || !errors.Is(err, errBroken) {
		t.Fatalf("Run: %v, want %v", err, errBroken)
	}
}

var errBroken = errors.New("broken")

type errRing struct{}

func (errRing) ReadInto(*ringbuf.Record) error { return errBroken }
func (errRing) SetDeadline(time.Time)          {}
func (errRing) Flush() error                   { return nil }
func (errRing) Close() error                   { return nil }
func (errRing) AvailableBytes() int            { return 0 }
func (errRing) BufferSize() int                { return 4096 }
