package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// tsharkVerdicts are tshark's analysis fields and tcpscope's names for them.
var tsharkVerdicts = []struct{ field, name string }{
	{"tcp.analysis.retransmission", "retransmission"},
	{"tcp.analysis.fast_retransmission", "fast_retransmission"},
	{"tcp.analysis.spurious_retransmission", "spurious_retransmission"},
	{"tcp.analysis.out_of_order", "out_of_order"},
	{"tcp.analysis.lost_segment", "lost_segment"},
	{"tcp.analysis.ack_lost_segment", "ack_unseen_segment"},
	{"tcp.analysis.duplicate_ack_num", "duplicate_ack"},
	{"tcp.analysis.zero_window", "zero_window"},
	{"tcp.analysis.zero_window_probe", "zero_window_probe"},
	{"tcp.analysis.window_full", "window_full"},
	{"tcp.analysis.window_update", "window_update"},
	{"tcp.analysis.keep_alive", "keep_alive"},
	{"tcp.analysis.keep_alive_ack", "keep_alive_ack"},
}

// analysisCase is one connection whose verdicts are compared with tshark.
type analysisCase struct {
	name  string
	sc    scenario
	setup func(ctx context.Context, t *testing.T, v *harness.VethPair) // before the traffic
	// run makes the traffic when runScenario cannot.
	run func(ctx context.Context, t *testing.T, v *harness.VethPair, tp *topology, sc *scenario)
	// want are verdicts tshark must report for this traffic ("a|b": one
	// of them): without them the scenario did not make the situation it
	// is about.
	want []string
}

