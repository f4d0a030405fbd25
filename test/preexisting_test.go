package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestPreexistingConnections: a connection that exists before tcpscope
// starts (the peer server closes its listener once it accepted) is listed at start-up as socket records marked
// preexisting, with the owners of both ends; its later events share its
// conn and carry the owners too (also the server's CLOSE_WAIT, which runs
// in softirq); its summary says preexisting. A connection in another
// namespace, not the tracer's, is listed too (socket events cover every
// namespace by default).
func TestPreexistingConnections(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "preexisting")
	server := netip.MustParseAddrPort("127.0.0.1:7701")
	client := netip.MustParseAddrPort("127.0.0.1:41701")
	srv := harness.StartT(t, "server", harness.Command(ns.Exec(bins.Server, "serve-echo", server.String())...))
	if _, err := srv.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
		t.Fatal(err)
	}
	// The client connects, stays idle for 3 s, then closes.
	cli := harness.StartT(t, "client", harness.Command(ns.Exec(bins.Client, "connect-keepalive", server.String(), client.String(), "3000")...))
	if _, err := cli.WaitLine(ctx, false, "connected ", startTimeout); err != nil {
		t.Fatal(err)
	}
	// The same in a second namespace.
	other := harness.NewNamespace(t, netnsPrefix, "preexisting-other")
	otherServer := netip.MustParseAddrPort("127.0.0.1:7702")
	otherClient := netip.MustParseAddrPort("127.0.0.1:41702")
	srv2 := harness.StartT(t, "other server", harness.Command(other.Exec(bins.Server, "serve-echo", otherServer.String())...))
	if _, err := srv2.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
		t.Fatal(err)
	}
	cli2 := harness.StartT(t, "other client", harness.Command(other.Exec(bins.Client, "connect-keepalive", otherServer.String(), otherClient.String(), "3000")...))
	if _, err := cli2.WaitLine(ctx, false, "connected ", startTimeout); err != nil {
		t.Fatal(err)
	}
	tracer := startTracer(ctx, t, ns, "-i", "lo")
	cli.MustSucceed(ctx, t, runTimeout)
	srv.MustSucceed(ctx, t, runTimeout)
	cli2.MustSucceed(ctx, t, runTimeout)
	srv2.MustSucceed(ctx, t, runTimeout)
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)

	find := func(local, remote netip.AddrPort) *harness.Record {
		for _, r := range recs {
			if r.Type == "socket" && r.LocalAddr == local && r.RemoteAddr == remote {
				return r
			}
		}
		return nil
	}
	for _, c := range []struct {
		name          string
		local, remote netip.AddrPort
		state, comm   string
		pid           int

		netns uint64
	}{
		{"client", client, server, "ESTABLISHED", "tcli", cli.Pid(), ns.Inode},
		{"server", server, client, "ESTABLISHED", "tsrv", srv.Pid(), ns.Inode},
		{"other namespace's client", otherClient, otherServer, "ESTABLISHED", "tcli", cli2.Pid(), other.Inode},
	} {
		r := find(c.local, c.remote)
		if r == nil {
			t.Errorf("no socket record for the %s (%s %s)", c.name, c.local, c.remote)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Raw), &m); err != nil {
			t.Fatal(err)
		}
		if m["state"] != c.state || m["preexisting"] != true || r.Netns != c.netns {
			t.Errorf("%s: %s", c.name, r)
		}
		checkOwner(t, c.name, r, c.pid, c.comm)
	}
	run := &connRun{client: client, server: server}
	conn := find(client, server).ConnID()
	for _, r := range harness.Select(recs, run.isConn) {
		if r.ConnID() != conn {
			t.Errorf("record of the connection in conn %d, not %d: %s", r.ConnID(), conn, r)
		}
		if r.IsSocketEvent() {
			pid, comm := cli.Pid(), "tcli"
			if r.LocalAddr == server {
				pid, comm = srv.Pid(), "tsrv"
			}
			checkOwner(t, "later event", r, pid, comm)
		}
	}
	if got := harness.StateChain(harness.Select(recs, func(r *harness.Record) bool { return r.IsSocketEvent() && r.LocalAddr == server })); got != "ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSE" {
		t.Errorf("server states after start %q", got)
	}
	var sum map[string]any
	for _, r := range recs {
		if r.Type == "conn" && r.ConnID() == conn {
			json.Unmarshal([]byte(r.Raw), &sum)
		}
	}
	if sum == nil || sum["preexisting"] != true || sum["incomplete_reason"] != "began before tracing" {
		t.Errorf("summary of the preexisting connection: %v", sum)
	}
}

