package tracer

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Network namespaces have no name in the kernel, only an inode. Names live
// in user space: `ip netns add NAME` (and CNI plugins, containerd) bind a
// namespace to /run/netns/NAME; Docker binds its containers' namespaces to
// /run/docker/netns/ID. NetnsNames maps inodes to those names for the
// output, without ever blocking the record path: lookups read an immutable
// map through an atomic pointer; a miss asks a background goroutine to
// rescan (at most once per netnsRescanMin) and is remembered as unnamed
// until the next periodic rescan.

// Where namespace names are found, and how a name is shown: a name in
// /run/netns as is (what `ip netns` and --netns take), others as the path
// of their file (which --netns takes too).
type netnsNameDir struct {
	dir      string
	fullPath bool
}

var netnsNameDirs = []netnsNameDir{
	{"/run/netns", false},
	{"/run/docker/netns", true},
}

const (
	// netnsRescanMin is the least time between two rescans on misses.
	netnsRescanMin = time.Second
	// netnsRescanEvery rescans periodically: names come and go.
	netnsRescanEvery = 10 * time.Second
	// maxNetnsNames bounds the table (named and unnamed entries).
	maxNetnsNames = 1 << 16
)

// NetnsNames resolves network namespace inodes to the names user space
// gave them. Lookup is safe for concurrent use and never blocks.
type NetnsNames struct {
	table  atomic.Pointer[map[uint32]string] // "" = looked up, no name
	misses chan uint32
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	dirs   []netnsNameDir
	// rescanMin is netnsRescanMin (shorter in tests).
	rescanMin time.Duration
}

// NewNetnsNames scans the known places once and starts the background
// rescanner; Close stops it.
func NewNetnsNames() *NetnsNames {
	return newNetnsNames(netnsNameDirs)
}

func newNetnsNames(dirs []netnsNameDir) *NetnsNames {
	n := &NetnsNames{misses: make(chan uint32, 256), stop: make(chan struct{}), done: make(chan struct{}), dirs: dirs,
		rescanMin: netnsRescanMin}
	n.rescan(nil)
	go n.run()
	return n
}

// Lookup returns the name of the namespace with inode ino, or "" when it
// has none (or is not known yet: a miss is resolved in the background, so
// the first records of a namespace named a moment ago may lack it).
func (n *NetnsNames) Lookup(ino uint32) string {
	if n == nil || ino == 0 {
		return ""
	}
	if name, ok := (*n.table.Load())[ino]; ok {
		return name
	}
	select {
	case n.misses <- ino:
	default: // a rescan is pending anyway
	}
	return ""
}

// Close stops the background rescanner.
func (n *NetnsNames) Close() {
	if n == nil {
		return
	}
	n.once.Do(func() { close(n.stop) })
	<-n.done
}

func (n *NetnsNames) run() {
	defer close(n.done)
	tick := time.NewTicker(netnsRescanEvery)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
			n.rescan(nil)
			last = time.Now()
		case ino := <-n.misses:
			if wait := n.rescanMin - time.Since(last); wait > 0 {
				select {
				case <-n.stop:
					return
				case <-time.After(wait):
				}
			}
			missed := []uint32{ino}
		drain:
			for len(missed) < cap(n.misses) {
				select {
				case m := <-n.misses:
					missed = append(missed, m)
				default:
					break drain
				}
			}
			n.rescan(missed)
			last = time.Now()
		}
	}
}

// rescan rebuilds the table from the name directories, keeping the
// unnamed entries of the previous table (until the next periodic rescan,
// which starts afresh) and marking missed inodes that have no name.
func (n *NetnsNames) rescan(missed []uint32) {
	table := map[uint32]string{}
	for _, d := range n.dirs {
		entries, _ := os.ReadDir(d.dir)
		for _, e := range entries {
			p := filepath.Join(d.dir, e.Name())
			ino, err := netnsInode(p)
			if err != nil || len(table) >= maxNetnsNames {
				continue
			}
			if _, dup := table[ino]; dup {
				continue // the first place wins: /run/netns before Docker's
			}
			if d.fullPath {
				table[ino] = p
			} else {
				table[ino] = e.Name()
			}
		}
	}
	if missed != nil {
		if old := n.table.Load(); old != nil {
			for ino, name := range *old {
				if _, ok := table[ino]; !ok && name == "" && len(table) < maxNetnsNames {
					table[ino] = ""
				}
			}
		}
		for _, ino := range missed {
			if _, ok := table[ino]; !ok && len(table) < maxNetnsNames {
				table[ino] = ""
			}
		}
	}
	n.table.Store(&table)
}

// NetnsNamer is a Sink stage that sets each record's NetnsName before
// passing it on.
type NetnsNamer struct {
	Next  Sink
	Names *NetnsNames
}

// Write names r's namespace and passes r on.
func (s *NetnsNamer) Write(r *Record) error {
	r.NetnsName = s.Names.Lookup(r.Netns)
	return s.Next.Write(r)
}

// Flush flushes the next stage.
func (s *NetnsNamer) Flush() error { return s.Next.Flush() }
