package e2e

import (
	"context"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpscope/tcpscope/test/harness"
)

// startTextTracer starts `tcpscope trace -o text ARGS...` inside ns and
// waits until it has logged that tracing started.
func startTextTracer(ctx context.Context, t *testing.T, ns *harness.Namespace, args ...string) *harness.Proc {
	t.Helper()
	p := harness.StartT(t, "tcpscope text", harness.Command(ns.Exec(append([]string{bins.Tcpscope, "trace", "-o", "text"}, withPacketsAll(args)...)...)...))
	if _, err := p.WaitLine(ctx, true, `msg="tracing started"`, startTimeout); err != nil {
		t.Fatal(err)
	}
	return p
}

// stopTextTracer stops the text tracer (exit status 0 required) and
// returns its output lines.
func stopTextTracer(ctx context.Context, t *testing.T, p *harness.Proc) []string {
	t.Helper()
	if err := p.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
		t.Fatalf("tcpscope -o text after SIGINT: %v\n%s", err, p.Output())
	}
	out := p.Stdout.String()
	if out != "" && !strings.HasSuffix(out, "\n") {
		t.Fatalf("text output does not end with a complete line")
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// checkTextMatchesTcpdump requires the packet lines of the text output,
// without tcpscope's prefix (time, conn, interface, direction) and its
// analysis notes, to be the lines tcpdump -S -n -t printed, as multisets.
func checkTextMatchesTcpdump(t *testing.T, text []string, td []*tdPacket) {
	t.Helper()
	var ours []string
	for _, line := range text {
		i := strings.Index(line, " IP ")
		if j := strings.Index(line, " IP6 "); i < 0 || (j >= 0 && j < i) {
			i = j
		}
		if i >= 0 {
			// tshark-style analysis notes (" [TCP Retransmission]") are
			// tcpscope's own; tcpdump prints none.
			packet := line[i+1:]
			if j := strings.Index(packet, " [TCP "); j >= 0 {
				packet = packet[:j]
			}
			ours = append(ours, packet)
		}
	}
	var theirs []string
	for _, p := range td {
		theirs = append(theirs, p.line)
	}
	if len(theirs) == 0 {
		t.Fatal("tcpdump printed no packet")
	}
	missing, extra := multisetDiff(theirs, ours)
	if len(missing) > 0 {
		t.Errorf("%d tcpdump lines not printed the same by tcpscope -o text:\n%s", len(missing), strings.Join(firstStrings(missing, 10), "\n"))
	}
	if len(extra) > 0 {
		t.Errorf("%d tcpscope -o text packet lines not in tcpdump's output:\n%s", len(extra), strings.Join(firstStrings(extra, 10), "\n"))
	}
}

// multisetDiff returns the items of want missing from got, and the items
// of got that want lacks (counting repetitions), each sorted.
func multisetDiff(want, got []string) (missing, extra []string) {
	count := map[string]int{}
	for _, s := range want {
		count[s]++
	}
	for _, s := range got {
		count[s]--
	}
	for s, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, s)
		}
		for ; n < 0; n++ {
			extra = append(extra, s)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra
}

func firstStrings(items []string, n int) []string {
	if len(items) > n {
		return append(items[:n:n], "...")
	}
	return items
}
