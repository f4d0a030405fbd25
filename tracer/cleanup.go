//go:build linux

package tracer

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What a killed tcpscope leaves behind, and how it is found.
//
// TCX links and every other BPF object tcpscope makes (programs, maps,
// tracepoint links) belong to the process: the kernel frees them when it
// dies, even by SIGKILL, and tcpscope pins nothing. Only the legacy
// clsact attachment (kernels without TCX) outlives it: cls_bpf filters
// named tcpscope-PID-PIDNS-DIR[-qdisc] and the clsact qdisc a run created.
//
// A filter is stale when its process is gone: no process PID in pid
// namespace PIDNS, a zombie, or a process that started after the filter's
// program was loaded (the pid was reused). A filter whose program is not
// one of tcpscope's classifiers is someone else's and left alone; when
// the owner's pid namespace cannot be seen (tcpscope itself runs in a
// child pid namespace, or /proc denies access) the filter is kept.

// initPidnsInode is the inode of the initial pid namespace
// (PROC_PID_INIT_INO): from there every process is visible.
const initPidnsInode = 0xEFFFFFFC

// userHZ is the unit of the start time in /proc/PID/stat (USER_HZ).
const userHZ = 100

// Leftover is a TC object that a killed tcpscope left behind: found, and
// removed unless in a dry run, by Cleanup and by every tracing run on the
// interfaces it uses.
type Leftover struct {
	// Kind is "filter" (a cls_bpf filter) or "qdisc" (a clsact qdisc).
	Kind string
	// Netns is the inode of the interface's network namespace.
	Netns uint32
	// Ifindex and Ifname name the interface.
	Ifindex int
	Ifname  string
	// Dir is the filter's hook, "ingress" or "egress" ("" for a qdisc).
	Dir string
	// Name is the filter's name ("" for a qdisc).
	Name string
	// PID is the process that left it (in its own pid namespace).
	PID int
	// Reason says why the owner counts as gone.
	Reason string
}

// CleanupOptions configures Cleanup.
type CleanupOptions struct {
	// DryRun lists the leftovers without removing them.
	DryRun bool
	// Logger receives progress and warnings; nil discards them.
	Logger *slog.Logger
}

// maxCleanupLinks bounds the interfaces Cleanup looks at per namespace.
const maxCleanupLinks = 1 << 16

// Cleanup finds the cls_bpf filters (and the clsact qdiscs tcpscope
// created) that killed tcpscope processes left on the interfaces of
// every network namespace it can find (its own, /run/netns,
// /run/docker/netns, /proc/*/ns/net), removes them unless opts.DryRun,
// and returns them. Live tcpscope processes keep theirs.
func Cleanup(opts CleanupOptions) ([]Leftover, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkCleanupPrivileges(); err != nil {
		return nil, err
	}
	own, err := OwnNetns()
	if err != nil {
		return nil, err
	}
	others, skipped := otherNetns(own.Inode)
	defer func() {
		for _, n := range others {
			n.Close()
		}
	}()
	if skipped > 0 {
		log.Warn("cleanup: too many network namespaces; some were not looked at", "looked_at", maxSnapshotNetns, "skipped", skipped)
	}
	var out []Leftover
	var firstErr error
	done := 0
	for _, ns := range append([]*Netns{own}, others...) {
		err := ns.Do(func() error {
			h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				return fmt.Errorf("open netlink: %w", err)
			}
			defer h.Close()
			links, err := h.LinkList()
			if err != nil {
				return fmt.Errorf("list interfaces: %w", err)
			}
			if len(links) > maxCleanupLinks {
				log.Warn("cleanup: too many interfaces; some were not looked at", "netns", ns.Inode, "looked_at", maxCleanupLinks, "skipped", len(links)-maxCleanupLinks)
				links = links[:maxCleanupLinks]
			}
			for _, l := range links {
				res := cleanLink(h, l, l.Attrs().Name, ns.Inode, cleanOpts{removeQdisc: true, dryRun: opts.DryRun, log: log})
				out = append(out, res.removed...)
				if res.err != nil && firstErr == nil {
					firstErr = res.err
				}
			}
			return nil
		})
		if err != nil {
			log.Warn("cleanup: skipped a network namespace", "netns", ns.Inode, "path", ns.Path, "err", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		done++
	}
	if done == 0 {
		return out, firstErr
	}
	if firstErr != nil && len(out) == 0 {
		// Some namespaces could not be looked at, nothing was found
		// elsewhere: still a clean result, said in the log above.
		log.Debug("cleanup: some namespaces failed", "err", firstErr)
	}
	return out, nil
}

// checkCleanupPrivileges: changing filters needs CAP_NET_ADMIN, entering
// other namespaces CAP_SYS_ADMIN.
func checkCleanupPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell: let the kernel decide
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var missing []string
	if !has(capNetAdmin) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if !has(capSysAdmin) {
		missing = append(missing, "CAP_SYS_ADMIN")
	}
	if len(missing) > 0 {
		return fmt.Errorf("insufficient privileges: tcpscope cleanup needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN (missing %s)", strings.Join(missing, ", "))
	}
	return nil
}

