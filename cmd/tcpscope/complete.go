//go:build linux

package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tcpscope/tcpscope/tracer"
)

// registerCompletions completes flag values in the shell (`tcpscope
// completion bash|zsh|fish|powershell`): fixed choices, interfaces of the
// namespace chosen with --netns (or tcpscope's own), and named network
// namespaces. The trace command's flags are the root's too (the same
// flags), so registering on it covers both; --log-format is the root's.
func registerCompletions(trace *cobra.Command) {
	fixed := func(values ...string) cobra.CompletionFunc {
		return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return withPrefix(values, toComplete), cobra.ShellCompDirectiveNoFileComp
		}
	}
	for flag, fn := range map[string]cobra.CompletionFunc{
		"output":      fixed("json", "text"),
		"tc-mode":     fixed(string(tracer.TCAuto), string(tracer.TCX), string(tracer.TCClsact)),
		"packets":     fixed(tracer.PacketModes()...),
		"analysis":    fixed("on", "off"),
		"events":      completeList(append(tracer.EventNames(), "all")...),
		"on-overflow": fixed(string(tracer.OverflowDrop), string(tracer.OverflowBlock)),
		"interface":   completeInterfaces,
		"netns":       completeNetns,
		"port":        cobra.NoFileCompletions,
		"host":        cobra.NoFileCompletions,
		"ring-size":   fixed("1M", "8M", "64M"),
	} {
		if err := trace.RegisterFlagCompletionFunc(flag, fn); err != nil {
			panic(err) // a flag renamed without its completion: caught by the unit tests
		}
	}
	root := trace.Root()
	if err := root.RegisterFlagCompletionFunc("log-format", fixed("text", "json")); err != nil {
		panic(err)
	}
	for _, c := range root.Commands() {
		if c.Name() == "version" {
			if err := c.RegisterFlagCompletionFunc("output", fixed("text", "json")); err != nil {
				panic(err)
			}
		}
	}
}

// withPrefix keeps the values that start with prefix.
func withPrefix(values []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// completeList completes the last item of a comma-separated list,
// offering the values not already in it.
func completeList(values ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		head, last := "", toComplete
		if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
			head, last = toComplete[:i+1], toComplete[i+1:]
		}
		given := strings.Split(head, ",")
		var out []cobra.Completion
		for _, v := range values {
			if strings.HasPrefix(v, last) && !slices.Contains(given, v) {
				out = append(out, head+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// completeInterfaces lists the interfaces of the --netns namespace if one
// is given (entering it needs CAP_SYS_ADMIN; without it nothing is
// offered), else of tcpscope's own namespace.
func completeInterfaces(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var ns *tracer.Netns
	if f := cmd.Flags().Lookup("netns"); f != nil && f.Changed {
		n, err := tracer.OpenNetns(f.Value.String())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer n.Close()
		ns = n
	}
	var names []string
	_ = ns.Do(func() error {
		ifs, err := net.Interfaces()
		for _, ifc := range ifs {
			names = append(names, ifc.Name)
		}
		return err
	})
	sort.Strings(names)
	return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// Where named network namespaces live: `ip netns` names (completed as
// names, which --netns resolves there) and Docker's (completed as paths).
const (
	namedNetnsDir  = "/run/netns"
	dockerNetnsDir = "/run/docker/netns"
)

// completeNetns offers the named network namespaces; a value with a '/'
// is completed as a file path.
func completeNetns(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return netnsCompletions(namedNetnsDir, dockerNetnsDir, toComplete)
}

func netnsCompletions(namedDir, dockerDir, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if strings.Contains(toComplete, "/") && !strings.HasPrefix(dockerDir+"/", toComplete) && !strings.HasPrefix(toComplete, dockerDir+"/") {
		return nil, cobra.ShellCompDirectiveDefault
	}
	var out []string
	if entries, err := os.ReadDir(namedDir); err == nil {
		for _, e := range entries {
			out = append(out, e.Name())
		}
	}
	if entries, err := os.ReadDir(dockerDir); err == nil {
		for _, e := range entries {
			out = append(out, filepath.Join(dockerDir, e.Name()))
		}
	}
	sort.Strings(out)
	return withPrefix(out, toComplete), cobra.ShellCompDirectiveNoFileComp
}
