package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the tcpscope version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(stdout, versionString())
			return err
		},
	}
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
