package kernel

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
	"github.com/tcpscope/tcpscope/tracer"
)

const message = "hello from the tcpscope kernel suite\n"

// features runs `tcpscope version --features` and returns name -> value.
func features(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command(bins.Tcpscope, "version", "--features").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpscope version --features: %v\n%s", err, out)
	}
	f := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 {
			f[fields[0]] = fields[1]
		}
	}
	if f["packet_hooks"] == "" || f["reset_reasons"] == "" {
		t.Fatalf("features lack packet_hooks or reset_reasons:\n%s", out)
	}
	return f
}

// topology: who talks to whom, and where tcpscope watches.
type topology struct {
	client, server, watch *harness.Namespace
	ifname                string
	clientIP, serverIP    netip.Addr
	loopback              bool
}

// scenario is one connection the test makes.
type scenario struct {
	name       string
	port       uint16 // server port; the client binds port+30000
	serve      string // "" when nothing listens
	connect    string
	serverPID  int
	clientPID  int
	client     netip.AddrPort
	serverAddr netip.AddrPort
}

func (s *scenario) run(t *testing.T, tp *topology) {
	t.Helper()
	ctx := context.Background()
	s.serverAddr = netip.AddrPortFrom(tp.serverIP, s.port)
	s.client = netip.AddrPortFrom(tp.clientIP, s.port+30000)
	var srv *harness.Proc
	if s.serve != "" {
		srv = harness.StartT(t, s.name+" server", tp.server.Command(ctx, bins.Server, s.serve, s.serverAddr.String()))
		srv.MustWaitLine(context.Background(), t, false, "listening ", startTimeout)
		s.serverPID = srv.Pid()
	}
	args := []string{bins.Client, s.connect, s.serverAddr.String(), s.client.String()}
	if s.connect != "connect-refused" {
		args = append(args, message)
	}
	cli := harness.StartT(t, s.name+" client", tp.client.Command(ctx, args...))
	s.clientPID = cli.Pid()
	cli.MustSucceed(context.Background(), t, stopTimeout)
	if srv != nil {
		srv.MustSucceed(context.Background(), t, stopTimeout)
	}
}

// TestKernel runs echo, refused and SO_LINGER-0 abort connections over
// {veth, lo} x {IPv4, IPv6}, with each TC attach mode this kernel has
// (TCX and clsact where TCX exists, clsact before 6.6), and checks every
// guarantee that needs no external oracle.
func TestKernel(t *testing.T) {
	requireSetup(t)
	feats := features(t)
	// Every attach mode the kernel has (clsact also works where TCX
	// does), unless TCPSCOPE_TC_MODES=native (the VM runs: each kernel's
	// own mode, to keep software emulation short).
	modes := []string{feats["packet_hooks"]}
	if modes[0] == string(tracer.TCX) && os.Getenv("TCPSCOPE_TC_MODES") != "native" {
		modes = append(modes, string(tracer.TCClsact))
	}
	t.Logf("kernel features: %v", feats)
	x := 30
	for _, mode := range modes {
		for _, c := range []struct {
			name       string
			veth, ipv6 bool
		}{{"veth/ipv4", true, false}, {"veth/ipv6", true, true}, {"lo/ipv4", false, false}, {"lo/ipv6", false, true}} {
			x++
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				tp := &topology{ifname: "lo", loopback: true}
				if c.veth {
					v := harness.NewVethPair(t, netnsPrefix, fmt.Sprintf("k%d", x), x)
					tp = &topology{client: v.A, server: v.B, watch: v.A, ifname: "veth-a", clientIP: v.A4, serverIP: v.B4}
					if c.ipv6 {
						tp.clientIP, tp.serverIP = v.A6, v.B6
					}
				} else {
					ns := harness.NewNamespace(t, netnsPrefix, fmt.Sprintf("k%d", x))
					tp.client, tp.server, tp.watch = ns, ns, ns
					tp.clientIP = netip.MustParseAddr("127.0.0.1")
					if c.ipv6 {
						tp.clientIP = netip.IPv6Loopback()
					}
					tp.serverIP = tp.clientIP
				}
				runTopology(t, tp, mode, feats)
			})
		}
	}
}