// cleanOpts says what cleanLink may do.
type cleanOpts struct {
	// own are this process's classifier programs: never stale.
	own map[ebpf.ProgramID]bool
	// removeQdisc also removes a tcpscope clsact qdisc left empty (not
	// when the caller is about to attach to it).
	removeQdisc bool
	dryRun      bool
	log         *slog.Logger
}

// cleanResult is what cleanLink found on one interface.
type cleanResult struct {
	removed []Leftover
	// tcpscopeQdisc: a tcpscope filter there (stale or live) says its
	// clsact qdisc was created by tcpscope.
	tcpscopeQdisc bool
	err           error
}

// cleanLink removes the stale tcpscope filters of one interface (h is a
// netlink handle in its namespace) and says so in the log; with
// removeQdisc, also the clsact qdisc a tcpscope run created once nothing
// is left on it.
func cleanLink(h *netlink.Handle, link netlink.Link, ifname string, netnsIno uint32, o cleanOpts) cleanResult {
	var res cleanResult
	ifindex := link.Attrs().Index
	var stalePID int
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(link, parent)
		if err != nil {
			continue // no clsact qdisc
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok {
				continue
			}
			tag, ok := parseFilterName(bf.Name)
			if !ok || o.own[ebpf.ProgramID(bf.Id)] {
				if ok {
					res.tcpscopeQdisc = res.tcpscopeQdisc || tag.ownsQdisc
				}
				continue
			}
			v, reason := judgeFilter(tag, ebpf.ProgramID(bf.Id))
			switch v {
			case filterForeign:
				continue
			case filterLive, filterUnknown:
				res.tcpscopeQdisc = res.tcpscopeQdisc || tag.ownsQdisc
				if v == filterUnknown {
					o.log.Info("kept a tcpscope filter whose owner cannot be checked", "interface", ifname, "netns", netnsIno,
						"filter", bf.Name, "pid", tag.pid, "why", reason)
				}
				continue
			}
			res.tcpscopeQdisc = res.tcpscopeQdisc || tag.ownsQdisc
			lo := Leftover{Kind: "filter", Netns: netnsIno, Ifindex: ifindex, Ifname: ifname, Dir: tag.dir,
				Name: bf.Name, PID: tag.pid, Reason: reason}
			if !o.dryRun {
				if err := h.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
					res.err = errors.Join(res.err, fmt.Errorf("remove stale filter %s from %s: %w", bf.Name, ifname, err))
					continue
				}
				o.log.Warn(fmt.Sprintf("removed stale tcpscope filter left by pid %d", tag.pid), "interface", ifname,
					"netns", netnsIno, "dir", tag.dir, "filter", bf.Name, "why", reason)
			}
			res.removed = append(res.removed, lo)
			stalePID = tag.pid
		}
	}
	if !o.removeQdisc || !res.tcpscopeQdisc {
		return res
	}
	// The qdisc is tcpscope's: remove it when nothing is left on it (in a
	// dry run: when only the leftovers listed are).
	empty := clsactEmpty(h, ifindex)
	if o.dryRun {
		empty = len(res.removed) > 0 && onlyThese(h, link, res.removed)
	}
	if !empty {
		return res
	}
	lo := Leftover{Kind: "qdisc", Netns: netnsIno, Ifindex: ifindex, Ifname: ifname, PID: stalePID,
		Reason: "created by tcpscope, no filter left"}
	if !o.dryRun {
		if err := h.QdiscDel(clsactQdisc(ifindex)); err != nil {
			if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				res.err = errors.Join(res.err, fmt.Errorf("remove clsact qdisc from %s: %w", ifname, err))
			}
			return res
		}
		o.log.Warn("removed the clsact qdisc a killed tcpscope created", "interface", ifname, "netns", netnsIno)
	}
	res.removed = append(res.removed, lo)
	return res
}

// onlyThese reports whether the filters of link are exactly the ones
// listed (a dry run's "would the qdisc be left empty").
func onlyThese(h *netlink.Handle, link netlink.Link, listed []Leftover) bool {
	names := map[string]bool{}
	for _, l := range listed {
		names[l.Name] = true
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(link, parent)
		if err != nil {
			return false
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok || !names[bf.Name] {
				return false
			}
		}
	}
	return true
}

