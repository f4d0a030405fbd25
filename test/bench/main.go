// Command bench measures what a tracer costs a host: a storm of short TCP
// connections (or one bulk transfer) between two network namespaces of
// its own, with no tracer, with tcpscope in several configurations, with
// libbpf-tools tcpstates and with tcpdump, in alternating rounds. It
// reports the load's rate as a ratio of the no-tracer rate of the same
// round, the tracer's CPU, records, losses and peak RSS, and the in-kernel
// cost of each BPF program (kernel.bpf_stats_enabled), as markdown on
// stdout and raw JSON (-json). See test/bench/README.md.
//
// Run as root from the repository root:
//
//	go run ./test/bench -json storm.json
//	go run ./test/bench -mode bulk -json bulk.json
//
// The harness re-executes itself inside `ip netns exec` for the server and
// the load generator (subcommands serve, storm, bulk-recv, bulk-send).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve", "storm", "bulk-recv", "bulk-send":
			os.Exit(childMain(os.Args[1], os.Args[2:]))
		}
	}
	// The first Ctrl-C cancels the run; the harness then kills what it
	// started, deletes its namespaces and restores the sysctl.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Tracer kinds.
const (
	kindNone      = "none"
	kindTcpscope  = "tcpscope"
	kindTcpstates = "tcpstates"
	kindTcpdump   = "tcpdump"
)

// config is one configuration measured in every round.
type config struct {
	Name  string   `json:"name"`
	Kind  string   `json:"kind"`
	Flags []string `json:"flags,omitempty"` // extra tcpscope flags
}

// label is how tables show the configuration.
func (c config) label() string {
	switch c.Kind {
	case kindTcpscope:
		if len(c.Flags) == 0 {
			return "tcpscope (" + c.Name + ")"
		}
		return "tcpscope " + strings.Join(c.Flags, " ") + " (" + c.Name + ")"
	case kindTcpstates:
		return "libbpf-tools tcpstates"
	case kindTcpdump:
		return "tcpdump -s 128 -B 16384 -w"
	}
	return "no tracer"
}

// defaultTcpscope is the tcpscope set measured unless -config is given.
// Every tcpscope run gets `trace -i veth-a -o json -w FILE` first.
var defaultTcpscope = []config{
	{Name: "default", Kind: kindTcpscope},
	{Name: "packets-all", Kind: kindTcpscope, Flags: []string{"--packets", "all"}},
	{Name: "analysis-off", Kind: kindTcpscope, Flags: []string{"--analysis=off"}},
	{Name: "sockets-only", Kind: kindTcpscope, Flags: []string{"--events", "state,retransmit,reset", "--analysis=off"}},
	{Name: "summary-only", Kind: kindTcpscope, Flags: []string{"--summary-only"}},
	{Name: "packets-none", Kind: kindTcpscope, Flags: []string{"--packets", "none"}},
}

// configFlag collects repeated -config NAME=FLAGS.
type configFlag []config

func (c *configFlag) String() string { return fmt.Sprint(*c) }

func (c *configFlag) Set(v string) error {
	name, flags, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("want NAME=FLAGS, got %q", v)
	}
	switch name {
	case kindNone, kindTcpstates, kindTcpdump:
		return fmt.Errorf("name %q is reserved", name)
	}
	for _, have := range *c {
		if have.Name == name {
			return fmt.Errorf("configuration %q given twice", name)
		}
	}
	args, err := splitArgs(flags)
	if err != nil {
		return fmt.Errorf("flags of %s: %w", name, err)
	}
	*c = append(*c, config{Name: name, Kind: kindTcpscope, Flags: args})
	return nil
}

