package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/test/harness"
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
	v := harness.NewVethPair(t, netnsPrefix, "netns", 20)
	tp := vethTopology(v, false)

	tracer := startTracer(ctx, t, nil, "--netns", v.A.Name, "-i", harness.VethA)
	dump := startTcpdump(ctx, t, v.A, harness.VethA)
	run := runScenario(ctx, t, tp, &scenarios[0])
	time.Sleep(settle)
	td := stopTcpdump(ctx, t, dump)
	recs := stopTracer(ctx, t, tracer)

	var fromA, fromB, fromElsewhere []*harness.Record
	for _, r := range recs {
		if !r.IsSocketEvent() {
			continue
		}
		switch r.Netns {
		case v.A.Inode:
			fromA = append(fromA, r)
		case v.B.Inode:
			fromB = append(fromB, r)
		default:
			fromElsewhere = append(fromElsewhere, r)
		}
	}
	if len(fromB) > 0 {
		t.Errorf("--netns %s: %d socket events from namespace B:\n%s", v.A.Name, len(fromB), harness.Describe(fromB))
	}
	if len(fromElsewhere) > 0 {
		t.Errorf("--netns %s: %d socket events from other namespaces:\n%s", v.A.Name, len(fromElsewhere), harness.Describe(fromElsewhere))
	}
	client := harness.Select(fromA, func(r *harness.Record) bool { return r.LocalAddr == run.client && r.RemoteAddr == run.server })
	if got := harness.StateChain(client); got != clientFinChain {
		t.Errorf("client states in A: got %q, want %q\n%s", got, clientFinChain, harness.Describe(fromA))
	}
	if len(client) != len(fromA) {
		t.Errorf("socket events in A that are not the client's:\n%s", harness.Describe(fromA))
	}
	checkPackets(t, tp, td, recs)
	checkConnIDs(t, tp, []*connRun{run}, harness.Select(recs, func(r *harness.Record) bool { return r.Type == "packet" || r.Netns == v.A.Inode }))
}

