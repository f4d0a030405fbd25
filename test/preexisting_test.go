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

	"github.com/tcpscope/tcpscope/tracer"
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
	ns := newNetns(ctx, t, "preexisting")
	server := netip.MustParseAddrPort("127.0.0.1:7701")
	client := netip.MustParseAddrPort("127.0.0.1:41701")
	srv := startProc(t, "server", ns.exec(bins.server, "serve-echo", server.String())...)
	if _, err := srv.waitLine(ctx, false, "listening "); err != nil {
		t.Fatal(err)
	}
	// The client connects, stays idle for 3 s, then closes.
	cli := startProc(t, "client", ns.exec(bins.client, "connect-keepalive", server.String(), client.String(), "3000")...)
	if _, err := cli.waitLine(ctx, false, "connected "); err != nil {
		t.Fatal(err)
	}
	// The same in a second namespace.
	other := newNetns(ctx, t, "preexisting-other")
	otherServer := netip.MustParseAddrPort("127.0.0.1:7702")
	otherClient := netip.MustParseAddrPort("127.0.0.1:41702")
	srv2 := startProc(t, "other server", other.exec(bins.server, "serve-echo", otherServer.String())...)
	if _, err := srv2.waitLine(ctx, false, "listening "); err != nil {
		t.Fatal(err)
	}
	cli2 := startProc(t, "other client", other.exec(bins.client, "connect-keepalive", otherServer.String(), otherClient.String(), "3000")...)
	if _, err := cli2.waitLine(ctx, false, "connected "); err != nil {
		t.Fatal(err)
	}
	tracer := startTracer(ctx, t, ns, "-i", "lo")
	mustSucceed(ctx, t, cli)
	mustSucceed(ctx, t, srv)
	mustSucceed(ctx, t, cli2)
	mustSucceed(ctx, t, srv2)
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)

	find := func(local, remote netip.AddrPort) *record {
		for _, r := range recs {
			if r.Type == "socket" && r.local == local && r.remote == remote {
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
		{"client", client, server, "ESTABLISHED", "tcli", cli.pid(), ns.inode},
		{"server", server, client, "ESTABLISHED", "tsrv", srv.pid(), ns.inode},
		{"other namespace's client", otherClient, otherServer, "ESTABLISHED", "tcli", cli2.pid(), other.inode},
	} {
		r := find(c.local, c.remote)
		if r == nil {
			t.Errorf("no socket record for the %s (%s %s)", c.name, c.local, c.remote)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.raw), &m); err != nil {
			t.Fatal(err)
		}
		if m["state"] != c.state || m["preexisting"] != true || r.Netns != c.netns {
			t.Errorf("%s: %s", c.name, r)
		}
		checkOwner(t, c.name, r, c.pid, c.comm)
	}
	run := &connRun{client: client, server: server}
	conn := find(client, server).conn()
	for _, r := range selectRecords(recs, run.isConn) {
		if r.conn() != conn {
			t.Errorf("record of the connection in conn %d, not %d: %s", r.conn(), conn, r)
		}
		if r.isSocketEvent() {
			pid, comm := cli.pid(), "tcli"
			if r.local == server {
				pid, comm = srv.pid(), "tsrv"
			}
			checkOwner(t, "later event", r, pid, comm)
		}
	}
	if got := stateChain(selectRecords(recs, func(r *record) bool { return r.isSocketEvent() && r.local == server })); got != "ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSE" {
		t.Errorf("server states after start %q", got)
	}
	var sum map[string]any
	for _, r := range recs {
		if r.Type == "conn" && r.conn() == conn {
			json.Unmarshal([]byte(r.raw), &sum)
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
	other := newNetns(ctx, t, "filter-0other")
	v := newVethPair(ctx, t, "filter", 87)
	const port = 7811
	mk := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
	lo := netip.MustParseAddr("127.0.0.1")
	p1, p2 := mk(v.a4, port), mk(v.a4, port)
	c1, c2 := mk(v.b4, 41811), mk(v.b4, 41812)
	v6srv, v6cli := mk(v.a6, 7812), mk(v.b6, 41813)
	loSrv, loCli := mk(lo, 7813), mk(lo, 41814)
	dualLn, mappedSrv, mappedCli := netip.MustParseAddrPort("[::]:7814"), mk(v.a4, 7814), mk(v.b4, 41815)

	ln := holdListener(t, v.a, p1)
	holdConn(t, v.b, ln, c1, p1)
	holdConn(t, v.b, ln, c2, p2)
	holdConn(t, v.b, holdListener(t, v.a, v6srv), v6cli, v6srv)
	holdConn(t, other, holdListener(t, other, loSrv), loCli, loSrv)
	holdConn(t, v.b, holdListener(t, v.a, dualLn), mappedCli, mappedSrv)

	type sock struct {
		ns            *netns
		local, remote netip.AddrPort
	}
	any4 := netip.MustParseAddrPort("0.0.0.0:0")
	portSocks := []sock{
		{v.a, p1, any4}, // the listener
		{v.a, p1, c1}, {v.b, c1, p1},
		{v.a, p2, c2}, {v.b, c2, p2},
	}
	hostSocks := append(portSocks[:len(portSocks):len(portSocks)], sock{v.a, mappedSrv, mappedCli}, sock{v.b, mappedCli, mappedSrv})
	subnet := netip.PrefixFrom(v.a4, 24).Masked()

	// endpoints returns the addresses a record names.
	endpoints := func(r *record) []netip.AddrPort {
		if r.Type == "packet" {
			return []netip.AddrPort{r.src, r.dst}
		}
		if r.Local == "" {
			return nil // lost, or a summary without endpoints
		}
		return []netip.AddrPort{r.local, r.remote}
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
					found = found || r.Type == "socket" && r.Netns == s.ns.inode && r.local == s.local && r.remote == s.remote
				}
				if !found {
					t.Errorf("no preexisting socket record for %s %s in %s", s.local, s.remote, s.ns.name)
				}
			}
			if t.Failed() {
				t.Logf("%d records; the first ones:\n%s", len(recs), describe(recs[:min(len(recs), 30)]))
			}
		})
	}

	t.Run("count", func(t *testing.T) {
		tr := startTracer(ctx, t, nil, "--events", "state", "-c", "3", "--port", fmt.Sprint(port))
		if err := tr.wait(ctx); err != nil {
			t.Fatalf("tcpscope -c 3: %v\n%s", err, tr.output())
		}
		recs, err := parseRecords(tr.stdout.Bytes())
		if err != nil {
			t.Fatalf("tcpscope output: %v", err)
		}
		if len(recs) != 3 {
			t.Errorf("-c 3 printed %d records, want 3:\n%s", len(recs), describe(recs))
		}
		for _, r := range recs {
			if r.Type != "socket" || r.local.Port() != port && r.remote.Port() != port {
				t.Errorf("-c 3 --port %d printed a record that is not a preexisting socket of port %d: %s", port, port, r)
			}
		}
	})
}

// holdListener listens on addr inside ns until the test ends.
func holdListener(t *testing.T, ns *netns, addr netip.AddrPort) *net.TCPListener {
	t.Helper()
	var ln *net.TCPListener
	inNetns(t, ns, func() error {
		var err error
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

// holdConn connects from local (inside ns) to server, accepted by ln; both
// ends stay open until the test ends.
func holdConn(t *testing.T, ns *netns, ln *net.TCPListener, local, server netip.AddrPort) {
	t.Helper()
	var cli net.Conn
	inNetns(t, ns, func() error {
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

// inNetns runs f on a thread inside ns: sockets f creates belong to ns.
func inNetns(t *testing.T, ns *netns, f func() error) {
	t.Helper()
	h, err := tracer.OpenNetns("/run/netns/" + ns.name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns.name, err)
	}
	defer h.Close()
	if err := h.Do(f); err != nil {
		t.Fatalf("in namespace %s: %v", ns.name, err)
	}
}
