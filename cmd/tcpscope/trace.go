//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/tcpscope/tcpscope/output"
	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis"
)

// traceOptions holds the flags of `tcpscope trace`.
type traceOptions struct {
	interfaces    []string
	output        string
	write         string
	count         int
	ports         []string
	hosts         []string
	netns         string
	events        []string
	packets       string
	ringSize      string
	flushInterval time.Duration
	maxConns      int
	maxSockets    int
	maxPktConns   int
	tcMode        string
	analysis      string
	summaryOnly   bool
	idleTimeout   time.Duration
	progress      time.Duration
	debug         bool
	cpuProfile    string
	memProfile    string
	recordDump    string
	onOverflow    string
	queueSize     int
}

// netnsOnce is the advice when --netns is given twice: the kernel filter
// holds one namespace.
const netnsOnce = "one namespace per run: run one tcpscope per namespace, " +
	"or leave --netns out to get the socket events of every namespace"

func newTraceCmd(a *app) *cobra.Command { return newTraceCmdWith(a, &traceOptions{}) }

// newTraceCmdWith builds `tcpscope trace` with its flags bound to opts.
func newTraceCmdWith(a *app, opts *traceOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Trace TCP connections (the default command)",
		Example: "  tcpscope trace -i eth0 --port 443\n" +
			"  tcpscope trace -o json -w conns.jsonl --host 10.0.0.0/8\n" +
			"  tcpscope trace --netns myns --events state,reset",
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrace(cmd, opts, a)
		},
	}
	f := cmd.Flags()
	// String and list flags reject empty values: "" never widens what is
	// traced nor falls back to a default.
	f.VarP(newListValue(&opts.interfaces, false), "interface", "i", "capture packets on this interface (repeatable, one name each; default: every interface that is up)")
	f.VarP(newStringValue(&opts.output, "", "json", "text"), "output", "o", "output format: json or text (default: text on a terminal, json otherwise)")
	f.VarP(newStringValue(&opts.write, ""), "write", "w", "write records to FILE instead of stdout (- is stdout)")
	f.IntVarP(&opts.count, "count", "c", 0, "stop after N records (0: until interrupted)")
	f.Var(newListValue(&opts.ports, true), "port", "only connections with this port at either end (repeatable, or comma-separated)")
	f.Var(newListValue(&opts.hosts, true), "host", "only connections with this IP or CIDR at either end (repeatable, or comma-separated)")
	netns := newStringValue(&opts.netns, "")
	netns.once = netnsOnce
	f.Var(netns, "netns", "only this network namespace (name, path or inode; once); interfaces are taken from it")
	f.Var(newListValue(&opts.events, true, tracer.EventNames()...), "events", "event types to trace: "+strings.Join(tracer.EventNames(), ", ")+", all")
	f.Var(newStringValue(&opts.packets, string(tracer.PacketsControl), tracer.PacketModes()...), "packets",
		"which packets to report: all (every TCP packet on the interfaces), control (SYN, FIN, RST and suspicious packets: retransmitted or out of order, duplicate ACK, zero window, SACK; the rest only counted per connection in the kernel, exact in the summaries), or none (socket events only: no interface is hooked; summaries keep the kernel's byte and segment counts)")
	f.Var(newStringValue(&opts.ringSize, "8M"), "ring-size", "BPF ring buffer size (power of two; K, M, G suffixes)")
	f.DurationVar(&opts.flushInterval, "flush-interval", tracer.DefaultFlushInterval, "how often queued events are read and output is flushed (1ms to 10s)")
	f.IntVar(&opts.maxConns, "max-conns", tracer.DefaultMaxConns, "connections tracked for conn ids and analyzed; beyond it the least recently seen are forgotten (summarized with evicted: true)")
	f.IntVar(&opts.maxSockets, "max-sockets", tracer.DefaultMaxSockets, "sockets whose owning process the kernel remembers (LRU)")
	f.IntVar(&opts.maxPktConns, "max-packet-conns", tracer.DefaultMaxPacketConns, fmt.Sprintf("--packets control: connections whose packets the kernel counts at once (%d to %d); when full, packets are reported in full instead, with a warning", tracer.MinPacketConns, tracer.MaxPacketConns))
	f.Var(newStringValue(&opts.tcMode, string(tracer.TCAuto), string(tracer.TCAuto), string(tracer.TCX), string(tracer.TCClsact)), "tc-mode", "how packet hooks attach: auto (TCX on Linux >= 6.6, else clsact), tcx or clsact")
	f.Var(newStringValue(&opts.analysis, "on", "on", "off"), "analysis", "per-packet analysis and conn summaries: on, or off for the lowest overhead")
	f.BoolVar(&opts.summaryOnly, "summary-only", false, "print only one conn record per connection (and lost records)")
	f.DurationVar(&opts.idleTimeout, "idle-timeout", analysis.DefaultIdleTimeout, "summarize (as evicted) connections idle this long")
	f.DurationVar(&opts.progress, "progress-interval", 0, "every DURATION, a conn record with \"progress\": true for each connection still open: its summary so far, with the kernel's counts in --packets control (0: off; at least 1s; needs --analysis on)")
	f.Var(newStringValue(&opts.onOverflow, string(tracer.OverflowDrop), string(tracer.OverflowDrop), string(tracer.OverflowBlock)), "on-overflow", "when output falls behind: drop (count and report what is dropped, in lost records with \"where\":\"queue\") or block (the kernel's ring fills and drops instead)")
	f.IntVar(&opts.queueSize, "queue-size", tracer.DefaultQueueRecords, "records the queue after the ring buffer holds while analysis or output falls behind (rounded up to batches of 256; memory is taken as the backlog needs it, 32 KiB a batch)")
	f.BoolVar(&opts.debug, "debug", false, "debug logging, with the full verifier log if a program is rejected")
	f.Var(newStringValue(&opts.cpuProfile, ""), "cpu-profile", "debug: write a CPU profile of the whole run to FILE (go tool pprof)")
	f.Var(newStringValue(&opts.memProfile, ""), "mem-profile", "debug: write a heap profile (allocations of the run, live memory at its end) to FILE at exit")
	f.Var(newStringValue(&opts.recordDump, ""), "record-dump", "debug: write every raw kernel record read to FILE, for replay (make bench-replay) or a bug report")
	return cmd
}

