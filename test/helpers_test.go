package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// Time limits. Every wait of the tests is bounded by one of them.
const (
	// startTimeout bounds waiting for a process's readiness line.
	startTimeout = 20 * time.Second
	// stopTimeout bounds waiting for a process to exit after a signal,
	// and a short command.
	stopTimeout = 10 * time.Second
	// runTimeout bounds waiting for a peer process (a client or a
	// server of a scenario) to finish.
	runTimeout = 2 * time.Minute
	// settle is how long in-flight packets and events get after the
	// traffic ends, before the capture is stopped.
	settle = 300 * time.Millisecond
)

// ------------------------------------------------------------ tracer and tcpdump

// startTracer starts `tcpscope trace -o json ARGS...` (inside ns unless ns
// is nil) and waits until it has logged that tracing started.
func startTracer(ctx context.Context, t *testing.T, ns *harness.Namespace, args ...string) *harness.Proc {
	t.Helper()
	argv := append([]string{bins.Tcpscope, "trace", "-o", "json"}, withPacketsAll(args)...)
	if ns != nil {
		argv = ns.Exec(argv...)
	}
	p := harness.StartT(t, "tcpscope", harness.Command(argv...))
	if _, err := p.WaitLine(ctx, true, `msg="tracing started"`, startTimeout); err != nil {
		t.Fatal(err)
	}
	return p
}

// withPacketsAll adds --packets all to a tracer's arguments unless they
// name a packet mode: most tests compare every packet with an oracle
// (tcpdump, tshark), and the default mode reports only some.
func withPacketsAll(args []string) []string {
	for _, a := range args {
		if a == "--packets" || strings.HasPrefix(a, "--packets=") {
			return args
		}
	}
	return append(args, "--packets", "all")
}

// stopTracer sends SIGINT to the tracer, requires exit status 0 and
// returns its records.
func stopTracer(ctx context.Context, t *testing.T, p *harness.Proc) []*harness.Record {
	t.Helper()
	if err := p.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
		t.Fatalf("tcpscope after SIGINT: %v\n%s", err, p.Output())
	}
	recs, err := harness.ParseRecords(p.Stdout.Bytes())
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	keepOutput(t, p)
	return recs
}

// keepOutputEnv names a directory where a failed test leaves its tracer's
// output (records and log), to be read after the run.
const keepOutputEnv = "TCPSCOPE_E2E_KEEP"

// keepOutput writes p's output to $TCPSCOPE_E2E_KEEP when t fails, named
// after the test and the tracer's packet mode.
func keepOutput(t *testing.T, p *harness.Proc) {
	dir := os.Getenv(keepOutputEnv)
	if dir == "" {
		return
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		mode := "packets-default"
		if args := p.Cmd.Args; len(args) > 0 {
			for i, a := range args[:len(args)-1] {
				if a == "--packets" {
					mode = "packets-" + args[i+1]
				}
			}
		}
		name := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+fmt.Sprintf("-%s-%d", mode, time.Now().UnixNano()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Logf("keep tracer output: %v", err)
			return
		}
		if err := errors.Join(os.WriteFile(name+".jsonl", p.Stdout.Bytes(), 0o644),
			os.WriteFile(name+".log", p.Stderr.Bytes(), 0o644)); err != nil {
			t.Logf("keep tracer output: %v", err)
			return
		}
		t.Logf("tracer output kept in %s.jsonl and .log", name)
	})
}

// startTcpdump starts the oracle, `tcpdump -S -n` on ifname inside ns,
// TCP only, and waits until it captures.
func startTcpdump(ctx context.Context, t *testing.T, ns *harness.Namespace, ifname string) *harness.Proc {
	t.Helper()
	p := harness.StartT(t, "tcpdump", harness.Command(ns.Exec("tcpdump", "-S", "-n", "-t", "-l", "-s", "128", "-B", "16384", "-i", ifname, "tcp")...))
	if _, err := p.WaitLine(ctx, true, "listening on "+ifname, startTimeout); err != nil {
		t.Fatal(err)
	}
	return p
}

// stopTcpdump stops tcpdump, checks that it dropped nothing (else it is
// no oracle) and returns the packets it printed.
func stopTcpdump(ctx context.Context, t *testing.T, p *harness.Proc) []*tdPacket {
	t.Helper()
	if err := p.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
		t.Fatalf("tcpdump after SIGINT: %v\n%s", err, p.Output())
	}
	stats := p.Stderr.String()
	if !regexp.MustCompile(`(?m)^0 packets dropped by kernel$`).MatchString(stats) {
		t.Fatalf("tcpdump dropped packets, cannot be used as the oracle:\n%s", stats)
	}
	pkts := parseTcpdumpLines(t, p)
	if want := fmt.Sprintf("%d packets captured", len(pkts)); !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(stats) {
		t.Fatalf("tcpdump printed %d packets, but its statistics do not say %q:\n%s", len(pkts), want, stats)
	}
	return pkts
}

// parseTcpdumpLines parses what a running tcpdump printed so far.
func parseTcpdumpLines(t *testing.T, p *harness.Proc) []*tdPacket {
	t.Helper()
	pkts, err := parseTcpdump(p.Stdout.String())
	if err != nil {
		t.Fatalf("tcpdump output: %v", err)
	}
	return pkts
}
