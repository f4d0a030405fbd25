package analysis

import (
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
)

// TestQuietPeriodByTime: an ended connection is summarized at the first
// flush a quiet second after its last record, whatever order its records
// came in: a later record puts it off, an earlier one (out of order)
// brings it forward, a new socket keeps it open. The flush finds due
// connections by time, not by walking all of them.
func TestQuietPeriodByTime(t *testing.T) {
	const est, syn, closed = tracer.StateEstablished, tracer.StateSynSent, tracer.StateClose
	ms := func(n int) int { return n * 1000 }
	conn := func(id uint64, recs ...tracer.Record) []tracer.Record {
		for i := range recs {
			recs[i].Conn = id
		}
		return recs
	}
	out := &collect{}
	a := New(out, Config{})
	summarized := func() map[uint64]bool {
		m := map[uint64]bool{}
		for _, r := range out.recs {
			if r.Type == tracer.TypeConn {
				if m[r.Conn] {
					t.Fatalf("two summaries of %d", r.Conn)
				}
				m[r.Conn] = true
			}
		}
		return m
	}
	flush := func(atMs int, want ...uint64) {
		t.Helper()
		if err := a.flushAt(at(ms(atMs))); err != nil {
			t.Fatal(err)
		}
		got := summarized()
		if len(got) != len(want) {
			t.Fatalf("at %d ms: summarized %v, want %v", atMs, got, want)
		}
		for _, id := range want {
			if !got[id] {
				t.Fatalf("at %d ms: summarized %v, want %v", atMs, got, want)
			}
		}
	}
	open := func(id uint64, atMs int, cookie uint64) {
		feed(t, a, conn(id, sockEvent(ms(atMs), tracer.TypeState, cli, srv, closed, syn, cookie),
			sockEvent(ms(atMs)+1, tracer.TypeState, cli, srv, syn, est, cookie)))
	}
	end := func(id uint64, atMs int, cookie uint64) {
		feed(t, a, conn(id, sockEvent(ms(atMs), tracer.TypeState, cli, srv, est, closed, cookie)))
	}
	open(1, 0, 11)
	open(2, 0, 12)
	open(3, 0, 13)
	open(4, 0, 14)
	end(1, 100, 11)
	end(2, 500, 12)
	end(3, 600, 13)
	end(4, 700, 14)
	flush(1050)
	// 2: a late packet at 900 ms puts its quiet off to 1.9 s.
	feed(t, a, conn(2, seg(ms(900), srv, cli, A, 1, 1, 0, 500)))
	// 3: a packet stamped 50 ms, read late, brings it forward to 1.05 s.
	feed(t, a, conn(3, seg(ms(50), srv, cli, A, 1, 1, 0, 500)))
	// 4: a new socket joins it; it ends at 2 s.
	open(4, 800, 15)
	flush(1101, 1, 3)
	flush(1800, 1, 3)
	flush(1900, 1, 2, 3)
	end(4, 2000, 15)
	flush(2999, 1, 2, 3)
	flush(3000, 1, 2, 3, 4)
	if len(a.ended) != 0 || a.endedQ.Len() != 0 {
		t.Errorf("%d ended connections, %d queued ids left", len(a.ended), a.endedQ.Len())
	}
}
