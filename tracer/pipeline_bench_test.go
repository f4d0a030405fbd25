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
	names := tracer.NewNetnsNames()
	defer names.Close()
	w := output.NewWriter(io.Discard, output.FormatJSON)
	an := analysis.New(&tracer.NetnsNamer{Next: w, Names: names},
		analysis.Config{MaxConns: 65536, IdleTimeout: time.Hour, Events: tracer.AllEvents})
	p := tracer.NewBenchPath(an)
	const conns = 64
	var cseq, sseq [conns]uint32
	ts := uint64(1e9)
	step := func(port uint16, out bool, flags uint8, seq, ack, n uint32) {
		ts += 1000
		if err := p.Packet(port, out, flags, seq, ack, n, ts); err != nil {
			b.Fatal(err)
		}
	}
	for c := range conns {
		port := uint16(20000 + c)
		cseq[c], sseq[c] = uint32(c)*1e6, uint32(c)*1e6+5e5
		step(port, true, tracer.FlagSYN, cseq[c], 0, 0)
		step(port, false, tracer.FlagSYN|tracer.FlagACK, sseq[c], cseq[c]+1, 0)
		cseq[c]++
		sseq[c]++
		step(port, true, tracer.FlagACK, cseq[c], sseq[c], 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := (i / 2) % conns
		port := uint16(20000 + c)
		if i%2 == 0 {
			step(port, true, tracer.FlagACK|tracer.FlagPSH, cseq[c], sseq[c], 1000)
			cseq[c] += 1000
		} else {
			step(port, false, tracer.FlagACK, sseq[c], cseq[c], 0)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
