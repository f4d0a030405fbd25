// Command tcpscope traces TCP connections with eBPF: socket state changes,
// retransmits and resets from kernel tracepoints, and every TCP header from
// a TC classifier, correlated per connection and printed as JSON lines or
// tcpdump-like text.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// A closed stdout pipe (tcpscope | head) must end tracing cleanly, not
	// kill the process before it detaches: make writes return EPIPE.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks for a clean stop (detach, drain, flush). Then
	// the default action is restored, so a second signal kills a process
	// stuck writing to a stalled reader; TCX links go away with it.
	context.AfterFunc(ctx, stop)
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpscope: %s\n", oneLine(err.Error()))
	}
	os.Exit(exitCode(err))
}