func runTopology(t *testing.T, tp *topology, mode string, feats map[string]string) {
	tr := harness.StartT(t, "tcpscope", tp.watch.Command(context.Background(),
		bins.Tcpscope, "trace", "-o", "json", "-i", tp.ifname, "--tc-mode", mode, "--packets", "all"))
	started := tr.MustWaitLine(context.Background(), t, true, `msg="tracing started"`, startTimeout)
	if !strings.Contains(started, "tc="+mode) {
		t.Errorf("started with %q, want tc=%s", started, mode)
	}
	checkAttached(t, tp, mode, true)

	scenarios := []*scenario{
		{name: "echo", port: 7101, serve: "serve-echo", connect: "connect-echo"},
		{name: "refused", port: 7102, connect: "connect-refused"},
		{name: "abort", port: 7103, serve: "serve-echo", connect: "connect-abort"},
	}
	for _, s := range scenarios {
		s.run(t, tp)
	}
	time.Sleep(settle)
	tr.MustStop(context.Background(), t, syscall.SIGINT, stopTimeout)
	checkAttached(t, tp, mode, false)
	recs, err := harness.ParseRecords(tr.Stdout.Bytes())
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	if lost := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "lost" }); len(lost) > 0 {
		t.Errorf("lost records:\n%s", harness.Describe(lost))
	}
	conns := map[uint64]string{}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			conn := checkScenario(t, tp, s, recs, feats)
			if other, ok := conns[conn]; ok && conn != 0 {
				t.Errorf("conn %d shared with %s", conn, other)
			}
			conns[conn] = s.name
		})
	}
}

// ours selects the records of one scenario's connection: its packets and
// both ends' socket events.
func (s *scenario) ours(tp *topology) func(*harness.Record) bool {
	return func(r *harness.Record) bool {
		if r.Type == "packet" {
			return r.SrcAddr == s.client && r.DstAddr == s.serverAddr || r.SrcAddr == s.serverAddr && r.DstAddr == s.client
		}
		return r.LocalAddr == s.client && r.RemoteAddr == s.serverAddr || r.LocalAddr == s.serverAddr && r.RemoteAddr == s.client
	}
}

