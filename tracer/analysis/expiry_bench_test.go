package analysis

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// BenchmarkFlushWaiting is the cost of one periodic flush while n closed
// connections wait for their quiet period (TIME_WAIT tracked), none of
// them due yet: what every tick costs under a storm. It should not grow
// with n.
func BenchmarkFlushWaiting(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			a := New(discard{}, Config{TimeWaitTracked: true, MaxConns: 2 * n})
			for i := range n {
				// One connection per microsecond: all n within the
				// quiet period.
				shift := time.Duration(i)*time.Microsecond - time.Duration(i)*time.Millisecond
				for _, r := range append(connRecords(i), twRecords(i)...) {
					r.Time = r.Time.Add(shift)
					if err := a.Write(&r); err != nil {
						b.Fatal(err)
					}
				}
			}
			now := t0.Add(500 * time.Millisecond)
			if err := a.flushAt(now); err != nil {
				b.Fatal(err)
			}
			if len(a.ended) != n {
				b.Fatalf("%d connections wait, want %d", len(a.ended), n)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := a.flushAt(now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStormFlush is the analysis of a storm of 10,000 connections/s
// (each closed, its client socket in TIME_WAIT) with a flush every 100 ms
// of record time, as the tracer does: ns per connection, flushes
// included. Connection i is connection 0's records with its id, cookie,
// client address and times.
func BenchmarkStormFlush(b *testing.B) {
	const perTick = 1000 // 100 ms at 10k connections/s
	a := New(discard{}, Config{TimeWaitTracked: true})
	tmpl := append(connRecords(0), twRecords(0)...)
	cl0 := tmpl[0].Local
	recs := make([]tracer.Record, len(tmpl))
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		cl := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		copy(recs, tmpl)
		for j := range recs {
			r := &recs[j]
			r.Conn = uint64(i + 1)
			if r.Cookie != 0 {
				r.Cookie = uint64(i + 1)
			}
			r.Time = r.Time.Add(time.Duration(i) * 100 * time.Microsecond) // one every 100 µs
			for _, ap := range []*netip.AddrPort{&r.Src, &r.Dst, &r.Local, &r.Remote} {
				if *ap == cl0 {
					*ap = cl
				}
			}
			if err := a.Write(r); err != nil {
				b.Fatal(err)
			}
		}
		i++
		if i%perTick == 0 {
			if err := a.flushAt(recs[len(recs)-1].Time); err != nil {
				b.Fatal(err)
			}
		}
	}
}
