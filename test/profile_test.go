package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestCPUProfile: --cpu-profile and --mem-profile write profiles of a run
// stopped with SIGINT that go tool pprof reads, and the CPU profile holds
// tcpscope's own functions.
func TestCPUProfile(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "profile", 177)
	tp := vethTopology(v, false)
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")

	tracer := startTracer(ctx, t, v.A, "-i", harness.VethA, "--cpu-profile", cpu, "--mem-profile", mem)
	runScenario(ctx, t, tp, &scenarios[0])
	time.Sleep(settle)
	stopTracer(ctx, t, tracer)

	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	for _, c := range []struct{ file, want string }{
		// Loading and attaching the programs always takes samples.
		{cpu, "github.com/cilium/ebpf"},
		// Allocations since the start: the tracer's set-up allocates.
		{mem, "github.com/tcpscope/tcpscope/tracer"},
	} {
		st, err := os.Stat(c.file)
		if err != nil {
			t.Fatalf("profile not written: %v", err)
		}
		if st.Size() == 0 {
			t.Fatalf("%s is empty", c.file)
		}
		args := []string{"tool", "pprof", "-top", "-cum", "-nodecount=100000", "-nodefraction=0", "-edgefraction=0"}
		if c.file == mem {
			args = append(args, "-sample_index=alloc_space")
		}
		out, err := exec.CommandContext(ctx, gobin, append(args, bins.Tcpscope, c.file)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool pprof %s: %v\n%s", c.file, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("go tool pprof %s: no %s function:\n%s", filepath.Base(c.file), c.want, out)
		}
	}
}
