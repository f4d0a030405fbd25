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
)

func main() {
	// A closed stdout pipe (tcpscope | head) must end tracing cleanly, not
	// kill the process before it detaches: make writes return EPIPE.
	signal.Ignore(syscall.SIGPIPE)
	root, a := newRootCmd(os.Stdout, os.Stderr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go handleSignals(a, cancel, os.Exit)
	err := root.ExecuteContext(ctx)
	if err != nil {
		a.logError(err)
	}
	os.Exit(exitCode(err))
}

// handleSignals: the first SIGINT or SIGTERM asks for a clean stop
// (cancel: detach, drain, flush); the second ends the process at once
// through exit, whatever blocks (a stalled reader of the output, a FIFO
// nobody opens). The handler stays installed for the second signal rather
// than restoring the default action: a process started with SIGINT
// ignored (a script's background job) would otherwise ignore it again.
// TCX links go away with the process.
func handleSignals(a *app, cancel context.CancelFunc, exit func(int)) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	first := <-sigs
	a.log().Debug("stopping", "signal", first.String())
	cancel()
	second := <-sigs
	code := exitSignalBase
	if s, ok := second.(syscall.Signal); ok {
		code += int(s)
	}
	a.log().Error("second signal: exiting at once, output not flushed", "signal", second.String(), "exit_status", code)
	exit(code)
}
