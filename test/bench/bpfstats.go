package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// bpfStatsSysctl enables run_time_ns and run_cnt accounting of every BPF
// program (global; it costs a clock read per program run while on).
const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// enableBPFStats turns the accounting on and returns a function that puts
// the old value back.
func enableBPFStats() (restore func(), err error) {
	old, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bpfStatsSysctl, err)
	}
	if err := os.WriteFile(bpfStatsSysctl, []byte("1\n"), 0o644); err != nil {
		return nil, fmt.Errorf("enable kernel.bpf_stats_enabled: %w", err)
	}
	return func() {
		if err := os.WriteFile(bpfStatsSysctl, old, 0o644); err != nil {
			logf("restore kernel.bpf_stats_enabled to %s: %v", strings.TrimSpace(string(old)), err)
		}
	}, nil
}

// progInfo is one program of `bpftool prog show -j`.
type progInfo struct {
	ID        uint32 `json:"id"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	RunTimeNS uint64 `json:"run_time_ns"` // absent (0) until it has run with stats on
	RunCnt    uint64 `json:"run_cnt"`
}

// bpftoolProgs lists every loaded program with its counters.
func bpftoolProgs(ctx context.Context) (map[uint32]progInfo, error) {
	out, err := runCmd(ctx, "bpftool", "prog", "show", "-j")
	if err != nil {
		return nil, err
	}
	return parseBpftoolProgs(out)
}

func parseBpftoolProgs(out []byte) (map[uint32]progInfo, error) {
	var list []progInfo
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("parse bpftool prog show -j: %w", err)
	}
	m := make(map[uint32]progInfo, len(list))
	for _, p := range list {
		m[p.ID] = p
	}
	return m, nil
}

// ProgCost is the in-kernel cost of one of a tracer's programs over a
// measurement window (programs of the same name summed).
type ProgCost struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	IDs         []uint32 `json:"ids"`
	RunCnt      uint64   `json:"run_cnt"`     // delta over the window
	RunTimeNS   uint64   `json:"run_time_ns"` // delta over the window
	NSPerRun    float64  `json:"ns_per_run"`
	RunsPerConn float64  `json:"runs_per_conn"` // per completed storm connection (0 in bulk)
}

// progDeltas computes the per-name deltas of the programs ids between two
// bpftool snapshots. A program missing from either snapshot is skipped.
func progDeltas(ids []uint32, before, after map[uint32]progInfo, conns int64) []ProgCost {
	byName := map[string]*ProgCost{}
	for _, id := range ids {
		b, ok1 := before[id]
		a, ok2 := after[id]
		if !ok1 || !ok2 {
			continue
		}
		name := a.Name
		if name == "" {
			name = fmt.Sprintf("id%d", id)
		}
		c := byName[name]
		if c == nil {
			c = &ProgCost{Name: name, Type: a.Type}
			byName[name] = c
		}
		c.IDs = append(c.IDs, id)
		c.RunCnt += a.RunCnt - b.RunCnt
		c.RunTimeNS += a.RunTimeNS - b.RunTimeNS
	}
	out := make([]ProgCost, 0, len(byName))
	for _, c := range byName {
		if c.RunCnt > 0 {
			c.NSPerRun = float64(c.RunTimeNS) / float64(c.RunCnt)
		}
		if conns > 0 {
			c.RunsPerConn = float64(c.RunCnt) / float64(conns)
		}
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