// buildConfig turns flags into a tracer configuration. Every error is a
// usage error; nothing is loaded yet.
func (o *traceOptions) buildConfig(flags *pflag.FlagSet, logger *slog.Logger) (tracer.Config, error) {
	cfg := tracer.Config{
		Interfaces:     o.interfaces,
		FlushInterval:  o.flushInterval,
		MaxConns:       o.maxConns,
		MaxSockets:     o.maxSockets,
		MaxPacketConns: o.maxPktConns,
		Logger:         logger,
		Debug:          o.debug,
	}
	if o.count < 0 {
		return cfg, usageError{fmt.Errorf("bad --count %d: want 0 or more", o.count)}
	}
	// The tracer reads 0 as "the default"; given on the command line, 0
	// is out of range like any other value.
	for name, check := range map[string]func() error{
		"flush-interval":   func() error { return tracer.CheckFlushInterval(o.flushInterval) },
		"max-conns":        func() error { return tracer.CheckMaxConns(o.maxConns) },
		"max-sockets":      func() error { return tracer.CheckMaxSockets(o.maxSockets) },
		"max-packet-conns": func() error { return tracer.CheckMaxPacketConns(o.maxPktConns) },
	} {
		if flags.Changed(name) {
			if err := check(); err != nil {
				return cfg, err
			}
		}
	}
	for _, p := range o.ports {
		port, err := tracer.ParsePort(p)
		if err != nil {
			return cfg, err
		}
		cfg.Ports = append(cfg.Ports, port)
	}
	for _, h := range o.hosts {
		prefix, err := tracer.ParseHost(h)
		if err != nil {
			return cfg, err
		}
		cfg.Hosts = append(cfg.Hosts, prefix)
	}
	events, err := tracer.ParseEvents(o.events)
	if err != nil {
		return cfg, err
	}
	cfg.Events = events
	if cfg.Packets, err = tracer.ParsePacketMode(o.packets); err != nil {
		return cfg, err
	}
	// "--events all" (and the default) means every event type of the
	// packet mode; a packet event named explicitly with --packets none is
	// a contradiction.
	if cfg.Packets == tracer.PacketsNone && flags.Changed("events") {
		for _, item := range o.events {
			for _, name := range strings.Split(item, ",") {
				if s, err := tracer.ParseEvents([]string{name}); err == nil && s == 1<<tracer.TypePacket {
					return cfg, &tracer.ConfigError{Msg: "--events packet contradicts --packets none (no packet is captured): drop one of them"}
				}
			}
		}
	}
	size, err := tracer.ParseSize(o.ringSize)
	if err != nil {
		return cfg, usageError{fmt.Errorf("bad --ring-size %s: want a power of two such as 8M, at most 1G", tracer.QuoteArg(o.ringSize))}
	}
	cfg.RingSize = size
	switch {
	case o.analysis != "on" && o.analysis != "off":
		return cfg, usageError{fmt.Errorf("bad --analysis %s: want on or off", tracer.QuoteArg(o.analysis))}
	case o.analysis == "off" && o.summaryOnly:
		return cfg, usageError{errors.New("--summary-only needs --analysis on")}
	case o.idleTimeout < time.Second:
		return cfg, usageError{fmt.Errorf("bad --idle-timeout %s: want at least 1s", o.idleTimeout)}
	}
	cfg.IdleTimeout = o.idleTimeout
	if err := tracer.CheckProgressInterval(o.progress); err != nil {
		return cfg, err
	}
	if o.progress != 0 && o.analysis == "off" {
		return cfg, usageError{errors.New("--progress-interval needs --analysis on (progress records are summaries)")}
	}
	cfg.ProgressInterval = o.progress
	if cfg.TCMode, err = tracer.ParseTCMode(o.tcMode); err != nil {
		return cfg, err
	}
	if cfg.Overflow, err = tracer.ParseOverflow(o.onOverflow); err != nil {
		return cfg, err
	}
	if cfg.QueueBatches, err = tracer.QueueBatchesFor(o.queueSize); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// outputFormat picks the format: --output, else text on a terminal.
func (o *traceOptions) outputFormat(stdout io.Writer) (output.Format, error) {
	if o.output != "" {
		f, err := output.ParseFormat(o.output)
		if err != nil {
			return "", usageError{err}
		}
		return f, nil
	}
	if o.write == "" || o.write == "-" {
		if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return output.FormatText, nil
		}
	}
	return output.FormatJSON, nil
}