// TestAnalysisAgainstTshark runs connections that provoke each kind of TCP
// analysis verdict over the veth pair (IPv4 and IPv6), captures them with
// tcpdump into a pcap file on the same interface tcpscope watches, and
// requires, for every packet tshark decodes, the same set of verdicts in
// tcpscope's analysis (docs/analysis.md explains the mapping). A second
// tracer with --packets control on the same traffic is held to what that
// mode claims (tshark_control_test.go). Both trace only the test's
// addresses, and any record they lost fails the test.
func TestAnalysisAgainstTshark(t *testing.T) {
	requireTshark(t)
	cases := []analysisCase{
		{name: "clean", sc: scenario{name: "clean", serverPort: 7501, clientPort: 41501, serve: "serve-echo",
			connect: []string{"connect-echo", echoMessage}}},
		{name: "loss", sc: scenario{name: "loss", serverPort: 7502, clientPort: 41502, serve: "serve-sink",
			connect: []string{"connect-bulk", fmt.Sprint(bulkBytes)}},
			setup: func(ctx context.Context, t *testing.T, v *harness.VethPair) {
				// A fixed receive buffer: with autotuning the window
				// grows on every ACK, and tshark calls the ACKs of a
				// loss window updates, not duplicate ACKs (2 runs in
				// 20).
				harness.MustRun(ctx, t, stopTimeout, v.B.Exec("sysctl", "-q", "-w", "net.ipv4.tcp_rmem=4096 131072 524288")...)
				harness.MustRun(ctx, t, stopTimeout, v.B.Exec("nft", "table inet tcpscope_loss { chain in { type filter hook input priority 0; "+
					"tcp dport 7502 meta length > 200 numgen inc mod 4 == 0 drop; }; }")...)
			},
			// A segment resent sooner than the connection's iRTT after
			// the highest one is out of order to tshark, later a
			// retransmission: either shows the loss.
			want: []string{"retransmission|out_of_order", "duplicate_ack"}},
		{name: "zero-window", sc: scenario{name: "zero-window", serverPort: 7503, clientPort: 41503, serve: "serve-stall 1500",
			connect: []string{"connect-bulk", fmt.Sprint(bulkBytes)}},
			want: []string{"zero_window", "window_update"}},
		{name: "keep-alive", sc: scenario{name: "keep-alive", serverPort: 7504, clientPort: 41504, serve: "serve-echo",
			connect: []string{"connect-keepalive", "3500"}},
			want: []string{"keep_alive", "keep_alive_ack"}},
		{name: "refused", sc: scenario{name: "refused", serverPort: 7505, clientPort: 41505, connect: []string{"connect-refused"}}},
		// SYNs dropped by the server's firewall: the client retransmits
		// its SYN (after 1 s) and gives up.
		{name: "timeout", sc: scenario{name: "timeout", serverPort: 7506, clientPort: 41506,
			connect: []string{"connect-timeout", "2500"}},
			setup: func(ctx context.Context, t *testing.T, v *harness.VethPair) {
				harness.MustRun(ctx, t, stopTimeout, v.B.Exec("nft", "table inet tcpscope_syndrop { chain in { type filter hook input priority 0; "+
					"tcp dport 7506 tcp flags syn drop; }; }")...)
			},
			want: []string{"retransmission"}},
		// Both FINs are held back by each sender's firewall until both
		// ends have shut down: each sent its FIN before the other's
		// arrived, the peers pass CLOSING and both end in TIME_WAIT.
		{name: "simultaneous-close", sc: scenario{name: "simultaneous-close", serverPort: 7507, clientPort: 41507},
			setup: holdFINs, run: runSimultaneousClose},
	}
	for _, ipv6 := range []bool{false, true} {
		family := "ipv4"
		if ipv6 {
			family = "ipv6"
		}
		t.Run(family, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
			defer cancel()
			v := harness.NewVethPair(t, netnsPrefix, "tshark-"+family, lockSubnet(ctx, t, tsharkSubnets))
			tp := vethTopology(v, ipv6)
			for _, c := range cases {
				if c.setup != nil {
					c.setup(ctx, t, v)
				}
			}
			pcap := filepath.Join(t.TempDir(), "capture.pcap")
			// Only the test's connections: without --host the tracers
			// also report every socket of the host (a connection storm
			// elsewhere would flood them).
			args := []string{"-i", harness.VethA, "--host", tp.clientIP.String() + "," + tp.serverIP.String()}
			// The control tracer first: tcpscope attaches its ingress
			// program at the head and its egress program at the tail,
			// so the tracer started last is the nearer to tcpdump's tap
			// both ways. The all tracer's timestamps, which tshark's
			// timing verdicts are compared with, must not include the
			// control program's time (the handshake's third ACK, which
			// starts a count entry, ends tshark's iRTT).
			control := startTracer(ctx, t, v.A, append(args, "--packets", "control")...)
			tracer := startTracer(ctx, t, v.A, args...)
			dump := startPcap(ctx, t, v.A, harness.VethA, pcap)
			for i := range cases {
				if cases[i].run != nil {
					cases[i].run(ctx, t, v, tp, &cases[i].sc)
				} else {
					runScenario(ctx, t, tp, &cases[i].sc)
				}
			}
			time.Sleep(settle)
			captured := stopPcap(ctx, t, dump)
			recs := stopTracer(ctx, t, tracer)
			ctlRecs := stopTracer(ctx, t, control)
			for mode, rs := range map[string][]*harness.Record{"all": recs, "control": ctlRecs} {
				if lost := harness.Select(rs, func(r *harness.Record) bool { return r.Type == "lost" }); len(lost) > 0 {
					t.Errorf("%s: tcpscope lost records, the comparisons cannot hold:\n%s", mode, harness.Describe(lost))
				}
			}

			theirs := tsharkPackets(ctx, t, pcap)
			checkPacketCount(t, captured, theirs, recs, v.A, harness.VethA)
			for _, c := range cases {
				got := map[string]int{}
				for _, p := range theirs {
					if p.port == c.sc.clientPort || p.port == c.sc.serverPort {
						for _, v := range p.verdicts {
							got[v]++
						}
					}
				}
				t.Logf("%s: tshark verdicts %v", c.name, got)
				for _, w := range c.want {
					n := 0
					for _, alt := range strings.Split(w, "|") {
						n += got[alt]
					}
					if n == 0 {
						t.Errorf("%s: tshark reports no %s: the scenario did not provoke it", c.name, w)
					}
				}
			}
			cmp := compareVerdicts(t, theirs, recs)
			if len(theirs) < 50 {
				t.Errorf("tshark decoded only %d packets", len(theirs))
			}
			t.Logf("%d packets compared, %d differ, %d timing-window swaps (and %d at tshark's out-of-order window)", cmp.compared, cmp.differ, cmp.swaps, cmp.nearWindow)
			checkSummaries(t, "all", cases, tp, recs, theirs)
			checkKernelConfirmation(t, netip.AddrPortFrom(tp.clientIP, cases[1].sc.clientPort), recs)
			checkControlPackets(t, theirs, ctlRecs, v.A, harness.VethA)
			checkSummaries(t, "control", cases, tp, ctlRecs, theirs)
			checkCaptureCounts(t, cases, tp, theirs, map[string][]*harness.Record{"all": recs, "control": ctlRecs})
			checkControlSummaries(t, cases, tp, theirs, recs, ctlRecs)
		})
	}
}

