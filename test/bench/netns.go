package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// prefixEnv names the variable with the prefix of the namespace names.
const prefixEnv = "TCPSCOPE_BENCH_PREFIX"

// defaultPrefix is the namespace name prefix when prefixEnv is unset.
const defaultPrefix = "tcpscope-bench"

// validPrefix keeps PREFIX-a a plain file name in /run/netns.
var validPrefix = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$`)

// Interface names of the veth pair (each lives in its own namespace).
const (
	vethA = "veth-a"
	vethB = "veth-b"
)

// benchNet is the harness's network: namespace A (load generator, tracers)
// and namespace B (server) joined by a veth pair, with static neighbours.
type benchNet struct {
	a, b       string // namespace names
	inoA, inoB uint64 // their inodes, as in tcpscope's `netns` field
	a4, b4     netip.Addr
	a6, b6     netip.Addr
}

// Addresses and MACs of the two ends.
var (
	addrA4 = netip.MustParseAddr("10.201.0.1")
	addrB4 = netip.MustParseAddr("10.201.0.2")
	addrA6 = netip.MustParseAddr("fd00:201::1")
	addrB6 = netip.MustParseAddr("fd00:201::2")
)

// benchAddrPrefixes tell the bench's connections in text output.
var benchAddrPrefixes = [][]byte{[]byte("10.201.0."), []byte("fd00:201::")}

const (
	macA = "02:00:00:c9:00:01"
	macB = "02:00:00:c9:00:02"
)

// netnsPrefix returns the namespace name prefix from the environment.
func netnsPrefix() (string, error) {
	p, ok := os.LookupEnv(prefixEnv)
	if !ok || p == "" {
		return defaultPrefix, nil
	}
	if !validPrefix.MatchString(p) {
		return "", fmt.Errorf("bad %s %q: want letters, digits, '.', '_' or '-', at most 61", prefixEnv, p)
	}
	return p, nil
}

// setupNet creates the namespaces and the veth pair. Namespaces left by
// an earlier run with the same prefix are deleted first. On error what
// was made is removed again.
func setupNet(ctx context.Context, prefix, portRange string) (n *benchNet, err error) {
	n = &benchNet{a: prefix + "-a", b: prefix + "-b", a4: addrA4, b4: addrB4, a6: addrA6, b6: addrB6}
	for _, name := range []string{n.a, n.b} {
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			logf("deleting namespace %s left by an earlier run", name)
			if _, err := runCmd(ctx, "ip", "netns", "del", name); err != nil {
				return nil, err
			}
		}
	}
	defer func() {
		if err != nil {
			n.teardown()
		}
	}()
	for _, name := range []string{n.a, n.b} {
		if _, err := runCmd(ctx, "ip", "netns", "add", name); err != nil {
			return n, fmt.Errorf("create namespace: %w", err)
		}
	}
	if n.inoA, err = netnsInode(n.a); err != nil {
		return n, err
	}
	if n.inoB, err = netnsInode(n.b); err != nil {
		return n, err
	}
	if _, err := runCmd(ctx, "ip", "link", "add", vethA, "address", macA, "netns", n.a, "type", "veth",
		"peer", "name", vethB, "address", macB, "netns", n.b); err != nil {
		return n, fmt.Errorf("create veth pair: %w", err)
	}
	type end struct {
		ns, ifname string
		ip4, ip6   netip.Addr
		peer4      netip.Addr
		peer6      netip.Addr
		peerMAC    string
	}
	for _, e := range []end{
		{n.a, vethA, n.a4, n.a6, n.b4, n.b6, macB},
		{n.b, vethB, n.b4, n.b6, n.a4, n.a6, macA},
	} {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"addr", "add", e.ip4.String() + "/24", "dev", e.ifname},
			{"addr", "add", e.ip6.String() + "/64", "dev", e.ifname, "nodad"},
			{"link", "set", e.ifname, "up"},
			// Static neighbours: no ARP or neighbour discovery in the
			// measurement.
			{"neigh", "replace", e.peer4.String(), "lladdr", e.peerMAC, "dev", e.ifname, "nud", "permanent"},
			{"neigh", "replace", e.peer6.String(), "lladdr", e.peerMAC, "dev", e.ifname, "nud", "permanent"},
		} {
			if _, err := runCmd(ctx, append([]string{"ip", "-n", e.ns}, args...)...); err != nil {
				return n, fmt.Errorf("configure %s in %s: %w", e.ifname, e.ns, err)
			}
		}
	}
	// The client opens 100k connections and closes first (TIME_WAIT on
	// its side): every local port, and TIME_WAIT reuse for connect().
	for _, kv := range [][2]string{
		{"net.ipv4.ip_local_port_range", portRange},
		{"net.ipv4.tcp_tw_reuse", "1"},
	} {
		if _, err := runCmd(ctx, "ip", "netns", "exec", n.a, "sysctl", "-q", "-w", kv[0]+"="+kv[1]); err != nil {
			return n, fmt.Errorf("set %s in %s: %w", kv[0], n.a, err)
		}
	}
	return n, nil
}

// netnsInode returns the inode of /run/netns/name.
func netnsInode(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &st); err != nil {
		return 0, fmt.Errorf("stat namespace %s: %w", name, err)
	}
	return st.Ino, nil
}

// teardown deletes both namespaces (the veth pair goes with them). It runs
// after every process in them was killed.
func (n *benchNet) teardown() {
	for _, name := range []string{n.a, n.b} {
		if _, err := os.Stat("/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if _, err := runCmd(context.Background(), "ip", "netns", "del", name); err != nil {
			logf("delete namespace %s: %v", name, err)
		}
	}
}

// exec returns argv prefixed to run inside namespace ns.
func nsExec(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// serverAddr is the server's address and port for the address family.
func (n *benchNet) serverAddr(family, port int) netip.AddrPort {
	if family == 6 {
		return netip.AddrPortFrom(n.b6, uint16(port))
	}
	return netip.AddrPortFrom(n.b4, uint16(port))
}

// killSockets destroys every TCP socket left in both namespaces (TIME_WAIT
// included, with sock_diag's SOCK_DESTROY through `ss -K`), so that every
// measurement starts from empty namespaces. It returns how many sockets
// were still listed afterwards.
func (n *benchNet) killSockets(ctx context.Context) (int, error) {
	left := 0
	for _, ns := range []string{n.a, n.b} {
		if _, err := runCmd(ctx, nsExec(ns, "ss", "-K", "-t", "-a", "-n")...); err != nil {
			return 0, fmt.Errorf("kill sockets in %s: %w", ns, err)
		}
		out, err := runCmd(ctx, nsExec(ns, "ss", "-t", "-a", "-n", "-H")...)
		if err != nil {
			return 0, fmt.Errorf("list sockets in %s: %w", ns, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.TrimSpace(l) != "" {
				left++
			}
		}
	}
	return left, nil
}
