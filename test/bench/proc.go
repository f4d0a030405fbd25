package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// maxKeep bounds what is kept of a chatty process's output.
const maxKeep = 4 << 20

// proc is a child process of the harness.
type proc struct {
	*harness.Proc
	stdin io.WriteCloser // nil unless asked for
}

// procs is every process the harness started, so that an interrupted run
// can kill what is still running (by pid, its own children only).
var procs struct {
	mu   sync.Mutex
	list []*proc
}

// startProc starts argv. stdout, when not nil, receives the process's
// stdout directly (a file: no copying by the harness); otherwise the last
// maxKeep bytes of it are kept, as of stderr. withStdin gives the process
// a pipe as stdin.
func startProc(name string, stdout *os.File, withStdin bool, argv ...string) (*proc, error) {
	cmd := harness.Command(argv...)
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = harness.NewLineBuffer(maxKeep)
	}
	cmd.Stderr = harness.NewLineBuffer(maxKeep)
	// Its own process group: a Ctrl-C reaches only the harness, which
	// then stops everything in order. Killed if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{}
	if withStdin {
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("stdin pipe for %s: %w", name, err)
		}
		p.stdin = w
	}
	hp, err := harness.Start(name, cmd)
	if err != nil {
		return nil, err
	}
	p.Proc = hp
	procs.mu.Lock()
	procs.list = append(procs.list, p)
	procs.mu.Unlock()
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
		if !p.Exited() {
			_ = p.Cmd.Process.Kill()
		}
	}
	for _, p := range list {
		if !p.Kill() {
			fmt.Fprintf(os.Stderr, "bench: %s (pid %d) did not die after SIGKILL\n", p.Name, p.Pid())
		}
	}
}

// waitFor waits at most d for the process to exit and returns the error
// of exec.Cmd.Wait.
func (p *proc) waitFor(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.Wait(ctx)
}

// stopOrKill sends sig, waits at most d, then kills. It returns the time
// from the signal to the exit and whether the process had to be killed.
func (p *proc) stopOrKill(ctx context.Context, sig os.Signal, d time.Duration) (time.Duration, bool) {
	t0 := time.Now()
	if err := p.Stop(ctx, sig, d); err != nil && !p.Exited() {
		p.Kill()
		return time.Since(t0), true
	}
	return time.Since(t0), false
}

// runCmd runs a short command (bounded by 60 s) and returns its combined
// output.
func runCmd(ctx context.Context, argv ...string) ([]byte, error) {
	return harness.Run(ctx, time.Minute, argv...)
}
