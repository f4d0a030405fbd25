package analysis

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

type discard struct{}

func (discard) Write(*tracer.Record) error { return nil }
func (discard) Flush() error               { return nil }

// connRecords is a typical tracked connection: handshake and data seen at
// one capture point, plus the client socket's state events.
func connRecords(i int) []tracer.Record {
	cl := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
	sv := netip.MustParseAddrPort("10.1.0.1:443")
	at := t0.Add(time.Duration(i) * time.Millisecond)
	pkt := func(d time.Duration, src, dst netip.AddrPort, flags uint8, seq, ack, n uint32) tracer.Record {
		return tracer.Record{Type: tracer.TypePacket, Time: at.Add(d), Conn: uint64(i + 1), Ifindex: 2,
			Src: src, Dst: dst, Flags: flags, Seq: seq, Ack: ack, Len: n, Win: 500}
	}
	st := func(d time.Duration, old, new tracer.TCPState) tracer.Record {
		return tracer.Record{Type: tracer.TypeState, Time: at.Add(d), Conn: uint64(i + 1), Local: cl, Remote: sv,
			OldState: old, State: new, HasState: true, Cookie: uint64(i + 1)}
	}
	return []tracer.Record{
		st(0, tracer.StateClose, tracer.StateSynSent),
		pkt(1, cl, sv, S, 100, 0, 0),
		pkt(2, sv, cl, S|A, 900, 101, 0),
		st(3, tracer.StateSynSent, tracer.StateEstablished),
		pkt(4, cl, sv, A, 101, 901, 0),
		pkt(5, cl, sv, P|A, 101, 901, 300),
		pkt(6, sv, cl, P|A, 901, 401, 1200),
		pkt(7, cl, sv, A, 401, 2101, 0),
	}
}

// BenchmarkMemoryPerConnection reports the live heap per tracked
// connection (B/conn): N connections held open in the analyzer.
func BenchmarkMemoryPerConnection(b *testing.B) {
	const n = 20000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		a := New(discard{}, Config{MaxConns: n})
		for i := range n {
			for _, r := range connRecords(i) {
				if err := a.Write(&r); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/conn")
		runtime.KeepAlive(a)
	}
}

// BenchmarkAnalyzePacket is the per-packet cost of the analysis on an
// established connection.
func BenchmarkAnalyzePacket(b *testing.B) {
	a := New(discard{}, Config{})
	for _, r := range connRecords(0) {
		a.Write(&r)
	}
	base := connRecords(0)[5]
	b.ReportAllocs()
	r := new(tracer.Record) // the tracer reuses one record, as here
	var i uint32
	for b.Loop() {
		*r = base
		r.Seq += 300 * i
		i++
		if err := a.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}
