package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/test/harness"
)

// Time limits of the harness's waits.
const (
	childReadyTimeout  = 30 * time.Second  // server, load generator
	tracerReadyTimeout = 120 * time.Second // BPF load and verification, socket listing
	tracerStopTimeout  = 180 * time.Second // SIGINT to exit (drain, summaries, flush)
)

// bench is one run of the harness.
type bench struct {
	opts     *options
	configs  []config
	net      *benchNet
	exe      string // this program, re-executed for the load
	tcpscope string // absolute path
	dir      string // output files
	seq      int    // measurements so far (server port offset)
	softirqd []int  // ksoftirqd pids
}

// Result is one measurement: one configuration in one round.
type Result struct {
	Mode   string   `json:"mode"`
	Config string   `json:"config"`
	Kind   string   `json:"kind"`
	Round  int      `json:"round"`
	Seq    int      `json:"seq"` // position in the round
	Argv   []string `json:"argv,omitempty"`
	Port   int      `json:"port"`

	// Load. Storm: Conns completed, Errors failed attempts. Bulk: Bytes
	// sent (and all received before the sender's clock stopped).
	Conns        int64            `json:"conns,omitempty"`
	Errors       int64            `json:"errors"`
	ErrorSamples map[string]int64 `json:"error_samples,omitempty"`
	TimedOut     bool             `json:"timed_out,omitempty"`
	Stuck        bool             `json:"stuck,omitempty"`
	Bytes        int64            `json:"bytes,omitempty"`
	ElapsedNS    int64            `json:"elapsed_ns"` // the load generator's own clock
	// Rate is connections/s (storm) or bytes/s (bulk); Ratio the rate over
	// the no-tracer rate of the same round.
	Rate  float64 `json:"rate"`
	Ratio float64 `json:"ratio"`

	LoadCPU *cpuUse       `json:"load_cpu,omitempty"` // the storm generator's own CPU
	Server  *serverResult `json:"server,omitempty"`
	// HostBusyNS is the host's busy CPU time over the load window (all
	// CPUs, /proc/stat, sampled at each timer tick), SoftirqNS the part
	// of it in softirq, HostNS all CPUs' time over the window,
	// KsoftirqdNS the ksoftirqd threads' CPU over the window (softirq
	// work deferred to them: mostly the load's own packets, in bulk).
	// OthersNS is busy time less the load generator, the server
	// (whole-life CPU), the tracer (window CPU) and ksoftirqd; softirq
	// run in their context is part of their CPU, so what is left is
	// other workloads and kworkers, give or take the tick sampling. A
	// high OthersNS makes the round suspect.
	HostBusyNS      int64  `json:"host_busy_ns"`
	SoftirqNS       int64  `json:"softirq_ns"`
	HostNS          int64  `json:"host_ns"`
	KsoftirqdNS     int64  `json:"ksoftirqd_ns"`
	OthersNS        int64  `json:"others_ns"`
	LeftoverSockets int    `json:"leftover_sockets"` // still listed after ss -K, before the run
	Loadavg         string `json:"loadavg"`          // /proc/loadavg before the run

	Tracer *TracerResult `json:"tracer,omitempty"`
}

// TracerResult is what one tracer run cost and wrote.
type TracerResult struct {
	PID       int   `json:"pid"`
	StartupNS int64 `json:"startup_ns"` // exec to ready
	// WindowNS is the load window as the harness saw it: from "go" to
	// the load generator's result line.
	WindowNS    int64   `json:"window_ns"`
	CPUWindowNS int64   `json:"cpu_window_ns"` // tracer CPU in the window (/proc/PID/stat)
	CPUPercent  float64 `json:"cpu_percent"`   // CPUWindowNS / WindowNS, % of one core
	CPUSettleNS int64   `json:"cpu_settle_ns"` // from "go" to the end of the settle time
	CPUWorkNS   int64   `json:"cpu_work_ns"`   // from "go" to exit: the load's records, drain, stop
	CPULifeNS   int64   `json:"cpu_life_ns"`   // whole life, user + system (wait4 rusage)
	CPUUserNS   int64   `json:"cpu_user_ns"`   // whole life, user
	CPUSysNS    int64   `json:"cpu_sys_ns"`    // whole life, system
	VmHWMKiB    int64   `json:"vm_hwm_kib"`    // VmHWM just before SIGINT
	MaxRSSKiB   int64   `json:"max_rss_kib"`   // wait4 ru_maxrss: peak over the whole life
	ExitStatus  string  `json:"exit_status"`   // "0", "1", "signal: killed"
	Killed      bool    `json:"killed"`        // SIGKILLed after tracerStopTimeout
	StopNS      int64   `json:"stop_ns"`       // SIGINT to exit
	Output      Output  `json:"output"`        // counts of its output file
	PerConn     float64 `json:"records_per_conn"`
	NSPerRecord float64 `json:"cpu_ns_per_record"` // CPUWorkNS / Output.Records
	// CPUWorkUserNS is the user-space part of CPUWorkNS: the tracer's own
	// work. The system part also holds write(2) of the output, and, with
	// tick-based accounting, the softirq work (the load's packets) that
	// happened to interrupt the tracer.
	CPUWorkUserNS   int64   `json:"cpu_work_user_ns"`
	UserNSPerRecord float64 `json:"user_ns_per_record"` // CPUWorkUserNS / Output.Records
	// Programs: in-kernel cost of the tracer's own BPF programs from the
	// moment before "go" to the end of the settle time.
	Programs   []ProgCost `json:"programs,omitempty"`
	StderrTail string     `json:"stderr_tail,omitempty"`
}

