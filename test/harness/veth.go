package harness

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Interface names of a veth pair (each end lives in its own namespace).
const (
	VethA = "veth-a"
	VethB = "veth-b"
)

// VethAddrs are the addresses of the two ends of a veth pair: IPv4 (a
// /24) and IPv6 (a /64) addresses and the MACs of end A and end B.
type VethAddrs struct {
	A4, B4     netip.Addr
	A6, B6     netip.Addr
	MACA, MACB net.HardwareAddr
}

// TestSubnet returns the addresses of the suites' subnet number x: A has
// 10.200.X.1 and fd00:200:X::1 and MAC 02:00:00:00:XX:01, B has .2, ::2
// and :02.
func TestSubnet(x int) VethAddrs {
	macA, _ := net.ParseMAC(fmt.Sprintf("02:00:00:00:%02x:01", x))
	macB, _ := net.ParseMAC(fmt.Sprintf("02:00:00:00:%02x:02", x))
	return VethAddrs{
		A4: netip.MustParseAddr(fmt.Sprintf("10.200.%d.1", x)), B4: netip.MustParseAddr(fmt.Sprintf("10.200.%d.2", x)),
		A6: netip.MustParseAddr(fmt.Sprintf("fd00:200:%d::1", x)), B6: netip.MustParseAddr(fmt.Sprintf("fd00:200:%d::2", x)),
		MACA: macA, MACB: macB,
	}
}

// VethPair is namespaces A and B joined by a veth pair, VethA in A and
// VethB in B.
type VethPair struct {
	A, B *Namespace
	VethAddrs
}

// ConnectVeth joins namespaces a and b by a veth pair: VethA in a and
// VethB in b, with the addresses and MACs of addrs (IPv6 without duplicate
// address detection), up, and each end's peer a permanent neighbour: no
// ARP or neighbour discovery can hold the first SYN back (a fresh IPv6
// peer may miss the first solicitation, and the SYN then waits a second
// in the queue).
func ConnectVeth(a, b *Namespace, addrs VethAddrs) (*VethPair, error) {
	v := &VethPair{A: a, B: b, VethAddrs: addrs}
	nsB, err := netns.GetFromPath(b.Path)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", b.Name, err)
	}
	defer nsB.Close()
	hA, err := a.Handle()
	if err != nil {
		return nil, err
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: VethA, HardwareAddr: addrs.MACA},
		PeerName:         VethB,
		PeerHardwareAddr: addrs.MACB,
		PeerNamespace:    netlink.NsFd(int(nsB)),
	}
	err = hA.LinkAdd(veth)
	hA.Close()
	if err != nil {
		return nil, fmt.Errorf("add veth pair %s/%s: %w", a.Name, b.Name, err)
	}
	ea := LinkEnd{NS: a, Ifname: VethA, IP4: addrs.A4, IP6: addrs.A6, MAC: addrs.MACA}
	eb := LinkEnd{NS: b, Ifname: VethB, IP4: addrs.B4, IP6: addrs.B6, MAC: addrs.MACB}
	if err := ea.Configure(eb); err != nil {
		return nil, err
	}
	if err := eb.Configure(ea); err != nil {
		return nil, err
	}
	return v, nil
}

// LinkEnd is one host end of a test link: its namespace, interface,
// addresses and MAC.
type LinkEnd struct {
	NS       *Namespace
	Ifname   string
	IP4, IP6 netip.Addr
	MAC      net.HardwareAddr
}

// Configure gives the end its addresses (a /24 and a /64, IPv6 without
// duplicate address detection), brings it up and makes peer a permanent
// neighbour.
func (e LinkEnd) Configure(peer LinkEnd) error {
	h, err := e.NS.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(e.Ifname)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", e.Ifname, e.NS.Name, err)
	}
	for _, a := range []netip.Prefix{netip.PrefixFrom(e.IP4, 24), netip.PrefixFrom(e.IP6, 64)} {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("address %s on %s in %s: %w", a, e.Ifname, e.NS.Name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up in %s: %w", e.Ifname, e.NS.Name, err)
	}
	for _, p := range []netip.Addr{peer.IP4, peer.IP6} {
		neigh := &netlink.Neigh{LinkIndex: link.Attrs().Index, IP: p.AsSlice(), HardwareAddr: peer.MAC, State: netlink.NUD_PERMANENT}
		if err := h.NeighSet(neigh); err != nil {
			return fmt.Errorf("neighbour %s on %s in %s: %w", p, e.Ifname, e.NS.Name, err)
		}
	}
	return nil
}

// NewVethPair creates namespaces A and B (tagged TAG-a and TAG-b, deleted
// when the test ends) joined by a veth pair on subnet x (TestSubnet), and
// fails t if it cannot.
func NewVethPair(t testing.TB, prefix, tag string, x int) *VethPair {
	t.Helper()
	a := NewNamespace(t, prefix, tag+"-a")
	b := NewNamespace(t, prefix, tag+"-b")
	v, err := ConnectVeth(a, b, TestSubnet(x))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
