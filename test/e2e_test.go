package e2e

import (
	"context"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestTraffic runs the scenarios (echo with FIN close, 1 MiB bulk,
// refused connection, SO_LINGER 0 abort, echo from an ephemeral port) over {IPv4, IPv6} x {veth, lo}
// with tcpscope and tcpdump watching the same interface, then checks:
//   - packets: tcpscope's packet records equal tcpdump's packets as a
//     multiset (flags, seq, ack, win, len, options), nothing missing or extra;
//   - conn: one non-zero conn per connection, shared by all its records,
//     different for every connection and listener;
//   - per connection: exact state sequences of both ends, owner pid/comm
//     of each end's process, socket cookies, netns, resets and reasons,
//     retransmit records against what tcpdump saw twice;
//   - timestamps within the time tcpscope ran;
//   - text output: a second tcpscope with -o text prints every packet
//     exactly as tcpdump -S -n -t prints it (after its own prefix).
//
// veth: client in namespace A, server in B, tcpscope and tcpdump in A on
// A's end. lo: everything in one fresh namespace, on its loopback.
func TestTraffic(t *testing.T) {
	requireE2E(t)
	cases := []struct {
		name string
		veth bool
		ipv6 bool
	}{
		{"veth/ipv4", true, false},
		{"veth/ipv6", true, true},
		{"lo/ipv4", false, false},
		{"lo/ipv6", false, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var tp *topology
			if tc.veth {
				tp = vethTopology(harness.NewVethPair(t, netnsPrefix, "traffic", 10+i), tc.ipv6)
			} else {
				tp = loTopology(harness.NewNamespace(t, netnsPrefix, "traffic-lo"), tc.ipv6)
			}

			start := time.Now()
			tracer := startTracer(ctx, t, tp.watchNS, "-i", tp.ifname)
			textTracer := startTextTracer(ctx, t, tp.watchNS, "-i", tp.ifname)
			dump := startTcpdump(ctx, t, tp.watchNS, tp.ifname)
			var runs []*connRun
			for i := range scenarios {
				runs = append(runs, runScenario(ctx, t, tp, &scenarios[i]))
			}
			time.Sleep(settle)
			td := stopTcpdump(ctx, t, dump)
			recs := stopTracer(ctx, t, tracer)
			text := stopTextTracer(ctx, t, textTracer)

			checkTextMatchesTcpdump(t, text, td)
			checkTimes(t, harness.Select(recs, tp.ours), start, time.Now())
			checkPackets(t, tp, td, recs)
			checkConnIDs(t, tp, runs, recs)
			for _, run := range runs {
				t.Run(run.sc.name, func(t *testing.T) { checkScenario(t, tp, run, td, recs) })
			}
		})
	}
}

// TestRetransmitOnlyWhenSent connects from A to 10.200.X.3, an address of
// A's subnet that nobody answers ARP for: the SYN waits in the neighbour
// queue and never reaches the wire. The kernel's retransmit timer fires
// (after 1 s) but finds the SYN still queued in the host and sends nothing:
// TcpRetransSegs stays 0 and TcpExt TCPSpuriousRtxHostQueues counts the
// attempt. tcpscope must report no retransmit, since nothing was
// retransmitted.
func TestRetransmitOnlyWhenSent(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "rtx", 50)
	nobody := netip.AddrPortFrom(netip.MustParseAddr("10.200.50.3"), 7105)
	client := netip.AddrPortFrom(v.A4, 41105)

	tracer := startTracer(ctx, t, v.A, "-i", harness.VethA)
	dump := startTcpdump(ctx, t, v.A, harness.VethA)
	cli := harness.StartT(t, "client", harness.Command(v.A.Exec(bins.Client, "connect-echo", nobody.String(), client.String(), echoMessage)...))
	// Wait (bounded) until the kernel has tried to retransmit the SYN.
	deadline := time.Now().Add(5 * time.Second)
	for v.A.MustCounter(t, "netstat", "TcpExt", "TCPSpuriousRtxHostQueues") == 0 {
		if time.Now().After(deadline) || cli.Exited() {
			t.Fatalf("the kernel did not try to retransmit the queued SYN within 5 s\n%s", cli.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cli.Stop(ctx, syscall.SIGKILL, stopTimeout); err == nil {
		t.Fatalf("client connected to %s, which nobody should answer\n%s", nobody, cli.Output())
	}
	time.Sleep(settle)
	td := stopTcpdump(ctx, t, dump)
	recs := stopTracer(ctx, t, tracer)

	// Preconditions: nothing went out, and the kernel retransmitted nothing.
	if len(td) != 0 {
		t.Fatalf("tcpdump saw TCP packets, the SYN was not held back:\n%s", tdLines(td, 10))
	}
	if n := v.A.MustCounter(t, "snmp", "Tcp", "RetransSegs"); n != 0 {
		t.Fatalf("the kernel counted %d retransmitted segments, want 0", n)
	}

	sock := harness.Select(recs, func(r *harness.Record) bool {
		return r.IsSocketEvent() && r.Netns == v.A.Inode && r.LocalAddr == client && r.RemoteAddr == nobody
	})
	if got, want := harness.StateChain(sock), "CLOSE -> SYN_SENT -> CLOSE"; got != want {
		t.Errorf("client states %q, want %q:\n%s", got, want, harness.Describe(sock))
	}
	if rtx := harness.Select(sock, func(r *harness.Record) bool { return r.Type == "retransmit" }); len(rtx) > 0 {
		t.Errorf("%d retransmit records, but nothing was retransmitted (TcpRetransSegs 0, tcpdump saw no packet):\n%s",
			len(rtx), harness.Describe(rtx))
	}
	if pkts := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "packet" }); len(pkts) != 0 {
		t.Errorf("packet records although no TCP packet passed %s:\n%s", harness.VethA, harness.Describe(pkts))
	}
}
