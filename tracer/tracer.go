//go:build linux

// Package tracer loads the tcpscope BPF programs, attaches them to TCP
// tracepoints and to TC on network interfaces, reads the ring buffer and
// turns kernel events into correlated Records.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Tracer owns the loaded BPF objects and their links.
type Tracer struct {
	cfg         Config
	log         *slog.Logger
	coll        *ebpf.Collection
	links       []link.Link
	tcLinks     []io.Closer
	tcMode      TCMode
	nl          *netlink.Handle // netlink in the interfaces' namespace
	ifw         *ifWatch        // logs traced interfaces that go away (ifwatch.go)
	reader      ringReader
	drops       dropCounters // the kernel's per-kind drop counters
	queue       *batchQueue  // from the ring reader goroutine (Run)
	dec         decoder
	corr        *correlator
	tw          *twTracker
	snapshot    []Record      // preexisting sockets, emitted first by Run
	filter      *recordFilter // for records the kernel did not filter
	netns       *Netns
	ifaces      []iface
	unavailable []string
	// timeWaitAttached: the three timer programs are attached.
	timeWaitAttached bool
	lostSeen         [tcpscopeEventKindEVENT_KIND_MAX]uint64
	queueLostSeen    [tcpscopeEventKindEVENT_KIND_MAX]uint64
	// lostTotal: records lost in the ring or the queue so far.
	lostTotal   uint64
	dead        deadSockets // the sweep of connections whose end was lost (deadsockets.go)
	malformed   uint64
	evictedSeen uint64
	// overflowSeen: packets reported in full because the count map was
	// full (--packets control), as of the last warning.
	overflowSeen uint64
	lossWarn     lossWarnings // rate limit of the loss warnings (reportLost)
	finishing    bool         // the last reportLost: warn what is left
	dump         *recordDump  // Config.RecordDump, written by Run
	closed       bool
	counts       countsState // count map sweep, progress ticks (sweep.go)
}

// Open validates cfg, loads the BPF programs and attaches them. On error
// nothing stays loaded or attached.
func Open(cfg Config) (_ *Tracer, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Tracer{cfg: cfg, log: cfg.Logger, netns: cfg.Netns, filter: newRecordFilter(&cfg)}
	t.dead.list = t.listLiveSockets
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if t.netns == nil {
		if t.netns, err = OwnNetns(); err != nil {
			return nil, err
		}
	}
	if cfg.Events.Has(TypePacket) {
		if t.ifaces, err = resolveInterfaces(t.netns, cfg.Interfaces); err != nil {
			return nil, err
		}
	} else if len(cfg.Interfaces) > 0 {
		return nil, &ConfigError{Msg: "--interface given but packet events are not selected (--events)"}
	}

	if err := checkPrivileges(cfg.Events.Has(TypePacket)); err != nil {
		return nil, err
	}
	kinfo, err := loadKernelInfo()
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		// BPF memory is memcg-accounted on current kernels; only old ones need this.
		t.log.Debug("raise RLIMIT_MEMLOCK", "err", err)
	}
	spec, err := loadTcpscope()
	if err != nil {
		return nil, fmt.Errorf("load BPF object: %w", err)
	}
	if err := t.configure(spec, kinfo); err != nil {
		return nil, err
	}
	if cfg.Events.Has(TypePacket) {
		if t.tcMode, err = chooseTCMode(cfg.TCMode, kinfo); err != nil {
			return nil, err
		}
	}
	coll, err := t.loadCollection(spec)
	if err != nil {
		return nil, err
	}
	t.coll = coll
	if err := t.fillMaps(); err != nil {
		return nil, err
	}
	t.dec = decoder{clock: newMonoClock(), ifaces: map[uint32]ifaceInfo{}, reasons: kinfo.resetReasons,
		inferReasons: !kinfo.resetReason}
	for _, ifc := range t.ifaces {
		t.dec.ifaces[uint32(ifc.index)] = ifaceInfo{name: ifc.name, netns: t.netns.Inode}
	}
	t.corr = newCorrelator(cfg.MaxConns)
	if cfg.IdleTimeout > 0 {
		t.corr.setIdleTimeout(cfg.IdleTimeout)
	}
	t.tw = newTWTracker()
	rd, err := ringbuf.NewReader(coll.Maps[tcpscopeMapEvents])
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	t.reader, t.drops = rd, coll.Maps[tcpscopeMapDrops]
	if err := t.attach(); err != nil {
		return nil, err
	}
	if len(t.ifaces) > 0 {
		ifw, werr := startIfWatch(t.netns, t.ifaces, t.follower(), t.log)
		if werr != nil {
			t.log.Warn("deleted interfaces will not be reported", "err", werr)
		}
		t.ifw = ifw
	}
	// After attaching: a socket that changes state from now on is seen
	// either way.
	if cfg.Events&socketEvents != 0 {
		if t.snapshot, err = t.snapshotSockets(); err != nil {
			t.log.Warn("list preexisting sockets", "err", err)
		}
		t.seedOwners(t.snapshot)
	}
	t.log.Info("tracing started",
		"interfaces", ifaceNames(t.ifaces, cfg.Events),
		"tc", t.tcMode,
		"netns", t.netnsScope(),
		"events", cfg.Events.String(),
		"packets", t.packetMode(),
		"ring_size", cfg.RingSize)
	for _, f := range t.unavailable {
		t.log.Warn("feature unavailable on this kernel", "feature", f)
	}
	return t, nil
}

