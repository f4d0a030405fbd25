package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// topology says where the client and the server of a test run, and where
// tcpscope and tcpdump watch.
type topology struct {
	name               string
	clientNS, serverNS *harness.Namespace
	watchNS            *harness.Namespace // tcpscope and tcpdump run here, on ifname
	ifname             string
	clientIP, serverIP netip.Addr
	loopback           bool
}

// vethTopology: client in A, server in B, watching A's end of the pair.
func vethTopology(v *harness.VethPair, ipv6 bool) *topology {
	tp := &topology{name: "veth", clientNS: v.A, serverNS: v.B, watchNS: v.A, ifname: harness.VethA,
		clientIP: v.A4, serverIP: v.B4}
	if ipv6 {
		tp.clientIP, tp.serverIP = v.A6, v.B6
	}
	return tp
}

// loTopology: client and server in ns, over its loopback.
func loTopology(ns *harness.Namespace, ipv6 bool) *topology {
	ip := netip.MustParseAddr("127.0.0.1")
	if ipv6 {
		ip = netip.IPv6Loopback()
	}
	return &topology{name: "lo", clientNS: ns, serverNS: ns, watchNS: ns, ifname: "lo",
		clientIP: ip, serverIP: ip, loopback: true}
}

// ours reports whether a record belongs to the test's traffic: every
// packet (tcpscope watches only the test's interface) and the socket
// events of the test's namespaces. Without --netns tcpscope also reports
// the sockets of every other namespace of the host.
func (tp *topology) ours(r *harness.Record) bool {
	return r.Type == "packet" || r.Type == "lost" || r.Netns == tp.clientNS.Inode || r.Netns == tp.serverNS.Inode
}

// scenario is one connection of the test, made by the peer program.
type scenario struct {
	name       string
	serverPort uint16
	clientPort uint16   // 0: an ephemeral port chosen by connect()
	serve      string   // server mode and its arguments; "" when nothing listens
	connect    []string // client mode and its argument after LOCAL
}

// echoMessage is what the echo and abort clients send.
const echoMessage = "hello from tcpscope e2e\n"

// bulkBytes is the size of the bulk transfer.
const bulkBytes = 1 << 20

// scenarios are the connections every traffic test makes, one after the
// other. Each has its own ports, so all of them fit in one capture.
var scenarios = []scenario{
	{name: "echo", serverPort: 7101, clientPort: 41101, serve: "serve-echo", connect: []string{"connect-echo", echoMessage}},
	{name: "bulk", serverPort: 7102, clientPort: 41102, serve: "serve-sink", connect: []string{"connect-bulk", fmt.Sprint(bulkBytes)}},
	{name: "refused", serverPort: 7103, clientPort: 41103, connect: []string{"connect-refused"}},
	{name: "abort", serverPort: 7104, clientPort: 41104, serve: "serve-echo", connect: []string{"connect-abort", echoMessage}},
	// No bind before connect: the kernel picks the port after the socket
	// entered SYN_SENT, the usual case for clients.
	{name: "echo-ephemeral", serverPort: 7105, serve: "serve-echo", connect: []string{"connect-echo", echoMessage}},
}

// connRun is one scenario as it ran.
type connRun struct {
	sc             *scenario
	client, server netip.AddrPort
	clientPID      int
	serverPID      int    // 0 without a server
	serverOut      string // the server's stdout
}

