package tracer_test

import (
	"io"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/output"
	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis"
)

// BenchmarkPipeline is the whole user-space path of one record, from the
// raw ring bytes to a written JSON line: copy into a batch, decode,
// TIME_WAIT tracker, correlator, reorder, analysis, namespace names, JSON,
// buffered write to io.Discard. 64 established connections each send
// 1000-byte segments, each answered by an ACK. It reports records/s on
// one core and allocations per record.
func BenchmarkPipeline(b *testing.B) {
	step, done := newPipelineLoad(b)
	defer done()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		step(i)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// The steady path of a record, raw bytes to a written JSON line, allocates
// nothing.
func TestPipelineNoAllocs(t *testing.T) {
	step, done := newPipelineLoad(t)
	defer done()
	i := 0
	if n := testing.AllocsPerRun(20000, func() { step(i); i++ }); n != 0 {
		t.Errorf("%v allocations per record, want 0", n)
	}
}

// newPipelineLoad builds the path and opens 64 connections; feed(i) then
// feeds the i-th record of their data transfer.
func newPipelineLoad(tb testing.TB) (feed func(i int), done func()) {
	names := tracer.NewNetnsNames()
	w := output.NewWriter(io.Discard, output.FormatJSON)
	an := analysis.New(&tracer.NetnsNamer{Next: w, Names: names},
		analysis.Config{MaxConns: 65536, IdleTimeout: time.Hour, Events: tracer.AllEvents})
	p := tracer.NewBenchPath(an)
	const conns = 64
	var cseq, sseq [conns]uint32
	ts := uint64(1e9)
	pkt := func(port uint16, out bool, flags uint8, seq, ack, n uint32) {
		ts += 1000
		if err := p.Packet(port, out, flags, seq, ack, n, ts); err != nil {
			tb.Fatal(err)
		}
	}
	for c := range conns {
		port := uint16(20000 + c)
		cseq[c], sseq[c] = uint32(c)*1e6, uint32(c)*1e6+5e5
		pkt(port, true, tracer.FlagSYN, cseq[c], 0, 0)
		pkt(port, false, tracer.FlagSYN|tracer.FlagACK, sseq[c], cseq[c]+1, 0)
		cseq[c]++
		sseq[c]++
		pkt(port, true, tracer.FlagACK, cseq[c], sseq[c], 0)
	}
	feed = func(i int) {
		c := (i / 2) % conns
		port := uint16(20000 + c)
		if i%2 == 0 {
			pkt(port, true, tracer.FlagACK|tracer.FlagPSH, cseq[c], sseq[c], 1000)
			cseq[c] += 1000
		} else {
			pkt(port, false, tracer.FlagACK, sseq[c], cseq[c], 0)
		}
	}
	return feed, func() {
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		names.Close()
	}
}
