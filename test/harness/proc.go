package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LineBuffer is an io.Writer that keeps what is written to it and lets a
// reader wait for a line. It is safe for concurrent use.
type LineBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	limit  int           // 0: keep everything
	notify chan struct{} // closed (and replaced) on every write
}

// NewLineBuffer returns an empty buffer. With limit > 0 it keeps at most
// about limit bytes: past that, only the last limit/2, after a "[...]"
// line (for chatty processes whose output only serves error messages).
func NewLineBuffer(limit int) *LineBuffer {
	return &LineBuffer{limit: limit, notify: make(chan struct{})}
}

// Write appends p and wakes waiters.
func (b *LineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.limit > 0 && b.buf.Len() > b.limit {
		tail := bytes.Clone(b.buf.Bytes()[b.buf.Len()-b.limit/2:])
		b.buf.Reset()
		b.buf.WriteString("[...]\n")
		b.buf.Write(tail)
	}
	close(b.notify)
	b.notify = make(chan struct{})
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (b *LineBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String returns what was kept.
func (b *LineBuffer) String() string { return string(b.Bytes()) }

// FindLine returns the first complete line containing substr (without its
// newline), or false and a channel that is closed on the next write.
func (b *LineBuffer) FindLine(substr string) (string, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range strings.SplitAfter(b.buf.String(), "\n") {
		if strings.HasSuffix(line, "\n") && strings.Contains(line, substr) {
			return strings.TrimSuffix(line, "\n"), true, nil
		}
	}
	return "", false, b.notify
}

// WaitLine waits at most d for a complete line containing substr and
// returns it. It gives up early when done is closed (the writer is gone)
// and the line is still not there.
func (b *LineBuffer) WaitLine(ctx context.Context, substr string, d time.Duration, done <-chan struct{}) (string, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		line, ok, changed := b.FindLine(substr)
		if ok {
			return line, nil
		}
		select {
		case <-changed:
		case <-done:
			if line, ok, _ := b.FindLine(substr); ok {
				return line, nil
			}
			return "", errWriterGone
		case <-timer.C:
			return "", fmt.Errorf("no line with %q within %s", substr, d)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

var errWriterGone = errors.New("the writer is gone")

// Proc is a started child process whose output is kept in memory.
type Proc struct {
	// Name names the process in messages.
	Name string
	// Cmd is the command, started.
	Cmd *exec.Cmd
	// Stdout and Stderr keep the process's output; nil for a stream the
	// caller sent elsewhere before Start.
	Stdout, Stderr *LineBuffer
	// Started is when the process was started.
	Started time.Time

	done chan struct{} // closed when the process has exited and its output is complete
	err  error         // the result of Wait, valid once done is closed
}

// Command returns an unstarted command for argv.
func Command(argv ...string) *exec.Cmd { return exec.Command(argv[0], argv[1:]...) }

// Start starts cmd. Its stdout and stderr are kept in LineBuffers that
// keep everything, unless the caller set them before: a *LineBuffer set
// there is used as it is (one with a limit, say); any other writer (a
// file) gets the stream directly and leaves Stdout or Stderr nil.
func Start(name string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{})}
	p.Stdout = adopt(&cmd.Stdout)
	p.Stderr = adopt(&cmd.Stderr)
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(cmd.Args, " "), err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// adopt returns the LineBuffer that *w is or becomes (nil for another
// writer).
func adopt(w *io.Writer) *LineBuffer {
	switch b := (*w).(type) {
	case nil:
		lb := NewLineBuffer(0)
		*w = lb
		return lb
	case *LineBuffer:
		return b
	}
	return nil
}

// KillTimeout bounds waiting for a process to die after SIGKILL.
const KillTimeout = 10 * time.Second

// StartT starts cmd like Start and fails t if it cannot. The process is
// killed when the test ends if it is still running, so that no namespace
// is deleted under a live process and nothing outlives the test.
func StartT(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := Start(name, cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Kill() {
			t.Errorf("%s (pid %d) did not die within %s after SIGKILL", p.Name, p.Pid(), KillTimeout)
		}
	})
	return p
}

// Pid is the process id. Programs started through `ip netns exec` (or
// Namespace.Command) replace it in place, so this is the program's own.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited and its output is complete.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit (as long as ctx allows) and returns
// the error of exec.Cmd.Wait.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s (pid %d) still running: %w", p.Name, p.Pid(), ctx.Err())
	}
}