// runScenario runs the scenario's server (if any) and client to
// completion. Both must exit 0: the peer checks its own outcome (echo
// received, connection refused, ...).
func runScenario(ctx context.Context, t *testing.T, tp *topology, sc *scenario) *connRun {
	t.Helper()
	run := &connRun{
		sc:     sc,
		client: netip.AddrPortFrom(tp.clientIP, sc.clientPort),
		server: netip.AddrPortFrom(tp.serverIP, sc.serverPort),
	}
	var srv *harness.Proc
	if sc.serve != "" {
		// "MODE [ARGS...]": the arguments follow the address.
		mode := strings.Fields(sc.serve)
		argv := append([]string{bins.Server, mode[0], run.server.String()}, mode[1:]...)
		srv = harness.StartT(t, sc.name+" server", harness.Command(tp.serverNS.Exec(argv...)...))
		if _, err := srv.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
			t.Fatal(err)
		}
		run.serverPID = srv.Pid()
	}
	local := run.client.String()
	if sc.clientPort == 0 {
		local = "-"
	}
	args := append([]string{bins.Client, sc.connect[0], run.server.String(), local}, sc.connect[1:]...)
	cli := harness.StartT(t, sc.name+" client", harness.Command(tp.clientNS.Exec(args...)...))
	run.clientPID = cli.Pid()
	cli.MustSucceed(ctx, t, runTimeout)
	if sc.clientPort == 0 {
		// "connected LOCAL REMOTE"
		line, err := cli.WaitLine(ctx, false, "connected ", startTimeout)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("client printed %q", line)
		}
		if run.client, err = netip.ParseAddrPort(f[1]); err != nil || run.client.Addr() != tp.clientIP {
			t.Fatalf("client printed %q: local address %v, want %s", line, err, tp.clientIP)
		}
	}
	if srv != nil {
		srv.MustSucceed(ctx, t, runTimeout)
		run.serverOut = srv.Stdout.String()
	}
	return run
}

// isListener reports whether a socket event is the listening socket of
// run's server.
func (run *connRun) isListener(r *harness.Record) bool {
	return r.IsSocketEvent() && r.LocalAddr == run.server && r.RemoteAddr.Port() == 0 && r.RemoteAddr.Addr().IsUnspecified()
}

// isConn reports whether a record is a packet, a socket event or the
// summary of run's connection (either end, either direction).
func (run *connRun) isConn(r *harness.Record) bool {
	a, b := r.SrcAddr, r.DstAddr
	if r.IsSocketEvent() || r.Type == "conn" || r.Type == "socket" {
		a, b = r.LocalAddr, r.RemoteAddr
	}
	return (a == run.client && b == run.server) || (a == run.server && b == run.client)
}

// isConnPacket reports whether a tcpdump packet belongs to run.
func (run *connRun) isConnPacket(p *tdPacket) bool {
	return (p.src == run.client && p.dst == run.server) || (p.src == run.server && p.dst == run.client)
}

// checkOwner requires r to carry the owner pid and comm.
func checkOwner(t *testing.T, side string, r *harness.Record, pid int, comm string) {
	t.Helper()
	switch {
	case r.PID == nil:
		t.Errorf("%s event without pid/comm, want pid %d (%s): %s", side, pid, comm, r)
	case int(*r.PID) != pid || *r.Comm != comm:
		t.Errorf("%s event has pid %d comm %q, want pid %d comm %q: %s", side, *r.PID, *r.Comm, pid, comm, r)
	}
}

// checkPackets compares all packet records with tcpdump's packets (the
// multiset of flags, seq, ack, win, len and options must be equal) and
// checks where tcpscope says each packet was seen.
func checkPackets(t *testing.T, tp *topology, td []*tdPacket, recs []*harness.Record) {
	t.Helper()
	pkts := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "packet" })
	if len(td) == 0 {
		t.Fatalf("tcpdump saw no packet on %s: the oracle is empty", tp.ifname)
	}
	t.Logf("tcpdump: %d packets, tcpscope: %d packet records", len(td), len(pkts))
	missing, extra := diffPackets(td, pkts)
	if len(missing) > 0 {
		t.Errorf("%d packets printed by tcpdump are missing from tcpscope's output:\n%s", len(missing), harness.FirstN(missing, 20))
	}
	if len(extra) > 0 {
		t.Errorf("%d packet records of tcpscope are not in tcpdump's output (or too many times):\n%s", len(extra), harness.FirstN(extra, 20))
	}
	for _, r := range pkts {
		// On lo packets are reported once, at ingress.
		wantDir := "in"
		if !tp.loopback && r.SrcAddr.Addr() == tp.clientIP {
			wantDir = "out"
		}
		if r.Ifname != tp.ifname || r.Dir != wantDir || r.Netns != tp.watchNS.Inode {
			t.Errorf("packet record with ifname %q dir %q netns %d, want %q %q %d: %s",
				r.Ifname, r.Dir, r.Netns, tp.ifname, wantDir, tp.watchNS.Inode, r)
		}
	}
	if lost := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "lost" }); len(lost) > 0 {
		t.Errorf("tcpscope lost events during a small test:\n%s", harness.Describe(lost))
	}
}

