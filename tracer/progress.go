package tracer

import (
	"net/netip"
	"time"
)

// Progresser is a stage that writes progress records: a conn record
// marked progress for each connection still open, its summary so far (the
// analysis). Pipeline.Progress calls it every --progress-interval.
type Progresser interface {
	// Progress writes the progress records as of now. counts holds the
	// kernel's packet counts not flushed yet (--packets control), nil
	// otherwise: shown in the progress records, never added (their flush
	// adds them once).
	Progress(now time.Time, counts *CountsSnapshot) error
}

// countsSnapKey is a count entry's key in a CountsSnapshot.
type countsSnapKey struct {
	netns         uint32
	local, remote netip.AddrPort
}

// CountsSnapshot is the kernel's count map as read (not flushed) at a
// progress tick: each entry's packets counted so far. It is reused from
// tick to tick; its storage grows to the largest map it held.
type CountsSnapshot struct {
	m map[countsSnapKey][2]PacketCounts
	// netns is the namespace of the classifiers' interfaces: the netns of
	// the entries they made.
	netns uint32
}

// reset empties s for a new tick.
func (s *CountsSnapshot) reset(netns uint32) {
	if s.m == nil {
		s.m = make(map[countsSnapKey][2]PacketCounts)
	}
	clear(s.m)
	s.netns = netns
}

// Put records the counts of an entry: the connection from local to
// remote as local's end in netns saw it ([0] sent by local, [1] received).
func (s *CountsSnapshot) Put(netns uint32, local, remote netip.AddrPort, c [2]PacketCounts) {
	if s.m == nil {
		s.m = make(map[countsSnapKey][2]PacketCounts)
	}
	s.m[countsSnapKey{netns, local, remote}] = c
}

// Len returns the number of entries in s (0 for a nil s).
func (s *CountsSnapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.m)
}

// Counts returns the packets counted so far for the connection from
// local to remote as local's end saw them: [0] sent by local, [1]
// received. netns is the namespace of local's socket, 0 when local has
// none (then that of the classifiers' interfaces). A nil s has none.
func (s *CountsSnapshot) Counts(netns uint32, local, remote netip.AddrPort) ([2]PacketCounts, bool) {
	if s == nil || len(s.m) == 0 {
		return [2]PacketCounts{}, false
	}
	if netns == 0 {
		netns = s.netns
	}
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	c, ok := s.m[countsSnapKey{netns, local, remote}]
	return c, ok
}
