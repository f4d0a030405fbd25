package tracer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Legacy TC attachment for kernels without TCX (< 6.6): a clsact qdisc
// with one cls_bpf filter (direct-action) per hook, through netlink.
// Unlike TCX links these outlive the process if it is killed: every
// filter is named after its tcpscope process, and filters of processes
// that no longer exist are removed when tcpscope next attaches there.

const (
	clsactFilterPrefix = "tcpscope-"
	// Ingress filters run by priority: 1 puts ours first. On egress ours
	// runs last, after any other filter.
	clsactIngressPrio = 1
	clsactEgressPrio  = 0xfffe
)

// clsactHook is one cls_bpf filter of ours; Close removes it.
type clsactHook struct {
	handle *netlink.Handle
	filter *netlink.BpfFilter
	// qdisc is set on the last hook of an interface whose clsact qdisc
	// tcpscope created: it is removed too once no filter is left on it.
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
	if h.qdisc != nil && clsactEmpty(h.handle, h.filter.LinkIndex) {
		if qerr := h.handle.QdiscDel(h.qdisc); qerr != nil && !errors.Is(qerr, unix.ENOENT) && !errors.Is(qerr, unix.EINVAL) {
			err = errors.Join(err, fmt.Errorf("remove clsact qdisc: %w", qerr))
		}
	}
	return err
}

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

// attachClsact attaches the classifiers to one interface with clsact +
// cls_bpf. h must be a netlink handle in the interface's namespace.
func attachClsact(h *netlink.Handle, progs tcPrograms, ifc iface) ([]io.Closer, error) {
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifc.index}}
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifc.index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	created := true
	if err := h.QdiscAdd(qdisc); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("add clsact qdisc to %s: %w", ifc.name, err)
		}
		created = false
	}
	removeStaleFilters(h, link)

	egress := progs.egress
	if ifc.loopback {
		egress = progs.loEgress
	}
	pid := os.Getpid()
	hooks := []struct {
		prog   *ebpf.Program
		parent uint32
		prio   uint16
		dir    string
	}{
		{progs.ingress, netlink.HANDLE_MIN_INGRESS, clsactIngressPrio, "ingress"},
		{egress, netlink.HANDLE_MIN_EGRESS, clsactEgressPrio, "egress"},
	}
	var out []io.Closer
	for _, hk := range hooks {
		f := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: ifc.index,
				Parent:    hk.parent,
				Handle:    uint32(pid),
				Protocol:  unix.ETH_P_ALL,
				Priority:  hk.prio,
			},
			Fd:           hk.prog.FD(),
			Name:         fmt.Sprintf("%s%d-%s", clsactFilterPrefix, pid, hk.dir),
			DirectAction: true,
		}
		if err := h.FilterAdd(f); err != nil {
			for _, c := range out {
				c.Close()
			}
			return nil, fmt.Errorf("attach cls_bpf %s to %s: %w", hk.dir, ifc.name, err)
		}
		out = append(out, &clsactHook{handle: h, filter: f})
	}
	if created {
		out[len(out)-1].(*clsactHook).qdisc = qdisc
	}
	return out, nil
}

// removeStaleFilters deletes cls_bpf filters that a tcpscope process left
// behind when it was killed: named tcpscope-PID-..., PID no longer alive.
func removeStaleFilters(h *netlink.Handle, link netlink.Link) {
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(link, parent)
		if err != nil {
			continue
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok || !strings.HasPrefix(bf.Name, clsactFilterPrefix) {
				continue
			}
			pidStr, _, _ := strings.Cut(strings.TrimPrefix(bf.Name, clsactFilterPrefix), "-")
			pid, err := strconv.Atoi(pidStr)
			if err != nil || pid == os.Getpid() || processAlive(pid) {
				continue
			}
			h.FilterDel(bf)
		}
	}
}

// processAlive reports whether pid is a running process (not a zombie).
func processAlive(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // cannot tell (another pid namespace): keep its filters
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