// TestPreexistingFiltered: --port, --host and -c hold for the sockets
// listed at start-up as they hold for kernel events. Connections held by
// the test itself exist before each tracer starts: two to port P over a
// veth pair (IPv4), one to another port over IPv6 on the same pair, one
// from IPv4 to a dual-stack listener (its server socket is AF_INET6 with
// v4-mapped addresses, which the kernel's host filter matches as IPv4),
// and one over loopback in a third namespace. The tracer runs in the
// test's namespace and lists every namespace.
func TestPreexistingFiltered(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	// "0other" sorts before the pair's namespaces in /run/netns: a listing
	// that ignored the filters would print its sockets first.
	other := harness.NewNamespace(t, netnsPrefix, "filter-0other")
	v := harness.NewVethPair(t, netnsPrefix, "filter", 87)
	const port = 7811
	mk := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
	lo := netip.MustParseAddr("127.0.0.1")
	p1, p2 := mk(v.A4, port), mk(v.A4, port)
	c1, c2 := mk(v.B4, 41811), mk(v.B4, 41812)
	v6srv, v6cli := mk(v.A6, 7812), mk(v.B6, 41813)
	loSrv, loCli := mk(lo, 7813), mk(lo, 41814)
	dualLn, mappedSrv, mappedCli := netip.MustParseAddrPort("[::]:7814"), mk(v.A4, 7814), mk(v.B4, 41815)

	ln := holdListener(t, v.A, p1)
	holdConn(t, v.B, ln, c1, p1)
	holdConn(t, v.B, ln, c2, p2)
	holdConn(t, v.B, holdListener(t, v.A, v6srv), v6cli, v6srv)
	holdConn(t, other, holdListener(t, other, loSrv), loCli, loSrv)
	holdConn(t, v.B, holdListener(t, v.A, dualLn), mappedCli, mappedSrv)

	type sock struct {
		ns            *harness.Namespace
		local, remote netip.AddrPort
	}
	any4 := netip.MustParseAddrPort("0.0.0.0:0")
	portSocks := []sock{
		{v.A, p1, any4}, // the listener
		{v.A, p1, c1}, {v.B, c1, p1},
		{v.A, p2, c2}, {v.B, c2, p2},
	}
	hostSocks := append(portSocks[:len(portSocks):len(portSocks)], sock{v.A, mappedSrv, mappedCli}, sock{v.B, mappedCli, mappedSrv})
	subnet := netip.PrefixFrom(v.A4, 24).Masked()

	// endpoints returns the addresses a record names.
	endpoints := func(r *harness.Record) []netip.AddrPort {
		if r.Type == "packet" {
			return []netip.AddrPort{r.SrcAddr, r.DstAddr}
		}
		if r.Local == "" {
			return nil // lost, or a summary without endpoints
		}
		return []netip.AddrPort{r.LocalAddr, r.RemoteAddr}
	}
	for _, c := range []struct {
		name  string
		args  []string
		match func(netip.AddrPort) bool
		want  []sock
	}{
		{"port", []string{"--port", fmt.Sprint(port)}, func(ap netip.AddrPort) bool { return ap.Port() == port }, portSocks},
		{"host", []string{"--host", subnet.String()}, func(ap netip.AddrPort) bool { return subnet.Contains(ap.Addr().Unmap()) }, hostSocks},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := startTracer(ctx, t, nil, append([]string{"--events", "state"}, c.args...)...)
			time.Sleep(settle)
			recs := stopTracer(ctx, t, tr)
			for _, r := range recs {
				ends := endpoints(r)
				if len(ends) > 0 && !c.match(ends[0]) && !c.match(ends[1]) {
					t.Errorf("%s: a record that does not pass the filter: %s", strings.Join(c.args, " "), r)
				}
			}
			for _, s := range c.want {
				found := false
				for _, r := range recs {
					found = found || r.Type == "socket" && r.Netns == s.ns.Inode && r.LocalAddr == s.local && r.RemoteAddr == s.remote
				}
				if !found {
					t.Errorf("no preexisting socket record for %s %s in %s", s.local, s.remote, s.ns.Name)
				}
			}
			if t.Failed() {
				t.Logf("%d records; the first ones:\n%s", len(recs), harness.Describe(recs[:min(len(recs), 30)]))
			}
		})
	}

	t.Run("count", func(t *testing.T) {
		tr := startTracer(ctx, t, nil, "--events", "state", "-c", "3", "--port", fmt.Sprint(port))
		if err := tr.Wait(ctx); err != nil {
			t.Fatalf("tcpscope -c 3: %v\n%s", err, tr.Output())
		}
		recs, err := harness.ParseRecords(tr.Stdout.Bytes())
		if err != nil {
			t.Fatalf("tcpscope output: %v", err)
		}
		if len(recs) != 3 {
			t.Errorf("-c 3 printed %d records, want 3:\n%s", len(recs), harness.Describe(recs))
		}
		for _, r := range recs {
			if r.Type != "socket" || r.LocalAddr.Port() != port && r.RemoteAddr.Port() != port {
				t.Errorf("-c 3 --port %d printed a record that is not a preexisting socket of port %d: %s", port, port, r)
			}
		}
	})
}

// holdListener listens on addr inside ns until the test ends.
func holdListener(t *testing.T, ns *harness.Namespace, addr netip.AddrPort) *net.TCPListener {
	t.Helper()
	var ln *net.TCPListener
	ns.MustDo(t, func() error {
		var err error
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

// holdConn connects from local (inside ns) to server, accepted by ln; both
// ends stay open until the test ends.
func holdConn(t *testing.T, ns *harness.Namespace, ln *net.TCPListener, local, server netip.AddrPort) {
	t.Helper()
	var cli net.Conn
	ns.MustDo(t, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Timeout: stopTimeout}
		var err error
		cli, err = d.Dial("tcp", server.String())
		return err
	})
	t.Cleanup(func() { cli.Close() })
	if err := ln.SetDeadline(time.Now().Add(stopTimeout)); err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept %s on %s: %v", local, ln.Addr(), err)
	}
	t.Cleanup(func() { srv.Close() })
}
