//go:build linux

package main

import (
	"bytes"
	"testing"
	"time"
)

// TestProgressIntervalFlag: --progress-interval reaches the tracer (its
// bad values are in TestBadInputIsUsageError).
func TestProgressIntervalFlag(t *testing.T) {
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
