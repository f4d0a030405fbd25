//go:build linux

package main

import (
	"io"
	"log/slog"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tcpscope/tcpscope/output"
	"github.com/tcpscope/tcpscope/tracer"
)

// cleanupOptions are the flags of `tcpscope cleanup`.
type cleanupOptions struct {
	dryRun bool
	debug  bool
	// cleanup does the work; tests replace it.
	cleanup func(tracer.CleanupOptions) ([]tracer.Leftover, error)
}

func newCleanupCmd(a *app) *cobra.Command {
	o := &cleanupOptions{cleanup: tracer.Cleanup}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove the TC filters (and clsact qdiscs) that killed tcpscope processes left behind",
		Long: "In clsact mode (kernels without TCX, before 6.6) tcpscope attaches cls_bpf filters that\n" +
			"outlive the process when it is killed (SIGKILL, the OOM killer): they keep running\n" +
			"tcpscope's classifiers on every packet and keep its ring buffer allocated.\n" +
			"cleanup looks at every interface of every network namespace it can find (its own,\n" +
			"/run/netns, /run/docker/netns, /proc/*/ns/net), removes the filters whose tcpscope\n" +
			"process is gone, and the clsact qdisc when a tcpscope run created it and nothing is\n" +
			"left on it. Filters of running tcpscope processes stay. Every tracing run does the same\n" +
			"on the interfaces it uses.\n\n" +
			"TCX links and all other BPF objects die with the process, even on SIGKILL, and\n" +
			"tcpscope pins nothing: on kernels with TCX there is nothing else to clean.\n\n" +
			"stdout: one line per removed item (with --dry-run: per item that would be removed),\n" +
			"nothing when there is nothing to remove. Logs go to stderr.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCleanup(o, a.stdout, a.log())
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "list what would be removed, remove nothing")
	cmd.Flags().BoolVar(&o.debug, "debug", false, "log more (to stderr)")
	return cmd
}

func runCleanup(o *cleanupOptions, stdout io.Writer, logger *slog.Logger) error {
	found, err := o.cleanup(tracer.CleanupOptions{DryRun: o.dryRun, Logger: logger})
	// What was removed is printed even when something else failed.
	var buf []byte
	for _, l := range found {
		buf = appendLeftover(buf[:0], l)
		if _, werr := stdout.Write(buf); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if len(found) == 0 {
		logger.Info("cleanup: no tcpscope leftovers found")
	}
	return nil
}

// appendLeftover formats one leftover as a line:
//
//	filter netns=INODE interface=NAME dir=ingress name=FILTER pid=PID
//	qdisc netns=INODE interface=NAME kind=clsact pid=PID
func appendLeftover(dst []byte, l tracer.Leftover) []byte {
	dst = append(dst, l.Kind...)
	dst = append(dst, " netns="...)
	dst = strconv.AppendUint(dst, uint64(l.Netns), 10)
	dst = append(dst, " interface="...)
	dst = output.AppendEscaped(dst, []byte(l.Ifname))
	if l.Kind == "qdisc" {
		dst = append(dst, " kind=clsact"...)
	} else {
		dst = append(dst, " dir="...)
		dst = append(dst, l.Dir...)
		dst = append(dst, " name="...)
		dst = output.AppendEscaped(dst, []byte(l.Name))
	}
	if l.PID > 0 {
		dst = append(dst, " pid="...)
		dst = strconv.AppendInt(dst, int64(l.PID), 10)
	}
	return append(dst, '\n')
}