func checkScenario(t *testing.T, tp *topology, s *scenario, all []*harness.Record, feats map[string]string) uint64 {
	recs := harness.Select(all, s.ours(tp))
	if len(recs) == 0 {
		t.Fatalf("no records for %s <-> %s", s.client, s.serverAddr)
	}
	conn := recs[0].ConnID()
	for _, r := range recs {
		if r.ConnID() != conn || conn == 0 {
			t.Errorf("records of one connection carry conns %d and %d:\n%s", conn, r.ConnID(), harness.Describe(recs))
			break
		}
	}
	clientSock := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type != "packet" && r.LocalAddr == s.client && r.Netns == tp.client.Inode
	})
	serverSock := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type != "packet" && r.LocalAddr == s.serverAddr && r.Netns == tp.server.Inode
	})
	packets := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "packet" })
	for _, p := range packets {
		wantDir := "in"
		if !tp.loopback && p.SrcAddr == s.client {
			wantDir = "out"
		}
		if p.Ifname != tp.ifname || p.Dir != wantDir || p.Netns != tp.watch.Inode {
			t.Errorf("packet on %s dir %s netns %d, want %s %s %d: %s", p.Ifname, p.Dir, p.Netns, tp.ifname, wantDir, tp.watch.Inode, p)
		}
	}
	checkNoDuplicates(t, packets)
	checkOwner(t, "client", clientSock, s.clientPID, "tcli")
	defer func() {
		if t.Failed() {
			port := harness.Select(all, func(r *harness.Record) bool {
				return r.Type != "packet" && (r.LocalAddr.Port() == s.port || r.RemoteAddr.Port() == s.port)
			})
			t.Logf("all socket events on port %d:\n%s", s.port, harness.Describe(port))
		}
	}()

	switch s.name {
	case "echo":
		expectChain(t, "client", clientSock, "CLOSE -> SYN_SENT -> ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2 -> CLOSE")
		// The active closer is replaced by a TIME_WAIT socket, whose start
		// is observed where the kernel lets tcpscope see its timer.
		if feats["time_wait"] == "yes" {
			tw := harness.Select(clientSock, func(r *harness.Record) bool {
				return r.TimeWait && r.Old == "FIN_WAIT2" && r.New == "TIME_WAIT"
			})
			if len(tw) != 1 {
				t.Errorf("want one FIN_WAIT2 -> TIME_WAIT record of the client's TIME_WAIT socket:\n%s", harness.Describe(clientSock))
			}
		}
		expectChain(t, "server", serverSock, "LISTEN -> SYN_RECV -> ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSE")
		checkOwner(t, "server", serverSock, s.serverPID, "tsrv")
		checkEchoPackets(t, s, packets)
	case "refused":
		expectChain(t, "client", clientSock, "CLOSE -> SYN_SENT -> CLOSE")
		sent := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "reset" && r.Dir == "sent" })
		if feats["reset_without_socket"] == "no" {
			// The kernel reports no reset sent without a socket.
			if len(sent) != 0 {
				t.Errorf("features say the kernel reports no socket-less reset, but:\n%s", harness.Describe(sent))
			}
		} else if len(sent) != 1 || sent[0].LocalAddr != s.serverAddr || sent[0].Reason == nil || *sent[0].Reason != "NO_SOCKET" ||
			sent[0].State != nil || sent[0].PID != nil {
			t.Errorf("want one sent reset from %s, reason NO_SOCKET, no state, no pid:\n%s", s.serverAddr, harness.Describe(sent))
		}
		expectReceivedReset(t, clientSock, "SYN_SENT")
		syn := findPacket(packets, s.client, "S")
		rst := findPacket(packets, s.serverAddr, "R.")
		if syn == nil || rst == nil || *rst.Ack != *syn.Seq+1 {
			t.Errorf("want a SYN and an RST/ACK acking ISN+1:\n%s", harness.Describe(packets))
		}
	case "abort":
		expectChain(t, "client", clientSock, "CLOSE -> SYN_SENT -> ESTABLISHED -> CLOSE")
		expectChain(t, "server", serverSock, "LISTEN -> SYN_RECV -> ESTABLISHED -> CLOSE")
		checkOwner(t, "server", serverSock, s.serverPID, "tsrv")
		want := "TCP_STATE"
		if feats["reset_reasons"] == "inferred" {
			want = "NOT_SPECIFIED"
		}
		sent := harness.Select(clientSock, func(r *harness.Record) bool { return r.Type == "reset" && r.Dir == "sent" })
		if len(sent) != 1 || sent[0].Reason == nil || *sent[0].Reason != want {
			t.Errorf("want one sent reset on the client, reason %s:\n%s", want, harness.Describe(sent))
		}
		expectReceivedReset(t, serverSock, "ESTABLISHED")
		if findPacket(packets, s.client, "R") == nil && findPacket(packets, s.client, "R.") == nil {
			t.Errorf("no RST from the client among the packets:\n%s", harness.Describe(packets))
		}
	}
	return conn
}

func expectChain(t *testing.T, side string, recs []*harness.Record, want string) {
	t.Helper()
	if got := harness.StateChain(recs); got != want {
		t.Errorf("%s states %q, want %q:\n%s", side, got, want, harness.Describe(recs))
	}
}

func expectReceivedReset(t *testing.T, recs []*harness.Record, state string) {
	t.Helper()
	got := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "reset" && r.Dir == "received" })
	if len(got) != 1 || got[0].State == nil || *got[0].State != state || got[0].Reason != nil {
		t.Errorf("want one received reset in %s without reason:\n%s", state, harness.Describe(got))
	}
}

// checkOwner: every socket event of one end names its process.
func checkOwner(t *testing.T, side string, recs []*harness.Record, pid int, comm string) {
	t.Helper()
	for _, r := range recs {
		if r.PID == nil || int(*r.PID) != pid || r.Comm == nil || *r.Comm != comm {
			t.Errorf("%s event owner, want pid %d (%s): %s", side, pid, comm, r)
		}
	}
}

func findPacket(packets []*harness.Record, src netip.AddrPort, flags string) *harness.Record {
	for _, p := range packets {
		if p.SrcAddr == src && p.Flags == flags {
			return p
		}
	}
	return nil
}

