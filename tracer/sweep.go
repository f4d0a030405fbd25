//go:build linux

package tracer

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Count map sweep (--packets control). A count entry is flushed by its
// connection's local socket; the classifiers also count packets that no
// local socket will ever flush (forwarded or bridged traffic, a veth whose
// peer namespace is not traced). Go flushes the entries that counted no
// packet for countSweepIdle (or half the --idle-timeout when shorter: the
// counts reach the analysis before it summarizes an idle connection), so
// the map does not fill on a long-running host. An idle connection that
// has a socket loses nothing: its counts are flushed early, and the entry
// its next packet makes is flushed by its socket later; the analysis adds
// the two. A minute, so that the counts of a connection that closed
// (without a local socket: its FINs were only forwarded) come, with
// countSweepEvery and the kernel's 1.07 s unit, within ClosedLinger of its
// last record: they keep its conn id (a late record of its summary)
// instead of making a new connection of counts alone.
const (
	countSweepIdle  = time.Minute
	countSweepEvery = 5 * time.Second
)

// countsState is the Tracer's state for the count map sweep and for
// progress records (--progress-interval).
type countsState struct {
	lastSweep    time.Time
	lastProgress time.Time
	swept        uint64           // entries swept, for the exit log
	keys         []tcpscopePktKey // the sweep's candidates, reused
	tab          countTable       // nil: the collection's map
	snap         CountsSnapshot   // reused by every progress tick
	rec          Record           // scratch for the snapshot
}

// sweepIdle is how long an entry may count nothing before it is swept.
func sweepIdle(idleTimeout time.Duration) time.Duration {
	if idleTimeout > 0 && idleTimeout/2 < countSweepIdle {
		return max(idleTimeout/2, time.Second)
	}
	return countSweepIdle
}

// sweepEvery is how often the count map is swept.
func sweepEvery(idle time.Duration) time.Duration { return min(countSweepEvery, idle/2) }

// countTable is the kernel's count map as the sweep and the progress
// snapshot use it; tests give a fake.
type countTable interface {
	// walk calls fn for the map's entries, at most limit calls (a hash
	// map walk restarts when its current key is deleted meanwhile: an
	// entry may come twice).
	walk(limit int, fn func(*tcpscopePktKey, *tcpscopePktCounts)) error
	// take reads and deletes one entry; ebpf.ErrKeyNotExist when it is
	// gone.
	take(*tcpscopePktKey, *tcpscopePktCounts) error
}

// countWalkChunk is how many entries one batch lookup reads: a full map
// of 65536 entries is walked in 64 system calls (about 20 ms here, where
// the walk by key took 400-500 ms: two system calls per entry).
const countWalkChunk = 1024

// bpfCountTable is the conn_counts map.
type bpfCountTable struct {
	m *ebpf.Map
	// noLookupAndDelete: the kernel has no lookup-and-delete for hash
	// maps (< 5.14): take looks up, then deletes.
	noLookupAndDelete bool
	// noBatch: the kernel has no batch lookup (< 5.6): walk by key.
	noBatch bool
	keys    []tcpscopePktKey    // a batch, allocated at the first walk
	vals    []tcpscopePktCounts // of keys
}

func (b *bpfCountTable) walk(limit int, fn func(*tcpscopePktKey, *tcpscopePktCounts)) error {
	if !b.noBatch {
		n, err := b.walkBatch(limit, fn)
		if n > 0 || !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
		b.noBatch = true
	}
	var (
		key tcpscopePktKey
		val tcpscopePktCounts
	)
	it := b.m.Iterate()
	for n := 0; n < limit && it.Next(&key, &val); n++ {
		fn(&key, &val)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read packet count map: %w", err)
	}
	return nil
}

// walkBatch walks the map countWalkChunk entries per system call. A
// bucket is read whole: an entry that comes or goes meanwhile is seen
// once or not at all, never twice. n is the number of entries passed to
// fn.
func (b *bpfCountTable) walkBatch(limit int, fn func(*tcpscopePktKey, *tcpscopePktCounts)) (n int, err error) {
	if b.keys == nil {
		b.keys = make([]tcpscopePktKey, countWalkChunk)
		b.vals = make([]tcpscopePktCounts, countWalkChunk)
	}
	var cursor ebpf.MapBatchCursor
	for n < limit {
		got, err := b.m.BatchLookup(&cursor, b.keys, b.vals, nil)
		for i := 0; i < got && n < limit; i++ {
			fn(&b.keys[i], &b.vals[i])
			n++
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return n, nil // the end
		case err != nil:
			return n, fmt.Errorf("read packet count map: %w", err)
		}
	}
	return n, nil
}

func (b *bpfCountTable) take(key *tcpscopePktKey, val *tcpscopePktCounts) error {
	if !b.noLookupAndDelete {
		err := b.m.LookupAndDelete(key, val)
		if err == nil || errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
		if !errors.Is(err, ebpf.ErrNotSupported) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("take packet count entry: %w", err)
		}
		b.noLookupAndDelete = true
	}
	if err := b.m.Lookup(key, val); err != nil {
		return err
	}
	if err := b.m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete packet count entry: %w", err)
	}
	return nil
}