// packetMode names the packet mode, as --packets does; "none" when packet
// events are not traced.
func (t *Tracer) packetMode() PacketMode {
	switch {
	case !t.cfg.Events.Has(TypePacket):
		return PacketsNone
	case t.cfg.Packets == "":
		return PacketsAll
	}
	return t.cfg.Packets
}

func (t *Tracer) netnsScope() string {
	if t.cfg.Netns == nil {
		return "all"
	}
	return fmt.Sprint(t.cfg.Netns.Inode)
}

// configure sets load-time constants, sizes maps and drops programs that
// this kernel or this configuration does not need.
func (t *Tracer) configure(spec *ebpf.CollectionSpec, kinfo *kernelInfo) error {
	cfg := t.cfg
	spec.Maps[tcpscopeMapEvents].MaxEntries = uint32(cfg.RingSize)

	emit := emitMask(cfg.Events)
	var filterNetns uint32
	if cfg.Netns != nil {
		filterNetns = cfg.Netns.Inode
	}
	twTimerFn := kallsymsAddr("tw_timer_handler")
	consts := map[string]any{
		tcpscopeVarFilterNetns:        filterNetns,
		tcpscopeVarFilterPorts:        boolByte(len(cfg.Ports) > 0),
		tcpscopeVarFilterHosts:        boolByte(len(cfg.Hosts) > 0),
		tcpscopeVarEmitMask:           emit,
		tcpscopeVarWakeupBytes:        uint64(cfg.RingSize / 4),
		tcpscopeVarSendResetHasReason: boolByte(kinfo.resetReason),
		tcpscopeVarRetransmitHasErr:   boolByte(kinfo.retransmitErr),
		tcpscopeVarTwTimerFn:          twTimerFn,
		tcpscopeVarCountPackets:       boolByte(cfg.Packets == PacketsControl),
		tcpscopeVarTcNetns:            t.netns.Inode,
	}
	for name, v := range consts {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF object has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	if !kinfo.resetReason {
		t.unavailable = append(t.unavailable, "kernel reset reasons (tcp_send_reset has no reason argument: inferred from context)")
	}
	if !kinfo.socketlessResets {
		t.unavailable = append(t.unavailable, "resets sent without a full socket (refused connections, TIME_WAIT): the kernel does not report them before ~6.10")
	}

	for _, p := range tracepointPrograms {
		if cfg.Events&programNeededBy(p.program) == 0 {
			delete(spec.Programs, p.program)
			continue
		}
		if _, ok := kinfo.tracepointArgs(p.tracepoint); ok {
			continue
		}
		if p.required {
			return fmt.Errorf("kernel has no %s tracepoint: tcpscope needs Linux >= 5.12 with BTF", p.tracepoint)
		}
		delete(spec.Programs, p.program)
		t.unavailable = append(t.unavailable, p.feature)
	}
	if twTimerFn == 0 && cfg.Events.Has(TypeState) {
		for _, p := range timeWaitPrograms {
			delete(spec.Programs, p)
		}
		t.unavailable = append(t.unavailable, timeWaitFeature+": tw_timer_handler not in /proc/kallsyms")
	}
	// Programs of kinds that are not selected (packet classifiers).
	for i := range eventKinds {
		for _, p := range eventKinds[i].programs {
			if cfg.Events&programNeededBy(p) == 0 {
				delete(spec.Programs, p)
			}
		}
	}
	// Preallocated LRU maps: size the owner tables by --max-sockets, and
	// to nothing when no socket events are traced.
	owners, listeners := uint32(cfg.MaxSockets), uint32(max(cfg.MaxSockets/4, 1024))
	if cfg.Events&socketEvents == 0 {
		owners, listeners = 1, 1
	}
	spec.Maps[tcpscopeMapOwners].MaxEntries = owners
	spec.Maps[tcpscopeMapListeners].MaxEntries = listeners
	// Not preallocated: entries are made as connections are counted.
	spec.Maps[tcpscopeMapConnCounts].MaxEntries = 1
	if cfg.Packets == PacketsControl {
		spec.Maps[tcpscopeMapConnCounts].MaxEntries = uint32(cfg.MaxPacketConns)
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// loadCollection loads the BPF objects. When the verifier rejects an
// optional program (a kernel this tracer was not tested on), that program
// is dropped, its feature reported unavailable, and loading retried; only
// a required program's rejection is an error.
func (t *Tracer) loadCollection(spec *ebpf.CollectionSpec) (*ebpf.Collection, error) {
	for {
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
		if err == nil {
			return coll, nil
		}
		var ve *ebpf.VerifierError
		name := failedProgram(err)
		drop, feature := t.optionalProgram(name)
		if !errors.As(err, &ve) || len(drop) == 0 {
			return nil, t.loadError(err)
		}
		if t.cfg.Debug {
			t.log.Debug("verifier log", "program", name, "log", fmt.Sprintf("%+v", ve))
		}
		t.log.Warn("kernel verifier rejected an optional program: dropped", "program", name, "err", ve.Error())
		for _, p := range drop {
			delete(spec.Programs, p)
		}
		t.unavailable = append(t.unavailable, feature)
		if name == tcpscopeProgTcIngress || name == tcpscopeProgTcEgress || name == tcpscopeProgTcLoEgress {
			t.cfg.Events &^= 1 << TypePacket
			t.ifaces = nil
		}
	}
}

// failedProgram names the program a collection load error is about
// (cilium/ebpf reports "program NAME: ...").
func failedProgram(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "program "); i >= 0 {
		name, _, _ := strings.Cut(msg[i+len("program "):], ":")
		return name
	}
	return ""
}

// optionalProgram returns the programs to drop together with a rejected
// program and the feature lost, or nothing when the program is required.
func (t *Tracer) optionalProgram(name string) ([]string, string) {
	switch name {
	case tcpscopeProgTcIngress, tcpscopeProgTcEgress, tcpscopeProgTcLoEgress:
		return []string{tcpscopeProgTcIngress, tcpscopeProgTcEgress, tcpscopeProgTcLoEgress}, "packet events (classifier rejected by the verifier)"
	}
	for _, p := range tracepointPrograms {
		if p.program == name && !p.required {
			return []string{name}, p.feature + " (rejected by the verifier)"
		}
	}
	return nil, ""
}

// loadError explains why loading failed.
func (t *Tracer) loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		if t.cfg.Debug {
			t.log.Error("verifier log", "log", fmt.Sprintf("%+v", ve))
		}
		return fmt.Errorf("load BPF programs: the kernel verifier rejected a program (rerun with --debug for the full log): %w", err)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("load BPF programs: %w: tcpscope needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN", err)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("load BPF programs: %w: kernel too old (tcpscope needs Linux >= 5.12)", err)
	}
	return fmt.Errorf("load BPF programs: %w", err)
}