func runTrace(cmd *cobra.Command, o *traceOptions, a *app) (err error) {
	stdout := a.stdout
	logger := a.log()

	cfg, err := o.buildConfig(cmd.Flags(), logger)
	if err != nil {
		return err
	}
	format, err := o.outputFormat(stdout)
	if err != nil {
		return err
	}
	if o.netns != "" {
		ns, err := tracer.OpenNetns(o.netns)
		if err != nil {
			return usageError{fmt.Errorf("bad --netns: %w", err)}
		}
		defer ns.Close()
		cfg.Netns = ns
	}

	// Check the --write file before loading anything, but truncate it only
	// once tracing has started: a typo must not clobber an old trace.
	// Only a regular file is truncated: a FIFO, /dev/null or /dev/stdout
	// (a pipe or a terminal) is written as it is. Opening a FIFO waits
	// for its reader.
	out := stdout
	var file *os.File
	outName := "stdout"
	created := false // by this run: removed again if tracing cannot start
	regular := false
	if o.write != "-" && o.write != "" {
		outName = "--write file " + tracer.QuoteArg(o.write)
		if _, err := os.Lstat(o.write); errors.Is(err, fs.ErrNotExist) {
			created = true
		}
		file, err = os.OpenFile(o.write, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return usageError{fmt.Errorf("open %s: %w", outName, pathErrno(err))}
		}
		defer file.Close()
		if st, err := file.Stat(); err == nil {
			regular = st.Mode().IsRegular()
		}
		out = file
	}

	if o.cpuProfile != "" || o.memProfile != "" {
		prof, err := startProfiles(o.cpuProfile, o.memProfile)
		if err != nil {
			return err
		}
		defer func() {
			if perr := prof.stop(); err == nil {
				err = perr
			}
		}()
	}

	if o.recordDump != "" {
		name := "--record-dump file " + tracer.QuoteArg(o.recordDump)
		dump, err := os.Create(o.recordDump)
		if err != nil {
			return usageError{fmt.Errorf("create %s: %w", name, pathErrno(err))}
		}
		defer func() {
			if cerr := dump.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("write %s: %w", name, pathErrno(cerr))
			}
		}()
		cfg.RecordDump = dump
	}

	t, err := tracer.Open(cfg)
	if err != nil {
		if created {
			_ = os.Remove(o.write)
		}
		if ce := (*tracer.ConfigError)(nil); errors.As(err, &ce) && slices.ContainsFunc(o.interfaces, func(s string) bool { return strings.Contains(s, ",") }) {
			return &tracer.ConfigError{Msg: ce.Msg + " (-i takes one name: repeat -i for several interfaces)"}
		}
		return err
	}
	defer t.Close()
	if regular {
		if err := file.Truncate(0); err != nil {
			return fmt.Errorf("truncate %s: %w", outName, pathErrno(err))
		}
	}

	// Namespace names for the output, resolved off the record path.
	names := tracer.NewNetnsNames()
	defer names.Close()
	pipeline := o.buildPipeline(output.NewWriter(out, format), names, cfg, t.TimeWaitTracked())
	err = t.Run(cmd.Context(), pipeline)
	if errors.Is(err, syscall.EPIPE) {
		// The reader of our output went away: a normal way to stop.
		err = nil
	}
	if we := (*output.WriteError)(nil); errors.As(err, &we) {
		err = fmt.Errorf("write %s: %w", outName, we.Err)
	}
	if cerr := t.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// buildPipeline wires the stages that consume records, in data order:
