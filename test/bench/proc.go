package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lineBuffer is an io.Writer that keeps what is written to it (up to
// maxKeep bytes, then only the tail) and lets a reader wait for a line. It
// is safe for concurrent use.
type lineBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{} // closed (and replaced) on every write
}

// maxKeep bounds what a lineBuffer keeps of a chatty process.
const maxKeep = 4 << 20

func newLineBuffer() *lineBuffer { return &lineBuffer{notify: make(chan struct{})} }

// Write appends p and wakes waiters.
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > maxKeep {
		tail := bytes.Clone(b.buf.Bytes()[b.buf.Len()-maxKeep/2:])
		b.buf.Reset()
		b.buf.WriteString("[...]\n")
		b.buf.Write(tail)
	}
	close(b.notify)
	b.notify = make(chan struct{})
	return len(p), nil
}

// String returns what was kept.
func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// findLine returns the first complete line containing substr, or the
// channel closed on the next write.
func (b *lineBuffer) findLine(substr string) (string, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range strings.SplitAfter(b.buf.String(), "\n") {
		if strings.HasSuffix(line, "\n") && strings.Contains(line, substr) {
			return strings.TrimSuffix(line, "\n"), true, nil
		}
	}
	return "", false, b.notify
}

// proc is a child process of the harness.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser // nil unless asked for
	stdout *lineBuffer    // nil when stdout goes to a file
	stderr *lineBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid once done is closed
	start  time.Time
}

// procs is every process the harness started, so that an interrupted run
// can kill what is still running (by pid, its own children only).
var procs struct {
	mu   sync.Mutex
	list []*proc
}

// startProc starts argv. stdout, when not nil, receives the process's
// stdout directly (a file: no copying by the harness); otherwise it is kept
// in a lineBuffer. withStdin gives the process a pipe as stdin.
func startProc(name string, stdout *os.File, withStdin bool, argv ...string) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(argv[0], argv[1:]...), stderr: newLineBuffer(), done: make(chan struct{})}
	if stdout != nil {
		p.cmd.Stdout = stdout
	} else {
		p.stdout = newLineBuffer()
		p.cmd.Stdout = p.stdout
	}
	p.cmd.Stderr = p.stderr
	// Its own process group: a Ctrl-C reaches only the harness, which
	// then stops everything in order. Killed if the harness dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if withStdin {
		w, err := p.cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("stdin pipe for %s: %w", name, err)
		}
		p.stdin = w
	}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	procs.mu.Lock()
	procs.list = append(procs.list, p)
	procs.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// killAll kills every started process that is still running and waits
// (bounded) for each.
func killAll() {
	procs.mu.Lock()
	list := procs.list
	procs.list = nil
	procs.mu.Unlock()
	for _, p := range list {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
		}
	}
	for _, p := range list {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			fmt.Fprintf(os.Stderr, "bench: %s (pid %d) did not die after SIGKILL\n", p.name, p.pid())
		}
	}
}

// pid is the process id. `ip netns exec` replaces itself with the program,
// so this is the program's own pid.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits at most d for the process to exit.
func (p *proc) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return fmt.Errorf("%s (pid %d) still running after %s", p.name, p.pid(), d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop sends sig, waits at most d, then kills. It returns the time from
// the signal to the exit and whether the process had to be killed.
func (p *proc) stop(ctx context.Context, sig os.Signal, d time.Duration) (time.Duration, bool) {
	t0 := time.Now()
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
	if err := p.wait(ctx, d); err != nil && !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
		return time.Since(t0), true
	}
	return time.Since(t0), false
}

// waitLine waits at most d for a line containing substr on stdout (or
// stderr with fromStderr).
func (p *proc) waitLine(ctx context.Context, fromStderr bool, substr string, d time.Duration) (string, error) {
	b := p.stdout
	if fromStderr {
		b = p.stderr
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		line, ok, changed := b.findLine(substr)
		if ok {
			return line, nil
		}
		select {
		case <-changed:
		case <-p.done:
			if line, ok, _ := b.findLine(substr); ok {
				return line, nil
			}
			return "", fmt.Errorf("%s exited (%v) without printing %q\n%s", p.name, p.err, substr, p.output())
		case <-t.C:
			return "", fmt.Errorf("%s did not print %q within %s\n%s", p.name, substr, d, p.output())
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// output is the process's kept stdout and stderr, cut, for error messages.
func (p *proc) output() string {
	cut := func(s string) string {
		if len(s) > 3000 {
			return s[:1500] + "\n[...]\n" + s[len(s)-1500:]
		}
		return s
	}
	out := ""
	if p.stdout != nil {
		out = fmt.Sprintf("--- %s stdout:\n%s", p.name, cut(p.stdout.String()))
	}
	return out + fmt.Sprintf("--- %s stderr:\n%s", p.name, cut(p.stderr.String()))
}

// exitStatus describes how the process ended: "0", "1", "signal: killed".
func (p *proc) exitStatus() string {
	st := p.cmd.ProcessState
	if st == nil {
		return "running"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return strconv.Itoa(st.ExitCode())
}

// runCmd runs a short command (bounded by 60 s) and returns its combined
// output.
func runCmd(ctx context.Context, argv ...string) ([]byte, error) {
	return runCmdTimeout(ctx, time.Minute, argv...)
}

// runCmdTimeout runs a command bounded by d and returns its combined
// output.
func runCmdTimeout(ctx context.Context, d time.Duration, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}
