package analysis

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// progressRecs returns the progress records of out.
func progressRecs(out *collect) []*result.ConnSummary {
	var p []*result.ConnSummary
	for _, r := range out.recs {
		if r.Type == tracer.TypeConn && r.Summary.Progress {
			p = append(p, r.Summary)
		}
	}
	return p
}

// TestProgressShowsCountsWithoutAddingThem: a progress record of an open
// connection (--progress-interval) carries its summary so far with the
// kernel's counts not flushed yet (--packets control); taken twice, the
// same snapshot gives the same numbers, and the final summary, after the
// flush that carries the same cumulative counts, counts them once: as
// without progress records.
func TestProgressShowsCountsWithoutAddingThem(t *testing.T) {
	syn, synAck := withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7), withWScale(seg(100, srv, cli, S|A, 5000, 1001, 0, 508), 7)
	open := []tracer.Record{syn, synAck, seg(200, cli, srv, A, 1001, 5001, 0, 502)}
	out := tracer.PacketCounts{Segs: 4, Bytes: 100, HasData: true, FirstSeq: 1001, EndSeq: 1101}
	in := tracer.PacketCounts{Segs: 2, Bytes: 50, HasData: true, FirstSeq: 5001, EndSeq: 5051}
	rest := []tracer.Record{
		seg(700, cli, srv, F|P|A, 1101, 5051, 20, 502),
		seg(800, srv, cli, F|A, 5051, 1122, 0, 508),
		seg(900, cli, srv, A, 1122, 5052, 0, 502),
		countsRec(950, cli, srv, out, in), // the flush: the entry's counts, as the snapshot had them
	}
	var snap tracer.CountsSnapshot
	snap.Put(0, netip.MustParseAddrPort(cli), netip.MustParseAddrPort(srv), [2]tracer.PacketCounts{out, in})

	cfg := Config{PacketsCounted: true}
	col := &collect{}
	a := New(col, cfg)
	write := func(recs []tracer.Record) {
		for i := range recs {
			r := recs[i]
			if err := a.Write(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(open)
	at := t0.Add(time.Millisecond)
	for range 2 {
		if err := a.Progress(at, &snap); err != nil {
			t.Fatal(err)
		}
	}
	p := progressRecs(col)
	if len(p) != 2 {
		t.Fatalf("%d progress records, want 2 (one per call)", len(p))
	}
	for i, s := range p {
		if s.SegsOut != 6 || s.BytesOut != 100 || s.SegsIn != 3 || s.BytesIn != 50 || !s.PacketsCounted || s.Complete {
			t.Errorf("progress %d: out %dB/%d in %dB/%d counted %v complete %v; want out 100B/6 in 50B/3, counted, not complete",
				i, s.BytesOut, s.SegsOut, s.BytesIn, s.SegsIn, s.PacketsCounted, s.Complete)
		}
	}
	if r := col.recs[len(col.recs)-1]; !r.Time.Equal(at) || r.Conn != 1 {
		t.Errorf("progress record at %v conn %d, want %v conn 1", r.Time, r.Conn, at)
	}
	write(rest)
	// Ended: no progress record, its summary comes.
	if err := a.Progress(t0.Add(time.Second), &snap); err != nil {
		t.Fatal(err)
	}
	if n := len(progressRecs(col)); n != 2 {
		t.Errorf("%d progress records after the connection ended, want still 2", n)
	}
	if err := a.flushAt(t0.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var final *result.ConnSummary
	for _, r := range col.recs {
		if r.Type == tracer.TypeConn && !r.Summary.Progress {
			if final != nil {
				t.Fatal("two final summaries")
			}
			final = r.Summary
		}
	}
	want := run(t, cfg, append(append([]tracer.Record(nil), open...), rest...)).summary(t)
	if final == nil || *final != *want {
		t.Errorf("final summary after progress records:\n%+v\nwant, as without them:\n%+v", final, want)
	}
	if want.SegsOut != 8 || want.BytesOut != 120 || want.SegsIn != 4 || want.BytesIn != 50 || !want.Complete {
		t.Errorf("final: out %dB/%d in %dB/%d complete %v, want out 120B/8 in 50B/4 complete",
			want.BytesOut, want.SegsOut, want.BytesIn, want.SegsIn, want.Complete)
	}
}

// TestProgressEveryMode: without counts (--packets all, none) a progress
// record says what the analysis has: here the packets so far; silent
// start-up listings and listeners give none.
func TestProgressEveryMode(t *testing.T) {
	col := &collect{}
	a := New(col, Config{})
	recs := append(handshake(), seg(300, cli, srv, P|A, 1001, 5001, 100, 502))
	lst := sockEvent(0, tracer.TypeSocket, "10.0.0.2:22", "0.0.0.0:0", 0, tracer.StateListen, 5)
	lst.Conn, lst.Preexisting = 2, true
	recs = append(recs, lst)
	for i := range recs {
		r := recs[i]
		if err := a.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Progress(t0.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	p := progressRecs(col)
	if len(p) != 1 {
		t.Fatalf("%d progress records, want 1", len(p))
	}
	if s := p[0]; s.SegsOut != 3 || s.BytesOut != 100 || s.SegsIn != 1 || s.PacketsCounted || s.HandshakeCheck != "ok" {
		t.Errorf("progress: out %dB/%d in %d counted %v handshake %q; want out 100B/3 in 1, not counted, ok",
			s.BytesOut, s.SegsOut, s.SegsIn, s.PacketsCounted, s.HandshakeCheck)
	}
}
