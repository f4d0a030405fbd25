package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/tcpscope/tcpscope/test/harness"
)

// prefixEnv names the variable with the prefix of the namespace names.
const prefixEnv = "TCPSCOPE_BENCH_PREFIX"

// defaultPrefix is the namespace name prefix when prefixEnv is unset.
const defaultPrefix = "tcpscope-bench"

// benchNet is the harness's network: namespace A (load generator, tracers)
// and namespace B (server) joined by a veth pair (harness.VethA in A,
// harness.VethB in B), with static neighbours.
type benchNet struct {
	a, b   *harness.Namespace
	a4, b4 netip.Addr
	a6, b6 netip.Addr
}

// benchAddrs are the addresses and MACs of the two ends.
var benchAddrs = harness.VethAddrs{
	A4: netip.MustParseAddr("10.201.0.1"), B4: netip.MustParseAddr("10.201.0.2"),
	A6: netip.MustParseAddr("fd00:201::1"), B6: netip.MustParseAddr("fd00:201::2"),
	MACA: net.HardwareAddr{0x02, 0, 0, 0xc9, 0, 0x01}, MACB: net.HardwareAddr{0x02, 0, 0, 0xc9, 0, 0x02},
}

// benchAddrPrefixes tell the bench's connections in text output.
var benchAddrPrefixes = [][]byte{[]byte("10.201.0."), []byte("fd00:201::")}

// netnsPrefix returns the namespace name prefix from the environment.
func netnsPrefix() (string, error) {
	return harness.PrefixFrom(prefixEnv, defaultPrefix)
}

// setupNet creates the namespaces and the veth pair. Namespaces left by
// an earlier run with the same prefix are deleted first. On error what
// was made is removed again.
func setupNet(ctx context.Context, prefix, portRange string) (n *benchNet, err error) {
	n = &benchNet{a4: benchAddrs.A4, b4: benchAddrs.B4, a6: benchAddrs.A6, b6: benchAddrs.B6}
	names := []string{prefix + "-a", prefix + "-b"}
	for _, name := range names {
		old := &harness.Namespace{Name: name, Path: harness.NetnsDir + "/" + name}
		if _, err := os.Stat(old.Path); err == nil {
			// Processes inside: another run with this prefix is going
			// on (deleting its namespaces would break it), or a killed
			// run left them (they would disturb the measurement).
			if pids := netnsPids(ctx, name); pids != "" {
				return nil, fmt.Errorf("namespace %s is in use by pids %s: another bench with this prefix? Set %s to run beside it, or stop those processes",
					name, pids, prefixEnv)
			}
			logf("deleting namespace %s left by an earlier run", name)
			if err := old.Delete(); err != nil {
				return nil, err
			}
		}
	}
	defer func() {
		if err != nil {
			n.teardown()
		}
	}()
	if n.a, err = harness.CreateNamespace(names[0]); err != nil {
		return n, err
	}
	if n.b, err = harness.CreateNamespace(names[1]); err != nil {
		return n, err
	}
	// Static neighbours: no ARP or neighbour discovery in the
	// measurement.
	if _, err := harness.ConnectVeth(n.a, n.b, benchAddrs); err != nil {
		return n, err
	}
	// The client opens 100k connections and closes first (TIME_WAIT on
	// its side): every local port, and TIME_WAIT reuse for connect().
	for _, kv := range [][2]string{
		{"net.ipv4.ip_local_port_range", portRange},
		{"net.ipv4.tcp_tw_reuse", "1"},
	} {
		if _, err := runCmd(ctx, n.a.Exec("sysctl", "-q", "-w", kv[0]+"="+kv[1])...); err != nil {
			return n, fmt.Errorf("set %s in %s: %w", kv[0], n.a.Name, err)
		}
	}
	return n, nil
}

// teardown deletes both namespaces (the veth pair goes with them). It runs
// after every process in them was killed.
func (n *benchNet) teardown() {
	for _, ns := range []*harness.Namespace{n.a, n.b} {
		if ns == nil {
			continue
		}
		if _, err := os.Stat(ns.Path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := ns.Delete(); err != nil {
			logf("%v", err)
		}
	}
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
	for _, ns := range []*harness.Namespace{n.a, n.b} {
		if _, err := runCmd(ctx, ns.Exec("ss", "-K", "-t", "-a", "-n")...); err != nil {
			return 0, fmt.Errorf("kill sockets in %s: %w", ns.Name, err)
		}
		out, err := runCmd(ctx, ns.Exec("ss", "-t", "-a", "-n", "-H")...)
		if err != nil {
			return 0, fmt.Errorf("list sockets in %s: %w", ns.Name, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.TrimSpace(l) != "" {
				left++
			}
		}
	}
	return left, nil
}

// netnsPids lists the processes inside named namespace name (`ip netns
// pids`), space-separated; "" when none or when it cannot tell.
func netnsPids(ctx context.Context, name string) string {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(out)), " ")
}