// analysis (conn summaries), the --count limit, namespace names, then
// the output writer. The tracer's own stages (TIME_WAIT, correlation,
// ordering) come before them inside Run.
func (o *traceOptions) buildPipeline(out tracer.Sink, names *tracer.NetnsNames, cfg tracer.Config, timeWaitTracked bool) *tracer.Pipeline {
	var stages []func(next tracer.Sink) tracer.Sink
	if o.analysis == "on" {
		stages = append(stages, func(next tracer.Sink) tracer.Sink {
			return analyzerStage{analysis.New(next, analysis.Config{SummaryOnly: o.summaryOnly, MaxConns: cfg.MaxConns,
				IdleTimeout: o.idleTimeout, KernelRetransmits: cfg.Events.Has(tracer.TypeRetransmit),
				ResetEvents:     cfg.Events.Has(tracer.TypeReset),
				TimeWaitTracked: timeWaitTracked, Events: cfg.Events,
				PacketsCounted: cfg.Packets == tracer.PacketsControl})}
		})
	}
	if o.count > 0 {
		stages = append(stages, func(next tracer.Sink) tracer.Sink { return &countingSink{Sink: next, left: o.count} })
	}
	stages = append(stages, func(next tracer.Sink) tracer.Sink { return &tracer.NetnsNamer{Next: next, Names: names} })
	return tracer.BuildPipeline(out, stages...)
}

// analyzerStage ends the analysis at the end of the stream: the
// summaries of the connections still open, marked incomplete.
type analyzerStage struct{ *analysis.Analyzer }

// End writes the remaining summaries.
func (s analyzerStage) End() error { return s.Finish() }

// pathErrno strips the file name from an *fs.PathError (the caller names
// the file, escaped).
func pathErrno(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// countingSink stops tracing after a number of records.
type countingSink struct {
	tracer.Sink
	left int
}

func (s *countingSink) Write(r *tracer.Record) error {
	if s.left <= 0 {
		return tracer.ErrStop
	}
	if err := s.Sink.Write(r); err != nil {
		return err
	}
	s.left--
	if s.left == 0 {
		return tracer.ErrStop
	}
	return nil
}
