//go:build linux

package tracer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Legacy TC attachment for kernels without TCX (< 6.6): a clsact qdisc
// with one cls_bpf filter (direct-action) per hook, through netlink.
//
// Unlike TCX links these outlive the process when it is killed (SIGKILL,
// the OOM killer): the filters keep running tcpscope's programs on every
// packet and keep its ring buffer allocated. So every filter says who owns
// it in its name, tcpscope-PID-PIDNS-DIR[-qdisc]:
//   - PID and PIDNS (the inode of the owner's pid namespace) identify the
//     process; a filter whose process is gone is stale (stale.go);
//   - "-qdisc" marks a clsact qdisc that a tcpscope run created: the last
//     tcpscope to leave it removes it once no filter is left on it, and a
//     later run or `tcpscope cleanup` removes it after a killed one.
//
// Every run removes the stale filters of the interfaces it uses, in
// either TC mode; `tcpscope cleanup` removes them everywhere.

const (
	clsactFilterPrefix = "tcpscope-"
	// clsactQdiscMark ends the names of filters whose clsact qdisc a
	// tcpscope run created.
	clsactQdiscMark = "qdisc"
	// Ingress filters run by priority: 1 puts ours first. On egress ours
	// runs last, after any other filter.
	clsactIngressPrio = 1
	clsactEgressPrio  = 0xfffe
	// clsactHandleTries bounds the search for a free filter handle (two
	// tcpscope processes of different pid namespaces may share a pid).
	clsactHandleTries = 16
)

// filterTag is what the name of a tcpscope cls_bpf filter says.
type filterTag struct {
	pid   int
	pidns uint32 // 0 in names written before the pid namespace was recorded
	dir   string // "ingress" or "egress"
	// ownsQdisc: the clsact qdisc was created by a tcpscope run.
	ownsQdisc bool
}

// filterName names a filter of process pid (in pid namespace pidns).
func filterName(tag filterTag) string {
	name := fmt.Sprintf("%s%d-%d-%s", clsactFilterPrefix, tag.pid, tag.pidns, tag.dir)
	if tag.ownsQdisc {
		name += "-" + clsactQdiscMark
	}
	return name
}

// parseFilterName reads a filter name written by filterName, or by older
// tcpscope versions (tcpscope-PID-DIR).
func parseFilterName(name string) (filterTag, bool) {
	rest, ok := strings.CutPrefix(name, clsactFilterPrefix)
	if !ok {
		return filterTag{}, false
	}
	parts := strings.Split(rest, "-")
	var tag filterTag
	if n := len(parts); n > 0 && parts[n-1] == clsactQdiscMark {
		tag.ownsQdisc = true
		parts = parts[:n-1]
	}
	switch len(parts) {
	case 2: // tcpscope-PID-DIR
	case 3:
		ns, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			return filterTag{}, false
		}
		tag.pidns = uint32(ns)
	default:
		return filterTag{}, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return filterTag{}, false
	}
	tag.pid = pid
	tag.dir = parts[len(parts)-1]
	if tag.dir != "ingress" && tag.dir != "egress" {
		return filterTag{}, false
	}
	return tag, true
}

// clsactHook is one cls_bpf filter of ours; Close removes it.
type clsactHook struct {
	handle *netlink.Handle
	filter *netlink.BpfFilter
	// qdisc is set on the last hook of an interface whose clsact qdisc is
	// tcpscope's: it is removed too once no filter is left on it.
	qdisc *netlink.GenericQdisc
}

// Close removes the filter (and the qdisc tcpscope created, when empty).
func (h *clsactHook) Close() error {
	err := h.handle.FilterDel(h.filter)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) {
		err = nil // interface or qdisc already gone
	}
	if err != nil {
		err = fmt.Errorf("remove cls_bpf filter %s: %w", h.filter.Name, err)
	}
	if h.qdisc != nil {
		if qerr := removeClsactIfEmpty(h.handle, h.filter.LinkIndex); qerr != nil {
			err = errors.Join(err, qerr)
		}
	}
	return err
}

