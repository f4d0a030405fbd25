//go:build linux

// Command tcpscope traces TCP connections with eBPF: socket state changes,
// retransmits and resets from kernel tracepoints, and every TCP header from
// a TC classifier, correlated per connection and printed as JSON lines or
// tcpdump-like text.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	// A closed stdout pipe (tcpscope | head) must end tracing cleanly, not
	// kill the process before it detaches: make writes return EPIPE.
	signal.Ignore(syscall.SIGPIPE)
	root, a := newRootCmd(os.Stdout, os.Stderr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go handleSignals(a, cancel, os.Exit, secondSignalGrace, time.Now)
	err := root.ExecuteContext(ctx)
	if err != nil {
		a.logError(err)
	}
	os.Exit(exitCode(err))
}

// secondSignalGrace: a signal this soon after the first is taken as a
// copy of it, not as a second one. `timeout -s INT` signals the child and
// then its whole process group, so tcpscope gets two SIGINTs microseconds
// apart; a person pressing Ctrl-C again is slower than this.
const secondSignalGrace = time.Second

// handleSignals: the first SIGINT or SIGTERM asks for a clean stop
// (cancel: detach, drain, flush); a second one, at least grace after the
// first, ends the process at once through exit, whatever blocks (a stalled
// reader of the output, a FIFO nobody opens). The handler stays installed
// for the second signal rather than restoring the default action: a
// process started with SIGINT ignored (a script's background job) would
// otherwise ignore it again. TCX links go away with the process.
func handleSignals(a *app, cancel context.CancelFunc, exit func(int), grace time.Duration, now func() time.Time) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	first := <-sigs
	firstAt := now()
	a.log().Debug("stopping", "signal", first.String())
	cancel()
	var second os.Signal
	for second = range sigs {
		if now().Sub(firstAt) >= grace {
			break
		}
		a.log().Debug("signal ignored: too soon after the first to be a second one", "signal", second.String(), "grace", grace)
	}
	code := exitSignalBase
	if s, ok := second.(syscall.Signal); ok {
		code += int(s)
	}
	a.log().Error("second signal: exiting at once, output not flushed", "signal", second.String(), "exit_status", code)
	exit(code)
}