// countTable returns the count map, or nil outside --packets control.
func (t *Tracer) countTable() countTable {
	if t.counts.tab != nil {
		return t.counts.tab
	}
	if t.cfg.Packets != PacketsControl || t.coll == nil || t.coll.Maps[tcpscopeMapConnCounts] == nil {
		return nil
	}
	t.counts.tab = &bpfCountTable{m: t.coll.Maps[tcpscopeMapConnCounts]}
	return t.counts.tab
}

// lastSeenNs bounds when an entry last counted a packet (or was made):
// not after this CLOCK_MONOTONIC time (the kernel keeps it rounded down
// to 2^30 ns: the end of that unit). 0 when not known.
func lastSeenNs(v *tcpscopePktCounts) uint64 {
	if last := uint64(max(v.Dir[0].LastSeen, v.Dir[1].LastSeen)); last > 0 {
		return (last + 1) << 30
	}
	return 0
}

// monoNow returns CLOCK_MONOTONIC in ns, the clock of the kernel's
// timestamps.
func monoNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

// sweepCounts takes (reads and deletes) the entries of tab that counted
// no packet for idle as of nowMono (CLOCK_MONOTONIC ns) and passes each to
// emit. keys is reused for the candidates and returned; the walk is
// bounded by limit (the map's size). n is the number of entries taken.
func sweepCounts(tab countTable, limit int, nowMono uint64, idle time.Duration, keys []tcpscopePktKey,
	emit func(*tcpscopePktKey, *tcpscopePktCounts) error) (_ []tcpscopePktKey, n int, err error) {
	keys = keys[:0]
	if nowMono < uint64(idle) {
		return keys, 0, nil
	}
	// Idle at least that long: up to 2^30 ns more (the kernel's unit).
	before := nowMono - uint64(idle)
	err = tab.walk(limit, func(k *tcpscopePktKey, v *tcpscopePktCounts) {
		if lastSeenNs(v) <= before {
			keys = append(keys, *k)
		}
	})
	if err != nil {
		return keys, 0, err
	}
	var v tcpscopePktCounts
	for i := range keys {
		// A packet counted since the walk stays in what is taken.
		switch err := tab.take(&keys[i], &v); {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			continue // flushed meanwhile, or listed twice
		case err != nil:
			return keys, n, err
		}
		n++
		if err := emit(&keys[i], &v); err != nil {
			return keys, n, err
		}
	}
	return keys, n, nil
}

// sweepTick sweeps the count map when a sweep is due: each swept entry
// goes through the stages as a counts record stamped now (cookie 0).
func (t *Tracer) sweepTick(now time.Time, st *stages, rec *Record) error {
	tab := t.countTable()
	if tab == nil {
		return nil
	}
	idle := sweepIdle(t.cfg.IdleTimeout)
	if t.counts.lastSweep.IsZero() {
		t.counts.lastSweep = now
	}
	if now.Sub(t.counts.lastSweep) < sweepEvery(idle) {
		return nil
	}
	t.counts.lastSweep = now
	keys, n, err := sweepCounts(tab, t.cfg.MaxPacketConns, monoNow(), idle, t.counts.keys,
		func(k *tcpscopePktKey, v *tcpscopePktCounts) error {
			*rec = Record{Type: TypeCounts, Time: now, Netns: k.Netns}
			countsRecord(k, v, rec)
			return st.record(rec)
		})
	t.counts.keys = keys
	t.counts.swept += uint64(n)
	if n > 0 {
		t.log.Debug("packet count entries swept", "entries", n, "idle", idle)
	}
	return err
}

// reportSwept logs, at exit, how many count entries no socket flushed
// and the sweep did.
func (t *Tracer) reportSwept() {
	if t.counts.swept > 0 {
		t.log.Info("packet count entries swept: idle, with no local socket to flush them (forwarded traffic) or idle that long",
			"entries", t.counts.swept, "idle", sweepIdle(t.cfg.IdleTimeout))
	}
}

// progressTick asks the pipeline for progress records when they are due
// (--progress-interval): in --packets control with a snapshot of the
// count map, read without deleting anything.
func (t *Tracer) progressTick(now time.Time, sink Sink) error {
	if t.cfg.ProgressInterval <= 0 {
		return nil
	}
	pr, ok := sink.(Progresser)
	if !ok {
		return nil
	}
	if t.counts.lastProgress.IsZero() {
		t.counts.lastProgress = now
	}
	if now.Sub(t.counts.lastProgress) < t.cfg.ProgressInterval {
		return nil
	}
	t.counts.lastProgress = now
	var snap *CountsSnapshot
	if tab := t.countTable(); tab != nil {
		snap = &t.counts.snap
		snap.reset(t.netns.Inode)
		rec := &t.counts.rec
		err := tab.walk(t.cfg.MaxPacketConns, func(k *tcpscopePktKey, v *tcpscopePktCounts) {
			countsRecord(k, v, rec)
			snap.Put(k.Netns, rec.Local, rec.Remote, rec.PktCounts)
		})
		if err != nil {
			return err
		}
	}
	return pr.Progress(now, snap)
}