// ifaceSettings is the loaded collection's per-interface settings.
func (t *Tracer) ifaceSettings() bpfIfaces {
	return bpfIfaces{m: t.coll.Maps[tcpscopeMapIfaces], rawIP: t.coll.Variables[tcpscopeVarRawIpIfaces]}
}

// fillMaps writes filters and interface settings before anything attaches.
func (t *Tracer) fillMaps() error {
	one := uint8(1)
	for _, p := range t.cfg.Ports {
		if err := t.coll.Maps[tcpscopeMapPortsFilter].Put(p, one); err != nil {
			return fmt.Errorf("set port filter %d: %w", p, err)
		}
	}
	for _, h := range t.cfg.Hosts {
		p := prefix16(h) // as recordFilter compares
		key := tcpscopeHostKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
		if err := t.coll.Maps[tcpscopeMapHostsFilter].Put(key, one); err != nil {
			return fmt.Errorf("set host filter %s: %w", h, err)
		}
	}
	for _, ifc := range t.ifaces {
		if err := t.ifaceSettings().put(ifc); err != nil {
			return fmt.Errorf("configure interface %s: %w", ifc.name, err)
		}
	}
	return nil
}

func (t *Tracer) attach() error {
	timersAttached := 0
	for _, p := range tracepointPrograms {
		prog := t.coll.Programs[p.program]
		if prog == nil {
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			if p.required {
				return fmt.Errorf("attach tracepoint %s: %w", p.tracepoint, err)
			}
			t.log.Warn("attach tracepoint", "tracepoint", p.tracepoint, "err", err)
			t.unavailable = append(t.unavailable, p.feature)
			continue
		}
		t.links = append(t.links, l)
		if p.feature == timeWaitFeature {
			timersAttached++
		}
	}
	t.timeWaitAttached = timersAttached == len(timeWaitPrograms)
	if !t.cfg.Events.Has(TypePacket) {
		return nil
	}
	progs := tcPrograms{
		ingress:  t.coll.Programs[tcpscopeProgTcIngress],
		egress:   t.coll.Programs[tcpscopeProgTcEgress],
		loEgress: t.coll.Programs[tcpscopeProgTcLoEgress],
	}
	return t.netns.Do(func() error {
		// Both modes: stale clsact filters are removed first. Only the
		// route family: XFRM may be a module that is absent.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink: %w", err)
		}
		t.nl = h
		for _, ifc := range t.ifaces {
			var links []io.Closer
			var err error
			if t.tcMode == TCClsact {
				links, err = attachClsact(t.nl, progs, ifc, t.netns.Inode, t.log)
			} else {
				links, err = attachTC(t.nl, progs, ifc, t.netns.Inode, t.log)
			}
			if err != nil {
				return err
			}
			t.tcLinks = append(t.tcLinks, links...)
		}
		return nil
	})
}

