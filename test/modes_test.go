package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// modeScenarios are the connections of TestOutputModes. "echo" and
// "refused" are named as in expectations, so checkScenario applies to
// them; "greeting" is closed by the server and carries data one way only.
var modeScenarios = []scenario{
	{name: "echo", serverPort: 7701, clientPort: 41701, serve: "serve-echo", connect: []string{"connect-echo", echoMessage}},
	{name: "refused", serverPort: 7702, clientPort: 41702, connect: []string{"connect-refused"}},
	{name: "greeting", serverPort: 7703, clientPort: 41703, serve: "serve-first-close 1", connect: []string{"connect-read"}},
}

// peerGreeting is what test/peer's serve-first-close sends.
const peerGreeting = "hello, closing now\n"

// analysisFields are the packet fields only the analysis adds.
var analysisFields = []string{"rel_seq", "rel_ack", "analysis", "dup_ack_count", "kernel_confirmed"}

// TestOutputModes runs two tracers side by side over the same traffic (an
// echo closed by the client, a refused connection, a greeting closed by
// the server), client in A, server in B, both watching A's veth with
// tcpdump, IPv4 and IPv6:
//   - `--summary-only` prints only conn records, exactly one per
//     connection, whose ISNs, byte and segment counts, times, states,
//     handshake RTT, outcome and close agree with tcpdump and with what
//     the peers did;
//   - `--analysis=off` prints packets without relative numbers or
//     verdicts, still equal to tcpdump's, the socket events as usual, and
//     no conn record.
func TestOutputModes(t *testing.T) {
	requireE2E(t)
	for i, ipv6 := range []bool{false, true} {
		family := "ipv4"
		if ipv6 {
			family = "ipv6"
		}
		t.Run(family, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			tp := vethTopology(harness.NewVethPair(t, netnsPrefix, "modes-"+family, 100+i), ipv6)

			summaries := startTracer(ctx, t, tp.watchNS, "-i", tp.ifname, "--summary-only")
			plain := startTracer(ctx, t, tp.watchNS, "-i", tp.ifname, "--analysis=off")
			dump := startTcpdump(ctx, t, tp.watchNS, tp.ifname)
			from := time.Now()
			var runs []*connRun
			for i := range modeScenarios {
				runs = append(runs, runScenario(ctx, t, tp, &modeScenarios[i]))
			}
			time.Sleep(settle)
			td := stopTcpdump(ctx, t, dump)
			sums := stopTracer(ctx, t, summaries)
			recs := stopTracer(ctx, t, plain)
			to := time.Now()

			t.Run("summary-only", func(t *testing.T) { checkSummaryOnly(t, tp, runs, td, sums, from, to) })
			t.Run("analysis-off", func(t *testing.T) { checkAnalysisOff(t, tp, runs, td, recs) })
		})
	}
}

// checkSummaryOnly checks the output of `--summary-only`: conn records
// only, one per connection of the test, each agreeing with the traffic.
// Counters that are zero for this traffic are not checked: whether a
// zero counter is printed is not part of this test.
func checkSummaryOnly(t *testing.T, tp *topology, runs []*connRun, td []*tdPacket, recs []*harness.Record, from, to time.Time) {
	t.Helper()
	for _, r := range recs {
		if r.Type != "conn" {
			t.Errorf("--summary-only printed a %s record: %s", r.Type, r)
		}
	}
	// Every conn record of the test's addresses is one of its connections
	// (no listener, no second record).
	ours := func(a netip.AddrPort) bool { return a.Addr() == tp.clientIP || a.Addr() == tp.serverIP }
	for _, r := range recs {
		if r.Type != "conn" || !(ours(r.LocalAddr) || ours(r.RemoteAddr)) {
			continue
		}
		known := false
		for _, run := range runs {
			known = known || run.isConn(r)
		}
		if !known {
			t.Errorf("conn record of no connection of the test: %s", r)
		}
	}
	ids := map[uint64]string{}
	for _, run := range runs {
		mine := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "conn" && run.isConn(r) })
		if len(mine) != 1 {
			t.Errorf("%s: %d conn records, want 1:\n%s", run.sc.name, len(mine), harness.Describe(mine))
			continue
		}
		r := mine[0]
		if other, ok := ids[r.ConnID()]; ok {
			t.Errorf("%s: conn id %d is also %s's", run.sc.name, r.ConnID(), other)
		}
		ids[r.ConnID()] = run.sc.name
		var connTD []*tdPacket
		for _, p := range td {
			if run.isConnPacket(p) {
				connTD = append(connTD, p)
			}
		}
		checkSummary(t, run, connTD, r, from, to)
	}
}

