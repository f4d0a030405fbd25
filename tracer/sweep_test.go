//go:build linux

package tracer

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// fakeCountTable is a count map in memory, walked in key order of keys.
type fakeCountTable struct {
	keys  []tcpscopePktKey
	m     map[tcpscopePktKey]tcpscopePktCounts
	walks int
}

func (f *fakeCountTable) put(k tcpscopePktKey, v tcpscopePktCounts) {
	if f.m == nil {
		f.m = map[tcpscopePktKey]tcpscopePktCounts{}
	}
	f.keys = append(f.keys, k)
	f.m[k] = v
}

func (f *fakeCountTable) walk(limit int, fn func(*tcpscopePktKey, *tcpscopePktCounts)) error {
	f.walks++
	n := 0
	for _, k := range f.keys {
		v, ok := f.m[k]
		if !ok {
			continue
		}
		if n == limit {
			break
		}
		n++
		fn(&k, &v)
	}
	return nil
}

func (f *fakeCountTable) take(k *tcpscopePktKey, v *tcpscopePktCounts) error {
	got, ok := f.m[*k]
	if !ok {
		return ebpf.ErrKeyNotExist
	}
	*v = got
	delete(f.m, *k)
	return nil
}

// countKey is a count map key of 10.0.0.1:lport > 10.0.0.2:80 in netns.
func countKey(netns uint32, lport uint16) tcpscopePktKey {
	k := tcpscopePktKey{Family: afInet, Lport: lport, Rport: 80, Netns: netns}
	copy(k.Laddr[:], []byte{10, 0, 0, 1})
	copy(k.Raddr[:], []byte{10, 0, 0, 2})
	return k
}

// seenAt is a count map value whose directions last counted a packet at
// out and in (CLOCK_MONOTONIC seconds; 0: never), with segs segments sent.
func seenAt(out, in uint64, segs uint32) tcpscopePktCounts {
	var v tcpscopePktCounts
	v.Dir[0] = tcpscopePktDirCounts{Segs: segs, Bytes: 10 * uint64(segs), LastSeen: uint32(out * 1e9 >> 30)}
	v.Dir[1] = tcpscopePktDirCounts{LastSeen: uint32(in * 1e9 >> 30)}
	return v
}

