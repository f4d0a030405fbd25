package harness

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// TCXPrograms returns the ids of the BPF programs attached with TCX to
// the ingress and the egress of interface ifname in the namespace (TCX:
// kernel 6.6 and later).
func (n *Namespace) TCXPrograms(ifname string) (ingress, egress []ebpf.ProgramID, err error) {
	err = n.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		for _, q := range []struct {
			attach ebpf.AttachType
			ids    *[]ebpf.ProgramID
		}{{ebpf.AttachTCXIngress, &ingress}, {ebpf.AttachTCXEgress, &egress}} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: q.attach})
			if err != nil {
				return fmt.Errorf("query %s on %s: %w", q.attach, ifname, err)
			}
			for _, p := range res.Programs {
				*q.ids = append(*q.ids, p.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("query TCX programs of %s: %w", ifname, err)
	}
	return ingress, egress, nil
}

// MustTCXPrograms is TCXPrograms that fails t instead of returning an
// error.
func (n *Namespace) MustTCXPrograms(t testing.TB, ifname string) (ingress, egress []ebpf.ProgramID) {
	t.Helper()
	ingress, egress, err := n.TCXPrograms(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return ingress, egress
}

// ClsactState is what classic TC holds on one interface: whether a clsact
// qdisc is there, and the names of tcpscope's cls_bpf filters on it
// (tcpscope-PID-..., ingress and egress).
type ClsactState struct {
	// Qdisc: a clsact qdisc is there.
	Qdisc bool
	// Filters are the names of the filters whose name starts with
	// "tcpscope-".
	Filters []string
}

// Clsact reads the classic TC state of interface ifname in the namespace.
func (n *Namespace) Clsact(ifname string) (ClsactState, error) {
	var st ClsactState
	h, err := n.Handle()
	if err != nil {
		return st, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return st, fmt.Errorf("%s in %s: %w", ifname, n.Name, err)
	}
	qdiscs, err := h.QdiscList(l)
	if err != nil {
		return st, fmt.Errorf("qdiscs of %s in %s: %w", ifname, n.Name, err)
	}
	for _, q := range qdiscs {
		st.Qdisc = st.Qdisc || q.Type() == "clsact"
	}
	if !st.Qdisc {
		return st, nil // no qdisc, no filters
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(l, parent)
		if err != nil {
			return st, fmt.Errorf("filters of %s in %s: %w", ifname, n.Name, err)
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "tcpscope-") {
				st.Filters = append(st.Filters, bf.Name)
			}
		}
	}
	return st, nil
}

// MustClsact is Clsact that fails t instead of returning an error.
func (n *Namespace) MustClsact(t testing.TB, ifname string) ClsactState {
	t.Helper()
	st, err := n.Clsact(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// FiltersOf counts the filters of the tcpscope process pid.
func (s ClsactState) FiltersOf(pid int) int {
	n := 0
	for _, f := range s.Filters {
		if strings.HasPrefix(f, fmt.Sprintf("tcpscope-%d-", pid)) {
			n++
		}
	}
	return n
}
