package tracer_test

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/output"
	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis"
)

// BenchmarkReplay puts the records of a record dump (the file named by
// $TCPSCOPE_REPLAY, written with --record-dump; make bench-replay captures
// a storm) through the whole user-space path on one goroutine: decode,
// TIME_WAIT tracker, correlator, reorder, then as the CLI wires it in each
// mode (analysis, namespace names, JSON to io.Discard), and ends them as
// Run does. It reports ns per record: the cost of a real storm's records
// without the storm's noise (the same records cost 1.6 to 2 times as much
// in the storm: docs/benchmarks.md).
func BenchmarkReplay(b *testing.B) {
	path := os.Getenv("TCPSCOPE_REPLAY")
	if path == "" {
		b.Skip("TCPSCOPE_REPLAY names no record dump (make bench-replay)")
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	var data []byte
	var ends []int
	err = tracer.ReadRecordDump(f, func(raw []byte) error {
		data = append(data, raw...)
		ends = append(ends, len(data))
		return nil
	})
	f.Close()
	if errors.Is(err, tracer.ErrRecordDumpTruncated) {
		b.Logf("%s: %v: replaying the %d whole records", path, err, len(ends))
	} else if err != nil {
		b.Fatalf("read %s: %v", path, err)
	}
	for _, mode := range []struct {
		name              string
		analysis, summary bool
	}{{"default", true, false}, {"summary-only", true, true}, {"analysis-off", false, false}} {
		b.Run(mode.name, func(b *testing.B) {
			records := 0
			for range b.N {
				b.StopTimer()
				names := tracer.NewNetnsNames()
				var sink tracer.Sink = &tracer.NetnsNamer{Next: output.NewWriter(io.Discard, output.FormatJSON), Names: names}
				flush := func(time.Time) error { return sink.Flush() }
				if mode.analysis {
					an := analysis.New(sink, analysis.Config{SummaryOnly: mode.summary, MaxConns: tracer.DefaultMaxConns,
						IdleTimeout: 30 * time.Minute, KernelRetransmits: true, ResetEvents: true, TimeWaitTracked: true,
						Events: tracer.AllEvents, PacketsCounted: true})
					sink, flush = an, an.FlushAt
				}
				p := tracer.NewReplayPath(sink, flush)
				b.StartTimer()
				start := 0
				for _, end := range ends {
					if err := p.Feed(data[start:end]); err != nil {
						b.Fatal(err)
					}
					start = end
				}
				if err := p.End(); err != nil {
					b.Fatal(err)
				}
				if e, ok := sink.(tracer.Ender); ok {
					if err := e.End(); err != nil {
						b.Fatal(err)
					}
				}
				if err := sink.Flush(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				records += p.Records
				if p.Malformed > 0 {
					b.Fatalf("%d malformed records in %s", p.Malformed, path)
				}
				names.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
			b.ReportMetric(float64(records)/float64(b.N), "records")
		})
	}
}