// TestBadInput runs tcpscope with one bad argument at a time. Each must
// exit 2 at once with exactly one line on stderr that names the problem,
// print nothing on stdout, and leave no TCX program on the interfaces.
func TestBadInput(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "badinput", 30)

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
		// Empty values never widen what is traced (a script's unset $PORT).
		{[]string{"--port", ""}, "port"},
		{[]string{"--host", ""}, "host"},
		{[]string{"-i", ""}, "interface"},
		{[]string{"--netns", ""}, "netns"},
		{[]string{"-o", ""}, "output"},
		{[]string{"-w", ""}, "write"},
		{[]string{"--netns", "/proc/self/ns/net", "--netns", "/proc/thread-self/ns/net"}, "one tcpscope per namespace"},
		{[]string{"--flush-interval", "0s"}, "flush-interval"},
		{[]string{"--max-conns", "0"}, "max-conns"},
		{[]string{"--host", "fe80::1%lo"}, "zone"},
		{[]string{"-w", "/nonexistent/\x1b[31mred\xff"}, `x1b[31mred`},
		{[]string{"--\x1b[31m"}, `unknown flag`},
	}
	for _, tc := range cases {
		argv := v.A.Exec(append([]string{bins.Tcpscope, "trace", "-i", harness.VethA}, tc.args...)...)
		p := harness.StartT(t, "tcpscope", harness.Command(argv...))
		waitCtx, waitCancel := context.WithTimeout(ctx, stopTimeout)
		err := p.Wait(waitCtx)
		waitCancel()
		if !p.Exited() {
			t.Fatalf("tcpscope %s did not exit: %v\n%s", strings.Join(tc.args, " "), err, p.Output())
		}
		stderr := p.Stderr.String()
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		switch {
		case p.ExitCode() != 2:
			t.Errorf("tcpscope %s: exit status %d, want 2\n%s", strings.Join(tc.args, " "), p.ExitCode(), p.Output())
		case !strings.HasSuffix(stderr, "\n") || len(lines) != 1 || strings.TrimSpace(lines[0]) == "":
			t.Errorf("tcpscope %s: want exactly one line on stderr, got %q", strings.Join(tc.args, " "), stderr)
		case !strings.Contains(strings.ToLower(lines[0]), strings.ToLower(tc.mention)):
			t.Errorf("tcpscope %s: stderr %q does not mention %q", strings.Join(tc.args, " "), lines[0], tc.mention)
		case !strings.HasPrefix(lines[0], "time=") || !strings.Contains(lines[0], " level=ERROR ") || !strings.HasSuffix(lines[0], " exit_status=2"):
			t.Errorf("tcpscope %s: stderr %q is not a slog line at level ERROR with the exit status", strings.Join(tc.args, " "), lines[0])
		case strings.ContainsFunc(lines[0], func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }):
			t.Errorf("tcpscope %s: stderr %q holds control characters or invalid UTF-8", strings.Join(tc.args, " "), lines[0])
		case len(p.Stdout.Bytes()) != 0:
			t.Errorf("tcpscope %s: unexpected stdout %q", strings.Join(tc.args, " "), p.Stdout.String())
		default:
			t.Logf("tcpscope %s: %s", strings.Join(tc.args, " "), lines[0])
		}
	}
	// With --log-format json the error is a JSON log line too.
	p := harness.StartT(t, "tcpscope", harness.Command(v.A.Exec(bins.Tcpscope, "--log-format", "json", "--port", "0")...))
	waitCtx, waitCancel := context.WithTimeout(ctx, stopTimeout)
	_ = p.Wait(waitCtx)
	waitCancel()
	var logLine struct {
		Level      string `json:"level"`
		Msg        string `json:"msg"`
		ExitStatus int    `json:"exit_status"`
	}
	if err := json.Unmarshal(p.Stderr.Bytes(), &logLine); err != nil || logLine.Level != "ERROR" || logLine.ExitStatus != 2 ||
		!strings.Contains(logLine.Msg, "port") || p.ExitCode() != 2 {
		t.Errorf("--log-format json --port 0: exit %d, stderr %q (%v)", p.ExitCode(), p.Stderr.String(), err)
	}
	for _, ifname := range []string{harness.VethA, "lo"} {
		if in, eg := v.A.MustTCXPrograms(t, ifname); len(in)+len(eg) != 0 {
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
			v := harness.NewVethPair(t, netnsPrefix, "signal", 40)
			tp := vethTopology(v, true)

			tracer := startTracer(ctx, t, v.A, "-i", harness.VethA, "-i", "lo", "--flush-interval", "10s")
			vIn, vEg := v.A.MustTCXPrograms(t, harness.VethA)
			loIn, loEg := v.A.MustTCXPrograms(t, "lo")
			if len(vIn) != 1 || len(vEg) != 1 || len(loIn) != 1 || len(loEg) != 1 {
				t.Errorf("while tracing: TCX programs on %s ingress %v egress %v, on lo ingress %v egress %v; want one on each",
					harness.VethA, vIn, vEg, loIn, loEg)
			}

			run := runScenario(ctx, t, tp, &scenarios[0])
			time.Sleep(settle)
			start := time.Now()
			if err := tracer.Stop(ctx, sig, stopTimeout); err != nil {
				t.Fatalf("tcpscope after %s: %v\n%s", sig, err, tracer.Output())
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("tcpscope took %s to exit after %s", took, sig)
			}
			out := tracer.Stdout.Bytes()
			if len(out) == 0 || out[len(out)-1] != '\n' {
				t.Fatalf("output does not end with a complete line: %q", out[max(0, len(out)-200):])
			}
			recs, err := harness.ParseRecords(out)
			if err != nil {
				t.Fatal(err)
			}
			client := harness.Select(recs, func(r *harness.Record) bool {
				return r.IsSocketEvent() && r.LocalAddr == run.client && r.RemoteAddr == run.server
			})
			if got := harness.StateChain(client); got != clientFinChain {
				t.Errorf("records drained at exit: client states %q, want %q", got, clientFinChain)
			}
			if n := len(harness.Select(recs, run.isConn)) - len(client); n < 10 {
				t.Errorf("records drained at exit: only %d packet/server records of the connection", n)
			}
			if strings.Contains(tracer.Stderr.String(), "level=ERROR") {
				t.Errorf("tcpscope logged errors:\n%s", tracer.Stderr.String())
			}
			for _, ifname := range []string{harness.VethA, "lo"} {
				if in, eg := v.A.MustTCXPrograms(t, ifname); len(in)+len(eg) != 0 {
					t.Errorf("after exit, TCX programs remain on %s: ingress %v, egress %v", ifname, in, eg)
				}
			}
		})
	}
}

