package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNetnsFilter runs tcpscope in the root namespace with --netns A -i
// veth-a while a client in A talks to a server in B. Socket events must
// come from A only (the client's, exact), none from B (the server's, which
// TestTraffic shows are reported without --netns) nor from any other
// namespace of the host; packets on A's veth (an interface that exists
// only in A, so it must be looked up there) must match tcpdump's.
func TestNetnsFilter(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := newVethPair(ctx, t, "netns", 20)
	tp := vethTopology(v, false)

	tracer := startTracer(ctx, t, nil, "--netns", v.a.name, "-i", vethA)
	dump := startTcpdump(ctx, t, v.a, vethA)
	run := runScenario(ctx, t, tp, &scenarios[0])
	time.Sleep(settle)
	td := stopTcpdump(ctx, t, dump)
	recs := stopTracer(ctx, t, tracer)

	var fromA, fromB, fromElsewhere []*record
	for _, r := range recs {
		if !r.isSocketEvent() {
			continue
		}
		switch r.Netns {
		case v.a.inode:
			fromA = append(fromA, r)
		case v.b.inode:
			fromB = append(fromB, r)
		default:
			fromElsewhere = append(fromElsewhere, r)
		}
	}
	if len(fromB) > 0 {
		t.Errorf("--netns %s: %d socket events from namespace B:\n%s", v.a.name, len(fromB), describe(fromB))
	}
	if len(fromElsewhere) > 0 {
		t.Errorf("--netns %s: %d socket events from other namespaces:\n%s", v.a.name, len(fromElsewhere), describe(fromElsewhere))
	}
	client := selectRecords(fromA, func(r *record) bool { return r.local == run.client && r.remote == run.server })
	if got := stateChain(client); got != clientFinChain {
		t.Errorf("client states in A: got %q, want %q\n%s", got, clientFinChain, describe(fromA))
	}
	if len(client) != len(fromA) {
		t.Errorf("socket events in A that are not the client's:\n%s", describe(fromA))
	}
	checkPackets(t, tp, td, recs)
	checkConnIDs(t, tp, []*connRun{run}, selectRecords(recs, func(r *record) bool { return r.Type == "packet" || r.Netns == v.a.inode }))
}

// TestBadInput runs tcpscope with one bad argument at a time. Each must
// exit 2 at once with exactly one line on stderr that names the problem,
// print nothing on stdout, and leave no TCX program on the interfaces.
func TestBadInput(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := newVethPair(ctx, t, "badinput", 30)

	cases := []struct {
		args    []string
		mention string // the stderr line must contain this (case-insensitive)
	}{
		{[]string{"--port", "0"}, "port"},
		{[]string{"--port", "http"}, "port"},
		{[]string{"--port", "65536"}, "port"},
		{[]string{"--host", "10.0.0.300"}, "host"},
		{[]string{"--host", "10.0.0.0/33"}, "host"},
		{[]string{"--events", "packet,bogus"}, "bogus"},
		{[]string{"--ring-size", "3000"}, "ring-size"},
		{[]string{"--ring-size", "lots"}, "ring-size"},
		{[]string{"--flush-interval", "1h"}, "flush-interval"},
		{[]string{"-o", "yaml"}, "yaml"},
		{[]string{"-i", "nosuchif0"}, "nosuchif0"},
		{[]string{"--netns", "/nonexistent/netns"}, "/nonexistent/netns"},
		{[]string{"--netns", "tcpscope-e2e-no-such-ns"}, "tcpscope-e2e-no-such-ns"},
		{[]string{"--netns", "/proc/self/status"}, "namespace"},
		{[]string{"-c", "-1"}, "count"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"unexpected-arg"}, "unexpected-arg"},
		{[]string{"--events", "state"}, "interface"}, // -i without packet events
	}
	for _, tc := range cases {
		argv := v.a.exec(append([]string{bins.tcpscope, "trace", "-i", vethA}, tc.args...)...)
		p := startProc(t, "tcpscope", argv...)
		waitCtx, waitCancel := context.WithTimeout(ctx, stopTimeout)
		err := p.wait(waitCtx)
		waitCancel()
		if !p.exited() {
			t.Fatalf("tcpscope %s did not exit: %v\n%s", strings.Join(tc.args, " "), err, p.output())
		}
		stderr := p.stderr.String()
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		switch {
		case p.exitCode() != 2:
			t.Errorf("tcpscope %s: exit status %d, want 2\n%s", strings.Join(tc.args, " "), p.exitCode(), p.output())
		case !strings.HasSuffix(stderr, "\n") || len(lines) != 1 || strings.TrimSpace(lines[0]) == "":
			t.Errorf("tcpscope %s: want exactly one line on stderr, got %q", strings.Join(tc.args, " "), stderr)
		case !strings.Contains(strings.ToLower(lines[0]), strings.ToLower(tc.mention)):
			t.Errorf("tcpscope %s: stderr %q does not mention %q", strings.Join(tc.args, " "), lines[0], tc.mention)
		case len(p.stdout.Bytes()) != 0:
			t.Errorf("tcpscope %s: unexpected stdout %q", strings.Join(tc.args, " "), p.stdout.String())
		default:
			t.Logf("tcpscope %s: %s", strings.Join(tc.args, " "), lines[0])
		}
	}
	for _, ifname := range []string{vethA, "lo"} {
		if in, eg := tcxPrograms(t, v.a, ifname); len(in)+len(eg) != 0 {
			t.Errorf("after bad input, TCX programs remain on %s: ingress %v, egress %v", ifname, in, eg)
		}
	}
}