// run measures every configuration in every round and returns the report
// (also when interrupted: then with what was measured).
func (b *bench) run(ctx context.Context) (rep *report, err error) {
	o := b.opts
	if b.exe, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	if err := b.prepareTools(ctx); err != nil {
		return nil, err
	}
	if o.bpfStats {
		restore, err := enableBPFStats()
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	if b.dir, err = os.MkdirTemp("", "tcpscope-bench-"); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	defer func() {
		if o.keep {
			logf("output files kept in %s", b.dir)
			return
		}
		_ = os.RemoveAll(b.dir)
	}()

	if b.net, err = setupNet(ctx, o.prefix, o.portRange); err != nil {
		return nil, err
	}
	// Deferred in this order: kill what still runs, then delete the
	// namespaces.
	defer b.net.teardown()
	defer killAll()

	b.softirqd = ksoftirqdPIDs()
	rep = newReport(o, b.configs)
	total := o.rounds * len(b.configs)
	start := time.Now()
	for r := range o.rounds {
		order := rotate(b.configs, r)
		var results []*Result
		for i, c := range order {
			if err := ctx.Err(); err != nil {
				rep.finish(results)
				return rep, err
			}
			done := r*len(b.configs) + i
			eta := ""
			if done > 0 {
				left := time.Duration(float64(time.Since(start)) / float64(done) * float64(total-done))
				eta = fmt.Sprintf(", about %s left", left.Round(time.Second))
			}
			logf("round %d/%d, %d/%d: %s%s", r+1, o.rounds, i+1, len(order), c.label(), eta)
			res, err := b.measure(ctx, c, r, i)
			if err != nil {
				rep.finish(results)
				return rep, fmt.Errorf("round %d, %s: %w", r+1, c.Name, err)
			}
			results = append(results, res)
		}
		rep.finish(results)
		for _, res := range results {
			logf("  %s", res.summary(o.mode))
		}
	}
	return rep, nil
}

// summary is one progress line.
func (r *Result) summary(mode string) string {
	rate := fmt.Sprintf("%.0f conn/s, %d errors", r.Rate, r.Errors)
	if mode == "bulk" {
		rate = fmt.Sprintf("%.2f Gbit/s", r.Rate*8/1e9)
	}
	s := fmt.Sprintf("%-14s %s, ratio %.3f, others %.0f%% of the host", r.Config, rate, r.Ratio, r.othersPercent())
	if t := r.Tracer; t != nil {
		s += fmt.Sprintf(", CPU %.1f%%, %d records (%.2f/conn), %.0f ns/record, lost %d, maxrss %.0f MiB, exit %s",
			t.CPUPercent, t.Output.Records, t.PerConn, t.NSPerRecord, t.Output.Lost, float64(t.MaxRSSKiB)/1024, t.ExitStatus)
	}
	return s
}

// prepareTools finds or installs what the configurations need: the
// tcpscope binary, tcpstates (and tracefs), tcpdump, bpftool, ss.
func (b *bench) prepareTools(ctx context.Context) error {
	need := map[string]bool{}
	for _, c := range b.configs {
		need[c.Kind] = true
	}
	var pkgs []string
	want := func(cmd, pkg string) {
		if _, err := exec.LookPath(cmd); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	want("ip", "iproute2")
	want("ss", "iproute2")
	if b.opts.bpfStats {
		want("bpftool", "bpftool")
	}
	if need[kindTcpstates] {
		want("tcpstates", "libbpf-tools")
	}
	if need[kindTcpdump] {
		want("tcpdump", "tcpdump")
	}
	if len(pkgs) > 0 {
		if err := aptInstall(ctx, pkgs); err != nil {
			return err
		}
	}
	if need[kindTcpstates] {
		// libbpf attaches tcpstates' tracepoint through tracefs. A mount
		// made here is left in place (other tools may start using it).
		if err := unix.Access("/sys/kernel/tracing/events", unix.F_OK); err != nil {
			logf("mounting tracefs on /sys/kernel/tracing")
			if _, err := runCmd(ctx, "mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"); err != nil {
				return fmt.Errorf("mount tracefs for tcpstates: %w", err)
			}
		}
	}
	if need[kindTcpscope] {
		path, err := filepath.Abs(b.opts.tcpscope)
		if err != nil {
			return fmt.Errorf("tcpscope path: %w", err)
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if b.opts.tcpscope != "bin/tcpscope" {
				return fmt.Errorf("tcpscope binary %s: %w", path, err)
			}
			logf("building %s", b.opts.tcpscope)
			if _, err := harness.Run(ctx, 10*time.Minute, "go", "build", "-o", "bin/tcpscope", "./cmd/tcpscope"); err != nil {
				return fmt.Errorf("build tcpscope (run from the repository root): %w", err)
			}
		}
		b.tcpscope = path
	}
	return nil
}

// aptInstall installs Debian packages, updating the lists first if the
// first try fails.
func aptInstall(ctx context.Context, pkgs []string) error {
	logf("installing %s", strings.Join(pkgs, " "))
	args := append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	install := func() error {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, lastLines(string(out), 5))
		}
		return nil
	}
	if err := install(); err == nil {
		return nil
	}
	if _, err := runCmd(ctx, "apt-get", "update", "-q"); err != nil {
		return fmt.Errorf("install %s: %w", strings.Join(pkgs, " "), err)
	}
	if err := install(); err != nil {
		return fmt.Errorf("install %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startChild starts this program's subcommand sub inside namespace ns.
func (b *bench) startChild(name string, ns *harness.Namespace, withStdin bool, sub string, args ...string) (*proc, error) {
	argv := ns.Exec(append([]string{b.exe, sub}, args...)...)
	return startProc(name, nil, withStdin, argv...)
}

// measure runs one configuration once.
func (b *bench) measure(ctx context.Context, c config, round, seq int) (*Result, error) {
	o := b.opts
	port := o.port + b.seq%1000
	b.seq++
	res := &Result{Mode: o.mode, Config: c.Name, Kind: c.Kind, Round: round, Seq: seq, Port: port}

	// Every measurement starts from empty namespaces: TIME_WAIT sockets
	// of the previous one would be listed by tcpscope at start-up and
	// would change what connect() has to skip.
	tk := time.Now()
	left, err := b.net.killSockets(ctx)
	if err != nil {
		return nil, err
	}
	if d := time.Since(tk); d > 2*time.Second {
		logf("  destroying the previous run's sockets took %s", d.Round(time.Millisecond))
	}
	res.LeftoverSockets = left
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.Loadavg = strings.TrimSpace(string(la))
	}
	addr := b.net.serverAddr(o.family, port).String()

	// The server, in B.
	var server *proc
	if o.mode == "storm" {
		server, err = b.startChild("server", b.net.b, false, "serve", "-addr", addr, "-threads", strconv.Itoa(o.serverThreads))
	} else {
		server, err = b.startChild("receiver", b.net.b, false, "bulk-recv", "-addr", addr)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		server.Kill()
	}()
	if _, err := server.WaitLine(ctx, false, "ready", childReadyTimeout); err != nil {
		return nil, err
	}

	// The tracer.
	var tr *tracerRun
	if c.Kind != kindNone {
		if tr, err = b.startTracer(ctx, c, round); err != nil {
			return nil, err
		}
		defer tr.kill()
		res.Argv = tr.argv
		if err := sleepCtx(ctx, o.warmup); err != nil {
			return nil, err
		}
	}

	// The load, in A.
	var load *proc
	if o.mode == "storm" {
		load, err = b.startChild("storm", b.net.a, true, "storm", "-addr", addr,
			"-n", strconv.FormatInt(o.conns, 10), "-workers", strconv.Itoa(o.workers), "-timeout", o.stormTimeout.String())
	} else {
		load, err = b.startChild("sender", b.net.a, true, "bulk-send", "-addr", addr, "-duration", o.duration.String())
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		load.Kill()
	}()
	if _, err := load.WaitLine(ctx, false, "ready", childReadyTimeout); err != nil {
		return nil, err
	}
	if tr != nil {
		if err := tr.before(ctx); err != nil {
			return nil, err
		}
	}

	// The measured window: "go" to the load's result line.
	host0, err := hostCPU()
	if err != nil {
		return nil, err
	}
	ksoft0 := sumCPU(b.softirqd)
	t0 := time.Now()
	if _, err := load.stdin.Write([]byte("go\n")); err != nil {
		return nil, fmt.Errorf("start the load: %w", err)
	}
	limit := o.stormTimeout + 30*time.Second
	if o.mode == "bulk" {
		limit = o.duration + 60*time.Second
	}
	line, err := load.WaitLine(ctx, false, "{", limit)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	res.KsoftirqdNS = (sumCPU(b.softirqd) - ksoft0).Nanoseconds()
	host1, err := hostCPU()
	if err != nil {
		return nil, err
	}
	res.HostBusyNS = (host1.busy - host0.busy).Nanoseconds()
	res.SoftirqNS = (host1.softirq - host0.softirq).Nanoseconds()
	res.HostNS = (host1.total - host0.total).Nanoseconds()
	if tr != nil {
		if err := tr.windowEnd(t0, t1); err != nil {
			return nil, err
		}
	}
	if err := load.waitFor(ctx, 10*time.Second); err != nil {
		return nil, fmt.Errorf("load generator: %w\n%s", err, load.Output())
	}

	if o.mode == "storm" {
		var sr stormResult
		if err := json.Unmarshal([]byte(line), &sr); err != nil {
			return nil, fmt.Errorf("storm result %q: %w", line, err)
		}
		res.Conns, res.Errors, res.ErrorSamples = sr.Conns, sr.Errors, sr.Samples
		res.TimedOut, res.Stuck, res.ElapsedNS = sr.TimedOut, sr.Stuck, sr.ElapsedNS
		res.LoadCPU = &sr.CPU
		if sr.ElapsedNS > 0 {
			res.Rate = float64(sr.Conns) / (float64(sr.ElapsedNS) / 1e9)
		}
	} else {
		var br bulkResult
		if err := json.Unmarshal([]byte(line), &br); err != nil {
			return nil, fmt.Errorf("bulk result %q: %w", line, err)
		}
		res.Bytes, res.ElapsedNS = br.Bytes, br.ElapsedNS
		if br.ElapsedNS > 0 {
			res.Rate = float64(br.Bytes) / (float64(br.ElapsedNS) / 1e9)
		}
	}

	if tr != nil {
		if err := sleepCtx(ctx, o.settle); err != nil {
			return nil, err
		}
		if err := tr.finish(ctx, res.Conns); err != nil {
			return nil, err
		}
		res.Tracer = tr.res
	}

	// The server's counts.
	if o.mode == "storm" {
		_, _ = server.stopOrKill(ctx, syscall.SIGTERM, 10*time.Second)
		if l, err := server.WaitLine(ctx, false, "{", time.Second); err == nil {
			var sr serverResult
			if json.Unmarshal([]byte(l), &sr) == nil {
				res.Server = &sr
			}
		}
	} else if err := server.waitFor(ctx, 10*time.Second); err != nil {
		return nil, fmt.Errorf("bulk receiver: %w\n%s", err, server.Output())
	}
	res.OthersNS = res.HostBusyNS - res.KsoftirqdNS - procCPU(load) - procCPU(server)
	if res.Tracer != nil {
		res.OthersNS -= res.Tracer.CPUWindowNS
	}
	return res, nil
}

// procCPU is an exited process's whole-life CPU time (wait4 rusage).
func procCPU(p *proc) int64 {
	if p.Cmd.ProcessState == nil {
		return 0
	}
	return (p.Cmd.ProcessState.UserTime() + p.Cmd.ProcessState.SystemTime()).Nanoseconds()
}

// sleepCtx sleeps d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ------------------------------------------------------------ tracers

// tracerRun is a running tracer and what has been measured of it.
type tracerRun struct {
	b      *bench
	c      config
	p      *proc
	argv   []string
	out    string // its output file
	outF   *os.File
	ids    []uint32 // its BPF programs
	progs0 map[uint32]progInfo
	cpu0   time.Duration
	user0  time.Duration // user part of cpu0
	res    *TracerResult
}

// startTracer starts the configuration's tracer and waits until it is
// ready to see the load.
func (b *bench) startTracer(ctx context.Context, c config, round int) (*tracerRun, error) {
	tr := &tracerRun{b: b, c: c, res: &TracerResult{}}
	tr.out = filepath.Join(b.dir, fmt.Sprintf("%s-%s-r%d", b.opts.mode, c.Name, round+1))
	var err error
	switch c.Kind {
	case kindTcpscope:
		tr.out += ".jsonl"
		// Packet hooks on the client's veth (unless --events leaves packets
		// out: then -i is a usage error); socket events of every namespace
		// (tcpscope's default), so both ends of each connection.
		argv := []string{b.tcpscope, "trace"}
		if tracesPackets(c.Flags) {
			argv = append(argv, "-i", harness.VethA)
		}
		argv = append(argv, "-o", "json", "-w", tr.out)
		tr.argv = b.net.a.Exec(append(argv, c.Flags...)...)
		tr.p, err = startProc(c.Name, nil, false, tr.argv...)
	case kindTcpstates:
		tr.out += ".txt"
		// Global (all namespaces), in the harness's namespace: `ip netns
		// exec` would remount /sys without tracefs.
		if tr.outF, err = os.Create(tr.out); err != nil {
			return nil, fmt.Errorf("create tcpstates output: %w", err)
		}
		tr.argv = []string{"tcpstates"}
		tr.p, err = startProc(c.Name, tr.outF, false, tr.argv...)
	case kindTcpdump:
		tr.out += ".pcap"
		tr.argv = b.net.a.Exec("tcpdump", "-s", "128", "-B", "16384", "-Z", "root", "-w", tr.out, "-i", harness.VethA)
		tr.p, err = startProc(c.Name, nil, false, tr.argv...)
	default:
		return nil, fmt.Errorf("unknown tracer kind %q", c.Kind)
	}
	if err != nil {
		if tr.outF != nil {
			tr.outF.Close()
		}
		return nil, err
	}
	if err := tr.waitReady(ctx); err != nil {
		tr.kill()
		return nil, err
	}
	tr.res.PID = tr.p.Pid()
	tr.res.StartupNS = time.Since(tr.p.Started).Nanoseconds()
	return tr, nil
}

// tracesPackets reports whether tcpscope flags select packet events: yes
// unless the last --events value leaves "packet" out.
func tracesPackets(flags []string) bool {
	packets := true
	for i, f := range flags {
		v, ok := strings.CutPrefix(f, "--events=")
		if !ok && f == "--events" && i+1 < len(flags) {
			v, ok = flags[i+1], true
		}
		if ok {
			packets = slices.Contains(strings.Split(v, ","), "packet")
		}
		m, ok := strings.CutPrefix(f, "--packets=")
		if !ok && f == "--packets" && i+1 < len(flags) {
			m, ok = flags[i+1], true
		}
		if ok && m == "none" {
			packets = false
		}
	}
	return packets
}

// waitReady waits until the tracer sees events: tcpscope logs "tracing
// started" after attaching; tcpdump prints "listening on"; tcpstates says
// nothing on stderr and buffers its header, so it is ready once it holds
// its attach link and its perf buffer's epoll fd (made after attaching),
// plus 100 ms.
func (tr *tracerRun) waitReady(ctx context.Context) error {
	switch tr.c.Kind {
	case kindTcpscope:
		_, err := tr.p.WaitLine(ctx, true, `msg="tracing started"`, tracerReadyTimeout)
		return err
	case kindTcpdump:
		_, err := tr.p.WaitLine(ctx, true, "listening on "+harness.VethA, tracerReadyTimeout)
		return err
	}
	deadline := time.Now().Add(tracerReadyTimeout)
	for time.Now().Before(deadline) {
		if tr.p.Exited() {
			return fmt.Errorf("tcpstates exited (%v)\n%s", tr.p.Wait(ctx), tr.p.Output())
		}
		k := fdKinds(tr.p.Pid())
		if k["anon_inode:[eventpoll]"] > 0 && (k["anon_inode:bpf_link"] > 0 || k["anon_inode:[perf_event]"] > runtime.NumCPU()) {
			return sleepCtx(ctx, 100*time.Millisecond)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("tcpstates not ready within %s\n%s", tracerReadyTimeout, tr.p.Output())
}

// before records the tracer's BPF programs and their counters, and its
// CPU time, just before "go".
func (tr *tracerRun) before(ctx context.Context) error {
	if tr.b.opts.bpfStats {
		var err error
		if tr.ids, err = bpfProgIDs(tr.p.Pid()); err != nil {
			return err
		}
		if len(tr.ids) > 0 {
			if tr.progs0, err = bpftoolProgs(ctx); err != nil {
				return err
			}
		}
	}
	cpu, err := cpuTimes(tr.p.Pid())
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", tr.c.Name, err, tr.p.Output())
	}
	tr.cpu0, tr.user0 = cpu.user+cpu.sys, cpu.user
	return nil
}

// windowEnd records the tracer's CPU over the load window.
func (tr *tracerRun) windowEnd(t0, t1 time.Time) error {
	cpu, err := cpuTime(tr.p.Pid())
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", tr.c.Name, err, tr.p.Output())
	}
	tr.res.WindowNS = t1.Sub(t0).Nanoseconds()
	tr.res.CPUWindowNS = (cpu - tr.cpu0).Nanoseconds()
	tr.res.CPUPercent = 100 * float64(tr.res.CPUWindowNS) / float64(tr.res.WindowNS)
	return nil
}

// finish reads the in-kernel counters and the peak RSS, stops the tracer
// with SIGINT and counts its output.
func (tr *tracerRun) finish(ctx context.Context, conns int64) error {
	res := tr.res
	pid := tr.p.Pid()
	if len(tr.ids) > 0 {
		progs1, err := bpftoolProgs(ctx)
		if err != nil {
			return err
		}
		res.Programs = progDeltas(tr.ids, tr.progs0, progs1, conns)
	}
	if cpu, err := cpuTime(pid); err == nil {
		res.CPUSettleNS = (cpu - tr.cpu0).Nanoseconds()
	}
	if hwm, err := statusKiB(pid, "VmHWM"); err == nil {
		res.VmHWMKiB = hwm
	}
	stopped, killed := tr.p.stopOrKill(ctx, os.Interrupt, tracerStopTimeout)
	if tr.outF != nil {
		tr.outF.Close()
	}
	res.StopNS, res.Killed = stopped.Nanoseconds(), killed
	res.ExitStatus = tr.p.ExitStatus()
	if ru, ok := tr.p.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.CPUUserNS = time.Duration(ru.Utime.Nano()).Nanoseconds()
		res.CPUSysNS = time.Duration(ru.Stime.Nano()).Nanoseconds()
		res.CPULifeNS = res.CPUUserNS + res.CPUSysNS
		res.MaxRSSKiB = ru.Maxrss
	}
	res.CPUWorkNS = res.CPULifeNS - tr.cpu0.Nanoseconds()
	res.CPUWorkUserNS = res.CPUUserNS - tr.user0.Nanoseconds()
	if res.ExitStatus != "0" {
		res.StderrTail = lastLines(tr.p.Stderr.String(), 20)
		logf("%s exited with %s:\n%s", tr.c.Name, res.ExitStatus, res.StderrTail)
	}

	ours := map[uint64]bool{tr.b.net.a.Inode: true, tr.b.net.b.Inode: true}
	out, err := countOutput(tr.c.Kind, tr.out, ours, benchAddrPrefixes)
	if err != nil {
		return fmt.Errorf("count %s output: %w", tr.c.Name, err)
	}
	if tr.c.Kind != kindTcpscope {
		out.Lost = lostFromStderr(tr.c.Kind, tr.p.Stderr.String())
	}
	res.Output = out
	if conns > 0 {
		res.PerConn = float64(out.Records) / float64(conns)
	}
	if out.Records > 0 {
		res.NSPerRecord = float64(res.CPUWorkNS) / float64(out.Records)
		res.UserNSPerRecord = float64(res.CPUWorkUserNS) / float64(out.Records)
	}
	if !tr.b.opts.keep {
		_ = os.Remove(tr.out)
	}
	return nil
}

// kill ends the tracer if it still runs (on errors).
func (tr *tracerRun) kill() {
	if tr.p != nil {
		tr.p.Kill()
	}
	if tr.outF != nil {
		tr.outF.Close()
	}
}
