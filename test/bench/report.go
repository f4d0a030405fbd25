package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// report is everything measured, as written to -json.
type report struct {
	Meta    meta      `json:"meta"`
	Configs []config  `json:"configs"`
	Results []*Result `json:"results"`
	// GoBench, in a report of its own, holds the Go pipeline benchmarks.
	GoBench *goBenchReport `json:"go_bench,omitempty"`
}

// meta describes the run.
type meta struct {
	Date            string `json:"date"`
	Kernel          string `json:"kernel"`
	CPUs            int    `json:"cpus"`
	CPUModel        string `json:"cpu_model,omitempty"`
	Command         string `json:"command"`
	Mode            string `json:"mode"`
	Rounds          int    `json:"rounds"`
	Conns           int64  `json:"conns_per_storm,omitempty"`
	Workers         int    `json:"workers,omitempty"`
	Duration        string `json:"bulk_duration,omitempty"`
	Family          int    `json:"family"`
	Settle          string `json:"settle"`
	Warmup          string `json:"warmup"`
	BPFStats        bool   `json:"bpf_stats"`
	Tcpscope        string `json:"tcpscope,omitempty"`
	TcpscopeVersion string `json:"tcpscope_version,omitempty"`
	GitCommit       string `json:"git_commit,omitempty"`
	Loadavg         string `json:"loadavg_at_start,omitempty"`
}

