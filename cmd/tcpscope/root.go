//go:build linux

package main

import (
	"errors"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tcpscope/tcpscope/tracer"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the tracer failed (load, attach, I/O)
	exitUsage = 2 // bad command line; nothing was loaded or attached
	// A second SIGINT or SIGTERM ends the process at once with 128 plus
	// the signal's number (130, 143), as a shell reports a signal death.
	exitSignalBase = 128
)

// usageError is bad user input; it exits with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ce *tracer.ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return exitUsage
	}
	return exitError
}

// oneLine keeps an error message on one line of stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// newRootCmd builds the tcpscope command tree. Plain `tcpscope` runs
// `tcpscope trace` with the same flags. The app carries the streams and
// the logger that main also uses for the final error.
func newRootCmd(stdout, stderr io.Writer) (*cobra.Command, *app) {
	a := &app{stdout: stdout, stderr: stderr}
	traceCmd := newTraceCmd(a)
	root := &cobra.Command{
		Use:   "tcpscope",
		Short: "Trace TCP connections with eBPF: handshakes, data, closes, resets",
		Long: "tcpscope traces TCP in the kernel: state changes, retransmits and resets from\n" +
			"tracepoints, and every TCP header from a TC classifier, correlated per connection.\n" +
			"Without a subcommand it runs `tcpscope trace`.",
		Args:          noArgs,
		RunE:          traceCmd.RunE,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Every command logs through one slog logger, chosen here once
		// the flags are parsed.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			debug := false
			if f := cmd.Flags().Lookup("debug"); f != nil {
				debug = f.Value.String() == "true"
			}
			a.newLogger(debug)
			return nil
		},
	}
	root.PersistentFlags().Var(newStringValue(&a.logFormat, "text", "text", "json"), "log-format",
		"log format on stderr: text (slog's key=value) or json (one JSON object per line)")
	root.Flags().AddFlagSet(traceCmd.Flags())
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError(err) })
	root.AddCommand(traceCmd, newVersionCmd(a))
	root.AddCommand(newCleanupCmd(a))
	registerCompletions(traceCmd)
	return root, a
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{errors.New("unexpected argument " + tracer.QuoteArg(args[0]) + " for " + `"` + cmd.CommandPath() + `"`)}
	}
	return nil
}