// checkConnIDs requires a one-to-one mapping between the test's
// connections (and listeners) and conn ids: every record of one
// connection has the same non-zero conn, and no two connections share
// one. It also requires every socket event in the test's namespaces to
// belong to one of the test's connections or listeners.
func checkConnIDs(t *testing.T, tp *topology, runs []*connRun, recs []*harness.Record) {
	t.Helper()
	connsOf := map[string]map[uint64]bool{} // connection -> conn ids
	keysOf := map[uint64]map[string]bool{}  // conn id -> connections
	for _, r := range recs {
		if !tp.ours(r) || r.Type == "lost" {
			continue
		}
		key := ""
		for _, run := range runs {
			switch {
			case run.isConn(r):
				key = run.sc.name + " connection"
			case run.serverPID != 0 && run.isListener(r):
				key = run.sc.name + " listener"
			}
		}
		if key == "" {
			t.Errorf("record of no connection of the test: %s", r)
			continue
		}
		if connsOf[key] == nil {
			connsOf[key] = map[uint64]bool{}
		}
		connsOf[key][r.ConnID()] = true
		if keysOf[r.ConnID()] == nil {
			keysOf[r.ConnID()] = map[string]bool{}
		}
		keysOf[r.ConnID()][key] = true
	}
	for key, ids := range connsOf {
		if len(ids) != 1 || ids[0] { // ids[0]: some record has conn 0
			t.Errorf("records of the %s carry conn ids %v, want one non-zero id", key, slices.Sorted(maps.Keys(ids)))
		}
	}
	for id, keys := range keysOf {
		if len(keys) > 1 {
			t.Errorf("conn %d is shared by %v", id, slices.Sorted(maps.Keys(keys)))
		}
	}
	for _, run := range runs {
		if len(connsOf[run.sc.name+" connection"]) == 0 {
			t.Errorf("no record of the %s connection", run.sc.name)
		}
	}
}

// expectation is what one scenario must show.
type expectation struct {
	clientChain   string
	serverChain   string // "" when no server socket exists
	listenerChain string // "" without a server
	// resets, as "sent REASON on client|server" / "received on client|server"
	resets []string
	// checkPackets checks the tcpdump packets of the connection.
	checkPackets func(t *testing.T, run *connRun, td []*tdPacket)
}

// flagsOf lists the flags of packets from src.
func flagsOf(td []*tdPacket, src netip.AddrPort) []string {
	var out []string
	for _, p := range td {
		if p.src == src {
			out = append(out, p.flags)
		}
	}
	return out
}

// payload sums the payload lengths of packets from src.
func payload(td []*tdPacket, src netip.AddrPort) int {
	n := 0
	for _, p := range td {
		if p.src == src {
			n += int(p.length)
		}
	}
	return n
}

// countFlag counts the packets from src whose flags contain flag.
func countFlag(td []*tdPacket, src netip.AddrPort, flag string) int {
	n := 0
	for _, p := range td {
		if p.src == src && strings.Contains(p.flags, flag) {
			n++
		}
	}
	return n
}

// checkHandshake requires the connection to open with S, S., then an ACK.
func checkHandshake(t *testing.T, run *connRun, td []*tdPacket) {
	t.Helper()
	if len(td) < 3 || td[0].src != run.client || td[0].flags != "S" ||
		td[1].src != run.server || td[1].flags != "S." || td[2].src != run.client || !strings.Contains(td[2].flags, ".") {
		t.Errorf("connection does not open with S, S., ACK:\n%s", tdLines(td, 5))
	}
}

