package analysis

import (
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// TestSummaryKernelCounters: the conn summary carries the kernel counters
// of its local end's socket (the client's, when both ends are local) from
// that socket's CLOSE record, with no packet captured; without such a
// record (a socket still open, or a kernel record without counters) they
// are absent.
func TestSummaryKernelCounters(t *testing.T) {
	const est, fw1, fw2, cw, la = tracer.StateEstablished, tracer.StateFinWait1, tracer.StateFinWait2,
		tracer.StateCloseWait, tracer.StateLastAck
	cliC := result.KernelCounters{BytesAcked: 100, BytesReceived: 50, SegsOut: 6, SegsIn: 5, DataSegsOut: 1,
		DataSegsIn: 1, BytesSent: 100, HasBytesSent: true}
	srvC := result.KernelCounters{BytesAcked: 50, BytesReceived: 100, SegsOut: 5, SegsIn: 6, DataSegsOut: 1, DataSegsIn: 1}
	closing := func(us int, local, remote string, old tracer.TCPState, cookie uint64, c *result.KernelCounters) tracer.Record {
		r := sockEvent(us, tracer.TypeState, local, remote, old, tracer.StateClose, cookie)
		if c != nil {
			r.HasCounters, r.Counters = true, *c
		}
		return r
	}
	conn := func(withCounters bool) []tracer.Record {
		var cc, sc *result.KernelCounters
		if withCounters {
			cc, sc = &cliC, &srvC
		}
		return []tracer.Record{
			sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
			sockEvent(100, tracer.TypeState, srv, cli, tracer.StateListen, tracer.StateSynRecv, 10),
			sockEvent(150, tracer.TypeState, cli, srv, tracer.StateSynSent, est, 9),
			sockEvent(200, tracer.TypeState, srv, cli, tracer.StateSynRecv, est, 10),
			sockEvent(2100, tracer.TypeState, cli, srv, est, fw1, 9),
			sockEvent(2200, tracer.TypeState, srv, cli, est, cw, 10),
			sockEvent(2300, tracer.TypeState, cli, srv, fw1, fw2, 9),
			sockEvent(2400, tracer.TypeState, srv, cli, cw, la, 10),
			closing(2500, cli, srv, fw2, 9, cc),
			closing(2600, srv, cli, la, 10, sc),
		}
	}
	stop := at(9_000_000)
	s := finishAfter(t, Config{}, conn(true), stop).summary(t)
	if !s.HasKernel || s.Kernel != cliC {
		t.Errorf("kernel counters %v %+v, want the client's %+v", s.HasKernel, s.Kernel, cliC)
	}
	if s.PacketsSeen {
		t.Error("no packet captured, yet PacketsSeen")
	}
	s = finishAfter(t, Config{}, conn(false), stop).summary(t)
	if s.HasKernel || s.Kernel != (result.KernelCounters{}) {
		t.Errorf("no counters in the records, yet kernel counters %v %+v", s.HasKernel, s.Kernel)
	}
	// Still open at the stop: nothing read yet.
	s = finishAfter(t, Config{}, conn(true)[:4], stop).summary(t)
	if s.HasKernel {
		t.Errorf("socket still open, yet kernel counters %+v", s.Kernel)
	}
}