// TestSignalDetach traces a veth and lo with a flush interval longer than
// the test, makes a connection, and stops tcpscope with SIGINT (and
// SIGTERM). While it runs, its TCX programs must be attached: one on each
// hook of the veth and of lo (lo ingress reports, lo egress only ties SYNs
// to their sockets). After the signal it must exit 0 promptly,
// its output must end with a complete line and hold the connection's
// records (drained and flushed at exit, not by the timer), and no TCX
// program may remain.
func TestSignalDetach(t *testing.T) {
	requireE2E(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			v := newVethPair(ctx, t, "signal", 40)
			tp := vethTopology(v, true)

			tracer := startTracer(ctx, t, v.a, "-i", vethA, "-i", "lo", "--flush-interval", "10s")
			vIn, vEg := tcxPrograms(t, v.a, vethA)
			loIn, loEg := tcxPrograms(t, v.a, "lo")
			if len(vIn) != 1 || len(vEg) != 1 || len(loIn) != 1 || len(loEg) != 1 {
				t.Errorf("while tracing: TCX programs on %s ingress %v egress %v, on lo ingress %v egress %v; want one on each",
					vethA, vIn, vEg, loIn, loEg)
			}

			run := runScenario(ctx, t, tp, &scenarios[0])
			time.Sleep(settle)
			start := time.Now()
			if err := tracer.stop(ctx, sig); err != nil {
				t.Fatalf("tcpscope after %s: %v\n%s", sig, err, tracer.output())
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("tcpscope took %s to exit after %s", took, sig)
			}
			out := tracer.stdout.Bytes()
			if len(out) == 0 || out[len(out)-1] != '\n' {
				t.Fatalf("output does not end with a complete line: %q", out[max(0, len(out)-200):])
			}
			recs, err := parseRecords(out)
			if err != nil {
				t.Fatal(err)
			}
			client := selectRecords(recs, func(r *record) bool {
				return r.isSocketEvent() && r.local == run.client && r.remote == run.server
			})
			if got := stateChain(client); got != clientFinChain {
				t.Errorf("records drained at exit: client states %q, want %q", got, clientFinChain)
			}
			if n := len(selectRecords(recs, run.isConn)) - len(client); n < 10 {
				t.Errorf("records drained at exit: only %d packet/server records of the connection", n)
			}
			if strings.Contains(tracer.stderr.String(), "level=ERROR") {
				t.Errorf("tcpscope logged errors:\n%s", tracer.stderr.String())
			}
			for _, ifname := range []string{vethA, "lo"} {
				if in, eg := tcxPrograms(t, v.a, ifname); len(in)+len(eg) != 0 {
					t.Errorf("after exit, TCX programs remain on %s: ingress %v, egress %v", ifname, in, eg)
				}
			}
		})
	}
}
