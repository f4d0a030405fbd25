package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tcpscope/tcpscope/tracer"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func newVersionCmd(stdout io.Writer) *cobra.Command {
	var features bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the tcpscope version (and, with --features, what this kernel supports)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := fmt.Fprintln(stdout, versionString()); err != nil || !features {
				return err
			}
			list, err := tracer.ProbeFeatures()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			for _, f := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, f.Value, f.Note)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&features, "features", false, "list the features this kernel supports, one per line: name, value, note")
	return cmd
}

func versionString() string {
	v, ebpfVersion := version, "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += " (" + s.Value[:12] + ")"
				}
			}
		}
		for _, d := range info.Deps {
			if d.Path == "github.com/cilium/ebpf" {
				ebpfVersion = d.Version
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	return fmt.Sprintf("tcpscope %s %s/%s %s cilium/ebpf %s", v, runtime.GOOS, runtime.GOARCH, runtime.Version(), ebpfVersion)
}
