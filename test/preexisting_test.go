package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"
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