// checkSummary checks one connection's conn record against its tcpdump
// packets and what its peers did.
func checkSummary(t *testing.T, run *connRun, td []*tdPacket, r *harness.Record, from, to time.Time) {
	t.Helper()
	name := run.sc.name
	var s map[string]any
	if err := json.Unmarshal([]byte(r.Raw), &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: %s: %s", name, fmt.Sprintf(format, args...), r.Raw)
	}
	num := func(k string) float64 {
		t.Helper()
		v, ok := s[k].(float64)
		if !ok {
			fail("%s is %v, want a number", k, s[k])
			return math.NaN()
		}
		return v
	}
	t.Logf("%s: %s", name, r.Raw)
	if len(td) == 0 {
		t.Fatalf("%s: tcpdump saw no packet of %s <-> %s", name, run.client, run.server)
	}

	// The client's view: its end is local.
	if r.LocalAddr != run.client || r.RemoteAddr != run.server {
		fail("local %s remote %s, want %s %s", r.LocalAddr, r.RemoteAddr, run.client, run.server)
	}
	want := map[string]any{"role": "client", "comm": harness.ClientComm, "pid": float64(run.clientPID)}
	switch name {
	case "echo":
		want["outcome"], want["closed_by"], want["close_kind"] = "established", "local", "fin"
		want["handshake_check"] = "ok"
	case "greeting":
		want["outcome"], want["closed_by"], want["close_kind"] = "established", "remote", "fin"
		want["handshake_check"] = "ok"
	case "refused":
		want["outcome"], want["closed_by"], want["close_kind"] = "refused", "remote", "reset"
	}
	for k, v := range want {
		if s[k] != v {
			fail("%s = %v, want %v", k, s[k], v)
		}
	}

	// Times: start <= end, within the test, and duration_ms is end -
	// start (in whole microseconds).
	start, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(s["start"]))
	end, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(s["end"]))
	if err1 != nil || err2 != nil {
		fail("bad start or end: %v %v", err1, err2)
	} else {
		if end.Before(start) {
			fail("end %s before start %s", end, start)
		}
		// A second of slack for the conversion of the kernel's clock, as
		// in checkTimes.
		lo, hi := from.Add(-time.Second), to.Add(time.Second)
		if start.Before(lo) || end.After(hi) {
			fail("start %s or end %s outside the test's %s .. %s", start, end, from, to)
		}
		if d, span := num("duration_ms"), float64(end.Sub(start))/1e6; math.Abs(d-span) > 0.0011 {
			fail("duration_ms %v, but end - start is %.6f ms", d, span)
		}
	}

	// The remaining checks concern established connections.
	if want["outcome"] != "established" {
		return
	}
	var syn, synack *tdPacket
	for _, p := range td {
		switch {
		case syn == nil && p.src == run.client && p.flags == "S":
			syn = p
		case synack == nil && p.src == run.server && p.flags == "S.":
			synack = p
		}
	}
	if syn == nil || synack == nil || syn.seq == nil || synack.seq == nil {
		t.Fatalf("%s: tcpdump saw no SYN and SYN-ACK:\n%s", name, tdLines(td, 10))
	}
	if got := num("isn_local"); got != float64(*syn.seq) {
		fail("isn_local %.0f, tcpdump's SYN has seq %d", got, *syn.seq)
	}
	if got := num("isn_remote"); got != float64(*synack.seq) {
		fail("isn_remote %.0f, tcpdump's SYN-ACK has seq %d", got, *synack.seq)
	}
	if got := num("handshake_rtt_ms"); !(got > 0) {
		fail("handshake_rtt_ms %v, want > 0", got)
	}
	st, _ := s["state_ms"].(map[string]any)
	if established, _ := st["ESTABLISHED"].(float64); !(established > 0) {
		fail("state_ms %v, want time in ESTABLISHED", s["state_ms"])
	}
	// Bytes: what the peers sent (the message each way for the echo, the
	// greeting from the server), by tcpdump's sequence space.
	sentOut, sentIn := sentBytes(td, run.client), sentBytes(td, run.server)
	switch name {
	case "echo":
		if sentOut != len(echoMessage) || sentIn != len(echoMessage) {
			t.Fatalf("%s: tcpdump saw %d bytes out and %d in, want %d each", name, sentOut, sentIn, len(echoMessage))
		}
	case "greeting":
		if sentOut != 0 || sentIn != len(peerGreeting) {
			t.Fatalf("%s: tcpdump saw %d bytes out and %d in, want none out and %d in", name, sentOut, sentIn, len(peerGreeting))
		}
	}
	if sentOut > 0 && num("bytes_out") != float64(sentOut) {
		fail("bytes_out %v, want %d", s["bytes_out"], sentOut)
	}
	if got := num("bytes_in"); got != float64(sentIn) {
		fail("bytes_in %v, want %d", got, sentIn)
	}
	// Segments: every packet each way at the capture point, tcpdump's
	// capture point.
	if got, n := num("segs_out"), len(flagsOf(td, run.client)); got != float64(n) {
		fail("segs_out %v, tcpdump saw %d packets from the client", got, n)
	}
	if got, n := num("segs_in"), len(flagsOf(td, run.server)); got != float64(n) {
		fail("segs_in %v, tcpdump saw %d packets from the server", got, n)
	}
	if fa, _ := s["fin_acked"].(map[string]any); fa["local"] != true || fa["remote"] != true {
		fail("fin_acked %v, want both FINs acked", s["fin_acked"])
	}
}

// checkAnalysisOff checks the output of `--analysis=off`: no conn record,
// packets without anything the analysis adds and equal to tcpdump's, and
// socket events as with the analysis on.
func checkAnalysisOff(t *testing.T, tp *topology, runs []*connRun, td []*tdPacket, recs []*harness.Record) {
	t.Helper()
	if sums := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "conn" }); len(sums) > 0 {
		t.Errorf("--analysis=off printed %d conn records:\n%s", len(sums), harness.Describe(sums))
	}
	pkts := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "packet" })
	var bad []*harness.Record
	for _, r := range pkts {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.Raw), &fields); err != nil {
			t.Fatal(err)
		}
		for _, f := range analysisFields {
			if _, ok := fields[f]; ok {
				bad = append(bad, r)
				break
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("--analysis=off: %d of %d packet records carry %s:\n%s", len(bad), len(pkts),
			strings.Join(analysisFields, "/"), harness.Describe(bad))
	}
	checkPackets(t, tp, td, recs)
	checkConnIDs(t, tp, runs, recs)
	for _, run := range runs {
		if _, ok := expectations[run.sc.name]; ok {
			t.Run(run.sc.name, func(t *testing.T) { checkScenario(t, tp, run, td, recs) })
		}
	}
}