// filterVerdict is what judgeFilter found out about a filter's owner.
type filterVerdict int

const (
	filterLive    filterVerdict = iota // its tcpscope process runs
	filterStale                        // its process is gone
	filterForeign                      // not tcpscope's program: not ours to judge
	filterUnknown                      // cannot tell: kept
)

// tcpscopeTCPrograms are the names of tcpscope's classifiers.
var tcpscopeTCPrograms = map[string]bool{
	tcpscopeProgTcIngress: true, tcpscopeProgTcEgress: true, tcpscopeProgTcLoEgress: true,
}

// judgeFilter decides whether the process that a tcpscope filter names
// (tag) still runs, using its program (id) when it can be read.
func judgeFilter(tag filterTag, id ebpf.ProgramID) (filterVerdict, string) {
	var loadTime time.Duration
	if id != 0 {
		if prog, err := ebpf.NewProgramFromID(id); err == nil {
			info, ierr := prog.Info()
			prog.Close()
			if ierr == nil {
				if info.Name != "" && !tcpscopeTCPrograms[info.Name] {
					return filterForeign, "program " + info.Name + " is not tcpscope's"
				}
				loadTime, _ = info.LoadTime()
			}
		}
	}
	return judgeOwner(tag, loadTime)
}

// judgeOwner decides whether the process tag names runs and, when the
// program's load time (since boot) is known, is the one that loaded it.
func judgeOwner(tag filterTag, loadTime time.Duration) (filterVerdict, string) {
	pid, found, certain := hostPID(tag)
	if !found {
		if !certain {
			return filterUnknown, fmt.Sprintf("pid namespace %d not visible from here", tag.pidns)
		}
		return filterStale, "process gone"
	}
	state, start, err := procStat(pid)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return filterStale, "process gone"
	case err != nil:
		return filterUnknown, err.Error()
	case state == 'Z' || state == 'X':
		return filterStale, "process exited"
	case loadTime > 0 && start > loadTime:
		// The owner started before it loaded its program; this one
		// started after: the pid was reused.
		return filterStale, "process gone (pid reused)"
	}
	return filterLive, ""
}

// hostPID finds the pid, as seen here, of the process tag names. found
// false with certain true means no such process exists.
func hostPID(tag filterTag) (pid int, found, certain bool) {
	own := ownPidns()
	if tag.pidns == 0 || tag.pidns == own {
		_, err := os.Stat("/proc/" + strconv.Itoa(tag.pid))
		return tag.pid, err == nil, true
	}
	// Another pid namespace: look for a process in it whose innermost
	// pid (the last of NSpid) is tag.pid.
	certain = own == initPidnsInode
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false, false
	}
	for _, e := range entries {
		if !isDigits(e.Name()) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+e.Name()+"/ns/pid", &st); err != nil {
			if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) && nestedPidns("/proc/"+e.Name()+"/status") {
				// Access denied to a process in some nested pid
				// namespace: it could be the one. (One whose NSpid
				// has a single pid lives in ours: not a candidate.
				// Sandboxes deny /proc/1/ns/ even to root.)
				certain = false
			}
			continue
		}
		if uint32(st.Ino) != tag.pidns {
			continue
		}
		if nspid, ok := innermostPID("/proc/" + e.Name() + "/status"); ok && nspid == tag.pid {
			p, _ := strconv.Atoi(e.Name())
			return p, true, true
		}
	}
	return 0, false, certain
}

// nestedPidns reports whether the process of a status file lives in a pid
// namespace below ours (its NSpid line lists more than one pid), or may:
// true when the file cannot be read.
func nestedPidns(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			return len(strings.Fields(rest)) != 1
		}
	}
	return true
}

// innermostPID reads the last pid of the NSpid line of a status file.
func innermostPID(path string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				return 0, false
			}
			n, err := strconv.Atoi(fields[len(fields)-1])
			return n, err == nil
		}
	}
	return 0, false
}

// procStat reads the state and the start time (since boot) of pid.
func procStat(pid int) (state byte, start time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(b)
}

// parseProcStat parses "pid (comm) S ppid ... starttime ...": the fields
// after the last ')' start with the state (field 3); starttime is field
// 22, in USER_HZ ticks since boot.
func parseProcStat(b []byte) (state byte, start time.Duration, err error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc stat")
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed /proc stat")
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc stat start time: %w", err)
	}
	return fields[0][0], time.Duration(ticks) * (time.Second / userHZ), nil
}

// ownPidns is the inode of this process's pid namespace (0 if unknown).
var ownPidns = sync.OnceValue(func() uint32 {
	ino, err := netnsInode("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	return ino
})
