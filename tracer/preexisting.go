//go:build linux

package tracer

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// Connections that existed before tracing started are listed once at
// start-up with sock_diag (every state, TIME_WAIT included), in every
// namespace whose socket events are traced (all of them by default, found
// through /run/netns, /run/docker/netns and /proc/*/ns/net): one socket
// record each, preexisting, so that their later events find their
// connection. They pass the same filters as the kernel's events
// (recordFilter: --netns, --port, --host). Their owners come from the socket inodes in /proc/*/fd and
// are seeded into the kernel's owner tables, so later events of those
// sockets carry pid and comm too. /proc names no thread: their tid is
// absent until the process next sends or receives on the socket (the
// kernel then records its full owner); their cgroup_id is the inode of the
// process's cgroup v2 directory, absent when it cannot be found.

// maxProcFDs bounds the /proc scan for socket owners.
const maxProcFDs = 1 << 20

// maxSnapshotNetns bounds how many namespaces are listed at start-up.
const maxSnapshotNetns = 4096

// snapshotSockets lists the TCP sockets of the namespaces whose socket
// events are traced. A namespace that cannot be listed is skipped with a
// warning; an error is returned only when none could be.
func (t *Tracer) snapshotSockets() ([]Record, error) {
	spaces, others, skipped := t.tracedNamespaces()
	defer closeAll(others)
	if skipped > 0 {
		t.log.Warn("list preexisting sockets: too many network namespaces", "listed", maxSnapshotNetns, "skipped", skipped)
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

// tracedNamespaces returns the namespaces whose socket events are traced:
// the tracer's, and (without --netns) every other one found (opened:
// others, for closeAll), at most maxSnapshotNetns; skipped is how many
// more were left out.
func (t *Tracer) tracedNamespaces() (spaces, others []*Netns, skipped int) {
	spaces = []*Netns{t.netns}
	if t.cfg.Netns == nil {
		others, skipped = otherNetns(t.netns.Inode)
		spaces = append(spaces, others...)
	}
	return spaces, others, skipped
}

func closeAll(spaces []*Netns) {
	for _, n := range spaces {
		n.Close()
	}
}

// listLiveSockets lists the TCP sockets (cookies) of the namespaces whose
// socket events are traced (deadsockets.go), but those in TIME_WAIT (the
// mini-socket left after the full one closed; an orphaned FIN_WAIT2
// mini-socket shows as FIN_WAIT2 and counts as live, which only keeps
// its connection longer). A namespace that cannot be listed is left out (Listed
// is false for it); an error is returned only when none could be.
func (t *Tracer) listLiveSockets() (*LiveSockets, error) {
	live := NewLiveSockets(time.Now(), time.Time{}, nil, nil, nil)
	spaces, others, _ := t.tracedNamespaces()
	defer closeAll(others)
	var firstErr error
	for _, ns := range spaces {
		socks, err := diagTCP(ns)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("netns %d: %w", ns.Inode, err)
			}
			continue
		}
		live.netns[ns.Inode] = struct{}{}
		for _, s := range socks {
			cookie := uint64(s.ID.Cookie[0]) | uint64(s.ID.Cookie[1])<<32
			switch TCPState(s.State) {
			case StateTimeWait:
			case StateListen:
				live.listeners[cookie] = struct{}{}
				live.cookies[cookie] = struct{}{}
			default:
				live.cookies[cookie] = struct{}{}
			}
		}
	}
	if len(live.netns) == 0 {
		return nil, firstErr
	}
	live.End = time.Now()
	return live, nil
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
func socketOwners() map[uint32]result.Owner {
	mnt, root := cgroup2Mount("/proc/self/mountinfo")
	return scanSocketOwners("/proc", mnt, root)
}

// scanSocketOwners maps socket inodes to the process holding them, from
// the fds of the processes in the proc tree. The thread is not known (the
// fd belongs to the process): NoTID. The cgroup id is the inode of the
// process's cgroup v2 directory under cgroupMnt (what
// bpf_get_current_cgroup_id returns), NoCgroup when it cannot be found.
func scanSocketOwners(proc, cgroupMnt, cgroupRoot string) map[uint32]result.Owner {
	owners := map[uint32]result.Owner{}
	fds, _ := filepath.Glob(filepath.Join(proc, "[0-9]*", "fd", "*"))
	if len(fds) > maxProcFDs {
		fds = fds[:maxProcFDs]
	}
	type procInfo struct {
		comm     []byte
		cgroup   uint64
		noCgroup bool
	}
	procs := map[string]procInfo{}
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
		pid, err := strconv.ParseUint(filepath.Base(pidDir), 10, 32)
		if err != nil {
			continue
		}
		info, ok := procs[pidDir]
		if !ok {
			comm, _ := os.ReadFile(filepath.Join(pidDir, "comm"))
			info.comm = []byte(strings.TrimSuffix(string(comm), "\n"))
			info.cgroup, info.noCgroup = processCgroupID(pidDir, cgroupMnt, cgroupRoot)
			procs[pidDir] = info
		}
		o := result.Owner{Known: true, PID: uint32(pid), NoTID: true, CgroupID: info.cgroup, NoCgroup: info.noCgroup}
		copy(o.Comm[:], info.comm)
		owners[uint32(ino)] = o
	}
	return owners
}