func checkNoDuplicates(t *testing.T, packets []*harness.Record) {
	t.Helper()
	// A receiver may legitimately send the same pure ACK twice (a delayed
	// ACK and a window update that rounds to the same scaled window), so
	// only segments that occupy sequence space or carry a reset must be
	// unique: a tracer that reports a packet twice doubles those too.
	seen := map[string]bool{}
	for _, p := range packets {
		if deref(p.Len) <= 0 && !strings.ContainsAny(p.Flags, "SFR") {
			continue
		}
		key := fmt.Sprintf("%s>%s %s %v %v %v", p.Src, p.Dst, p.Flags, deref(p.Seq), deref(p.Ack), deref(p.Len))
		if seen[key] {
			t.Errorf("packet reported twice: %s\n%s", p, harness.Describe(packets))
		}
		seen[key] = true
	}
}

func deref(p *uint32) int64 {
	if p == nil {
		return -1
	}
	return int64(*p)
}

// checkEchoPackets verifies the connection the way an engineer reads
// tcpdump -S: ISNs, ack = peer seq + 1 in the handshake, ack = seq +
// length for data, and a FIN that takes one sequence number.
func checkEchoPackets(t *testing.T, s *scenario, packets []*harness.Record) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format+"\n%s", append(args, harness.Describe(packets))...)
	}
	syn := findPacket(packets, s.client, "S")
	synack := findPacket(packets, s.serverAddr, "S.")
	if syn == nil || synack == nil {
		fail("no SYN or SYN-ACK")
		return
	}
	isnC, isnS := *syn.Seq, *synack.Seq
	if *synack.Ack != isnC+1 {
		fail("SYN-ACK acks %d, want client ISN+1 = %d", *synack.Ack, isnC+1)
	}
	n := uint32(len(message))
	var cData, sData, cFin, sFin, ackOfCFin, ackOfSFin, hsAck bool
	for _, p := range packets {
		fromClient := p.SrcAddr == s.client
		switch {
		case fromClient && p.Flags == "." && p.Ack != nil && *p.Ack == isnS+1 && *p.Len == 0:
			hsAck = true
		case fromClient && *p.Len == n && *p.Seq == isnC+1:
			cData = true
		case !fromClient && *p.Len == n && *p.Seq == isnS+1 && *p.Ack == isnC+1+n:
			sData = true
		}
		if strings.Contains(p.Flags, "F") {
			if fromClient && *p.Seq == isnC+1+n {
				cFin = true
			}
			if !fromClient && *p.Seq == isnS+1+n {
				sFin = true
			}
		}
		// The FIN takes one sequence number: its ack is seq + len + 1.
		if !fromClient && p.Ack != nil && *p.Ack == isnC+1+n+1 {
			ackOfCFin = true
		}
		if fromClient && p.Ack != nil && *p.Ack == isnS+1+n+1 {
			ackOfSFin = true
		}
	}
	for what, ok := range map[string]bool{
		"handshake ACK (ack = server ISN+1)":         hsAck,
		"client data (seq = ISN+1, len = message)":   cData,
		"server echo (ack = client ISN+1+len)":       sData,
		"client FIN at ISN+1+len":                    cFin,
		"server FIN at ISN+1+len":                    sFin,
		"server's ack of the client FIN (seq+len+1)": ackOfCFin,
		"client's ack of the server FIN (seq+len+1)": ackOfSFin,
	} {
		if !ok {
			fail("missing %s", what)
		}
	}
}

// checkAttached: while tracing, the interface has one program per hook
// (TCX links or tcpscope's cls_bpf filters); afterwards none is left.
func checkAttached(t *testing.T, tp *topology, mode string, want bool) {
	t.Helper()
	count := 0
	if mode == string(tracer.TCX) {
		in, eg := tp.watch.MustTCXPrograms(t, tp.ifname)
		count = len(in) + len(eg)
	} else {
		st := tp.watch.MustClsact(t, tp.ifname)
		count = len(st.Filters)
		if st.Qdisc && !want {
			t.Errorf("clsact qdisc left on %s after exit", tp.ifname)
		}
	}
	if want && count != 2 {
		t.Errorf("%d programs attached to %s while tracing (%s), want 2", count, tp.ifname, mode)
	}
	if !want && count != 0 {
		t.Errorf("%d programs left on %s after exit (%s)", count, tp.ifname, mode)
	}
}