func clsactQdisc(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
}

// clsactEmpty reports whether the clsact qdisc of ifindex exists and
// holds no filter at all (ours or anyone's).
func clsactEmpty(h *netlink.Handle, ifindex int) bool {
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(link, parent)
		if err != nil || len(filters) > 0 {
			return false
		}
	}
	return true
}

// removeClsactIfEmpty removes the clsact qdisc of ifindex when no filter
// is left on it. A qdisc or interface already gone is not an error.
func removeClsactIfEmpty(h *netlink.Handle, ifindex int) error {
	if !clsactEmpty(h, ifindex) {
		return nil
	}
	err := h.QdiscDel(clsactQdisc(ifindex))
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return fmt.Errorf("remove clsact qdisc: %w", err)
}

// attachClsact attaches the classifiers to one interface with clsact +
// cls_bpf, after removing the stale tcpscope filters found there. h must
// be a netlink handle in the interface's namespace.
func attachClsact(h *netlink.Handle, progs tcPrograms, ifc iface, netnsIno uint32, log *slog.Logger) (_ []io.Closer, err error) {
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifc.index}}
	qdisc := clsactQdisc(ifc.index)
	created := true
	if err := h.QdiscAdd(qdisc); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("add clsact qdisc to %s: %w", ifc.name, err)
		}
		created = false
	}
	var out []io.Closer
	defer func() {
		if err == nil {
			return
		}
		for _, c := range out {
			c.Close()
		}
		if created {
			removeClsactIfEmpty(h, ifc.index)
		}
	}()
	// A qdisc that a (killed or live) tcpscope created stays tcpscope's:
	// this run removes it at exit when it is the last one on it.
	res := cleanLink(h, link, ifc.name, netnsIno, cleanOpts{own: progs.ids(), log: log})
	ownsQdisc := created || res.tcpscopeQdisc

	egress := progs.egress
	if ifc.loopback {
		egress = progs.loEgress
	}
	pid, pidns := os.Getpid(), ownPidns()
	hooks := []struct {
		prog   *ebpf.Program
		parent uint32
		prio   uint16
		dir    string
	}{
		{progs.ingress, netlink.HANDLE_MIN_INGRESS, clsactIngressPrio, "ingress"},
		{egress, netlink.HANDLE_MIN_EGRESS, clsactEgressPrio, "egress"},
	}
	for _, hk := range hooks {
		f := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: ifc.index,
				Parent:    hk.parent,
				Protocol:  unix.ETH_P_ALL,
				Priority:  hk.prio,
			},
			Fd:           hk.prog.FD(),
			Name:         filterName(filterTag{pid: pid, pidns: pidns, dir: hk.dir, ownsQdisc: ownsQdisc}),
			DirectAction: true,
		}
		if err := addFilter(h, f, uint32(pid)); err != nil {
			return nil, fmt.Errorf("attach cls_bpf %s to %s: %w", hk.dir, ifc.name, err)
		}
		out = append(out, &clsactHook{handle: h, filter: f})
	}
	if ownsQdisc {
		out[len(out)-1].(*clsactHook).qdisc = qdisc
	}
	return out, nil
}

// addFilter adds f with the first free handle derived from base.
func addFilter(h *netlink.Handle, f *netlink.BpfFilter, base uint32) error {
	var err error
	for i := range uint32(clsactHandleTries) {
		f.Handle = base ^ i<<24
		if f.Handle == 0 {
			continue
		}
		if err = h.FilterAdd(f); !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return err
}

// ids returns the ids of the classifier programs (to tell this process's
// own filters from others').
func (p tcPrograms) ids() map[ebpf.ProgramID]bool {
	ids := map[ebpf.ProgramID]bool{}
	for _, prog := range []*ebpf.Program{p.ingress, p.egress, p.loEgress} {
		if prog == nil {
			continue
		}
		if info, err := prog.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids[id] = true
			}
		}
	}
	return ids
}
