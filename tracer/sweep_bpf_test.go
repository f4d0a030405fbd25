//go:build linux

package tracer

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// TestCountEntryNetnsAndLastSeen runs the classifier in control mode: the
// count entry's key carries the namespace of the classifiers' interfaces
// (tc_netns), so that a socket of another namespace with the same 4-tuple
// builds another key; the entry's last_seen is the coarse monotonic time
// of its last counted packet; and the sweep takes it from the real map
// once idle (lookup-and-delete), not before.
func TestCountEntryNetnsAndLastSeen(t *testing.T) {
	const netns = 4026532999
	coll := loadEgressClassifier(t, func(spec *ebpf.CollectionSpec) error {
		spec.Maps[tcpscopeMapEvents].MaxEntries = 1 << 16
		spec.Maps[tcpscopeMapConnCounts].MaxEntries = 1024
		if err := spec.Variables[tcpscopeVarTcNetns].Set(uint32(netns)); err != nil {
			return err
		}
		return spec.Variables[tcpscopeVarCountPackets].Set(uint8(1))
	})
	prog, m := coll.Programs[tcpscopeProgTcEgress], coll.Maps[tcpscopeMapConnCounts]
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6}
	before := monoNow() >> 30
	for i, p := range [][]byte{ctlPacket(0x10, ts, 100, 1000, 2000, 512, 40000), ctlPacket(0x18, ts, 50, 1100, 2000, 512, 40000)} {
		if _, err := prog.Run(&ebpf.RunOptions{Data: p}); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	after := monoNow() >> 30
	key := tcpscopePktKey{Family: afInet, Lport: 40000, Rport: 20000, Netns: netns}
	copy(key.Laddr[:], []byte{10, 201, 0, 1})
	copy(key.Raddr[:], []byte{10, 201, 0, 2})
	var v tcpscopePktCounts
	if err := m.Lookup(&key, &v); err != nil {
		t.Fatalf("no count entry in netns %d: %v", netns, err)
	}
	other := key
	other.Netns = 1
	if err := m.Lookup(&other, &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("lookup in another netns: %v, want no entry", err)
	}
	if got := uint64(v.Dir[0].LastSeen); got < before || got > after || v.Dir[0].Segs != 1 {
		t.Errorf("last_seen %d, segments %d; want %d..%d (monotonic >> 30) and 1", got, v.Dir[0].Segs, before, after)
	}
	tab := &bpfCountTable{m: m}
	emit := func(k *tcpscopePktKey, c *tcpscopePktCounts) error {
		if *k != key || c.Dir[0].Segs != 1 || c.Dir[0].Bytes != 50 {
			t.Errorf("swept %+v %+v, want the entry with 1 segment of 50 bytes", k, c)
		}
		return nil
	}
	if _, n, err := sweepCounts(tab, 1024, monoNow(), time.Minute, nil, emit); err != nil || n != 0 {
		t.Fatalf("sweep of an active entry: %d taken, %v", n, err)
	}
	if _, n, err := sweepCounts(tab, 1024, monoNow()+uint64(3*time.Minute), 2*time.Minute, nil, emit); err != nil || n != 1 {
		t.Fatalf("sweep 3 min later: %d taken, %v; want 1", n, err)
	}
	if err := m.Lookup(&key, &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("entry still there after the sweep: %v", err)
	}
}

// TestCountTableWalk: the walk of the real map (batch lookups of
// countWalkChunk entries) gives every entry once, across chunks, and stops
// at the limit.
func TestCountTableWalk(t *testing.T) {
	coll := loadEgressClassifier(t, func(spec *ebpf.CollectionSpec) error {
		spec.Maps[tcpscopeMapConnCounts].MaxEntries = 4096
		return nil
	})
	m := coll.Maps[tcpscopeMapConnCounts]
	const n = countWalkChunk*2 + 500
	for i := range n {
		if err := m.Put(countKey(7, uint16(i+1)), seenAt(1, 0, uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{4096, n - 1} {
		tab := &bpfCountTable{m: m}
		seen := map[uint16]int{}
		if err := tab.walk(limit, func(k *tcpscopePktKey, v *tcpscopePktCounts) {
			seen[k.Lport]++
			if v.Dir[0].Segs != uint32(k.Lport-1) {
				t.Errorf("entry %d: value of %d", k.Lport, v.Dir[0].Segs+1)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if tab.noBatch {
			t.Error("walked by key: no batch lookup")
		}
		if want := min(limit, n); len(seen) != want {
			t.Errorf("limit %d: %d entries, want %d", limit, len(seen), want)
		}
		for p, c := range seen {
			if c != 1 {
				t.Errorf("entry %d walked %d times", p, c)
			}
		}
	}
}
