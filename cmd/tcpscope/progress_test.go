//go:build linux

package main

import (
	"bytes"
	"testing"
	"time"
)

// TestProgressIntervalFlag: --progress-interval reaches the tracer; a
// negative, unparsable or too short value, or one with --analysis off
// (progress records are summaries), is a usage error (exit 2) before
// anything loads.
func TestProgressIntervalFlag(t *testing.T) {
	for name, args := range map[string][]string{
		"negative":     {"--progress-interval", "-5s"},
		"garbage":      {"--progress-interval", "often"},
		"no unit":      {"--progress-interval", "30"},
		"too short":    {"--progress-interval", "10ms"},
		"analysis off": {"--progress-interval", "30s", "--analysis", "off"},
	} {
		t.Run(name, func(t *testing.T) {
			stdout, _, err := execute(args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if code := exitCode(err); code != exitUsage {
				t.Errorf("exit status %d, want %d (err: %v)", code, exitUsage, err)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
	for _, c := range []struct {
		args []string
		want time.Duration
	}{{nil, 0}, {[]string{"--progress-interval", "0"}, 0}, {[]string{"--progress-interval", "1m30s"}, 90 * time.Second}} {
		a := &app{stderr: &bytes.Buffer{}}
		opts := &traceOptions{}
		cmd := newTraceCmdWith(a, opts)
		if err := cmd.Flags().Parse(c.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := opts.buildConfig(cmd.Flags(), a.log())
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if cfg.ProgressInterval != c.want {
			t.Errorf("%v: progress interval %v, want %v", c.args, cfg.ProgressInterval, c.want)
		}
	}
}