// Stop sends sig and waits at most d for the process to exit; it returns
// the error of exec.Cmd.Wait.
func (p *Proc) Stop(ctx context.Context, sig os.Signal, d time.Duration) error {
	if err := p.Cmd.Process.Signal(sig); err != nil && !p.Exited() {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.Wait(ctx)
}

// Kill sends SIGKILL unless the process has exited, and waits at most
// KillTimeout for it to die. It reports whether it is gone.
func (p *Proc) Kill() bool {
	if p.Exited() {
		return true
	}
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.done:
		return true
	case <-time.After(KillTimeout):
		return false
	}
}

// ExitCode is the exit status once the process has exited (-1 if it was
// killed by a signal).
func (p *Proc) ExitCode() int { return p.Cmd.ProcessState.ExitCode() }

// ExitStatus describes how the process ended: "0", "1", "signal: killed",
// or "running".
func (p *Proc) ExitStatus() string {
	st := p.Cmd.ProcessState
	if st == nil {
		return "running"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return strconv.Itoa(st.ExitCode())
}

// WaitLine waits at most d for a line containing substr on the process's
// stdout (or stderr with fromStderr) and returns it. It fails early if the
// process exits without printing it.
func (p *Proc) WaitLine(ctx context.Context, fromStderr bool, substr string, d time.Duration) (string, error) {
	b, stream := p.Stdout, "stdout"
	if fromStderr {
		b, stream = p.Stderr, "stderr"
	}
	if b == nil {
		return "", fmt.Errorf("%s: %s is not kept", p.Name, stream)
	}
	line, err := b.WaitLine(ctx, substr, d, p.done)
	switch {
	case err == nil:
		return line, nil
	case errors.Is(err, errWriterGone):
		return "", fmt.Errorf("%s exited (%v) without printing %q\n%s", p.Name, p.err, substr, p.Output())
	}
	return "", fmt.Errorf("%s did not print %q: %w\n%s", p.Name, substr, err, p.Output())
}

// MustWaitLine is WaitLine that fails t instead of returning an error.
func (p *Proc) MustWaitLine(ctx context.Context, t testing.TB, fromStderr bool, substr string, d time.Duration) string {
	t.Helper()
	line, err := p.WaitLine(ctx, fromStderr, substr, d)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// MustSucceed waits at most d for the process to exit and fails t unless
// it exited 0.
func (p *Proc) MustSucceed(ctx context.Context, t testing.TB, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Output())
	}
}

// MustStop sends sig, waits at most d and fails t unless the process
// exited 0.
func (p *Proc) MustStop(ctx context.Context, t testing.TB, sig os.Signal, d time.Duration) {
	t.Helper()
	if err := p.Stop(ctx, sig, d); err != nil {
		t.Fatalf("%s after %v: %v\n%s", p.Name, sig, err, p.Output())
	}
}

// Output is the process's kept stdout and stderr so far, for error
// messages. Long outputs are cut.
func (p *Proc) Output() string {
	cut := func(s string) string {
		if len(s) > 4000 {
			return s[:2000] + "\n[...]\n" + s[len(s)-2000:]
		}
		return s
	}
	out := ""
	if p.Stdout != nil {
		out = fmt.Sprintf("--- %s stdout:\n%s", p.Name, cut(p.Stdout.String()))
	}
	if p.Stderr != nil {
		out += fmt.Sprintf("--- %s stderr:\n%s", p.Name, cut(p.Stderr.String()))
	}
	return out
}

// Run runs a short command, bounded by d, and returns its combined
// output; the error says what ran and what it printed.
func Run(ctx context.Context, d time.Duration, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// MustRun runs a short command like Run and fails t if it fails.
func MustRun(ctx context.Context, t testing.TB, d time.Duration, argv ...string) []byte {
	t.Helper()
	out, err := Run(ctx, d, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