// cgroup2Mount finds the cgroup v2 hierarchy in a mountinfo file: its
// mount point (/sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on
// a hybrid one) and the cgroup path it shows at that point (root, "/"
// unless mounted from inside a cgroup). "" when there is none.
func cgroup2Mount(mountinfo string) (mountPoint, root string) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return "", ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(line)
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		r, mp := unescapeMountinfo(fields[3]), unescapeMountinfo(fields[4])
		if mountPoint == "" || r == "/" && root != "/" {
			mountPoint, root = mp, r
		}
	}
	return mountPoint, root
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// processCgroupID returns the cgroup v2 id of the process whose /proc
// directory is pidDir: the inode of its directory in the cgroup v2
// hierarchy mounted at mnt (showing cgroup path root there). unknown is
// true when there is no such hierarchy, the process has no v2 entry, or
// its cgroup lies outside what the mount shows (another cgroup namespace).
func processCgroupID(pidDir, mnt, root string) (id uint64, unknown bool) {
	if mnt == "" {
		return 0, true
	}
	b, err := os.ReadFile(filepath.Join(pidDir, "cgroup"))
	if err != nil {
		return 0, true
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		path, ok := strings.CutPrefix(line, "0::")
		if !ok {
			continue
		}
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(root, "/"))
		if !ok || !strings.HasPrefix(rel, "/") && rel != "" || strings.Contains(rel, "/..") {
			return 0, true
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(mnt, rel), &st); err != nil {
			return 0, true
		}
		return st.Ino, false
	}
	return 0, true
}

// seedOwners puts the owners of preexisting sockets (and listeners) into
// the kernel's tables.
func (t *Tracer) seedOwners(recs []Record) {
	owners, listeners := t.coll.Maps[tcpscopeMapOwners], t.coll.Maps[tcpscopeMapListeners]
	for _, r := range recs {
		if !r.Owner.Known || r.Cookie == 0 {
			continue
		}
		o := kernelOwner(&r.Owner)
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

// kernelOwner is the owner table entry of o: the fields o does not know
// are flagged, so that the kernel's events leave them absent too.
func kernelOwner(o *result.Owner) tcpscopeOwner {
	k := tcpscopeOwner{Pid: o.TID, Tgid: o.PID, Uid: o.UID, CgroupId: o.CgroupID}
	if o.NoTID {
		k.Pid, k.Flags = 0, k.Flags|uint32(tcpscopeOwnerFlagOWNER_NO_TID)
	}
	if o.NoCgroup {
		k.CgroupId, k.Flags = 0, k.Flags|uint32(tcpscopeOwnerFlagOWNER_NO_CGROUP)
	}
	for i, c := range o.Comm {
		k.Comm[i] = int8(c)
	}
	return k
}
