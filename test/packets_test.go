package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestPacketsNoneKernelCounters (issue 11, --packets): a 1 MiB transfer
// over a veth pair, traced in the client's namespace with --packets none
// and with --packets all. With none no classifier is attached (no TCX
// program, no clsact qdisc on any interface of the namespace); with all
// they are (the same check sees them). In both, the summary carries the
// client socket's kernel counters, checked against what is known:
// bytes from the payload size (bytes_acked counts the SYN and the FIN,
// bytes_received the server's FIN), segments from the namespace's own
// TcpInSegs/TcpOutSegs (the namespace has no other TCP traffic), less what
// the TIME_WAIT socket handled after the full socket's close.
func TestPacketsNoneKernelCounters(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "pktnone", 81)
	tp := vethTopology(v, false)
	hooked := func(t *testing.T) (n int) {
		for _, ifname := range []string{harness.VethA, "lo"} {
			in, out := v.A.MustTCXPrograms(t, ifname)
			n += len(in) + len(out)
			if v.A.MustClsact(t, ifname).Qdisc {
				n++
			}
		}
		return n
	}
	for i, mode := range []string{"none", "all"} {
		t.Run(mode, func(t *testing.T) {
			sc := &scenario{name: "bulk-" + mode, serverPort: uint16(7811 + i), clientPort: uint16(41811 + i),
				serve: "serve-sink", connect: []string{"connect-bulk", fmt.Sprint(bulkBytes)}}
			counter := func(name string) int64 { return v.A.MustCounter(t, "snmp", "Tcp", name) }
			inBefore, outBefore, rtxBefore := counter("InSegs"), counter("OutSegs"), counter("RetransSegs")
			tracer := startTracer(ctx, t, nil, "--netns", v.A.Name, "--summary-only", "--packets", mode)
			if log := tracer.Stderr.String(); !strings.Contains(log, "packets="+mode) {
				t.Errorf("start log does not name the packet mode %s:\n%s", mode, log)
			}
			hooks := hooked(t)
			run := runScenario(ctx, t, tp, sc)
			time.Sleep(settle)
			recs := stopTracer(ctx, t, tracer)
			inSegs, outSegs, rtxSegsNs := counter("InSegs")-inBefore, counter("OutSegs")-outBefore, counter("RetransSegs")-rtxBefore
			switch {
			case mode == "none" && hooks != 0:
				t.Errorf("--packets none: %d TC hooks (TCX programs, clsact qdiscs) in the client's namespace, want none", hooks)
			case mode == "all" && hooks == 0:
				t.Error("--packets all: no TC hook in the client's namespace")
			}

			sum, _ := connSummary(t, recs, run)
			get := func(k string) float64 {
				f, ok := sumField(sum, k)
				if !ok {
					t.Errorf("summary without %s: %v", k, sum)
				}
				return f
			}
			bOut, bIn := get("kernel_bytes_out"), get("kernel_bytes_in")
			sOut, sIn := get("kernel_segs_out"), get("kernel_segs_in")
			dOut, dIn := get("kernel_data_segs_out"), get("kernel_data_segs_in")
			sent, retrans := get("kernel_bytes_sent"), get("kernel_bytes_retrans")
			rtxSegs := get("kernel_retrans_total")
			t.Logf("%s: kernel out %vB/%v segs (%v with data, %vB sent, %vB / %v segs retransmitted), in %vB/%v segs; nstat OutSegs %d InSegs %d",
				mode, bOut, sOut, dOut, sent, retrans, rtxSegs, bIn, sIn, outSegs, inSegs)
			// The full socket's counters stop at its CLOSE; nstat also
			// counts what its TIME_WAIT socket handled afterwards: the
			// peer's FIN when close() found our FIN already acked (the
			// kernel then replaces the socket in FIN_WAIT2, tcp_close ->
			// tcp_time_wait, and kernel_bytes_in is 0), the last ACK, and
			// a FIN the peer retransmits. segs_out also counts
			// retransmitted segments, which TcpOutSegs leaves to
			// TcpRetransSegs.
			const afterClose = 3 // segments a TIME_WAIT socket may handle here
			if bOut != bulkBytes+2 || bIn != 0 && bIn != 1 {
				t.Errorf("kernel_bytes_out %v, kernel_bytes_in %v: want %d + SYN + FIN, and the peer's FIN (1) or 0 when the TIME_WAIT socket took it",
					bOut, bIn, bulkBytes)
			}
			if sent-retrans != bulkBytes {
				t.Errorf("kernel_bytes_sent %v - kernel_bytes_retrans %v, want %d", sent, retrans, bulkBytes)
			}
			if int64(sOut) < outSegs-afterClose || int64(sOut) > outSegs+rtxSegsNs ||
				int64(sIn) < inSegs-afterClose || int64(sIn) > inSegs {
				t.Errorf("kernel_segs_out %v kernel_segs_in %v, want the namespace's TcpOutSegs %d (+ up to its TcpRetransSegs %d) and TcpInSegs %d, less up to %d handled after the close",
					sOut, sIn, outSegs, rtxSegsNs, inSegs, afterClose)
			}
			if dIn != 0 || dOut < bulkBytes/1500 || dOut > sOut {
				t.Errorf("kernel_data_segs_out %v in %v: want at least %d out, at most kernel_segs_out, none in", dOut, dIn, bulkBytes/1500)
			}
			_, seen := sum["bytes_out"]
			if mode == "none" && seen {
				t.Errorf("--packets none: capture counts in the summary: %v", sum)
			}
			if mode == "all" {
				if capOut, ok := sumField(sum, "bytes_out"); !ok || capOut != sent-retrans {
					t.Errorf("capture bytes_out %v (%v), want the kernel's %v", capOut, ok, sent-retrans)
				}
			}
		})
	}
}
