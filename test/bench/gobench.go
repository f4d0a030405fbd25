package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// goBenchArgs are the Go benchmarks of the record path: raw ring record to
// a JSON line (BenchmarkPipeline, one core), a storm of short connections
// through the stages without JSON (BenchmarkStorm, also memory per closed
// connection) and the JSON formatter alone.
var goBenchArgs = []string{"test", "-run", "^$", "-bench", "^(BenchmarkPipeline|BenchmarkStorm|BenchmarkAppendJSONPacket)$",
	"-benchmem", "-cpu", "1", "-count", "3", "-benchtime", "100000x", "./tracer/", "./output/"}

// goBenchReport is what runGoBench measured.
type goBenchReport struct {
	Command string         `json:"command"`
	Results []goBenchEntry `json:"results"`
}

// goBenchEntry is one line of `go test -bench` output: the benchmark, its
// iterations and its metrics by unit (ns/op, records/s, allocs/op, ...).
type goBenchEntry struct {
	Name    string             `json:"name"`
	N       int64              `json:"n"`
	Metrics map[string]float64 `json:"metrics"`
}

// goCommand finds the go tool: on PATH, else where the Go installation of
// this machine keeps it.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// runGoBench runs the Go pipeline benchmarks in the current directory (the
// repository's root).
func runGoBench(ctx context.Context) (*goBenchReport, error) {
	logf("Go pipeline benchmarks: go %s", strings.Join(goBenchArgs, " "))
	cmd := exec.CommandContext(ctx, goCommand(), goBenchArgs...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go test -bench: %w\n%s", err, out.String())
	}
	logf("Go pipeline benchmarks took %s", time.Since(start).Round(time.Second))
	return &goBenchReport{Command: "go " + strings.Join(goBenchArgs, " "), Results: parseGoBench(out.Bytes())}, nil
}

// parseGoBench reads the benchmark lines of `go test -bench` output:
// "BenchmarkX[-P] N value unit value unit ...".
func parseGoBench(out []byte) []goBenchEntry {
	var res []goBenchEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		e := goBenchEntry{Name: f[0], N: n, Metrics: map[string]float64{}}
		if i := strings.LastIndexByte(e.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(e.Name[i+1:]); err == nil {
				e.Name = e.Name[:i] // the GOMAXPROCS suffix
			}
		}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			e.Metrics[f[i+1]] = v
		}
		if ok {
			res = append(res, e)
		}
	}
	return res
}

// markdown is the Go benchmarks' section: per benchmark and unit, the
// median and range over the runs (-count).
func (g *goBenchReport) markdown() string {
	var b strings.Builder
	b.WriteString("## Go pipeline benchmarks\n\n")
	fmt.Fprintf(&b, "- command: `%s` (one core; each cell the median [min–max] of the runs)\n\n", g.Command)
	b.WriteString("| benchmark | metric | value |\n|---|---|---|\n")
	var names []string
	byName := map[string][]goBenchEntry{}
	for _, e := range g.Results {
		if byName[e.Name] == nil {
			names = append(names, e.Name)
		}
		byName[e.Name] = append(byName[e.Name], e)
	}
	for _, n := range names {
		units := map[string][]float64{}
		var order []string
		for _, e := range byName[n] {
			for u, v := range e.Metrics {
				if units[u] == nil {
					order = append(order, u)
				}
				units[u] = append(units[u], v)
			}
		}
		sort.Strings(order)
		for _, u := range order {
			vs := units[u]
			sort.Float64s(vs)
			fmt.Fprintf(&b, "| %s | %s | %s [%s–%s] |\n", n, u, fmtMetric(vs[len(vs)/2]), fmtMetric(vs[0]), fmtMetric(vs[len(vs)-1]))
		}
	}
	return b.String()
}

// fmtMetric prints a benchmark value: integers as such, others with
// three significant digits.
func fmtMetric(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
