//go:build linux

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func execute(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	cmd, _ := newRootCmd(&out, &errb)
	cmd.SetArgs(args)
	// Cancelled: input that validation wrongly accepts must not trace on
	// (these tests run as root under make test); it fails fast instead.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// TestBadInputIsUsageError: every bad input fails before anything is
// loaded, with exit status 2 and a message that fits on one line.
func TestBadInputIsUsageError(t *testing.T) {
	cases := map[string][]string{
		"port out of range":  {"--port", "70000"},
		"port zero":          {"trace", "--port", "0"},
		"port not a number":  {"--port", "http"},
		"bad cidr":           {"--host", "10.0.0.0/33"},
		"bad host":           {"--host", "example.com"},
		"unknown format":     {"-o", "xml"},
		"unknown event":      {"--events", "packet,bogus"},
		"ring not pow2":      {"--ring-size", "3M"},
		"ring garbage":       {"--ring-size", "lots"},
		"unknown interface":  {"-i", "nosuchif0"},
		"unknown netns":      {"--netns", "tcpscope-no-such-netns"},
		"netns not a ns":     {"--netns", "/etc/hostname"},
		"netns not network":  {"--netns", "/proc/self/ns/mnt", "--events", "state"},
		"negative count":     {"-c", "-1"},
		"unknown flag":       {"--frobnicate"},
		"stray argument":     {"trace", "eth0"},
		"unknown subcommand": {"bogus"},
		"flush too fast":     {"--flush-interval", "1us"},
		"interface w/o pkts": {"--events", "state", "-i", "lo"},
		"bad analysis":       {"--analysis", "maybe"},
		"summary w/o anal.":  {"--analysis", "off", "--summary-only"},
		"idle too short":     {"--idle-timeout", "10ms"},
		"bad tc mode":        {"--tc-mode", "xdp"},
		// Empty values never widen what is traced (a script's unset $PORT).
		"empty interface":   {"-i", ""},
		"empty interface 2": {"-i", "lo", "-i", ""},
		"empty port":        {"--port", ""},
		"empty port item":   {"--port", "80,"},
		"empty host":        {"--host", ""},
		"empty netns":       {"--netns", ""},
		"empty output":      {"-o", ""},
		"empty write":       {"-w", ""},
		"empty events":      {"--events", ""},
		"empty tc mode":     {"--tc-mode", ""},
		"empty ring size":   {"--ring-size", ""},
		"empty analysis":    {"--analysis", ""},
		"empty log format":  {"--log-format", ""},
		"bad log format":    {"--log-format", "xml"},
		// Documented ranges hold for an explicit 0 too.
		"flush zero":       {"--flush-interval", "0s"},
		"max-conns zero":   {"--max-conns", "0"},
		"max-sockets zero": {"--max-sockets", "0"},
		"queue zero":       {"--queue-size", "0"},
		"queue too small":  {"--queue-size", "255"},
		"queue too large":  {"--queue-size", "99999999999"},
		"queue garbage":    {"--queue-size", "lots"},
		"host with zone":   {"--host", "fe80::1%lo"},
		"iface slash":      {"-i", "a/b"},
		"iface space":      {"-i", "a b"},
		// Progress records are summaries: they need the analysis.
		"progress negative":     {"--progress-interval", "-5s"},
		"progress garbage":      {"--progress-interval", "often"},
		"progress no unit":      {"--progress-interval", "30"},
		"progress too short":    {"--progress-interval", "10ms"},
		"progress analysis off": {"--progress-interval", "30s", "--analysis", "off"},
		"iface too long":        {"-i", "sixteen-chars-if"},
		"version -o xml":        {"version", "-o", "xml"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			stdout, _, err := execute(args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if code := exitCode(err); code != exitUsage {
				t.Errorf("exit status %d, want %d (err: %v)", code, exitUsage, err)
			}
			if msg := strings.TrimSpace(err.Error()); msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("message %q is not one line", msg)
			}
			if stdout != "" {
				t.Errorf("stdout carries data only, got %q", stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	stdout, _, err := execute("version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout, "tcpscope ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("version output %q", stdout)
	}
}

// TestRootRunsTrace: plain tcpscope takes every trace flag.
func TestRootRunsTrace(t *testing.T) {
	root, _ := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	trace, _, err := root.Find([]string{"trace"})
	if err != nil {
		t.Fatal(err)
	}
	trace.Flags().VisitAll(func(f *pflag.Flag) {
		if root.Flags().Lookup(f.Name) == nil {
			t.Errorf("root lacks trace flag --%s", f.Name)
		}
	})
	if root.RunE == nil {
		t.Error("root has no RunE")
	}
}

func TestOutputFormatDefault(t *testing.T) {
	o := &traceOptions{}
	if f, err := o.outputFormat(&bytes.Buffer{}); err != nil || f != "json" {
		t.Errorf("non-terminal default %q, %v; want json", f, err)
	}
	o.output = "text"
	if f, _ := o.outputFormat(&bytes.Buffer{}); f != "text" {
		t.Errorf("-o text gave %q", f)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("load:\n  verifier\tsaid no\n"); got != "load: verifier said no" {
		t.Errorf("oneLine = %q", got)
	}
}

// TestIdleTimeoutReachesTracer: --idle-timeout goes to the tracer too (the
// correlator keeps an idle connection's id at least that long), not only
// to the analysis: above 30 min the two would disagree and one connection
// could get two summaries.
func TestIdleTimeoutReachesTracer(t *testing.T) {
	a := &app{stderr: &bytes.Buffer{}}
	opts := &traceOptions{}
	cmd := newTraceCmdWith(a, opts)
	if err := cmd.Flags().Parse([]string{"--idle-timeout", "2h"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := opts.buildConfig(cmd.Flags(), a.log())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IdleTimeout != 2*time.Hour {
		t.Errorf("tracer idle timeout %v, want 2h", cfg.IdleTimeout)
	}
}
