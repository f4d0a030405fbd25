//go:build linux

package tracer

import (
	"testing"
)

// A side consumer that does not read never stalls the main path: every
// record reaches Next, the side consumer gets what fitted in its queue,
// and the rest is counted dropped, exactly.
func TestFanoutSlowSideNeverStalls(t *testing.T) {
	const n, queue = 10000, 64
	main := &collectSink{}
	release := make(chan struct{})
	slow := &collectSink{before: func(int) { <-release }}
	fast := &collectSink{}
	f := &Fanout{Next: main}
	slowSide := f.Attach(slow, queue)
	fastSide := f.Attach(fast, n)
	p := BuildPipeline(main, func(Sink) Sink { return f })
	for i := range n {
		r := Record{Type: TypePacket, Seq: uint32(i)}
		if err := p.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	// Every main-path write returned while the slow side was blocked.
	if len(main.recs) != n {
		t.Fatalf("main path got %d records, want %d", len(main.recs), n)
	}
	close(release)
	if err := p.End(); err != nil {
		t.Fatal(err)
	}
	got, dropped := uint64(len(slow.recs)), slowSide.Dropped()
	if got+dropped != n || dropped == 0 || got > queue+1 {
		t.Errorf("slow side: %d delivered + %d dropped, want %d with drops and at most %d delivered", got, dropped, n, queue+1)
	}
	if len(fast.recs) != n || fastSide.Dropped() != 0 {
		t.Errorf("fast side: %d delivered, %d dropped; want all %d", len(fast.recs), fastSide.Dropped(), n)
	}
	for i, r := range fast.recs {
		if r.Seq != uint32(i) {
			t.Fatalf("fast side record %d has seq %d: out of order", i, r.Seq)
		}
	}
	if !slow.ended || !fast.ended || !main.ended {
		t.Error("End did not reach every consumer")
	}
}

// Side consumers run in goroutines of their own: they get the records
// without the main path's per-connection slot, and the main path keeps it.
func TestFanoutCopiesWithoutSlot(t *testing.T) {
	main, side := &collectSink{}, &collectSink{}
	f := &Fanout{Next: main}
	f.Attach(side, 16)
	slot := &ConnSlot{Analysis: "main path state"}
	r := Record{Type: TypePacket, Conn: 1, Slot: slot}
	if err := f.Write(&r); err != nil {
		t.Fatal(err)
	}
	if err := f.End(); err != nil {
		t.Fatal(err)
	}
	if len(side.recs) != 1 || side.recs[0].Slot != nil || side.recs[0].Conn != 1 {
		t.Fatalf("side consumer got %+v, want conn 1 without a slot", side.recs)
	}
	if main.recs[0].Slot != slot || r.Slot != slot {
		t.Error("the main path lost its slot")
	}
}
