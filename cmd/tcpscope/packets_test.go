//go:build linux

package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
)

// TestPacketsBadInput: a bad --packets value, and --packets none with what
// contradicts it (a packet event named in --events, an interface), fail
// before anything is loaded with exit status 2 and a message that says
// what is wrong.
func TestPacketsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown mode":           {[]string{"--packets", "some"}, "want all, control or none"},
		"packet conns zero":      {[]string{"--packets", "control", "--max-packet-conns", "0"}, "bad --max-packet-conns 0"},
		"packet conns small":     {[]string{"--packets", "control", "--max-packet-conns", "10"}, "bad --max-packet-conns 10"},
		"packet conns huge":      {[]string{"--packets", "control", "--max-packet-conns", "1000000000"}, "bad --max-packet-conns"},
		"packet conns text":      {[]string{"--packets", "control", "--max-packet-conns", "many"}, "max-packet-conns"},
		"empty mode":             {[]string{"--packets", ""}, "empty value"},
		"events packet":          {[]string{"--packets", "none", "--events", "packet"}, "contradicts --packets none"},
		"events packets in list": {[]string{"--packets", "none", "--events", "state,packets"}, "contradicts --packets none"},
		"every event by name":    {[]string{"--packets", "none", "--events", "packet,state,retransmit,reset"}, "contradicts --packets none"},
		"interface":              {[]string{"--packets", "none", "-i", "lo"}, "--interface contradicts --packets none"},
	} {
		_, _, err := execute(tc.args...)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if code := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit status %d, want %d (err: %v)", name, code, exitUsage, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: message %q, want it to say %q", name, err, tc.want)
		}
		cleanMessage(t, name, err.Error())
	}
}

// TestPacketsConfig: --packets reaches the tracer's configuration; with
// none, the default and "all" event selections mean every event type but
// packets; the default, with or without --summary-only, is control.
func TestPacketsConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		args       []string
		mode       tracer.PacketMode
		wantPacket bool
	}{
		"default":           {nil, tracer.PacketsControl, true},
		"all":               {[]string{"--packets", "all"}, tracer.PacketsAll, true},
		"none":              {[]string{"--packets", "none"}, tracer.PacketsNone, false},
		"none events all":   {[]string{"--packets", "none", "--events", "all"}, tracer.PacketsNone, false},
		"none events state": {[]string{"--packets", "none", "--events", "state"}, tracer.PacketsNone, false},
		"control":           {[]string{"--packets", "control"}, tracer.PacketsControl, true},
		"summary only":      {[]string{"--summary-only"}, tracer.PacketsControl, true},
		"summary only all":  {[]string{"--summary-only", "--packets", "all"}, tracer.PacketsAll, true},
		"summary only none": {[]string{"--summary-only", "--packets", "none"}, tracer.PacketsNone, false},
	} {
		cfg := configFrom(t, name, tc.args, false)
		if cfg.Packets != tc.mode || cfg.Events.Has(tracer.TypePacket) != tc.wantPacket || !cfg.Events.Has(tracer.TypeState) {
			t.Errorf("%s: packets %q events %s, want %q with packet events %v and state events", name, cfg.Packets, cfg.Events, tc.mode, tc.wantPacket)
		}
	}
}

// TestPacketsCompletion: --packets completes its values.
func TestPacketsCompletion(t *testing.T) {
	got := complete(t, "--packets", "")
	if !slices.Equal(got, []string{"all", "control", "none"}) {
		t.Errorf("completion %q, want all, control and none", got)
	}
}

// TestPacketsControlConfig: --packets control selects the counts records
// with the packets, and --max-packet-conns reaches the configuration
// (default when not given).
func TestPacketsControlConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want int
	}{
		"default": {[]string{"--packets", "control"}, tracer.DefaultMaxPacketConns},
		"given":   {[]string{"--packets", "control", "--max-packet-conns", "4096"}, 4096},
	} {
		cfg := configFrom(t, name, tc.args, true)
		if cfg.MaxPacketConns != tc.want || !cfg.Events.Has(tracer.TypeCounts) {
			t.Errorf("%s: max packet conns %d, counts selected %v; want %d and true", name, cfg.MaxPacketConns, cfg.Events.Has(tracer.TypeCounts), tc.want)
		}
	}
}

// TestQueueSizeConfig: --queue-size, in records, reaches the
// configuration as whole batches of 256 (the default when not given).
func TestQueueSizeConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want int
	}{
		"default": {nil, tracer.DefaultQueueRecords / 256},
		"batch":   {[]string{"--queue-size", "256"}, 1},
		"rounded": {[]string{"--queue-size", "16385"}, 65},
	} {
		cfg := configFrom(t, name, tc.args, false)
		if cfg.QueueBatches != tc.want {
			t.Errorf("%s: %d batches, want %d", name, cfg.QueueBatches, tc.want)
		}
	}
}

// configFrom parses args as `tcpscope trace` flags and builds the
// configuration (validated too when validate), failing the test on error.
func configFrom(t *testing.T, name string, args []string, validate bool) tracer.Config {
	t.Helper()
	opts := &traceOptions{}
	cmd := newTraceCmdWith(nil, opts)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cfg, err := opts.buildConfig(cmd.Flags(), slog.Default())
	if err == nil && validate {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cfg
}