// tdLines shows up to n tcpdump lines.
func tdLines(td []*tdPacket, n int) string {
	var lines []string
	for _, p := range td {
		lines = append(lines, p.line)
	}
	return harness.FirstN(lines, n)
}

var (
	clientFinChain = "CLOSE -> SYN_SENT -> ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2 -> CLOSE"
	serverFinChain = "LISTEN -> SYN_RECV -> ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSE"
	listenerChain  = "CLOSE -> LISTEN -> CLOSE"
)

// checkFinClose checks a connection closed by FINs: a FIN each way, no
// reset, and the payload each way.
func checkFinClose(t *testing.T, run *connRun, td []*tdPacket, up, down int) {
	t.Helper()
	checkHandshake(t, run, td)
	for _, side := range []netip.AddrPort{run.client, run.server} {
		if n := countFlag(td, side, "F"); n != 1 {
			t.Errorf("%s sent %d FINs, want 1: %v", side, n, flagsOf(td, side))
		}
		if n := countFlag(td, side, "R"); n != 0 {
			t.Errorf("%s sent %d resets, want 0", side, n)
		}
	}
	if got := sentBytes(td, run.client); got != up {
		t.Errorf("client sent %d bytes of sequence space in tcpdump, want %d", got, up)
	}
	if got := sentBytes(td, run.server); got != down {
		t.Errorf("server sent %d bytes of sequence space in tcpdump, want %d", got, down)
	}
}

// sentBytes is how many payload bytes src sent, counted in sequence space
// from its SYN to the end of its highest segment: a retransmission does
// not count twice. -1 without a SYN.
func sentBytes(td []*tdPacket, src netip.AddrPort) int {
	var isn uint32
	found := false
	for _, p := range td {
		if p.src == src && strings.Contains(p.flags, "S") && p.seq != nil {
			isn, found = *p.seq, true
			break
		}
	}
	if !found {
		return -1
	}
	most := 0
	for _, p := range td {
		if p.src == src && p.length > 0 && p.seq != nil {
			most = max(most, int(*p.seq+p.length-isn-1))
		}
	}
	return most
}

// retransmitted reports whether tcpdump saw sequence space from src more
// than once.
func retransmitted(td []*tdPacket, src netip.AddrPort) bool {
	return payload(td, src) > max(sentBytes(td, src), 0) || countFlag(td, src, "S") > 1 || countFlag(td, src, "F") > 1
}

// expectations of each scenario, by name.
var expectations = map[string]expectation{
	"echo": {
		clientChain:   clientFinChain,
		serverChain:   serverFinChain,
		listenerChain: listenerChain,
		checkPackets: func(t *testing.T, run *connRun, td []*tdPacket) {
			checkFinClose(t, run, td, len(echoMessage), len(echoMessage))
			if want := fmt.Sprintf("eof after %d bytes", len(echoMessage)); !strings.Contains(run.serverOut, want) {
				t.Errorf("server output %q, want %q", run.serverOut, want)
			}
		},
	},
	"bulk": {
		clientChain:   clientFinChain,
		serverChain:   serverFinChain,
		listenerChain: listenerChain,
		checkPackets: func(t *testing.T, run *connRun, td []*tdPacket) {
			checkFinClose(t, run, td, bulkBytes, 0)
			if want := fmt.Sprintf("received %d", bulkBytes); !strings.Contains(run.serverOut, want) {
				t.Errorf("server output %q, want %q", run.serverOut, want)
			}
		},
	},
	"refused": {
		clientChain: "CLOSE -> SYN_SENT -> CLOSE",
		resets:      []string{"sent NO_SOCKET on server", "received on client"},
		checkPackets: func(t *testing.T, run *connRun, td []*tdPacket) {
			if len(td) != 2 || td[0].src != run.client || td[0].flags != "S" || td[1].src != run.server || td[1].flags != "R." {
				t.Errorf("refused connection: want exactly S from the client and R. from the server, got:\n%s", tdLines(td, 10))
			}
		},
	},
	"echo-ephemeral": {
		clientChain:   clientFinChain,
		serverChain:   serverFinChain,
		listenerChain: listenerChain,
		checkPackets: func(t *testing.T, run *connRun, td []*tdPacket) {
			checkFinClose(t, run, td, len(echoMessage), len(echoMessage))
		},
	},
	"abort": {
		clientChain:   "CLOSE -> SYN_SENT -> ESTABLISHED -> CLOSE",
		serverChain:   "LISTEN -> SYN_RECV -> ESTABLISHED -> CLOSE",
		listenerChain: listenerChain,
		resets:        []string{"sent TCP_STATE on client", "received on server"},
		checkPackets: func(t *testing.T, run *connRun, td []*tdPacket) {
			checkHandshake(t, run, td)
			last := td[len(td)-1]
			if last.src != run.client || !strings.HasPrefix(last.flags, "R") {
				t.Errorf("aborted connection does not end with a reset from the client:\n%s", tdLines(td, 20))
			}
			if n := countFlag(td, run.client, "F") + countFlag(td, run.server, "F"); n != 0 {
				t.Errorf("aborted connection has %d FINs, want 0", n)
			}
			if !strings.Contains(run.serverOut, "reset after") {
				t.Errorf("server output %q, want it to see the reset", run.serverOut)
			}
		},
	},
}