// TestSweepCounts: the sweep takes (emits and deletes) the entries that
// counted nothing for the idle bound, by the later of their directions'
// times, and leaves the others; an entry that is gone when taken (flushed
// meanwhile) is skipped; the walk is bounded.
func TestSweepCounts(t *testing.T) {
	const now = 1000 // s, CLOCK_MONOTONIC
	tab := &fakeCountTable{}
	tab.put(countKey(7, 1), seenAt(now-300, now-200, 3)) // idle 200 s
	tab.put(countKey(7, 2), seenAt(now-300, now-5, 4))   // received 5 s ago
	tab.put(countKey(7, 3), seenAt(now-10, 0, 5))        // sent 10 s ago
	tab.put(countKey(8, 4), seenAt(now-122, 0, 6))       // idle 122 s
	tab.put(countKey(8, 9), seenAt(now-120, 0, 11))      // idle 120 s, maybe a bit less: the kernel's unit is 1.07 s
	var emitted []tcpscopePktKey
	keys, n, err := sweepCounts(tab, 100, now*1e9, 2*time.Minute, nil, func(k *tcpscopePktKey, v *tcpscopePktCounts) error {
		emitted = append(emitted, *k)
		if want := uint32(k.Lport) + 2; v.Dir[0].Segs != want {
			t.Errorf("entry %d: %d segments, want %d", k.Lport, v.Dir[0].Segs, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || len(emitted) != 2 || emitted[0] != countKey(7, 1) || emitted[1] != countKey(8, 4) {
		t.Errorf("swept %d: %+v, want the entries of ports 1 and 4", n, emitted)
	}
	if _, ok := tab.m[countKey(7, 1)]; ok || len(tab.m) != 3 {
		t.Errorf("left %d entries (%v), want the 3 active ones", len(tab.m), tab.m)
	}
	// A candidate flushed between the walk and the take is not emitted.
	tab.put(countKey(7, 5), seenAt(now-300, 0, 7))
	gone := &takeGone{tab, countKey(7, 5)}
	_, n, err = sweepCounts(gone, 100, now*1e9, 2*time.Minute, keys, func(*tcpscopePktKey, *tcpscopePktCounts) error {
		t.Error("emitted an entry that was gone")
		return nil
	})
	if err != nil || n != 0 {
		t.Errorf("sweep of a gone entry: %d, %v", n, err)
	}
	// The walk stops at the limit (the map's size).
	tab = &fakeCountTable{}
	for p := range uint16(10) {
		tab.put(countKey(7, p+1), seenAt(now-300, 0, 1))
	}
	if _, n, _ = sweepCounts(tab, 4, now*1e9, 2*time.Minute, nil, func(*tcpscopePktKey, *tcpscopePktCounts) error { return nil }); n != 4 {
		t.Errorf("swept %d with a limit of 4", n)
	}
}

// takeGone is a count table whose entry key is deleted (a socket flushed
// it) just before the sweep takes it.
type takeGone struct {
	*fakeCountTable
	key tcpscopePktKey
}

func (g *takeGone) take(k *tcpscopePktKey, v *tcpscopePktCounts) error {
	delete(g.m, g.key)
	return g.fakeCountTable.take(k, v)
}

// TestSweepIdle: 1 min, or half a shorter --idle-timeout (the counts then
// reach the analysis before it summarizes the idle connection).
func TestSweepIdle(t *testing.T) {
	if late := countSweepIdle + countSweepEvery + 1<<30; late >= ClosedLinger {
		t.Errorf("a closed connection's counts may come %v after its last record, past ClosedLinger %v", late, ClosedLinger)
	}
	for _, c := range []struct{ idleTimeout, want time.Duration }{
		{0, time.Minute}, {10 * time.Minute, time.Minute}, {time.Minute, 30 * time.Second}, {2 * time.Second, time.Second}, {time.Second, time.Second},
	} {
		if got := sweepIdle(c.idleTimeout); got != c.want {
			t.Errorf("idle timeout %v: sweep after %v, want %v", c.idleTimeout, got, c.want)
		}
	}
}

// progressSink records Progress calls.
type progressSink struct {
	discard
	calls []progressCall
}

type progressCall struct {
	at   time.Time
	snap map[countsSnapKey][2]PacketCounts
}

func (p *progressSink) Progress(now time.Time, counts *CountsSnapshot) error {
	c := progressCall{at: now}
	if counts != nil {
		c.snap = map[countsSnapKey][2]PacketCounts{}
		for k, v := range counts.m {
			c.snap[k] = v
		}
	}
	p.calls = append(p.calls, c)
	return nil
}

type discard struct{}

func (discard) Write(*Record) error { return nil }
func (discard) Flush() error        { return nil }

// TestProgressTick: every --progress-interval the sink's Progress gets a
// snapshot of the count map, read without deleting; nothing before the
// interval, nothing without an interval or with a sink that is no
// Progresser.
func TestProgressTick(t *testing.T) {
	tab := &fakeCountTable{}
	tab.put(countKey(7, 1), seenAt(1, 0, 3))
	tr := &Tracer{cfg: Config{ProgressInterval: 10 * time.Second, MaxPacketConns: 1024}, netns: &Netns{Inode: 7},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tr.counts.tab = tab
	sink := &progressSink{}
	start := time.Unix(1000, 0)
	for _, at := range []time.Duration{0, 5 * time.Second, 10 * time.Second, 15 * time.Second, 21 * time.Second} {
		if err := tr.progressTick(start.Add(at), sink); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.calls) != 2 || !sink.calls[0].at.Equal(start.Add(10*time.Second)) || !sink.calls[1].at.Equal(start.Add(21*time.Second)) {
		t.Fatalf("progress calls %+v, want at +10s and +21s", sink.calls)
	}
	local, remote := netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:80")
	if got := sink.calls[1].snap[countsSnapKey{7, local, remote}]; got[0].Segs != 3 || len(sink.calls[1].snap) != 1 {
		t.Errorf("snapshot %+v, want the entry with 3 segments", sink.calls[1].snap)
	}
	if len(tab.m) != 1 {
		t.Error("the progress snapshot deleted the entry")
	}
	tr.cfg.ProgressInterval = 0
	if err := tr.progressTick(start.Add(time.Hour), sink); err != nil || len(sink.calls) != 2 {
		t.Errorf("interval 0: %d calls, %v", len(sink.calls), err)
	}
	tr.cfg.ProgressInterval = time.Second
	if err := tr.progressTick(start.Add(2*time.Hour), discard{}); err != nil {
		t.Error(err)
	}
}

// TestCountsSnapshotLookup: a lookup with no socket netns uses the
// classifiers' namespace; v4-mapped endpoints find IPv4 entries; other
// namespaces and the reversed 4-tuple do not match.
func TestCountsSnapshotLookup(t *testing.T) {
	var s CountsSnapshot
	s.reset(7)
	l, r := netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:80")
	s.Put(7, l, r, [2]PacketCounts{{Segs: 1}})
	mapped := netip.AddrPortFrom(netip.AddrFrom16(l.Addr().As16()), l.Port())
	for _, c := range []struct {
		netns      uint32
		local, rem netip.AddrPort
		ok         bool
	}{{7, l, r, true}, {0, l, r, true}, {0, mapped, r, true}, {8, l, r, false}, {7, r, l, false}} {
		if _, ok := s.Counts(c.netns, c.local, c.rem); ok != c.ok {
			t.Errorf("Counts(%d, %s, %s) found %v, want %v", c.netns, c.local, c.rem, ok, c.ok)
		}
	}
	var none *CountsSnapshot
	if _, ok := none.Counts(0, l, r); ok || none.Len() != 0 {
		t.Error("nil snapshot has counts")
	}
}

// TestPipelineProgress: the pipeline passes a progress tick to its stages
// that are Progressers (the analysis), and to none else.
func TestPipelineProgress(t *testing.T) {
	ps := &progressSink{}
	p := BuildPipeline(discard{}, func(Sink) Sink { return ps }, func(next Sink) Sink { return next })
	at := time.Unix(5, 0)
	if err := p.Progress(at, nil); err != nil {
		t.Fatal(err)
	}
	if len(ps.calls) != 1 || !ps.calls[0].at.Equal(at) {
		t.Errorf("progress calls %+v, want one at %v", ps.calls, at)
	}
}
