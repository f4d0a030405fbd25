package harness

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLineBufferFindLine: only complete lines are found; the channel
// returned when none is fires on the next write.
func TestLineBufferFindLine(t *testing.T) {
	b := NewLineBuffer(0)
	b.Write([]byte("one\ntracing sta"))
	line, ok, changed := b.FindLine("tracing started")
	if ok || changed == nil {
		t.Fatalf("found %q in an incomplete line", line)
	}
	select {
	case <-changed:
		t.Fatal("changed fired before a write")
	default:
	}
	b.Write([]byte("rted now\n"))
	select {
	case <-changed:
	default:
		t.Fatal("changed did not fire on a write")
	}
	if line, ok, _ := b.FindLine("tracing started"); !ok || line != "tracing started now" {
		t.Errorf("FindLine = %q, %v", line, ok)
	}
	if got := b.String(); got != "one\ntracing started now\n" || string(b.Bytes()) != got {
		t.Errorf("kept %q", got)
	}
}

// TestLineBufferLimit: past its limit a buffer keeps the tail after a
// "[...]" line; without one it keeps everything.
func TestLineBufferLimit(t *testing.T) {
	b := NewLineBuffer(100)
	for range 30 {
		b.Write([]byte("0123456789\n"))
	}
	b.Write([]byte("last\n"))
	got := b.String()
	if !strings.HasPrefix(got, "[...]\n") || !strings.HasSuffix(got, "last\n") || len(got) > 100 {
		t.Errorf("kept %d bytes: %q", len(got), got)
	}
	all := NewLineBuffer(0)
	for range 30 {
		all.Write([]byte("0123456789\n"))
	}
	if n := len(all.String()); n != 330 {
		t.Errorf("kept %d bytes of 330", n)
	}
}

// TestLineBufferWaitLine: a line written later is waited for; the wait
// ends at its limit, or when the writer is gone.
func TestLineBufferWaitLine(t *testing.T) {
	b := NewLineBuffer(0)
	go func() {
		time.Sleep(10 * time.Millisecond)
		b.Write([]byte("ready\n"))
	}()
	if line, err := b.WaitLine(t.Context(), "ready", time.Minute, nil); err != nil || line != "ready" {
		t.Errorf("WaitLine = %q, %v", line, err)
	}
	if _, err := b.WaitLine(t.Context(), "never", 10*time.Millisecond, nil); err == nil {
		t.Error("waited for a line that never comes without an error")
	}
	done := make(chan struct{})
	close(done)
	if _, err := b.WaitLine(t.Context(), "never", time.Minute, done); err != errWriterGone {
		t.Errorf("writer gone: %v", err)
	}
}

// TestProc: a process's output is kept, lines are waited for, Stop
// signals it and collects the exit status, and what it never prints is an
// error once it exits.
func TestProc(t *testing.T) {
	ctx := t.Context()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip(err)
	}
	p := StartT(t, "sleeper", Command(sh, "-c", `echo out; echo ready >&2; exec sleep 60`))
	if line := p.MustWaitLine(ctx, t, true, "ready", time.Minute); line != "ready" {
		t.Errorf("stderr line %q", line)
	}
	if _, err := p.WaitLine(ctx, false, "out", time.Minute); err != nil {
		t.Error(err)
	}
	if p.Exited() || p.ExitStatus() != "running" || p.Pid() <= 0 {
		t.Errorf("running process: exited %v status %q pid %d", p.Exited(), p.ExitStatus(), p.Pid())
	}
	if err := p.Stop(ctx, syscall.SIGTERM, time.Minute); err == nil {
		t.Error("a process killed by SIGTERM stopped without an error")
	}
	if !p.Exited() || p.ExitCode() != -1 || p.ExitStatus() != "signal: terminated" {
		t.Errorf("after SIGTERM: exited %v code %d status %q", p.Exited(), p.ExitCode(), p.ExitStatus())
	}
	if out := p.Output(); !strings.Contains(out, "--- sleeper stdout:\nout\n") || !strings.Contains(out, "--- sleeper stderr:\nready\n") {
		t.Errorf("output %q", out)
	}

	q := StartT(t, "quiet", Command(sh, "-c", `exit 3`))
	if _, err := q.WaitLine(ctx, false, "never", time.Minute); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("a line never printed: %v", err)
	}
	if err := q.Wait(ctx); err == nil || q.ExitCode() != 3 || q.ExitStatus() != "3" {
		t.Errorf("exit 3: %v, code %d", err, q.ExitCode())
	}

	ok := StartT(t, "true", Command(sh, "-c", `exit 0`))
	ok.MustSucceed(ctx, t, time.Minute)

	// A process still running when the wait ends is an error, and Kill
	// ends it.
	s := StartT(t, "sleep", Command(sh, "-c", `exec sleep 60`))
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := s.Wait(short); err == nil {
		t.Error("Wait returned before the process exited")
	}
	if !s.Kill() || !s.Exited() {
		t.Error("Kill did not end the process")
	}

	// Start uses a LineBuffer the caller set, and leaves another writer
	// alone.
	var sb strings.Builder
	cmd := Command(sh, "-c", `echo to-builder; echo to-buffer >&2`)
	limited := NewLineBuffer(1 << 10)
	cmd.Stdout, cmd.Stderr = &sb, limited
	r := StartT(t, "writers", cmd)
	r.MustSucceed(ctx, t, time.Minute)
	if r.Stdout != nil || r.Stderr != limited || sb.String() != "to-builder\n" || limited.String() != "to-buffer\n" {
		t.Errorf("streams: stdout %v, stderr %q, builder %q", r.Stdout, limited.String(), sb.String())
	}
}

// TestRun: a failing command's error says what ran and what it printed.
func TestRun(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip(err)
	}
	out, err := Run(t.Context(), time.Minute, "sh", "-c", "echo fine")
	if err != nil || string(out) != "fine\n" {
		t.Errorf("Run = %q, %v", out, err)
	}
	_, err = Run(t.Context(), time.Minute, "sh", "-c", "echo broken; exit 1")
	if err == nil || !strings.Contains(err.Error(), "sh -c echo broken; exit 1") || !strings.Contains(err.Error(), "broken") {
		t.Errorf("failing command: %v", err)
	}
}