// TestSecondSignalWhenIgnored starts tcpscope as a script's background
// job does, with SIGINT ignored, writing to a pipe nobody reads (shrunk
// to one page), so it blocks writing. The first SIGINT asks for a clean
// stop, which cannot finish; the second must end the process at once with
// status 130, although Go would restore "ignore" if the handler were
// reset.
func TestSecondSignalWhenIgnored(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "sigign")

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pipeSize, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096)
	if err != nil {
		t.Fatal(err)
	}
	stderr := harness.NewLineBuffer(0)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "sh", "-c", `trap "" INT; exec "$0" "$@"`,
		bins.Tcpscope, "trace", "-o", "json", "-i", "lo", "--packets", "all")
	cmd.Stdout, cmd.Stderr = w, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan struct{}) // closed when tcpscope has exited
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitStderr := func(substr string) {
		t.Helper()
		deadline := time.After(startTimeout)
		for {
			line, ok, changed := stderr.FindLine(substr)
			if ok {
				t.Logf("stderr: %s", line)
				return
			}
			select {
			case <-changed:
			case <-done:
				t.Fatalf("tcpscope exited (%v) before logging %q:\n%s", waitErr, substr, stderr.String())
			case <-deadline:
				t.Fatalf("tcpscope did not log %q:\n%s", substr, stderr.String())
			}
		}
	}
	waitStderr(`msg="tracing started"`)

	// Fill the pipe: a bulk transfer on lo gives tens of KB of packet
	// records, far more than the pipe holds. The tracer then waits in
	// write(2), now or at its next flush (the pipe's one page slot may be
	// full before its 4096 bytes are).
	tp := loTopology(ns, false)
	for i := 0; i < 3; i++ {
		runScenario(ctx, t, tp, &bulkEphemeral)
	}
	if n := bytesInPipe(t, r); n == 0 {
		t.Fatalf("nothing in the pipe (of %d bytes): tcpscope wrote no records", pipeSize)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// The first signal is taken (logged at debug level only): give it the
	// time to cancel, then check the process is still blocked. A signal
	// within a second of the first counts as a copy of it (timeout(1)
	// signals the process, then its group): wait longer than that.
	select {
	case <-done:
		t.Fatalf("tcpscope exited after the first SIGINT although its output is blocked: %v\n%s", waitErr, stderr.String())
	case <-time.After(1500 * time.Millisecond):
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(stopTimeout):
		t.Fatalf("tcpscope started with SIGINT ignored did not exit after a second SIGINT\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit status %d after the second SIGINT, want 130\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `level=ERROR msg="second signal`) {
		t.Errorf("no ERROR log about the second signal:\n%s", stderr.String())
	}
}

// bulkEphemeral is a bulk transfer from an ephemeral port: it can run
// again and again in one namespace (a fixed client port would still be
// in TIME_WAIT).
var bulkEphemeral = scenario{name: "bulk-ephemeral", serverPort: 7106, serve: "serve-sink",
	connect: []string{"connect-bulk", fmt.Sprint(bulkBytes)}}

// bytesInPipe is how many bytes wait in the pipe read end r.
func bytesInPipe(t *testing.T, r *os.File) int {
	t.Helper()
	n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ) // FIONREAD
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWriteSpecialFiles: -w to a FIFO, /dev/null, or /dev/stdout when
// stdout is a pipe writes there (only regular files are truncated) and
// exits 0 on SIGINT with the records in place.
func TestWriteSpecialFiles(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "wspecial")
	tp := loTopology(ns, false)

	t.Run("dev-null", func(t *testing.T) {
		tracer := startTracer(ctx, t, ns, "-i", "lo", "-w", "/dev/null")
		runScenario(ctx, t, tp, &scenarios[4])
		if err := tracer.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
			t.Fatalf("-w /dev/null: %v\n%s", err, tracer.Output())
		}
		if out := tracer.Stdout.String(); out != "" {
			t.Errorf("stdout not empty: %q", out)
		}
	})
	t.Run("dev-stdout", func(t *testing.T) {
		tracer := startTracer(ctx, t, ns, "-i", "lo", "-w", "/dev/stdout")
		run := runScenario(ctx, t, tp, &scenarios[4])
		time.Sleep(settle)
		recs := stopTracer(ctx, t, tracer)
		if len(harness.Select(recs, run.isConn)) == 0 {
			t.Errorf("-w /dev/stdout: no records of the connection in the pipe")
		}
	})
	t.Run("fifo", func(t *testing.T) {
		fifo := t.TempDir() + "/fifo"
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		// Open the read end first (without waiting for a writer), so that
		// tcpscope's open of the write end does not wait.
		r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		tracer := startTracer(ctx, t, ns, "-i", "lo", "-w", fifo)
		if err := unix.SetNonblock(int(r.Fd()), false); err != nil {
			t.Fatal(err)
		}
		data := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(r) // until tcpscope closes its end
			data <- b
		}()
		run := runScenario(ctx, t, tp, &scenarios[4])
		time.Sleep(settle)
		if err := tracer.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
			t.Fatalf("-w FIFO: %v\n%s", err, tracer.Output())
		}
		var out []byte
		select {
		case out = <-data:
		case <-time.After(stopTimeout):
			t.Fatal("the FIFO was not closed at exit")
		}
		recs, err := harness.ParseRecords(out)
		if err != nil {
			t.Fatalf("FIFO output: %v", err)
		}
		if len(harness.Select(recs, run.isConn)) == 0 {
			t.Errorf("-w FIFO: no records of the connection")
		}
	})
}

// TestWriteFullDisk: -w on a file system that fills up (a 64 KiB tmpfs)
// ends tracing with status 1 and a message that says so, and the file
// holds whole JSON lines only: the partial last line the full disk cut is
// removed.
func TestWriteFullDisk(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "fulldisk")
	dir := t.TempDir()
	harness.MustRun(ctx, t, stopTimeout, "mount", "-t", "tmpfs", "-o", "size=64k", "tcpscope-e2e-full", dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	file := dir + "/out.jsonl"
	tracer := startTracer(ctx, t, ns, "-i", "lo", "-w", file)
	tp := loTopology(ns, false)
	for i := 0; i < 30 && !tracer.Exited(); i++ {
		runScenario(ctx, t, tp, &bulkEphemeral)
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, stopTimeout)
	defer waitCancel()
	_ = tracer.Wait(waitCtx)
	if !tracer.Exited() {
		t.Fatalf("tcpscope still runs after filling a 64 KiB file system\n%s", tracer.Output())
	}
	stderr := tracer.Stderr.String()
	if tracer.ExitCode() != 1 || !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, "--write file") {
		t.Errorf("exit status %d, want 1 with a message about the full disk:\n%s", tracer.ExitCode(), stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 32<<10 {
		t.Errorf("only %d bytes written to a 64 KiB file system", len(data))
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("the file ends with a partial line (%d bytes): %q", len(data), data[max(0, len(data)-120):])
	}
	if _, err := harness.ParseRecords(data); err != nil {
		t.Errorf("the file holds a line that is not a record: %v", err)
	}
	t.Logf("%d bytes, %d whole lines kept", len(data), strings.Count(string(data), "\n"))
}

// TestLossWarningsRateLimited: under repeated loss (a one-page ring and
// bulk transfers on lo, drained every millisecond) every loss gets its lost
// record, but stderr gets one warning per 10 s, not one per drain and kind.
func TestLossWarningsRateLimited(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "losswarn")
	tp := loTopology(ns, false)
	start := time.Now()
	tracer := startTracer(ctx, t, ns, "-i", "lo", "--ring-size", "4K", "--flush-interval", "1ms")
	var lost []*harness.Record
	// Whether a transfer overflows the ring depends on how the two cores
	// are shared at that moment: up to 50 of them, at most 20 s.
	for i := 0; i < 50 && time.Since(start) < 20*time.Second; i++ {
		runScenario(ctx, t, tp, &bulkEphemeral)
		lost = harness.Select(currentRecords(t, tracer), func(r *harness.Record) bool { return r.Type == "lost" })
		if len(lost) >= 3 {
			break
		}
	}
	recs := stopTracer(ctx, t, tracer)
	elapsed := time.Since(start)
	lost = harness.Select(recs, func(r *harness.Record) bool { return r.Type == "lost" })
	if len(lost) < 3 {
		t.Fatalf("precondition: only %d lost records: the ring did not overflow repeatedly", len(lost))
	}
	warnings := strings.Count(tracer.Stderr.String(), "events lost")
	// One at once, one per 10 s after, and one at exit for what the rate
	// limit held back.
	if limit := 2 + int(elapsed/(10*time.Second)); warnings == 0 || warnings > limit {
		t.Errorf("%d lost records in %s gave %d warnings, want 1 to %d:\n%s", len(lost), elapsed.Round(time.Millisecond), warnings, limit, tracer.Stderr.String())
	}
}

// currentRecords parses the complete lines a running tracer printed so far.
func currentRecords(t *testing.T, p *harness.Proc) []*harness.Record {
	t.Helper()
	out := p.Stdout.Bytes()
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i+1]
	} else {
		return nil
	}
	recs, err := harness.ParseRecords(out)
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	return recs
}

// TestSignalTwiceAtOnce: `timeout -s INT N tcpscope` signals tcpscope and
// then its process group, so two SIGINTs arrive microseconds apart. That
// is one request to stop: exit 0 with everything flushed (the summaries of
// the connections still open), not the second signal's exit without
// flushing.
func TestSignalTwiceAtOnce(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "sigtwice")
	for i := 0; i < 3; i++ {
		p := startTracer(ctx, t, ns, "-i", "lo")
		for j := 0; j < 2; j++ {
			if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("run %d: two SIGINTs at once: %v (a clean stop exits 0)\n%s", i, err, p.Output())
		}
		if strings.Contains(p.Stderr.String(), "second signal") {
			t.Fatalf("run %d: the copy of the first SIGINT was taken as a second one:\n%s", i, p.Stderr.String())
		}
	}
}