func newReport(o *options, configs []config) *report {
	m := meta{
		Date:     time.Now().UTC().Format(time.RFC3339),
		CPUs:     runtime.NumCPU(),
		Command:  shellJoin(o.argv),
		Mode:     o.mode,
		Rounds:   o.rounds,
		Family:   o.family,
		Settle:   o.settle.String(),
		Warmup:   o.warmup.String(),
		BPFStats: o.bpfStats,
	}
	if o.mode == "storm" {
		m.Conns, m.Workers = o.conns, o.workers
	} else {
		m.Duration = o.duration.String()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Loadavg = strings.TrimSpace(string(la))
	}
	for _, c := range configs {
		if c.Kind == kindTcpscope {
			m.Tcpscope = o.tcpscope
			if out, err := exec.Command(o.tcpscope, "version").Output(); err == nil {
				m.TcpscopeVersion = strings.TrimSpace(string(out))
			}
			break
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
	}
	return &report{Meta: m, Configs: configs}
}

// shellJoin quotes args for a copyable command line.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\;&|<>*?()") && i > 0 {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// finish adds one round's results, with each rate's ratio to the
// no-tracer rate of the same round.
func (r *report) finish(results []*Result) {
	var none float64
	for _, res := range results {
		if res.Kind == kindNone {
			none = res.Rate
		}
	}
	for _, res := range results {
		if none > 0 {
			res.Ratio = res.Rate / none
		}
	}
	r.Results = append(r.Results, results...)
}

// stat is the median and range of one figure over rounds.
type stat struct {
	med, min, max float64
	n             int
}

func summarize(vals []float64) stat {
	if len(vals) == 0 {
		return stat{}
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

// format prints "median [min–max]" with prec decimals (just the value for
// one round).
func (s stat) format(prec int) string {
	if s.n == 0 {
		return "–"
	}
	if s.n == 1 || s.min == s.max {
		return fmt.Sprintf("%.*f", prec, s.med)
	}
	return fmt.Sprintf("%.*f [%.*f–%.*f]", prec, s.med, prec, s.min, prec, s.max)
}

// byConfig returns the results of configuration name, in round order.
func (r *report) byConfig(name string) []*Result {
	var out []*Result
	for _, res := range r.Results {
		if res.Config == name {
			out = append(out, res)
		}
	}
	return out
}

// collect applies f to every result with a tracer (or every result when
// all is set).
func collect(rs []*Result, all bool, f func(*Result) float64) stat {
	var v []float64
	for _, r := range rs {
		if r.Tracer != nil || all {
			v = append(v, f(r))
		}
	}
	return summarize(v)
}

// units is what in-kernel runs are counted per: storm connections, or
// MiB sent in bulk.
func units(res *Result) float64 {
	if res.Mode == "bulk" {
		return float64(res.Bytes) / (1 << 20)
	}
	return float64(res.Conns)
}

// othersPercent is OthersNS as a percentage of the host's CPU time over
// the window.
func (r *Result) othersPercent() float64 {
	if r.HostNS <= 0 {
		return 0
	}
	return 100 * float64(r.OthersNS) / float64(r.HostNS)
}

// markdown renders the report.
func (r *report) markdown() string {
	var b strings.Builder
	m := r.Meta
	storm := m.Mode == "storm"
	if storm {
		fmt.Fprintf(&b, "## Connection storm\n\n")
	} else {
		fmt.Fprintf(&b, "## Bulk transfer\n\n")
	}
	fmt.Fprintf(&b, "- date: %s; kernel %s; %d CPUs (%s)\n", m.Date, m.Kernel, m.CPUs, m.CPUModel)
	fmt.Fprintf(&b, "- command: `%s`", m.Command)
	if m.GitCommit != "" {
		fmt.Fprintf(&b, " (checkout at %s", m.GitCommit)
		if m.TcpscopeVersion != "" {
			fmt.Fprintf(&b, ", %s", strings.ReplaceAll(m.TcpscopeVersion, "\n", "; "))
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	fam := "IPv4"
	if m.Family == 6 {
		fam = "IPv6"
	}
	if storm {
		fmt.Fprintf(&b, "- each run: %d short connections (%s, %d workers; connect, 64 B request, 64 B reply, client closes first) from namespace A to a server in namespace B over a veth pair; tracers run in A (packet hooks on A's veth)\n", m.Conns, fam, m.Workers)
	} else {
		fmt.Fprintf(&b, "- each run: one %s connection from A to B sending 256 KiB writes for %s over a veth pair; tracers run in A (packet hooks on A's veth)\n", fam, m.Duration)
	}
	fmt.Fprintf(&b, "- %d rounds, configurations rotated each round; each cell is the median [min–max] over rounds; `vs none` is the ratio to the no-tracer run of the same round\n", m.Rounds)
	others := collect(r.Results, true, func(res *Result) float64 { return res.othersPercent() })
	fmt.Fprintf(&b, "- load average at start: %s; CPU used by other workloads during the load windows (host busy time less load generator, server, tracer and ksoftirqd; approximate): %s %% of the host\n\n", m.Loadavg, others.format(1))

	if storm {
		b.WriteString("| configuration | conn/s | vs none | errors | tracer CPU, % of one core | tracer CPU s, storm to exit | tracer CPU s, whole life | records/conn | CPU ns/record | user CPU ns/record | CPU µs/conn | lost | peak RSS MiB | exit |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	} else {
		b.WriteString("| configuration | Gbit/s | vs none | tracer CPU, % of one core | tracer CPU s, transfer to exit | tracer CPU s, whole life | records | CPU ns/record | lost | peak RSS MiB | exit |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	}
	for _, c := range r.Configs {
		rs := r.byConfig(c.Name)
		if len(rs) == 0 {
			continue
		}
		var errs int64
		exits := map[string]bool{}
		for _, res := range rs {
			errs += res.Errors
			if res.Tracer != nil {
				exits[res.Tracer.ExitStatus] = true
			}
		}
		exit := "–"
		if len(exits) > 0 {
			var e []string
			for k := range exits {
				e = append(e, k)
			}
			sort.Strings(e)
			exit = strings.Join(e, ", ")
		}
		t := func(f func(*TracerResult) float64) stat {
			return collect(rs, false, func(res *Result) float64 { return f(res.Tracer) })
		}
		cpuPct := t(func(x *TracerResult) float64 { return x.CPUPercent })
		work := t(func(x *TracerResult) float64 { return float64(x.CPUWorkNS) / 1e9 })
		life := t(func(x *TracerResult) float64 { return float64(x.CPULifeNS) / 1e9 })
		perConn := t(func(x *TracerResult) float64 { return x.PerConn })
		records := t(func(x *TracerResult) float64 { return float64(x.Output.Records) })
		// Below 1000 records, CPU per record is the fixed cost of the run
		// (settle, stop) spread thin: not shown.
		nsRec := t(func(x *TracerResult) float64 { return x.NSPerRecord })
		userRec := t(func(x *TracerResult) float64 { return x.UserNSPerRecord })
		if records.med < 1000 {
			nsRec, userRec = stat{}, stat{}
		}
		lost := t(func(x *TracerResult) float64 { return float64(x.Output.Lost) })
		rss := t(func(x *TracerResult) float64 { return float64(x.MaxRSSKiB) / 1024 })
		ratio := collect(rs, true, func(res *Result) float64 { return res.Ratio })
		if storm {
			rate := collect(rs, true, func(res *Result) float64 { return res.Rate })
			usConn := collect(rs, false, func(res *Result) float64 {
				if res.Conns == 0 {
					return 0
				}
				return float64(res.Tracer.CPUWorkNS) / 1e3 / float64(res.Conns)
			})
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.label(),
				rate.format(0), ratio.format(2), errs, cpuPct.format(1), work.format(2), life.format(2),
				perConn.format(2), nsRec.format(0), userRec.format(0), usConn.format(1), lost.format(0), rss.format(0), exit)
		} else {
			rate := collect(rs, true, func(res *Result) float64 { return res.Rate * 8 / 1e9 })
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.label(),
				rate.format(2), ratio.format(2), cpuPct.format(1), work.format(2), life.format(2),
				records.format(0), nsRec.format(0), lost.format(0), rss.format(0), exit)
		}
	}

	// tcpscope records per connection by type.
	if storm {
		var lines []string
		for _, c := range r.Configs {
			if c.Kind != kindTcpscope {
				continue
			}
			rs := r.byConfig(c.Name)
			types := map[string]bool{}
			for _, res := range rs {
				if res.Tracer != nil {
					for k := range res.Tracer.Output.ByType {
						types[k] = true
					}
				}
			}
			var names []string
			for k := range types {
				names = append(names, k)
			}
			sort.Strings(names)
			var parts []string
			for _, k := range names {
				s := collect(rs, false, func(res *Result) float64 {
					if res.Conns == 0 {
						return 0
					}
					return float64(res.Tracer.Output.ByType[k]) / float64(res.Conns)
				})
				parts = append(parts, fmt.Sprintf("%s %.2f", k, s.med))
			}
			if len(parts) > 0 {
				lines = append(lines, fmt.Sprintf("- %s: %s", c.label(), strings.Join(parts, ", ")))
			}
		}
		if len(lines) > 0 {
			b.WriteString("\ntcpscope records per connection by type (medians):\n\n")
			b.WriteString(strings.Join(lines, "\n"))
			b.WriteString("\n")
		}
	}

	// In-kernel cost per program.
	unit := "conn"
	if !storm {
		unit = "MiB"
	}
	var prog strings.Builder
	for _, c := range r.Configs {
		rs := r.byConfig(c.Name)
		names := map[string]string{}
		for _, res := range rs {
			if res.Tracer != nil {
				for _, p := range res.Tracer.Programs {
					names[p.Name] = p.Type
				}
			}
		}
		if len(names) == 0 {
			continue
		}
		var sorted []string
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		find := func(res *Result, name string) (ProgCost, bool) {
			if res.Tracer == nil {
				return ProgCost{}, false
			}
			for _, p := range res.Tracer.Programs {
				if p.Name == name {
					return p, true
				}
			}
			return ProgCost{}, false
		}
		per := func(res *Result, v float64) float64 {
			if u := units(res); u > 0 {
				return v / u
			}
			return 0
		}
		for _, n := range sorted {
			var runs, nsRun, nsUnit []float64
			for _, res := range rs {
				if p, ok := find(res, n); ok {
					runs = append(runs, per(res, float64(p.RunCnt)))
					nsUnit = append(nsUnit, per(res, float64(p.RunTimeNS)))
					if p.RunCnt > 0 {
						nsRun = append(nsRun, p.NSPerRun)
					}
				}
			}
			fmt.Fprintf(&prog, "| %s | %s | %s | %s | %s | %s |\n", c.label(), n, names[n],
				summarize(runs).format(2), summarize(nsRun).format(0), summarize(nsUnit).format(0))
		}
		var total []float64
		for _, res := range rs {
			if res.Tracer == nil {
				continue
			}
			var sum uint64
			for _, p := range res.Tracer.Programs {
				sum += p.RunTimeNS
			}
			total = append(total, per(res, float64(sum)))
		}
		fmt.Fprintf(&prog, "| %s | **all** | | | | **%s** |\n", c.label(), summarize(total).format(0))
	}
	if prog.Len() > 0 {
		fmt.Fprintf(&b, "\nIn-kernel cost of each tracer's own BPF programs (kernel.bpf_stats_enabled; run_cnt and run_time_ns deltas from just before the load to the end of the settle time):\n\n")
		fmt.Fprintf(&b, "| configuration | program | type | runs/%s | ns/run | ns/%s |\n|---|---|---|---|---|---|\n", unit, unit)
		b.WriteString(prog.String())
	}

	// Anything that makes a figure suspect.
	var notes []string
	for _, res := range r.Results {
		where := fmt.Sprintf("round %d, %s", res.Round+1, res.Config)
		if res.TimedOut || res.Stuck {
			notes = append(notes, fmt.Sprintf("%s: the time limit ended the storm after %d connections (stuck: %v)", where, res.Conns, res.Stuck))
		}
		if res.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d failed connections %v", where, res.Errors, res.ErrorSamples))
		}
		if res.LeftoverSockets > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d sockets were left in the namespaces before the run", where, res.LeftoverSockets))
		}
		if t := res.Tracer; t != nil {
			if t.ExitStatus != "0" {
				notes = append(notes, fmt.Sprintf("%s: tracer exit %s (killed: %v)", where, t.ExitStatus, t.Killed))
			}
			if t.Output.Foreign > 0 {
				notes = append(notes, fmt.Sprintf("%s: %d records of other workloads (other namespaces or addresses; not counted)", where, t.Output.Foreign))
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// write prints the markdown and writes the files asked for.
// writeReports writes the reports (the Go benchmarks, then one per mode)
// as one markdown document to stdout and -md, and as JSON to -json: one
// object for one report, an array for more.
func writeReports(stdout io.Writer, o *options, reps []*report) error {
	var md strings.Builder
	for i, r := range reps {
		if i > 0 {
			md.WriteString("\n")
		}
		if r.GoBench != nil {
			md.WriteString(r.GoBench.markdown())
		} else {
			md.WriteString(r.markdown())
		}
	}
	if _, err := io.WriteString(stdout, md.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if o.mdPath != "" {
		if err := os.WriteFile(o.mdPath, []byte(md.String()), 0o644); err != nil {
			return fmt.Errorf("write -md file: %w", err)
		}
	}
	if o.jsonPath != "" {
		var v any = reps
		if len(reps) == 1 {
			v = reps[0]
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode results: %w", err)
		}
		if err := os.WriteFile(o.jsonPath, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write -json file: %w", err)
		}
	}
	return nil
}
