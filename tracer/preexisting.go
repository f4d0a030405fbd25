package tracer

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Connections that existed before tracing started are listed once at
// start-up with sock_diag (every state, TIME_WAIT included), in every
// namespace whose socket events are traced (all of them by default, found
// through /run/netns, /run/docker/netns and /proc/*/ns/net): one socket
// record each, preexisting, so that their later events find their
// connection. They pass the same filters as the kernel's events
// (recordFilter: --netns, --port, --host). Their owners come from the socket inodes in /proc/*/fd and
// are seeded into the kernel's owner tables, so later events of those
// sockets carry pid and comm too.

// maxProcFDs bounds the /proc scan for socket owners.
const maxProcFDs = 1 << 20

// maxSnapshotNetns bounds how many namespaces are listed at start-up.
const maxSnapshotNetns = 4096

// snapshotSockets lists the TCP sockets of the namespaces whose socket
// events are traced. A namespace that cannot be listed is skipped with a
// warning; an error is returned only when none could be.
func (t *Tracer) snapshotSockets() ([]Record, error) {
	spaces := []*Netns{t.netns}
	if t.cfg.Netns == nil {
		others, skipped := otherNetns(t.netns.Inode)
		if skipped > 0 {
			t.log.Warn("list preexisting sockets: too many network namespaces", "listed", maxSnapshotNetns, "skipped", skipped)
		}
		defer func() {
			for _, n := range others {
				n.Close()
			}
		}()
		spaces = append(spaces, others...)
	}
	filter := t.filter
	if filter == nil {
		filter = newRecordFilter(&t.cfg)
	}
	now := time.Now()
	var recs []Record
	type sockMeta struct{ inode, uid uint32 }
	var metas []sockMeta // of recs, for their owners
	var firstErr error
	listed := 0
	for _, ns := range spaces {
		socks, err := diagTCP(ns)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			t.log.Warn("list preexisting sockets", "netns", ns.Inode, "err", err)
			continue
		}
		listed++
		for _, s := range socks {
			local, lok := addrPort(s.ID.Source, s.ID.SourcePort)
			remote, rok := addrPort(s.ID.Destination, s.ID.DestinationPort)
			if !lok || !rok {
				continue
			}
			r := Record{Type: TypeSocket, Time: now, Netns: ns.Inode, Local: local, Remote: remote,
				State: TCPState(s.State), HasState: true, Preexisting: true,
				Cookie: uint64(s.ID.Cookie[0]) | uint64(s.ID.Cookie[1])<<32}
			// The kernel filters its own events; these come from
			// sock_diag and must pass the same filters.
			if !filter.passes(&r) {
				continue
			}
			recs = append(recs, r)
			metas = append(metas, sockMeta{s.INode, s.UID})
		}
	}
	if len(recs) > 0 {
		// Only the sockets that pass get an owner (and have it seeded).
		owners := socketOwners()
		for i := range recs {
			if o, ok := owners[metas[i].inode]; ok && metas[i].inode != 0 {
				o.UID = metas[i].uid
				recs[i].Owner = o
			}
		}
	}
	if listed == 0 {
		return nil, firstErr
	}
	return recs, nil
}

// diagTCP dumps the TCP sockets (IPv4 and IPv6) of one namespace.
func diagTCP(ns *Netns) ([]*netlink.Socket, error) {
	var socks []*netlink.Socket
	err := ns.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_INET_DIAG)
		if err != nil {
			return fmt.Errorf("open sock_diag: %w", err)
		}
		defer h.Close()
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			s, err := h.SocketDiagTCP(family)
			if err != nil {
				return fmt.Errorf("dump tcp sockets: %w", err)
			}
			socks = append(socks, s...)
		}
		return nil
	})
	return socks, err
}

// otherNetns opens every network namespace other than own that a name
// (ip netns, Docker) or a process holds, once each, at most
// maxSnapshotNetns; it returns them and how many more were left out.
func otherNetns(own uint32) (spaces []*Netns, skipped int) {
	seen := map[uint32]bool{own: true}
	var candidates []string
	for _, pattern := range []string{"/run/netns/*", "/run/docker/netns/*", "/proc/[0-9]*/ns/net"} {
		found, _ := filepath.Glob(pattern)
		candidates = append(candidates, found...)
	}
	for _, p := range candidates {
		ino, err := netnsInode(p)
		if err != nil || seen[ino] {
			continue
		}
		seen[ino] = true
		if len(spaces) >= maxSnapshotNetns {
			skipped++
			continue
		}
		n, err := OpenNetns(p)
		if err != nil {
			continue // the process exited, or not a namespace file
		}
		spaces = append(spaces, n)
	}
	return spaces, skipped
}

func addrPort(ip net.IP, port uint16) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), port), true
}

// socketOwners maps socket inodes to the process holding them.
func socketOwners() map[uint32]Owner {
	owners := map[uint32]Owner{}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	if len(fds) > maxProcFDs {
		fds = fds[:maxProcFDs]
	}
	comms := map[string][]byte{}
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 32)
		if err != nil {
			continue
		}
		if _, seen := owners[uint32(ino)]; seen {
			continue
		}
		pidDir := filepath.Dir(filepath.Dir(fd))
		pid, err := strconv.Atoi(filepath.Base(pidDir))
		if err != nil {
			continue
		}
		comm, ok := comms[pidDir]
		if !ok {
			comm, _ = os.ReadFile(filepath.Join(pidDir, "comm"))
			comm = []byte(strings.TrimSuffix(string(comm), "\n"))
			comms[pidDir] = comm
		}
		o := Owner{Known: true, PID: uint32(pid), TID: uint32(pid)}
		copy(o.Comm[:], comm)
		owners[uint32(ino)] = o
	}
	return owners
}

// seedOwners puts the owners of preexisting sockets (and listeners) into
// the kernel's tables.
func (t *Tracer) seedOwners(recs []Record) {
	owners, listeners := t.coll.Maps[tcpscopeMapOwners], t.coll.Maps[tcpscopeMapListeners]
	for _, r := range recs {
		if !r.Owner.Known || r.Cookie == 0 {
			continue
		}
		o := tcpscopeOwner{Pid: r.Owner.TID, Tgid: r.Owner.PID, Uid: r.Owner.UID}
		for i, c := range r.Owner.Comm {
			o.Comm[i] = int8(c)
		}
		if err := owners.Update(r.Cookie, o, 0); err != nil {
			t.log.Debug("seed socket owner", "err", err)
		}
		if r.State == StateListen {
			key := tcpscopeListenerKey{Netns: r.Netns, Port: r.Local.Port()}
			if err := listeners.Update(key, tcpscopeListenerOwner{Owner: o, Count: 1}, 0); err != nil {
				t.log.Debug("seed listener owner", "err", err)
			}
		}
	}
}
