//go:build linux

package tracer

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// drainCounts reads and deletes every entry of the kernel's packet count
// map (--packets control) and passes each through the stages as a
// TypeCounts record, stamped now and without a socket cookie: at exit,
// after the classifiers are detached, these are the connections no socket
// flushed (still open, in TIME_WAIT, or without a local socket).
func (t *Tracer) drainCounts(st *stages, rec *Record) error {
	if t.cfg.Packets != PacketsControl || t.coll == nil {
		return nil
	}
	t.reportSwept()
	m := t.coll.Maps[tcpscopeMapConnCounts]
	tab := t.countTable()
	if m == nil || tab == nil {
		return nil
	}
	var (
		keys []tcpscopePktKey
		err  error
	)
	now := time.Now()
	// Bounded by the map size; keys are deleted after the walk (deleting
	// while walking a hash map by key restarts the walk).
	werr := tab.walk(t.cfg.MaxPacketConns, func(key *tcpscopePktKey, val *tcpscopePktCounts) {
		if err != nil {
			return
		}
		keys = append(keys, *key)
		*rec = Record{Type: TypeCounts, Time: now, Netns: key.Netns}
		countsRecord(key, val, rec)
		err = st.record(rec)
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete packet count entry: %w", err)
		}
	}
	return nil
}

// countOverflow returns how many packets the classifiers reported in full
// because the packet count map was full (all CPUs).
func (t *Tracer) countOverflow() (uint64, error) {
	if t.cfg.Packets != PacketsControl || t.coll == nil || t.coll.Maps[tcpscopeMapCountOverflow] == nil {
		return 0, nil
	}
	var perCPU []uint64
	if err := t.coll.Maps[tcpscopeMapCountOverflow].Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read count overflow: %w", err)
	}
	var total uint64
	for _, n := range perCPU {
		total += n
	}
	return total, nil
}