// splitArgs splits a flag string at blanks, with '...' and "..." quoting
// (no escapes).
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// options are the harness's flags.
type options struct {
	mode          string
	rounds        int
	conns         int64
	workers       int
	stormTimeout  time.Duration
	duration      time.Duration
	tcpscope      string
	configs       configFlag
	only          string
	jsonPath      string
	mdPath        string
	settle        time.Duration
	warmup        time.Duration
	family        int
	keep          bool
	bpfStats      bool
	serverThreads int
	port          int
	portRange     string
	prefix        string
	goBench       bool
	timeLimit     time.Duration
	argv          []string
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{argv: append([]string{"go run ./test/bench"}, args...)}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "storm", "storm (short connections), bulk (one connection) or all (storm, then bulk, one report)")
	fs.BoolVar(&o.goBench, "go-bench", false, "also run the Go pipeline benchmarks (go test -bench, records/s per core and allocations per record) and report them")
	fs.DurationVar(&o.timeLimit, "time-limit", 0, "stop after this long (0: no limit) and report the rounds done; the exit status is then 1")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each measures every configuration once, in rotated order")
	fs.Int64Var(&o.conns, "n", 100000, "storm: connections per storm")
	fs.IntVar(&o.workers, "workers", 4, "storm: concurrent connections (load generator goroutines)")
	fs.DurationVar(&o.stormTimeout, "storm-timeout", 60*time.Second, "storm: time limit of one storm (the rate counts what was done)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "bulk: how long the sender sends")
	fs.StringVar(&o.tcpscope, "tcpscope", "bin/tcpscope", "tcpscope binary (built with `go build -o bin/tcpscope ./cmd/tcpscope` if missing)")
	fs.Var(&o.configs, "config", "tcpscope configuration NAME=FLAGS, repeatable; replaces the default tcpscope set (default, packets-all, analysis-off, sockets-only, summary-only, packets-none)")
	fs.StringVar(&o.only, "only", "", "comma-separated configuration names to measure (none is always measured)")
	fs.StringVar(&o.jsonPath, "json", "", "write raw results as JSON to FILE")
	fs.StringVar(&o.mdPath, "md", "", "also write the markdown report to FILE")
	fs.DurationVar(&o.settle, "settle", 500*time.Millisecond, "wait after the load before reading the in-kernel counters and stopping the tracer")
	fs.DurationVar(&o.warmup, "warmup", 300*time.Millisecond, "wait after the tracer is ready before the load starts")
	fs.IntVar(&o.family, "family", 4, "address family of the load: 4 or 6")
	fs.BoolVar(&o.keep, "keep", false, "keep the tracers' output files (their directory is printed)")
	fs.BoolVar(&o.bpfStats, "bpf-stats", true, "enable kernel.bpf_stats_enabled for the run and report in-kernel cost per program")
	fs.IntVar(&o.serverThreads, "server-threads", 8, "storm: server goroutines blocking in accept()")
	fs.IntVar(&o.port, "port", 20000, "first server port (each measurement uses the next)")
	fs.StringVar(&o.portRange, "port-range", "1024 65535", "net.ipv4.ip_local_port_range of the client namespace (a narrow one tests TIME_WAIT reuse with small storms)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.mode != "storm" && o.mode != "bulk" && o.mode != "all":
		return nil, fmt.Errorf("bad -mode %q: want storm, bulk or all", o.mode)
	case o.timeLimit < 0:
		return nil, fmt.Errorf("bad -time-limit %s: want 0 or more", o.timeLimit)
	case o.rounds < 1 || o.rounds > 100:
		return nil, fmt.Errorf("bad -rounds %d: want 1 to 100", o.rounds)
	case o.conns < 1:
		return nil, fmt.Errorf("bad -n %d: want at least 1", o.conns)
	case o.workers < 1 || o.workers > 1024:
		return nil, fmt.Errorf("bad -workers %d: want 1 to 1024", o.workers)
	case o.stormTimeout < time.Second:
		return nil, fmt.Errorf("bad -storm-timeout %s: want at least 1s", o.stormTimeout)
	case o.duration < 100*time.Millisecond || o.duration > 10*time.Minute:
		return nil, fmt.Errorf("bad -duration %s: want 100ms to 10m", o.duration)
	case o.family != 4 && o.family != 6:
		return nil, fmt.Errorf("bad -family %d: want 4 or 6", o.family)
	case o.serverThreads < 1 || o.serverThreads > 1024:
		return nil, fmt.Errorf("bad -server-threads %d: want 1 to 1024", o.serverThreads)
	case o.port < 1024 || o.port > 60000:
		return nil, fmt.Errorf("bad -port %d: want 1024 to 60000", o.port)
	case !validPortRange(o.portRange):
		return nil, fmt.Errorf("bad -port-range %q: want two ports, LOW HIGH", o.portRange)
	case o.settle < 0 || o.warmup < 0:
		return nil, errors.New("bad -settle or -warmup: want 0 or more")
	}
	var err error
	if o.prefix, err = netnsPrefix(); err != nil {
		return nil, err
	}
	return o, nil
}

