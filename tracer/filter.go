package tracer

import "net/netip"

// recordFilter is the user-space twin of the kernel's filters
// (bpf/tcpscope.c: sock_id_passes, port_passes, hosts_pass). Records the
// kernel produces have passed those already; every record that reaches
// the output by another way (today the sock_diag listing of preexisting
// sockets) must pass this one, so that --netns, --port and --host (and
// -c, which counts what is written) mean the same for every record.
// A filter added later is added to both, or, when it exists only in user
// space, here and applied to every record.
//
// The semantics, as in the kernel:
//   - --netns: socket-side records (not packets, which come from the
//     interfaces of that namespace anyway) of that namespace only;
//   - --port: the local or the remote port is one of the values;
//   - --host: the local or the remote address is in one of the prefixes;
//   - --port and --host together: both must hold (each on either end);
//     repeated values of one flag are alternatives.
//
// Addresses compare in their 16-byte form, as in the kernel's LPM trie:
// IPv4 is ::ffff:a.b.c.d and an IPv4 prefix /n is ::ffff:a.b.c.d/(96+n).
// So an IPv4 prefix also matches the v4-mapped addresses of a dual-stack
// (AF_INET6) socket, 0.0.0.0/0 matches every IPv4 address and no IPv6 one,
// and ::/0 matches everything.
type recordFilter struct {
	netns uint32         // 0: every namespace
	ports *portSet       // nil: every port
	hosts []netip.Prefix // 16-byte form; nil: every address
}

// portSet is a bitmap of the 65536 ports.
type portSet [1 << 16 / 64]uint64

func (s *portSet) add(p uint16)      { s[p/64] |= 1 << (p % 64) }
func (s *portSet) has(p uint16) bool { return s[p/64]&(1<<(p%64)) != 0 }

// newRecordFilter builds the filter of cfg's --netns, --port and --host.
func newRecordFilter(cfg *Config) *recordFilter {
	f := &recordFilter{}
	if cfg.Netns != nil {
		f.netns = cfg.Netns.Inode
	}
	if len(cfg.Ports) > 0 {
		f.ports = new(portSet)
		for _, p := range cfg.Ports {
			f.ports.add(p)
		}
	}
	for _, h := range cfg.Hosts {
		f.hosts = append(f.hosts, prefix16(h))
	}
	return f
}

// prefix16 is p as the kernel stores it in hosts_filter (tracer.fillMaps).
func prefix16(p netip.Prefix) netip.Prefix {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), bits)
}

// passes reports whether r passes the filters. Records without endpoints
// (lost) always pass. It allocates nothing.
func (f *recordFilter) passes(r *Record) bool {
	a, b := r.Local, r.Remote
	switch r.Type {
	case TypeLost:
		return true
	case TypePacket:
		a, b = r.Src, r.Dst
	default:
		if f.netns != 0 && r.Netns != f.netns {
			return false
		}
	}
	if f.ports != nil && !f.ports.has(a.Port()) && !f.ports.has(b.Port()) {
		return false
	}
	return f.hosts == nil || f.hostMatches(a.Addr()) || f.hostMatches(b.Addr())
}

func (f *recordFilter) hostMatches(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a16 := netip.AddrFrom16(a.As16())
	for _, p := range f.hosts {
		if p.Contains(a16) {
			return true
		}
	}
	return false
}