// tsharkSubnets are the veth subnets (harness.TestSubnet) that
// TestAnalysisAgainstTshark may take, one per run of it on this host at a
// time (lockSubnet).
var tsharkSubnets = []int{84, 184, 194}

// lockSubnet takes the first of subnets that no other test process on this
// host holds (an exclusive flock on a file named after it in the temp
// directory) and keeps it until t ends. The tests use fixed addresses and
// ports; two runs of one test at once (a loop beside a single run) would
// otherwise trace each other's connections: the same 4-tuples in other
// namespaces. When all are taken it waits, at most until ctx ends.
func lockSubnet(ctx context.Context, t *testing.T, subnets []int) int {
	t.Helper()
	for {
		for _, x := range subnets {
			f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("tcpscope-e2e-subnet-%d.lock", x)), os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				t.Fatalf("lock subnet %d: %v", x, err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				f.Close()
				continue
			}
			t.Cleanup(func() { f.Close() }) // closing releases the lock
			return x
		}
		select {
		case <-ctx.Done():
			t.Fatalf("lock one of the subnets %v: %v (other runs of the test hold them)", subnets, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// requireTshark skips the test without root or tshark, or fails it when
// the end-to-end tests were asked for (TCPSCOPE_E2E=1) and tshark is
// missing.
func requireTshark(t *testing.T) {
	t.Helper()
	requireE2E(t)
	if _, err := exec.LookPath("tshark"); err != nil {
		harness.Require(t, fmt.Sprintf("no tshark, the oracle of this test: %v", err))
	}
}

// caseSummary returns the conn record of c's connection, written from the
// client's view (its namespace), and the record decoded; it fails t when
// there is not exactly one.
func caseSummary(t *testing.T, mode string, c analysisCase, tp *topology, recs []*harness.Record) (map[string]any, *harness.Record, bool) {
	t.Helper()
	client := netip.AddrPortFrom(tp.clientIP, c.sc.clientPort)
	server := netip.AddrPortFrom(tp.serverIP, c.sc.serverPort)
	sums := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type == "conn" && r.LocalAddr == client && r.RemoteAddr == server && r.Netns == tp.clientNS.Inode
	})
	if len(sums) != 1 {
		t.Errorf("%s: %s: %d conn records for %s -> %s, want 1:\n%s", mode, c.name, len(sums), client, server, harness.Describe(sums))
		return nil, nil, false
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(sums[0].Raw), &s); err != nil {
		t.Fatal(err)
	}
	return s, sums[0], true
}

// checkSummaries checks each connection's conn record, of the tracer in
// mode (--packets all or control), against what the scenario did.
func checkSummaries(t *testing.T, mode string, cases []analysisCase, tp *topology, recs []*harness.Record, theirs []tsharkPacket) {
	t.Helper()
	for _, c := range cases {
		tsharkRetrans := 0
		for _, p := range theirs {
			if p.port == c.sc.clientPort && strings.Contains(strings.Join(p.verdicts, ","), "retransmission") {
				tsharkRetrans++
			}
		}
		client := netip.AddrPortFrom(tp.clientIP, c.sc.clientPort)
		server := netip.AddrPortFrom(tp.serverIP, c.sc.serverPort)
		s, sum, ok := caseSummary(t, mode, c, tp, recs)
		if !ok {
			continue
		}
		want := map[string]any{"role": "client", "comm": "tcli"}
		switch c.name {
		case "clean", "loss", "zero-window", "keep-alive":
			want["outcome"], want["close_kind"], want["closed_by"] = "established", "fin", "local"
			want["handshake_check"] = "ok"
			if fa, _ := s["fin_acked"].(map[string]any); fa["local"] != true || fa["remote"] != true {
				t.Errorf("%s: %s: fin_acked %v, want both FINs acked: %s", mode, c.name, s["fin_acked"], sum.Raw)
			}
		case "refused":
			want["outcome"], want["close_kind"], want["closed_by"] = "refused", "reset", "remote"
		case "simultaneous-close":
			want["outcome"], want["close_kind"], want["closed_by"] = "established", "fin", "both"
			want["handshake_check"] = "ok"
			checkSimultaneousClose(t, mode, client, server, recs)
		case "timeout":
			want["outcome"], want["close_kind"] = "timeout", "timeout"
			// At least the SYN retransmissions tshark saw: tcpscope stops
			// after tcpdump, so it may see one more.
			if n, _ := s["syn_retransmits"].(float64); n < float64(max(tsharkRetrans, 1)) {
				t.Errorf("%s: timeout: syn_retransmits %v, tshark saw %d", mode, s["syn_retransmits"], tsharkRetrans)
			}
		}
		for k, v := range want {
			if s[k] != v {
				t.Errorf("%s: %s: conn %s = %v, want %v: %s", mode, c.name, k, s[k], v, sum.Raw)
			}
		}
		rtx, _ := s["retransmits"].(map[string]any)
		// On this fast link most retransmissions follow newer data within
		// one iRTT: tshark and tcpscope call them out-of-order; the
		// kernel's count is the truth.
		if c.name == "loss" && rtx["kernel"] == float64(0) {
			t.Errorf("%s: loss: retransmits %v, want kernel > 0", mode, rtx)
		}
		if c.name == "loss" && (s["bytes_out"] != float64(bulkBytes) || s["bytes_in"] != float64(0)) {
			t.Errorf("%s: loss: bytes_out %v bytes_in %v, want %d and 0", mode, s["bytes_out"], s["bytes_in"], bulkBytes)
		}
		if (c.name == "clean" || c.name == "simultaneous-close") &&
			(s["bytes_out"] != float64(len(echoMessage)) || s["bytes_in"] != float64(len(echoMessage))) {
			t.Errorf("%s: %s: bytes_out %v bytes_in %v, want %d each way", mode, c.name, s["bytes_out"], s["bytes_in"], len(echoMessage))
		}
		if c.name == "zero-window" && s["zero_windows"] == float64(0) {
			t.Errorf("%s: zero-window: no zero windows counted: %s", mode, sum.Raw)
		}
	}
}

// crossDirection are the verdicts that depend on the other direction's
// latest packet (its ACK, window or duplicate ACKs).
var crossDirection = map[string]bool{
	"retransmission": true, "fast_retransmission": true, "spurious_retransmission": true,
	"out_of_order": true, "window_full": true, "ack_unseen_segment": true,
	"zero_window_probe": true, "keep_alive_ack": true,
}

// onlyCrossDirection reports whether two verdict sets differ only in
// verdicts that depend on the other direction.
func onlyCrossDirection(a, b []string) bool {
	in := map[string]int{}
	for _, v := range a {
		in[v]++
	}
	for _, v := range b {
		in[v]--
	}
	for v, n := range in {
		if n != 0 && !crossDirection[v] {
			return false
		}
	}
	return true
}

// checkKernelConfirmation: every retransmission or out-of-order guess on a
// packet of the local client says what the kernel did, true at least once
// under loss, and false only where the kernel reported no retransmission
// of that sequence number.
func checkKernelConfirmation(t *testing.T, client netip.AddrPort, recs []*harness.Record) {
	t.Helper()
	retransmitted := func(seq uint32) bool {
		for _, r := range recs {
			if r.Type == "retransmit" && r.LocalAddr == client && r.Seq != nil && r.Len != nil &&
				seq-*r.Seq < max(*r.Len, 1) {
				return true
			}
		}
		return false
	}
	confirmed := 0
	for _, r := range recs {
		if r.Type != "packet" || r.SrcAddr != client {
			continue
		}
		guess := false
		for _, v := range r.Analysis {
			guess = guess || v == "retransmission" || v == "out_of_order"
		}
		if !guess {
			continue
		}
		switch {
		case r.KernelConfirmed == nil:
			t.Errorf("guess on a local sender's packet without kernel_confirmed: %s", r)
		case *r.KernelConfirmed:
			confirmed++
		case retransmitted(*r.Seq):
			t.Errorf("kernel_confirmed false, but the kernel retransmitted seq %d: %s", *r.Seq, r)
		}
	}
	if confirmed == 0 {
		t.Errorf("no retransmission guess of %s confirmed by the kernel under loss", client)
	}
}

// verdictKey names a packet by source port, seq, ack, length and how many
// times that combination was seen before (retransmissions repeat it).
func verdictKey(port uint16, seq uint32, ack *uint32, length uint32, seen map[string]int) string {
	a := "-"
	if ack != nil {
		a = fmt.Sprint(*ack)
	}
	k := fmt.Sprintf("%d/%d/%s/%d", port, seq, a, length)
	seen[k]++
	return fmt.Sprintf("%s#%d", k, seen[k])
}

type tsharkPacket struct {
	key         string
	port, dport uint16
	verdicts    []string
	// base is what a packet record of --packets control, which sees
	// only some of the packets, is matched by (controlKey).
	base          string
	seq, length   uint32
	syn, fin, rst bool
	// at is the packet's time in the capture, irtt the connection's
	// initial RTT as tshark measured it (0 before the handshake ends):
	// tshark's out-of-order window (ooo3ms before it).
	at, irtt time.Duration
}

type orderedPacket struct {
	key         string
	port, dport uint16
}

// previousOpposite maps each packet to the last packet of the opposite
// direction of its connection before it, in capture order.
func previousOpposite(order []orderedPacket) map[string]string {
	last := map[[2]uint16]string{} // (src, dst) -> last key
	prev := map[string]string{}
	for _, p := range order {
		prev[p.key] = last[[2]uint16{p.dport, p.port}]
		last[[2]uint16{p.port, p.dport}] = p.key
	}
	return prev
}

// tsharkPackets reads the pcap with tshark: per packet its key and the
// analysis verdicts, sorted.
func tsharkPackets(ctx context.Context, t *testing.T, pcap string) []tsharkPacket {
	t.Helper()
	args := []string{"-r", pcap, "-o", "tcp.relative_sequence_numbers:FALSE", "-T", "fields", "-E", "separator=|",
		"-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.ack", "-e", "tcp.len", "-e", "tcp.flags.ack", "-e", "tcp.dstport",
		"-e", "tcp.flags.syn", "-e", "tcp.flags.fin", "-e", "tcp.flags.reset", "-e", "tcp.window_size_value",
		"-e", "frame.time_relative", "-e", "tcp.analysis.initial_rtt"}
	for _, v := range tsharkVerdicts {
		args = append(args, "-e", v.field)
	}
	out, err := exec.CommandContext(ctx, "tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var pkts []tsharkPacket
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		const fields = 12 // before the verdicts
		if len(f) != fields+len(tsharkVerdicts) {
			t.Fatalf("tshark line %q", line)
		}
		var port, dport uint16
		var seq, ack, length uint32
		fmt.Sscan(f[5], &dport)
		fmt.Sscan(f[0], &port)
		fmt.Sscan(f[1], &seq)
		fmt.Sscan(f[2], &ack)
		fmt.Sscan(f[3], &length)
		var ackp *uint32
		if tsharkFlag(f[4]) {
			ackp = &ack
		}
		p := tsharkPacket{key: verdictKey(port, seq, ackp, length, seen), port: port, dport: dport,
			seq: seq, length: length, syn: tsharkFlag(f[6]), fin: tsharkFlag(f[7]), rst: tsharkFlag(f[8])}
		var win uint32
		fmt.Sscan(f[9], &win)
		p.base = controlKey(port, seq, ackp, length, win, p.syn, p.fin, p.rst)
		p.at, p.irtt = tsharkSeconds(f[10]), tsharkSeconds(f[11])
		for i, v := range tsharkVerdicts {
			if f[fields+i] != "" {
				p.verdicts = append(p.verdicts, v.name)
			}
		}
		sort.Strings(p.verdicts)
		pkts = append(pkts, p)
	}
	return pkts
}

// tsharkSeconds reads a time field of tshark in seconds ("0.000123456");
// 0 when empty.
func tsharkSeconds(f string) time.Duration {
	var sec float64
	if _, err := fmt.Sscan(f, &sec); err != nil {
		return 0
	}
	return time.Duration(sec * float64(time.Second))
}

// tsharkFlag reads a TCP flag field of tshark (1 or True when set).
func tsharkFlag(f string) bool { return f == "1" || f == "True" }

// startPcap runs tcpdump writing a pcap file (every packet flushed, ns
// timestamps) and waits until it captures.
func startPcap(ctx context.Context, t *testing.T, ns *harness.Namespace, ifname, file string) *harness.Proc {
	t.Helper()
	// Nanosecond timestamps: tshark's out-of-order window is the
	// connection's iRTT, tens of microseconds on veth.
	// Immediate mode: without it tcpdump hands packets over a block at a
	// time (when full, or after a second), and on SIGINT writes nothing of
	// the block not yet read.
	p := harness.StartT(t, "tcpdump -w", harness.Command(ns.Exec("tcpdump", "-U", "--immediate-mode", "-s", "128", "-B", "16384",
		"--time-stamp-precision=nano", "-i", ifname, "-w", file, "tcp")...))
	if _, err := p.WaitLine(ctx, true, "listening on "+ifname, startTimeout); err != nil {
		t.Fatal(err)
	}
	return p
}

// stopPcap stops tcpdump and requires that it dropped nothing and wrote
// every packet its filter accepted; it returns how many packets it wrote.
// For veth and other interfaces where each packet passes the filter once
// (on lo the filter sees each packet twice).
func stopPcap(ctx context.Context, t *testing.T, p *harness.Proc) int {
	t.Helper()
	waitPcapQuiet(p)
	if err := p.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
		t.Fatalf("tcpdump after SIGINT: %v\n%s", err, p.Output())
	}
	if !regexp.MustCompile(`(?m)^0 packets dropped by kernel$`).MatchString(p.Stderr.String()) {
		t.Fatalf("tcpdump dropped packets, cannot be used as the oracle:\n%s", p.Stderr.String())
	}
	return requireFullPcap(t, p)
}

