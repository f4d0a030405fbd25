package kernel

import (
	"context"
	"encoding/json"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestKernelCountersAtClose: with --packets none no TC hook is attached,
// and the summary of an echo connection on loopback carries the client
// socket's kernel counters read (CO-RE) at its close: the message out
// plus SYN and FIN acknowledged, the message back plus the server's FIN,
// the payload sent once (bytes_sent, where the kernel has it), segments
// both ways.
func TestKernelCountersAtClose(t *testing.T) {
	requireSetup(t)
	feats := features(t)
	ctx := context.Background()
	ns := harness.NewNamespace(t, netnsPrefix, "kcnt")
	tp := &topology{client: ns, server: ns, watch: ns, ifname: "lo", loopback: true,
		clientIP: netip.MustParseAddr("127.0.0.1"), serverIP: netip.MustParseAddr("127.0.0.1")}
	s := &scenario{name: "echo", port: 7151, serve: "serve-echo", connect: "connect-echo"}
	tr := harness.StartT(t, "tcpscope", ns.Command(ctx, bins.Tcpscope, "trace", "-o", "json", "--summary-only",
		"--packets", "none", "--port", "7151"))
	tr.MustWaitLine(ctx, t, true, `msg="tracing started"`, startTimeout)
	checkAttached(t, tp, feats["packet_hooks"], false)
	s.run(t, tp)
	time.Sleep(settle)
	tr.MustStop(ctx, t, syscall.SIGINT, stopTimeout)
	recs, err := harness.ParseRecords(tr.Stdout.Bytes())
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	sums := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "conn" && r.LocalAddr == s.client })
	if len(sums) != 1 {
		t.Fatalf("want one summary from %s:\n%s", s.client, harness.Describe(recs))
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(sums[0].Raw), &sum); err != nil {
		t.Fatal(err)
	}
	n := float64(len(message))
	want := map[string]float64{"kernel_bytes_out": n + 2, "kernel_bytes_in": n + 1, "kernel_data_segs_out": 1,
		"kernel_data_segs_in": 1, "kernel_retrans_total": 0}
	if _, ok := sum["kernel_bytes_sent"]; ok {
		want["kernel_bytes_sent"] = n
	}
	for k, v := range want {
		if sum[k] != v {
			t.Errorf("%s = %v, want %v", k, sum[k], v)
		}
	}
	// SYN, the ACK of the SYN-ACK, the message, FIN, the last ACK at
	// least; the SYN-ACK, the echo, the FIN at least.
	if out, in := sum["kernel_segs_out"], sum["kernel_segs_in"]; out == nil || in == nil || out.(float64) < 4 || in.(float64) < 3 {
		t.Errorf("kernel_segs_out %v kernel_segs_in %v, want at least 4 and 3", out, in)
	}
	if _, ok := sum["bytes_out"]; ok {
		t.Errorf("--packets none, yet capture counts: %s", sums[0].Raw)
	}
	if t.Failed() {
		t.Logf("summary: %s", sums[0].Raw)
	}
}
