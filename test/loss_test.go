package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestRetransmitsUnderLoss makes the kernel really retransmit: an nftables
// rule in the server's namespace drops one in four of the client's data
// packets on input during a 1 MiB transfer. The client must retransmit
// (the kernel's RetransSegs grows, tcpdump sees sequence ranges twice), and
// tcpscope must report it: at least one retransmit record, each for a
// sequence number tcpdump saw at least twice, no more records than the
// kernel counted segments (one record per retransmitted skb, which may
// hold several segments), with the client's owner and state. The packet
// records still equal tcpdump's.
func TestRetransmitsUnderLoss(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "loss", 60)
	tp := vethTopology(v, false)
	sc := &scenario{name: "lossy-bulk", serverPort: 7201, clientPort: 41201, serve: "serve-sink",
		connect: []string{"connect-bulk", fmt.Sprint(bulkBytes)}}

	// Data only (payload > 0), every fourth packet: the handshake and the
	// close stay intact, so the transfer completes.
	rule := fmt.Sprintf("table inet tcpscope_loss { chain in { type filter hook input priority 0; "+
		"tcp dport %d meta length > 200 numgen inc mod 4 == 0 counter drop; }; }", sc.serverPort)
	harness.MustRun(ctx, t, stopTimeout, v.B.Exec("nft", rule)...)

	before := v.A.MustCounter(t, "snmp", "Tcp", "RetransSegs")
	tracer := startTracer(ctx, t, v.A, "-i", harness.VethA)
	dump := startTcpdump(ctx, t, v.A, harness.VethA)
	run := runScenario(ctx, t, tp, sc)
	time.Sleep(settle)
	td := stopTcpdump(ctx, t, dump)
	recs := stopTracer(ctx, t, tracer)
	kernelRetrans := v.A.MustCounter(t, "snmp", "Tcp", "RetransSegs") - before

	// Preconditions: the loss happened and the kernel retransmitted.
	if kernelRetrans == 0 {
		t.Fatal("the kernel retransmitted nothing: the loss rule did not bite")
	}
	if !retransmitted(td, run.client) {
		t.Fatal("tcpdump saw no sequence range twice")
	}

	checkPackets(t, tp, td, recs)
	rtx := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type == "retransmit" && r.LocalAddr == run.client && r.RemoteAddr == run.server
	})
	if len(rtx) == 0 {
		t.Fatalf("the kernel retransmitted %d segments, tcpscope reported no retransmit", kernelRetrans)
	}
	if int64(len(rtx)) > kernelRetrans {
		t.Errorf("%d retransmit records, more than the %d segments the kernel retransmitted:\n%s",
			len(rtx), kernelRetrans, harness.Describe(rtx))
	}
	for _, r := range rtx {
		if n := timesSent(td, r.LocalAddr, *r.Seq); n < 2 {
			t.Errorf("retransmit of seq %d, but tcpdump saw it %d times: %s", *r.Seq, n, r)
		}
		// The client may already have closed with data unacknowledged.
		if r.Len == nil || *r.Len == 0 || (r.StateName() != "ESTABLISHED" && r.StateName() != "FIN_WAIT1") {
			t.Errorf("retransmit record without payload, or in a state that sends no data: %s", r)
		}
		checkOwner(t, "client", r, run.clientPID, "tcli")
	}
	conns := map[uint64]bool{}
	for _, r := range harness.Select(recs, run.isConn) {
		conns[r.ConnID()] = true
	}
	if len(conns) != 1 {
		t.Errorf("the lossy connection has conn ids %v, want one", conns)
	}
	t.Logf("kernel RetransSegs %d, tcpscope retransmit records %d", kernelRetrans, len(rtx))
}

// TestCountAndWrite: with -c N and -w FILE tcpscope stops by itself after
// exactly N records, all in FILE as complete JSON lines, nothing on stdout.
func TestCountAndWrite(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "count")
	file := t.TempDir() + "/out.jsonl"
	const n = 7
	tracer := startTracer(ctx, t, ns, "-i", "lo", "-c", fmt.Sprint(n), "-w", file)
	runScenario(ctx, t, loTopology(ns, false), &scenarios[0])
	waitCtx, waitCancel := context.WithTimeout(ctx, stopTimeout)
	defer waitCancel()
	if err := tracer.Wait(waitCtx); err != nil {
		t.Fatalf("tcpscope -c %d did not exit by itself with status 0: %v\n%s", n, err, tracer.Output())
	}
	if out := tracer.Stdout.String(); out != "" {
		t.Errorf("stdout not empty with -w: %q", out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := harness.ParseRecords(data)
	if err != nil {
		t.Fatalf("-w file: %v", err)
	}
	if len(recs) != n || strings.Count(string(data), "\n") != n {
		t.Errorf("-w file holds %d records in %d lines, want %d", len(recs), strings.Count(string(data), "\n"), n)
	}
}