// checkScenario checks one connection's records: state sequences of both
// ends, owners, cookies, namespaces, resets and retransmits, and its
// tcpdump packets.
func checkScenario(t *testing.T, tp *topology, run *connRun, td []*tdPacket, recs []*harness.Record) {
	exp := expectations[run.sc.name]
	var connTD []*tdPacket
	for _, p := range td {
		if run.isConnPacket(p) {
			connTD = append(connTD, p)
		}
	}
	if len(connTD) == 0 {
		t.Fatalf("tcpdump saw no packet of %s <-> %s", run.client, run.server)
	}
	exp.checkPackets(t, run, connTD)

	ours := harness.Select(recs, tp.ours)
	clientEv := harness.Select(ours, func(r *harness.Record) bool {
		return r.IsSocketEvent() && r.LocalAddr == run.client && r.RemoteAddr == run.server
	})
	serverEv := harness.Select(ours, func(r *harness.Record) bool {
		return r.IsSocketEvent() && r.LocalAddr == run.server && r.RemoteAddr == run.client
	})
	listenerEv := harness.Select(ours, run.isListener)

	// State sequences, exactly.
	sides := []struct {
		name      string
		events    []*harness.Record
		want      string
		ns        *harness.Namespace
		pid       int
		comm      string
		socketful bool // false for the server side of a refused connection
	}{
		{"client", clientEv, exp.clientChain, tp.clientNS, run.clientPID, harness.ClientComm, true},
		{"server", serverEv, exp.serverChain, tp.serverNS, run.serverPID, harness.ServerComm, exp.serverChain != ""},
		{"listener", listenerEv, exp.listenerChain, tp.serverNS, run.serverPID, harness.ServerComm, true},
	}
	cookies := map[uint64]string{}
	for _, s := range sides {
		if got := harness.StateChain(s.events); got != s.want {
			t.Errorf("%s states: got %q, want %q; its events:\n%s", s.name, got, s.want, harness.Describe(s.events))
		}
		for _, r := range s.events {
			if r.Netns != s.ns.Inode {
				t.Errorf("%s event has netns %d, want %d (%s): %s", s.name, r.Netns, s.ns.Inode, s.ns.Name, r)
			}
			if !s.socketful {
				// Nothing listens: a reset sent without a socket has no
				// state, and no process owns it.
				if r.StateName() != "" || r.PID != nil {
					t.Errorf("%s event without a socket has state %q / pid: %s", s.name, r.StateName(), r)
				}
				continue
			}
			checkOwner(t, s.name, r, s.pid, s.comm)
			if r.Cookie == 0 {
				t.Errorf("%s event without cookie: %s", s.name, r)
			} else if other, ok := cookies[r.Cookie]; ok && other != s.name {
				t.Errorf("%s event has the cookie of the %s socket: %s", s.name, other, r)
			} else {
				cookies[r.Cookie] = s.name
			}
		}
		// One socket, one cookie.
		seen := map[uint64]bool{}
		for _, r := range s.events {
			if r.Cookie != 0 {
				seen[r.Cookie] = true
			}
		}
		if len(seen) > 1 {
			t.Errorf("%s events carry %d different cookies:\n%s", s.name, len(seen), harness.Describe(s.events))
		}
	}

	// Resets, exactly.
	var resets []string
	for _, s := range sides[:2] {
		for _, r := range s.events {
			if r.Type != "reset" {
				continue
			}
			switch r.Dir {
			case "sent":
				resets = append(resets, "sent "+r.ReasonName()+" on "+s.name)
			case "received":
				resets = append(resets, "received on "+s.name)
			}
			if r.Dir == "received" && r.ReasonName() != "" {
				t.Errorf("received reset with a reason %q: %s", r.ReasonName(), r)
			}
			if s.socketful && r.StateName() == "" {
				t.Errorf("reset on a socket without state: %s", r)
			}
		}
	}
	slices.Sort(resets)
	want := slices.Sorted(slices.Values(exp.resets))
	if !slices.Equal(resets, want) {
		t.Errorf("resets: got %q, want %q; events:\n%s", resets, want, harness.Describe(append(clientEv, serverEv...)))
	}
	if run.sc.name == "abort" {
		for _, r := range serverEv {
			if r.Type == "reset" && r.StateName() != "ESTABLISHED" {
				t.Errorf("server received the reset in state %q, want ESTABLISHED: %s", r.StateName(), r)
			}
		}
	}
	if run.sc.name == "refused" {
		for _, r := range clientEv {
			if r.Type == "reset" && r.StateName() != "SYN_SENT" {
				t.Errorf("client received the reset in state %q, want SYN_SENT: %s", r.StateName(), r)
			}
		}
	}

	// Retransmits: a retransmit record must match a segment that tcpdump
	// saw at least twice, and a sender that tcpdump saw retransmit must
	// have retransmit records.
	for _, s := range sides[:2] {
		var rtx []*harness.Record
		for _, r := range s.events {
			if r.Type != "retransmit" {
				continue
			}
			rtx = append(rtx, r)
			if n := timesSent(connTD, r.LocalAddr, *r.Seq); n < 2 {
				t.Errorf("retransmit record, but tcpdump saw seq %d from %s %d times: %s", *r.Seq, r.LocalAddr, n, r)
			}
		}
		local := run.client
		if s.name == "server" {
			local = run.server
		}
		if len(rtx) > 0 {
			t.Logf("%s retransmitted (tcpdump: %v):\n%s", s.name, retransmitted(connTD, local), harness.Describe(rtx))
		}
		if retransmitted(connTD, local) && len(rtx) == 0 {
			t.Errorf("tcpdump saw the %s retransmit, tcpscope has no retransmit record", s.name)
		}
	}
}

// timesSent counts the packets from src whose sequence space covers seq
// (a SYN or FIN occupies its own seq).
func timesSent(td []*tdPacket, src netip.AddrPort, seq uint32) int {
	n := 0
	for _, p := range td {
		if p.src != src || p.seq == nil {
			continue
		}
		span := p.length
		if strings.ContainsAny(p.flags, "SF") {
			span++
		}
		if seq-*p.seq < span {
			n++
		}
	}
	return n
}

// checkTimes requires every record's timestamp to lie within the time the
// tracer ran (with a second of slack for clock conversion).
func checkTimes(t *testing.T, recs []*harness.Record, from, to time.Time) {
	t.Helper()
	from, to = from.Add(-time.Second), to.Add(time.Second)
	bad := harness.Select(recs, func(r *harness.Record) bool { return r.Time.Before(from) || r.Time.After(to) })
	if len(bad) > 0 {
		t.Errorf("%d records with a timestamp outside %s .. %s:\n%s", len(bad),
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), harness.Describe(bad))
	}
}