// chooseTCMode resolves auto to TCX when the kernel has it, else clsact.
func chooseTCMode(want TCMode, kinfo *kernelInfo) (TCMode, error) {
	switch {
	case want == TCX && !kinfo.hasTCX:
		return "", fmt.Errorf("--tc-mode tcx: this kernel has no TCX (Linux >= 6.6); use auto or clsact")
	case want == TCAuto && kinfo.hasTCX:
		return TCX, nil
	case want == TCAuto:
		return TCClsact, nil
	}
	return want, nil
}

// Close detaches everything and frees the BPF objects. It is safe to call
// more than once.
func (t *Tracer) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	t.ifw.stop()
	var errs []error
	errs = append(errs, t.detach())
	if t.reader != nil {
		errs = append(errs, t.reader.Close())
	}
	if t.coll != nil {
		t.coll.Close()
	}
	return errors.Join(errs...)
}

// detach closes every link so that no new events are produced.
func (t *Tracer) detach() error {
	errs := []error{t.ifw.detachFollowed()}
	for _, l := range t.tcLinks {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	for _, l := range t.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	t.tcLinks, t.links = nil, nil
	if t.nl != nil {
		t.nl.Close()
		t.nl = nil
	}
	return errors.Join(errs...)
}

// Run reads the kernel's records into sink until ctx is done or the sink
// returns ErrStop. The ring is read by its own goroutine (pump), which
// hands batches of raw records to this one through a bounded queue; here
// they are decoded and go through the stages (stages.go) to sink. At the
// end Run detaches, drains the ring and the queue, ends the stages and
// the sink (End, when sink is an Ender) and flushes, so nothing the kernel
// queued is left unread. After ErrStop nothing more is written. With
// Config.RecordDump set, every raw record read is also written there.
func (t *Tracer) Run(ctx context.Context, sink Sink) error {
	if t.cfg.RecordDump == nil {
		return t.run(ctx, sink)
	}
	t.dump = newRecordDump(t.cfg.RecordDump)
	err := t.run(ctx, sink)
	if derr := t.dump.close(); derr != nil {
		err = errors.Join(err, fmt.Errorf("write record dump: %w", derr))
	}
	return err
}

func (t *Tracer) run(ctx context.Context, sink Sink) error {
	var (
		rec      Record
		interval = t.cfg.FlushInterval
		lastTick = time.Now()
		idle     bool // the last batch was read up to an empty ring
		short    bool // the timer runs a short interval (held records)
	)
	st := newStages(t.corr, t.tw, sink, reorderWindow)
	if t.queue == nil {
		t.queue = newBatchQueue(t.cfg.QueueBatches, t.cfg.Overflow)
	}
	q := t.queue
	p := newPump(t.reader, q, interval)
	go p.run()
	stopPump := func() {
		close(p.done)
		t.reader.Flush()
		<-p.exited
	}
	timer := time.NewTimer(interval)
	defer timer.Stop()

	// tick does the periodic work: clock sync, loss reports, held records,
	// table sweep, sink flush. drained: the ring was just read empty and
	// every record read before is consumed.
	tick := func(now time.Time, drained bool) error {
		lastTick = now
		t.dec.clock.sync()
		t.ifw.register(t.dec.ifaces, t.netns.Inode)
		if err := t.reportLost(sink, &rec); err != nil {
			return err
		}
		if err := st.tick(now, drained); err != nil {
			return err
		}
		if err := t.sweepTick(now, st, &rec); err != nil {
			return err
		}
		if err := t.progressTick(now, sink); err != nil {
			return err
		}
		if err := t.deadSocketsTick(now, st.out.newest, drained, idle, sink); err != nil {
			return err
		}
		// Records held for ordering go out one short interval later
		// (the timer then asks the reader for a drained pass), not a
		// whole one.
		// At most one short interval in a row: one extra wakeup per
		// interval.
		next := interval
		if short = st.held() && !short; short {
			next = min(interval, reorderWindow)
		}
		timer.Reset(next)
		t.corr.upkeep(now, settleTime(now, st.out.newest, idle))
		return sink.Flush()
	}
	// consume decodes and handles one batch; last: the reader ended.
	consume := func(b *batch) (last bool, err error) {
		defer q.put(b)
		for i := range b.len() {
			if t.dump != nil {
				t.dump.add(b.record(i))
			}
			if err := t.dec.decode(b.record(i), &rec); err != nil {
				t.malformed++
				t.log.Debug("malformed record", "err", err)
				continue
			}
			if err := st.record(&rec); err != nil {
				return b.last, err
			}
		}
		return b.last, b.err
	}

	var err error
	// Socket records listed at start-up go first, as they are; kernel
	// records go through the stages, sorted by timestamp (reorder.go).
	for i := range t.snapshot {
		if err = t.corr.process(&t.snapshot[i], sink.Write); err != nil {
			break
		}
	}
	t.snapshot = nil
	last := false
	for err == nil && !last {
		select {
		case b := <-q.full:
			drained := b.drained
			if last, err = consume(b); err != nil || last {
				break
			}
			idle = drained
			// Under sustained load the ring is never read empty: tick
			// by the clock.
			if now := time.Now(); drained || now.Sub(lastTick) >= interval {
				err = tick(now, drained)
			}
		case now := <-timer.C:
			if st.held() && idle {
				// A drained pass releases the held records.
				idle = false
				t.reader.Flush()
				timer.Reset(interval)
				continue
			}
			err = tick(now, false)
		case <-ctx.Done():
			last = true
		}
	}
	stopped := errors.Is(err, ErrStop)
	if err != nil && !stopped {
		stopPump()
		t.detach()
		return err
	}
	if !stopped {
		// Stop producing, then read everything still in the ring and
		// in the queue, up to the reader's last batch.
		if err := t.detach(); err != nil {
			t.log.Warn("detach", "err", err)
		}
		p.stopping.Store(true)
		if err := t.reader.Flush(); err != nil {
			stopPump()
			return fmt.Errorf("flush ring buffer: %w", err)
		}
		for done := false; !done; {
			var err error
			if done, err = consume(<-q.full); errors.Is(err, ErrStop) {
				stopped = true
				break
			} else if err != nil {
				stopPump()
				return err
			}
		}
		// The counts of connections no socket flushed (still open,
		// in TIME_WAIT, or with no local socket) go into the final
		// summaries.
		if !stopped {
			if err := t.drainCounts(st, &rec); errors.Is(err, ErrStop) {
				stopped = true
			} else if err != nil {
				stopPump()
				return err
			}
		}
	}
	stopPump()
	return t.finish(st, sink, &rec, stopped)
}

// finish detaches, releases held records, reports final losses (unless
// the sink asked to stop), ends the sink when it is an Ender, and
// flushes.
func (t *Tracer) finish(st *stages, sink Sink, rec *Record, stopped bool) error {
	t.detach()
	var err error
	if !stopped {
		err = st.End()
		if q := st.out; q.late+q.early > 0 {
			t.log.Debug("records out of timestamp order", "held_longer_than_window", q.late, "window_full", q.early)
		}
		if err == nil {
			t.finishing = true
			err = t.reportLost(sink, rec)
		}
		t.reportDeadSockets()
		if errors.Is(err, ErrStop) {
			err = nil
		}
	}
	if e, ok := sink.(Ender); ok && err == nil {
		if err = e.End(); errors.Is(err, ErrStop) {
			err = nil
		}
	}
	// A sink that asks to stop while flushing has done its job.
	if ferr := sink.Flush(); err == nil && !errors.Is(ferr, ErrStop) {
		err = ferr
	}
	return err
}

// TimeWaitTracked reports whether the end of TIME_WAIT is observed (the
// timer programs are attached).
func (t *Tracer) TimeWaitTracked() bool { return t.timeWaitAttached }

// reportLost emits one lost record per event kind and place (ring,
// queue) whose count grew since the last report, and one for malformed
// records.
func (t *Tracer) reportLost(sink Sink, rec *Record) error {
	var perCPU []uint64
	now := time.Now()
	// The warnings are rate-limited (lossWarnings), the records are not;
	// at exit (t.finishing) what is left is warned at once.
	defer func() { t.lossWarn.warn(now, t.log, t.cfg.MaxConns, t.finishing) }()
	for kind := tcpscopeEventKindEVENT_PACKET; kind < tcpscopeEventKindEVENT_KIND_MAX; kind++ {
		if err := t.drops.Lookup(uint32(kind), &perCPU); err != nil {
			return fmt.Errorf("read drop counters: %w", err)
		}
		var total uint64
		for _, n := range perCPU {
			total += n
		}
		if total == t.lostSeen[kind] {
			continue
		}
		delta := total - t.lostSeen[kind]
		t.lostSeen[kind] = total
		t.lostTotal += delta
		t.lossWarn.ring[kind] += delta
		*rec = Record{Type: TypeLost, Time: now, LostCount: delta, LostKind: lostKindNames[kind], LostWhere: LostInRing}
		if err := sink.Write(rec); err != nil {
			return err
		}
	}
	if q := t.queue; q != nil {
		for kind := range q.dropped {
			total := q.dropped[kind].Load()
			if total == t.queueLostSeen[kind] {
				continue
			}
			delta := total - t.queueLostSeen[kind]
			t.queueLostSeen[kind] = total
			t.lostTotal += delta
			t.lossWarn.queue[kind] += delta
			name := lostKindNames[kind]
			if kind == 0 {
				name = "malformed"
			}
			*rec = Record{Type: TypeLost, Time: now, LostCount: delta, LostKind: name, LostWhere: LostInQueue}
			if err := sink.Write(rec); err != nil {
				return err
			}
		}
	}
	if n, err := t.countOverflow(); err != nil {
		return err
	} else if n > t.overflowSeen && (t.overflowSeen == 0 || t.finishing) {
		// The first time, and the total at exit: not a loss (each such
		// packet is reported), but more records than control mode means.
		t.log.Warn("packet count table full: packets reported in full instead of counted",
			"packets", n, "max_packet_conns", t.cfg.MaxPacketConns)
		t.overflowSeen = n
	}
	if n := t.corr.evicted; n > t.evictedSeen {
		t.lossWarn.evicted += n - t.evictedSeen
		t.evictedSeen = n
	}
	if t.malformed > 0 {
		*rec = Record{Type: TypeLost, Time: now, LostCount: t.malformed, LostKind: "malformed"}
		t.malformed = 0
		if err := sink.Write(rec); err != nil {
			return err
		}
	}
	return nil
}
