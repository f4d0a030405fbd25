package tracer

import (
	"net/netip"
	"testing"
)

// TestRecordFilter: the user-space filter applies --netns, --port and
// --host as bpf/tcpscope.c does (sock_id_passes, hosts_pass with its
// v4-mapped LPM keys).
func TestRecordFilter(t *testing.T) {
	ap := netip.MustParseAddrPort
	sock := func(netns uint32, local, remote string) *Record {
		return &Record{Type: TypeSocket, Netns: netns, Local: ap(local), Remote: ap(remote)}
	}
	state := func(netns uint32, local, remote string) *Record {
		r := sock(netns, local, remote)
		r.Type = TypeState
		return r
	}
	packet := func(netns uint32, src, dst string) *Record {
		return &Record{Type: TypePacket, Netns: netns, Src: ap(src), Dst: ap(dst)}
	}
	hosts := func(list ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range list {
			p, err := ParseHost(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	ns7 := &Netns{Inode: 7}
	for _, c := range []struct {
		name string
		cfg  Config
		rec  *Record
		want bool
	}{
		{"no filter", Config{}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"no filter, lost", Config{}, &Record{Type: TypeLost}, true},

		{"netns: same", Config{Netns: ns7}, sock(7, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"netns: other", Config{Netns: ns7}, sock(8, "10.0.0.1:80", "10.0.0.2:4000"), false},
		{"netns: other, state", Config{Netns: ns7}, state(8, "10.0.0.1:80", "10.0.0.2:4000"), false},
		{"netns: packets are not filtered by netns", Config{Netns: ns7}, packet(8, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"netns: lost", Config{Netns: ns7}, &Record{Type: TypeLost}, true},

		{"port: local", Config{Ports: []uint16{80}}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"port: remote", Config{Ports: []uint16{80}}, sock(1, "10.0.0.2:4000", "10.0.0.1:80"), true},
		{"port: neither", Config{Ports: []uint16{80}}, sock(1, "10.0.0.1:81", "10.0.0.2:4000"), false},
		{"port: listener", Config{Ports: []uint16{80}}, sock(1, "0.0.0.0:80", "0.0.0.0:0"), true},
		{"port: listener of another port", Config{Ports: []uint16{80}}, sock(1, "0.0.0.0:81", "0.0.0.0:0"), false},
		{"ports: either value", Config{Ports: []uint16{443, 80}}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"port: packet dst", Config{Ports: []uint16{80}}, packet(1, "10.0.0.2:4000", "10.0.0.1:80"), true},
		{"port: packet neither", Config{Ports: []uint16{80}}, packet(1, "10.0.0.2:4000", "10.0.0.1:8080"), false},
		{"port: 65535", Config{Ports: []uint16{65535}}, sock(1, "10.0.0.1:65535", "10.0.0.2:1"), true},
		{"port: lost", Config{Ports: []uint16{80}}, &Record{Type: TypeLost}, true},

		{"host: local in CIDR", Config{Hosts: hosts("10.213.77.0/24")}, sock(1, "10.213.77.5:80", "10.9.9.9:4000"), true},
		{"host: remote in CIDR", Config{Hosts: hosts("10.213.77.0/24")}, sock(1, "10.9.9.9:4000", "10.213.77.5:80"), true},
		{"host: neither", Config{Hosts: hosts("10.213.77.0/24")}, sock(1, "10.213.78.5:80", "127.0.0.1:4000"), false},
		{"host: single address", Config{Hosts: hosts("10.0.0.1")}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"host: single address, neighbour", Config{Hosts: hosts("10.0.0.1")}, sock(1, "10.0.0.3:80", "10.0.0.2:4000"), false},
		{"host: either value", Config{Hosts: hosts("192.168.0.0/16", "10.0.0.0/8")}, sock(1, "10.1.2.3:80", "172.16.0.1:4000"), true},
		{"host: IPv4 CIDR, v4-mapped address", Config{Hosts: hosts("10.0.0.0/8")}, sock(1, "[::ffff:10.1.2.3]:80", "[::ffff:172.16.0.1]:4000"), true},
		{"host: IPv4 CIDR, IPv6 address", Config{Hosts: hosts("10.0.0.0/8")}, sock(1, "[fd00::1]:80", "[fd00::2]:4000"), false},
		{"host: IPv4 CIDR, IPv4 unspecified", Config{Hosts: hosts("10.0.0.0/8")}, sock(1, "0.0.0.0:80", "0.0.0.0:0"), false},
		{"host: v4-mapped prefix, IPv4 address", Config{Hosts: hosts("::ffff:10.0.0.0/104")}, sock(1, "10.1.2.3:80", "172.16.0.1:4000"), true},
		{"host: 0.0.0.0/0, IPv4", Config{Hosts: hosts("0.0.0.0/0")}, sock(1, "127.0.0.1:80", "127.0.0.1:4000"), true},
		{"host: 0.0.0.0/0, IPv6", Config{Hosts: hosts("0.0.0.0/0")}, sock(1, "[::1]:80", "[::1]:4000"), false},
		{"host: ::/0, IPv4", Config{Hosts: hosts("::/0")}, sock(1, "127.0.0.1:80", "127.0.0.1:4000"), true},
		{"host: IPv6 CIDR", Config{Hosts: hosts("fd00:200::/32")}, sock(1, "[fd00:200:1::1]:80", "[fd00:300::2]:4000"), true},
		{"host: IPv6 CIDR, other", Config{Hosts: hosts("fd00:200::/32")}, sock(1, "[fd00:201::1]:80", "[fd00:300::2]:4000"), false},
		{"host: IPv6 CIDR, IPv4", Config{Hosts: hosts("fd00:200::/32")}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), false},
		{"host: zone of the address ignored", Config{Hosts: hosts("fe80::/10")}, sock(1, "[fe80::1%eth0]:80", "[fe80::2%eth0]:4000"), true},
		{"host: packet", Config{Hosts: hosts("10.0.0.0/8")}, packet(1, "192.168.1.1:4000", "10.0.0.1:80"), true},

		{"port and host: both on one end", Config{Ports: []uint16{80}, Hosts: hosts("10.0.0.1")}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"port and host: on different ends", Config{Ports: []uint16{80}, Hosts: hosts("10.0.0.2")}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), true},
		{"port and host: port only", Config{Ports: []uint16{80}, Hosts: hosts("10.0.0.9")}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), false},
		{"port and host: host only", Config{Ports: []uint16{81}, Hosts: hosts("10.0.0.1")}, sock(1, "10.0.0.1:80", "10.0.0.2:4000"), false},
		{"netns, port and host", Config{Netns: ns7, Ports: []uint16{80}, Hosts: hosts("10.0.0.1")}, sock(8, "10.0.0.1:80", "10.0.0.2:4000"), false},
	} {
		if got := newRecordFilter(&c.cfg).passes(c.rec); got != c.want {
			t.Errorf("%s: passes(%s %s %s netns %d) = %v, want %v", c.name, c.rec.Type, c.rec.Local, c.rec.Remote, c.rec.Netns, got, c.want)
		}
	}
}

// TestRecordFilterNoAlloc: the filter may run for every record.
func TestRecordFilterNoAlloc(t *testing.T) {
	hosts := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	f := newRecordFilter(&Config{Netns: &Netns{Inode: 1}, Ports: []uint16{80, 443}, Hosts: hosts})
	r := &Record{Type: TypeState, Netns: 1, Local: netip.MustParseAddrPort("[fe80::1%eth0]:80"),
		Remote: netip.MustParseAddrPort("10.1.1.1:4000")}
	if n := testing.AllocsPerRun(100, func() { f.passes(r) }); n != 0 {
		t.Errorf("passes allocates %v times per record", n)
	}
}

// TestPrefix16: the user-space filter and the kernel's hosts_filter keys
// (fillMaps) store a prefix the same way.
func TestPrefix16(t *testing.T) {
	for in, want := range map[string]string{
		"10.213.77.0/24":      "::ffff:10.213.77.0/120",
		"10.0.0.1/32":         "::ffff:10.0.0.1/128",
		"0.0.0.0/0":           "::ffff:0.0.0.0/96",
		"fd00::/8":            "fd00::/8",
		"::ffff:10.0.0.0/104": "::ffff:10.0.0.0/104",
	} {
		if got := prefix16(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("prefix16(%s) = %s, want %s", in, got, want)
		}
	}
}
