package tracer_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis"
)

// discardSink drops every record.
type discardSink struct{}

func (discardSink) Write(*tracer.Record) error { return nil }
func (discardSink) Flush() error               { return nil }

// BenchmarkStorm is a storm of short connections (5,000/s of record time,
// 16 records each, the server closing first so that each leaves a
// TIME_WAIT socket) through the TIME_WAIT tracker, the correlator, the
// reorder stage and the analysis, output discarded. It reports CPU per
// record (ns/record), allocations per connection (allocs/conn, B/conn
// allocated) and, after the last connection closed and went quiet, the
// heap still held per closed connection (B/closed-conn: all of them are
// in TIME_WAIT or within the correlator's linger), and again once all of
// them are quiet (B/quiet-conn: what each keeps through TIME_WAIT).
func BenchmarkStorm(b *testing.B) {
	an := analysis.New(discardSink{}, analysis.Config{TimeWaitTracked: true, KernelRetransmits: true,
		ResetEvents: true, Events: tracer.AllEvents, SummaryOnly: true})
	p := tracer.NewStormPath(an, an.FlushAt)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := range b.N {
		if err := p.Conn(i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(p.Records), "ns/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/conn")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "B/conn")
	// Two more seconds of record time without new connections: the last
	// ones are quiet and summarized.
	for range 10 {
		if err := p.Idle(); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if b.N >= 10000 {
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "B/closed-conn")
		// 16 s more: every connection is quiet for longer than the
		// correlator's compactAfter, and still in TIME_WAIT when the
		// storm lasted less than 44 s of record time (220,000
		// connections).
		if err := p.Quiet(16 * time.Second); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "B/quiet-conn")
	}
	runtime.KeepAlive(an)
	runtime.KeepAlive(p)
}
