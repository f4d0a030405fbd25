//go:build linux

package tracer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// iface is an interface chosen for packet capture.
type iface struct {
	index    int
	name     string
	loopback bool
	l2Len    uint8
}

// resolveInterfaces finds the named interfaces (or, with none named, every
// interface that is up) inside netns. Unknown names are a ConfigError.
func resolveInterfaces(netns *Netns, names []string) ([]iface, error) {
	var out []iface
	err := netns.Do(func() error {
		if len(names) == 0 {
			all, err := net.Interfaces()
			if err != nil {
				return fmt.Errorf("list interfaces: %w", err)
			}
			for _, ni := range all {
				if ni.Flags&net.FlagUp != 0 {
					out = append(out, ifaceFrom(ni))
				}
			}
			if len(out) == 0 {
				return &ConfigError{Msg: "no interface is up"}
			}
			return nil
		}
		seen := map[string]bool{}
		for _, name := range names {
			if seen[name] {
				continue
			}
			seen[name] = true
			ni, err := net.InterfaceByName(name)
			if err != nil {
				return &ConfigError{Msg: fmt.Sprintf("unknown interface %s in network namespace %s", QuoteArg(name), QuoteArg(netns.Path))}
			}
			out = append(out, ifaceFrom(*ni))
		}
		return nil
	})
	return out, err
}

func ifaceFrom(ni net.Interface) iface {
	i := iface{index: ni.Index, name: ni.Name, loopback: ni.Flags&net.FlagLoopback != 0}
	// Loopback and Ethernet-like devices carry a 14-byte L2 header at TC;
	// tun, WireGuard and IP tunnels start with the IP header.
	if i.loopback || len(ni.HardwareAddr) == 6 {
		i.l2Len = 14
	}
	return i
}

func ifaceNames(ifs []iface, events EventSet) string {
	if !events.Has(TypePacket) {
		return "none (no packet events)"
	}
	names := make([]string, len(ifs))
	for i, f := range ifs {
		names[i] = f.name
	}
	return strings.Join(names, ",")
}

// tcPrograms are the classifiers attached to interfaces.
type tcPrograms struct {
	ingress, egress *ebpf.Program
	// loEgress replaces egress on loopback: it reports nothing and only
	// remembers which socket sent each SYN (see bpf/tcpscope.c).
	loEgress *ebpf.Program
}

// attachTC attaches the classifiers to one interface with TCX. On loopback
// every packet passes egress and then ingress: packets are reported at
// ingress only (after GSO segmentation, as tcpdump sees them), so each is
// reported once. First it removes what a killed tcpscope in clsact mode
// left there (h is a netlink handle in the interface's namespace): stale
// cls_bpf filters, and the clsact qdisc if tcpscope created it.
func attachTC(h *netlink.Handle, progs tcPrograms, ifc iface, netnsIno uint32, log *slog.Logger) ([]io.Closer, error) {
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifc.index}}
	if res := cleanLink(h, dev, ifc.name, netnsIno, cleanOpts{own: progs.ids(), removeQdisc: true, log: log}); res.err != nil {
		log.Warn("remove stale tcpscope filters", "interface", ifc.name, "err", res.err)
	}
	var links []io.Closer
	egress := progs.egress
	if ifc.loopback {
		egress = progs.loEgress
	}
	// Ingress first in the chain, egress last: packets are seen as they
	// arrive and as they leave, whatever other TC programs (a CNI) do to
	// them, the same as tcpdump sees them.
	hooks := []struct {
		prog   *ebpf.Program
		attach ebpf.AttachType
		anchor link.Anchor
		dir    string
	}{
		{progs.ingress, ebpf.AttachTCXIngress, link.Head(), "ingress"},
		{egress, ebpf.AttachTCXEgress, link.Tail(), "egress"},
	}
	for _, h := range hooks {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.index, Program: h.prog, Attach: h.attach, Anchor: h.anchor})
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			if errors.Is(err, ebpf.ErrNotSupported) {
				err = fmt.Errorf("%w (TCX needs Linux >= 6.6)", err)
			}
			return nil, fmt.Errorf("attach tcx %s to %s: %w", h.dir, ifc.name, err)
		}
		links = append(links, l)
	}
	return links, nil
}