// waitPcapQuiet waits, at most pcapQuietMax, until the pcap tcpdump p
// writes (-w, one packet at a time with -U) has not grown for pcapQuiet: a
// retransmission timer of the test's connections (200 ms and more) can
// send a packet after the test's settle time, and a packet that arrives
// while tcpdump stops is counted by its filter but not written.
func waitPcapQuiet(p *harness.Proc) {
	file := ""
	for i, a := range p.Cmd.Args[:len(p.Cmd.Args)-1] {
		if a == "-w" {
			file = p.Cmd.Args[i+1]
		}
	}
	size := func() int64 {
		st, err := os.Stat(file)
		if err != nil {
			return -1
		}
		return st.Size()
	}
	last, since := size(), time.Now()
	for deadline := time.Now().Add(pcapQuietMax); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n := size(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= pcapQuiet {
			return
		}
	}
}

// How long a pcap must not grow before tcpdump is stopped, and how long
// that wait may last.
const (
	pcapQuiet    = 400 * time.Millisecond
	pcapQuietMax = 3 * time.Second
)

// checkPacketCount requires tshark to have decoded every packet tcpdump
// wrote to the pcap, and tcpscope to have reported exactly as many packets
// at the capture point (ifname in ns) as tcpdump captured there, and none
// elsewhere: no packet missed, none reported twice.
func checkPacketCount(t *testing.T, captured int, theirs []tsharkPacket, recs []*harness.Record, ns *harness.Namespace, ifname string) {
	t.Helper()
	if len(theirs) != captured {
		t.Fatalf("tshark decoded %d packets, tcpdump captured %d", len(theirs), captured)
	}
	pkts := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "packet" })
	at := harness.Select(pkts, func(r *harness.Record) bool { return r.Ifname == ifname && r.Netns == ns.Inode })
	if len(at) != captured {
		t.Errorf("tcpscope reported %d packets on %s, tcpdump captured %d", len(at), ifname, captured)
	}
	if n := len(pkts) - len(at); n > 0 {
		t.Errorf("tcpscope reported %d packets elsewhere than %s in %s, the only interface it watches", n, ifname, ns.Name)
	}
}

