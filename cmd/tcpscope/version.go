//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tcpscope/tcpscope/tracer"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// versionInfo is what `tcpscope version -o json` prints: one JSON object,
// with the kernel features only with --features.
type versionInfo struct {
	Version       string           `json:"version"`
	OS            string           `json:"os"`
	Arch          string           `json:"arch"`
	Go            string           `json:"go"`
	CiliumEBPF    string           `json:"cilium_ebpf"`
	Features      []featureJSON    `json:"features,omitempty"`
	featuresAsked bool             // --features: print the list even if empty
	features      []tracer.Feature // as probed
}

// featureJSON is one kernel feature: the columns of the text table.
type featureJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Note  string `json:"note"`
}

func newVersionCmd(a *app) *cobra.Command {
	var features bool
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the tcpscope version (and, with --features, what this kernel supports)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildVersionInfo()
			if features {
				list, err := tracer.ProbeFeatures()
				if err != nil {
					return err
				}
				info.featuresAsked, info.features = true, list
			}
			if format == "json" {
				return printVersionJSON(a, info)
			}
			return printVersionText(a, info)
		},
	}
	cmd.Flags().BoolVar(&features, "features", false, "list the features this kernel supports, one per line: name, value, note")
	cmd.Flags().VarP(newStringValue(&format, "text", "text", "json"), "output", "o", "output format: text, or json (one object: version fields and, with --features, a features array)")
	return cmd
}

func printVersionText(a *app, info versionInfo) error {
	if _, err := fmt.Fprintf(a.stdout, "tcpscope %s %s/%s %s cilium/ebpf %s\n", info.Version, info.OS, info.Arch, info.Go, info.CiliumEBPF); err != nil || !info.featuresAsked {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, f := range info.features {
		fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, f.Value, f.Note)
	}
	return w.Flush()
}

func printVersionJSON(a *app, info versionInfo) error {
	if info.featuresAsked {
		info.Features = make([]featureJSON, 0, len(info.features))
		for _, f := range info.features {
			info.Features = append(info.Features, featureJSON{Name: f.Name, Value: f.Value, Note: f.Note})
		}
	}
	line, err := json.Marshal(info)
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(append(line, '\n'))
	return err
}

func buildVersionInfo() versionInfo {
	info := versionInfo{Version: version, OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version(), CiliumEBPF: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" {
			info.Version = bi.Main.Version
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					info.Version += " (" + s.Value[:12] + ")"
				}
			}
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/cilium/ebpf" {
				info.CiliumEBPF = d.Version
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}