// validPortRange checks "LOW HIGH" with 1024 <= LOW < HIGH <= 65535.
func validPortRange(s string) bool {
	f := strings.Fields(s)
	if len(f) != 2 {
		return false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	return err1 == nil && err2 == nil && lo >= 1024 && lo < hi && hi <= 65535
}

// selectedConfigs is the list measured in round 0's order.
func (o *options) selectedConfigs() ([]config, error) {
	tcpscope := []config(o.configs)
	if len(tcpscope) == 0 {
		tcpscope = defaultTcpscope
	}
	all := []config{{Name: kindNone, Kind: kindNone}}
	all = append(all, tcpscope...)
	all = append(all, config{Name: kindTcpstates, Kind: kindTcpstates}, config{Name: kindTcpdump, Kind: kindTcpdump})
	if o.only == "" {
		return all, nil
	}
	want := map[string]bool{kindNone: true}
	for _, n := range strings.Split(o.only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []config
	for _, c := range all {
		if want[c.Name] {
			out = append(out, c)
			delete(want, c.Name)
		}
	}
	delete(want, kindNone)
	if len(want) > 0 {
		var names []string
		for n := range want {
			names = append(names, n)
		}
		return nil, fmt.Errorf("bad -only: no configuration named %s", strings.Join(names, ", "))
	}
	return out, nil
}

// rotate returns the configurations in round r's order: round 0 is A B C,
// round 1 B C A, and so on.
func rotate(cs []config, r int) []config {
	out := make([]config, len(cs))
	for i := range cs {
		out[i] = cs[(i+r)%len(cs)]
	}
	return out
}

// logf prints progress to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run is the harness; it returns the exit code (2 for bad usage).
// modeConfigs returns the configurations measured in mode: in bulk, not
// --summary-only (one connection, one record: the cost of the packet mode
// it runs in, measured beside it), unless it is all there is.
func modeConfigs(mode string, configs []config) []config {
	if mode != "bulk" {
		return configs
	}
	var kept []config
	for _, c := range configs {
		if !slices.Contains(c.Flags, "--summary-only") {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return configs
	}
	return kept
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	configs, err := o.selectedConfigs()
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "bench: must run as root (network namespaces, BPF, tcpdump)")
		return 2
	}
	parent := ctx
	if o.timeLimit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeLimit)
		defer cancel()
	}
	modes := []string{o.mode}
	if o.mode == "all" {
		modes = []string{"storm", "bulk"}
	}
	var reps []*report
	if o.goBench {
		var gb *goBenchReport
		gb, err = runGoBench(ctx)
		if gb != nil {
			reps = append(reps, &report{GoBench: gb})
		}
	}
	for _, mode := range modes {
		if err != nil {
			break
		}
		mo := *o
		mo.mode = mode
		b := &bench{opts: &mo, configs: modeConfigs(mode, configs)}
		var rep *report
		rep, err = b.run(ctx)
		if rep != nil {
			reps = append(reps, rep)
		}
	}
	if len(reps) > 0 {
		if werr := writeReports(stdout, o, reps); werr != nil {
			fmt.Fprintf(stderr, "bench: %v\n", werr)
			if err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		if parent.Err() == nil && ctx.Err() != nil {
			err = fmt.Errorf("stopped at -time-limit %s (the report has the rounds done): %w", o.timeLimit, err)
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		if parent.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}