// finHoldTable is the nftables table that holds the FINs of the
// simultaneous-close case back.
const finHoldTable = "tcpscope_finhold"

// holdFINs drops, in each namespace's output, the pure FINs (no payload:
// IPv4 or IPv6 header plus TCP header with timestamps, at most 72 bytes)
// of the simultaneous-close connection. Dropped before TC and tcpdump,
// they are not on the wire: the kernel keeps each FIN queued (the send
// failed) and sends it when its probe timer fires after the rule is gone
// (200 ms after the shutdown, later when it fired while the rule was
// there). Whether the FINs then cross is up to the two timers: at least
// one end passes CLOSING.
func holdFINs(ctx context.Context, t *testing.T, v *harness.VethPair) {
	t.Helper()
	for _, ns := range []*harness.Namespace{v.A, v.B} {
		harness.MustRun(ctx, t, stopTimeout, ns.Exec("nft", "table inet "+finHoldTable+" { chain out { type filter hook output priority 0; "+
			"tcp sport 7507 tcp flags & fin == fin meta length <= 72 drop; "+
			"tcp dport 7507 tcp flags & fin == fin meta length <= 72 drop; }; }")...)
	}
}

// runSimultaneousClose: an echo, then both peers shut down; once both
// have (each FIN held back), the FINs are let go.
func runSimultaneousClose(ctx context.Context, t *testing.T, v *harness.VethPair, tp *topology, sc *scenario) {
	t.Helper()
	server := netip.AddrPortFrom(tp.serverIP, sc.serverPort)
	client := netip.AddrPortFrom(tp.clientIP, sc.clientPort)
	srv := harness.StartT(t, sc.name+" server", harness.Command(tp.serverNS.Exec(bins.Server, "serve-shutdown", server.String())...))
	if _, err := srv.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
		t.Fatal(err)
	}
	cli := harness.StartT(t, sc.name+" client", harness.Command(tp.clientNS.Exec(bins.Client, "connect-shutdown", server.String(),
		client.String(), echoMessage)...))
	for _, p := range []*harness.Proc{srv, cli} {
		if _, err := p.WaitLine(ctx, false, "shutdown", startTimeout); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []*harness.Namespace{v.A, v.B} {
		harness.MustRun(ctx, t, stopTimeout, ns.Exec("nft", "delete table inet "+finHoldTable)...)
	}
	cli.MustSucceed(ctx, t, runTimeout)
	srv.MustSucceed(ctx, t, runTimeout)
	// Each peer exits once the other's FIN arrived, but its own FIN may
	// still wait for its ACK (CLOSING): wait, bounded, until the kernel
	// has both ends in TIME_WAIT, so that every record the test looks for
	// was due before the tracers stop.
	ends := []struct {
		ns            *harness.Namespace
		local, remote netip.AddrPort
	}{{tp.clientNS, client, server}, {tp.serverNS, server, client}}
	for _, e := range ends {
		for i := 0; !timeWaitListed(ctx, t, e.ns, e.local, e.remote); i++ {
			if i == 250 {
				t.Fatalf("simultaneous close: %s -> %s not in TIME_WAIT (ss) 5 s after both peers exited", e.local, e.remote)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// checkSimultaneousClose: both sockets closed first (FIN_WAIT1 from
// ESTABLISHED), at least one saw the FINs cross (CLOSING), and both ended
// in TIME_WAIT. On failure it lists every record of the connection: the
// kernel had both ends in TIME_WAIT before the tracers stopped
// (runSimultaneousClose), so a record missing there is tcpscope's.
func checkSimultaneousClose(t *testing.T, mode string, client, server netip.AddrPort, recs []*harness.Record) {
	t.Helper()
	closing, failed := false, false
	for _, end := range []netip.AddrPort{client, server} {
		mine := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "state" && r.LocalAddr == end })
		chain := harness.StateChain(mine)
		t.Logf("%s: simultaneous close: %s: %s", mode, end, chain)
		closing = closing || strings.Contains(chain, "FIN_WAIT1 -> CLOSING")
		if !strings.Contains(chain, "ESTABLISHED -> FIN_WAIT1") {
			t.Errorf("%s: simultaneous close: %s did not close first: %s", mode, end, chain)
			failed = true
		}
		tw := harness.Select(mine, func(r *harness.Record) bool { return r.TimeWait && r.New == "TIME_WAIT" })
		if len(tw) != 1 {
			t.Errorf("%s: simultaneous close: %s: %d TIME_WAIT records, want 1: %s", mode, end, len(tw), chain)
			failed = true
		}
	}
	if !closing {
		t.Errorf("%s: simultaneous close: no socket went FIN_WAIT1 -> CLOSING", mode)
		failed = true
	}
	if failed {
		conn := harness.Select(recs, func(r *harness.Record) bool {
			return r.LocalAddr == client || r.LocalAddr == server || r.SrcAddr == client || r.SrcAddr == server
		})
		t.Logf("%s: simultaneous close: the connection's records (the tracer's last at %s):\n%s", mode, recs[len(recs)-1].TS, harness.Describe(conn))
	}
}
