package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestTimeWaitLifecycle checks TIME_WAIT against `ss -tan state
// time-wait`. The client closes first, so its end of the connection goes
// to TIME_WAIT: ss lists it, and tcpscope reports FIN_WAIT2 -> TIME_WAIT
// for the client's TIME_WAIT socket. Then `ss -K` kills that socket early
// (Linux would hold it 60 s): ss lists it no more, tcpscope reports
// TIME_WAIT -> CLOSE "killed" with a duration between the two ss
// snapshots, and the connection's summary carries the same TIME_WAIT time
// and end.
func TestTimeWaitLifecycle(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "timewait")
	tp := loTopology(ns, false)
	tracer := startTracer(ctx, t, ns, "-i", "lo")
	sc := &scenario{name: "timewait", serverPort: 7601, clientPort: 41601, serve: "serve-echo",
		connect: []string{"connect-echo", echoMessage}}
	run := runScenario(ctx, t, tp, sc)

	listed := func() bool { return timeWaitListed(ctx, t, ns, run.client, run.server) }
	if !listed() {
		t.Fatalf("ss lists no TIME_WAIT socket for %s", run.client)
	}
	seenAt := time.Now()
	time.Sleep(300 * time.Millisecond)
	killFrom := time.Now()
	harness.MustRun(ctx, t, stopTimeout, ns.Exec("ss", "-K", "-tan", "state", "time-wait", "sport", "=", ":41601")...)
	killedBy := time.Now()
	if listed() {
		t.Fatalf("ss still lists the TIME_WAIT socket of %s after ss -K", run.client)
	}
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)

	tw := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type == "state" && r.TimeWait && r.LocalAddr == run.client && r.RemoteAddr == run.server
	})
	if len(tw) != 2 || tw[0].Old != "FIN_WAIT2" || tw[0].New != "TIME_WAIT" ||
		tw[1].Old != "TIME_WAIT" || tw[1].New != "CLOSE" || tw[1].TimeWaitEnd != "killed" {
		t.Fatalf("want FIN_WAIT2 -> TIME_WAIT then TIME_WAIT -> CLOSE (killed) for %s:\n%s", run.client, harness.Describe(tw))
	}
	// TIME_WAIT began before ss saw it, and ended between the kill's
	// start and end.
	if !tw[0].Time.Before(seenAt) || tw[1].Time.Before(killFrom.Add(-time.Millisecond)) || tw[1].Time.After(killedBy.Add(time.Millisecond)) {
		t.Errorf("TIME_WAIT from %s to %s; ss saw it at %s, killed between %s and %s",
			tw[0].Time.Format(time.StampMicro), tw[1].Time.Format(time.StampMicro), seenAt.Format(time.StampMicro),
			killFrom.Format(time.StampMicro), killedBy.Format(time.StampMicro))
	}
	var end map[string]any
	if err := json.Unmarshal([]byte(tw[1].Raw), &end); err != nil {
		t.Fatal(err)
	}
	ms, _ := end["time_wait_ms"].(float64)
	if want := float64(tw[1].Time.Sub(tw[0].Time).Microseconds()) / 1000; ms < 300 || ms > want+1 || ms < want-1 {
		t.Errorf("time_wait_ms %.3f, want %.3f (at least the 300 ms ss saw it)", ms, want)
	}

	var sum map[string]any
	for _, r := range recs {
		if r.Type == "conn" && r.LocalAddr == run.client {
			if err := json.Unmarshal([]byte(r.Raw), &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sum == nil {
		t.Fatalf("no conn record for %s", run.client)
	}
	if sum["time_wait_end"] != "killed" || sum["time_wait_ms"] != ms || sum["complete"] != true || sum["closed_by"] != "local" {
		t.Errorf("summary: time_wait_end %v time_wait_ms %v (want %v) complete %v closed_by %v",
			sum["time_wait_end"], sum["time_wait_ms"], ms, sum["complete"], sum["closed_by"])
	}
	// ss -K leaves no sign on the wire: the killer is not guessed.
	if kill, ok := sum["time_wait_kill"]; ok {
		t.Errorf("summary: time_wait_kill %v after ss -K, want it absent", kill)
	}
}

// TestTimeWaitEndedBySYN: the server closes first, so its end goes to
// TIME_WAIT (ss lists it); the client connects again from the same port,
// and the new SYN ends the server's TIME_WAIT early: the kernel reuses the
// 4-tuple. tcpscope reports TIME_WAIT -> CLOSE "killed" for the first
// connection while the second connects, and the two connections of the
// same 4-tuple get different conn ids, each with its own summary.
func TestTimeWaitEndedBySYN(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "tw-syn")
	server := netip.MustParseAddrPort("127.0.0.1:7602")
	client := netip.MustParseAddrPort("127.0.0.1:41602")
	tracer := startTracer(ctx, t, ns, "-i", "lo")
	srv := harness.StartT(t, "server", harness.Command(ns.Exec(bins.Server, "serve-first-close", server.String(), "2")...))
	if _, err := srv.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
		t.Fatal(err)
	}
	connect := func() {
		harness.StartT(t, "client", harness.Command(ns.Exec(bins.Client, "connect-read", server.String(), client.String())...)).MustSucceed(ctx, t, runTimeout)
	}
	listed := func() bool { return timeWaitListed(ctx, t, ns, server, client) }
	connect()
	for deadline := time.Now().Add(2 * time.Second); !listed(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ss lists no TIME_WAIT socket for %s -> %s", server, client)
		}
	}
	from := time.Now()
	connect()
	to := time.Now()
	srv.MustSucceed(ctx, t, runTimeout)
	if !listed() {
		t.Fatalf("ss lists no TIME_WAIT socket after the second connection")
	}
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)

	tw := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type == "state" && r.TimeWait && r.LocalAddr == server && r.RemoteAddr == client
	})
	// The kill is printed 50 ms late (a cancel followed by an arm would
	// be a re-arm), after the next connection's records: time order.
	slices.SortStableFunc(tw, func(a, b *harness.Record) int { return a.Time.Compare(b.Time) })
	if len(tw) != 3 || tw[0].New != "TIME_WAIT" || tw[1].Old != "TIME_WAIT" || tw[1].New != "CLOSE" ||
		tw[1].TimeWaitEnd != "killed" || tw[2].New != "TIME_WAIT" {
		t.Fatalf("want TIME_WAIT, its end (killed), TIME_WAIT again for %s:\n%s\nall:\n%s", server, harness.Describe(tw),
			harness.Describe(harness.Select(recs, func(r *harness.Record) bool { return r.Type != "packet" })))
	}
	if tw[1].Time.Before(from) || tw[1].Time.After(to) {
		t.Errorf("TIME_WAIT killed at %s, not while the second connection connected (%s to %s)",
			tw[1].Time.Format(time.StampMicro), from.Format(time.StampMicro), to.Format(time.StampMicro))
	}
	first, second := tw[0].ConnID(), tw[2].ConnID()
	if tw[1].ConnID() != first || second == first {
		t.Errorf("conn ids: TIME_WAIT %d, its end %d, the next connection's TIME_WAIT %d", first, tw[1].ConnID(), second)
	}
	sums := map[uint64]map[string]any{}
	for _, r := range recs {
		if r.Type == "conn" && r.LocalAddr == client {
			var s map[string]any
			if err := json.Unmarshal([]byte(r.Raw), &s); err != nil {
				t.Fatal(err)
			}
			sums[r.ConnID()] = s
		}
	}
	if len(sums) != 2 || sums[first] == nil || sums[second] == nil {
		t.Fatalf("want one summary for each connection (%d, %d), got %v", first, second, sums)
	}
	// Summaries are the client's view (both ends are local): the
	// server closed first.
	for id, want := range map[uint64]bool{first: true, second: false} {
		s := sums[id]
		if s["closed_by"] != "remote" || s["outcome"] != "established" || s["complete"] != want {
			t.Errorf("conn %d: closed_by %v outcome %v complete %v (want remote, established, %v)",
				id, s["closed_by"], s["outcome"], s["complete"], want)
		}
	}
	// The first connection's TIME_WAIT (at the server) was killed by the
	// client's new SYN on the same 4-tuple.
	if tw[1].TimeWaitKill != "syn" {
		t.Errorf("TIME_WAIT end record: time_wait_kill %q, want syn", tw[1].TimeWaitKill)
	}
	if s := sums[first]; s["time_wait_end"] != "killed" || s["time_wait_kill"] != "syn" {
		t.Errorf("conn %d: time_wait_end %v time_wait_kill %v, want killed by syn", first, s["time_wait_end"], s["time_wait_kill"])
	}
}

// TestTimeWaitEndedByReuse: the client closes first (its end goes to
// TIME_WAIT), and its namespace has a single ephemeral port and
// net.ipv4.tcp_tw_reuse=1: the next connect() must take that 4-tuple over
// from the TIME_WAIT socket, which the kernel kills inside connect().
// tcpscope reports the kill for the first connection and says what killed
// it (time_wait_kill "tw_reuse").
func TestTimeWaitEndedByReuse(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "tw-reuse")
	const port = 41603
	harness.MustRun(ctx, t, stopTimeout, ns.Exec("sysctl", "-q", "-w", fmt.Sprintf("net.ipv4.ip_local_port_range=%d %d", port, port))...)
	harness.MustRun(ctx, t, stopTimeout, ns.Exec("sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1")...)
	server := netip.MustParseAddrPort("127.0.0.1:7603")
	client := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", port))
	tracer := startTracer(ctx, t, ns, "-i", "lo")
	exchange := func() {
		srv := harness.StartT(t, "server", harness.Command(ns.Exec(bins.Server, "serve-echo", server.String())...))
		if _, err := srv.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
			t.Fatal(err)
		}
		cli := harness.StartT(t, "client", harness.Command(ns.Exec(bins.Client, "connect-echo", server.String(), "-", echoMessage)...))
		cli.MustSucceed(ctx, t, runTimeout)
		srv.MustSucceed(ctx, t, runTimeout)
		if line, _ := cli.WaitLine(ctx, false, "connected ", startTimeout); !strings.Contains(line, client.String()) {
			t.Fatalf("client connected as %q, want %s (the only ephemeral port)", line, client)
		}
	}
	listed := func() bool { return timeWaitListed(ctx, t, ns, client, server) }
	exchange()
	if !listed() {
		t.Fatalf("ss lists no TIME_WAIT socket for %s -> %s", client, server)
	}
	// tcp_tw_reuse takes a TIME_WAIT socket over only once the last
	// timestamp it got is more than a second old.
	time.Sleep(2100 * time.Millisecond)
	from := time.Now()
	exchange()
	to := time.Now()
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)

	tw := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type == "state" && r.TimeWait && r.LocalAddr == client && r.RemoteAddr == server
	})
	slices.SortStableFunc(tw, func(a, b *harness.Record) int { return a.Time.Compare(b.Time) })
	if len(tw) != 3 || tw[0].New != "TIME_WAIT" || tw[1].Old != "TIME_WAIT" || tw[1].TimeWaitEnd != "killed" || tw[2].New != "TIME_WAIT" {
		t.Fatalf("want TIME_WAIT, its end (killed), TIME_WAIT again for %s:\n%s", client, harness.Describe(tw))
	}
	if tw[1].Time.Before(from) || tw[1].Time.After(to) {
		t.Errorf("TIME_WAIT killed at %s, not while the second connection connected (%s to %s)",
			tw[1].Time.Format(time.StampMicro), from.Format(time.StampMicro), to.Format(time.StampMicro))
	}
	first := tw[0].ConnID()
	sum := summaryOf(t, recs, first)
	if sum == nil {
		t.Fatalf("no summary of the first connection (%d)", first)
	}
	// The kill came 2 s after the close: the TIME_WAIT end record says
	// what killed it; the summary, written a quiet second after the
	// close, says only that TIME_WAIT began at the local end.
	if tw[1].TimeWaitKill != "tw_reuse" {
		t.Errorf("TIME_WAIT end record: time_wait_kill %q, want tw_reuse; records of %s:\n%s", tw[1].TimeWaitKill, client,
			harness.Describe(harness.Select(recs, func(r *harness.Record) bool {
				return r.LocalAddr == client || r.Src == client.String() || r.Dst == client.String()
			})))
	}
	if sum["time_wait_side"] != "local" || sum["time_wait_end"] != nil || sum["time_wait_kill"] != nil ||
		sum["closed_by"] != "local" || sum["complete"] != true {
		t.Errorf("first connection: time_wait_side %v time_wait_end %v time_wait_kill %v closed_by %v complete %v, want local, absent, absent, local, true",
			sum["time_wait_side"], sum["time_wait_end"], sum["time_wait_kill"], sum["closed_by"], sum["complete"])
	}
}

// TestTimeWaitEndedByRST: the client closes first (its end goes to
// TIME_WAIT), then a bare RST with the sequence number the TIME_WAIT socket
// expects (the server's FIN + 1, read off tcpdump -S) arrives from the
// server's address: with tcp_rfc1337 off, the kernel kills the TIME_WAIT
// socket (ss lists it no more). tcpscope reports the kill and says what
// killed it (time_wait_kill "rst").
func TestTimeWaitEndedByRST(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "tw-rst")
	harness.MustRun(ctx, t, stopTimeout, ns.Exec("sysctl", "-q", "-w", "net.ipv4.tcp_rfc1337=0")...)
	tracer := startTracer(ctx, t, ns, "-i", "lo")
	td := startTcpdump(ctx, t, ns, "lo")
	sc := &scenario{name: "tw-rst", serverPort: 7604, clientPort: 41604, serve: "serve-echo",
		connect: []string{"connect-echo", echoMessage}}
	run := runScenario(ctx, t, loTopology(ns, false), sc)
	listed := func() bool { return timeWaitListed(ctx, t, ns, run.client, run.server) }
	if !listed() {
		t.Fatalf("ss lists no TIME_WAIT socket for %s -> %s", run.client, run.server)
	}
	time.Sleep(settle) // tcpdump prints the FIN
	var fin *tdPacket
	for _, p := range parseTcpdumpLines(t, td) {
		if p.src == run.server && strings.Contains(p.flags, "F") && p.seq != nil {
			fin = p
		}
	}
	if fin == nil {
		t.Fatalf("tcpdump saw no FIN from %s", run.server)
	}
	rst := harness.StartT(t, "rst", harness.Command(ns.Exec(bins.Client, "send-rst", run.client.String(), run.server.String(),
		fmt.Sprint(*fin.seq+fin.length+1))...))
	from := time.Now()
	rst.MustSucceed(ctx, t, runTimeout)
	for deadline := time.Now().Add(2 * time.Second); listed(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the RST did not end the TIME_WAIT socket of %s", run.client)
		}
	}
	to := time.Now()
	time.Sleep(settle)
	stopTcpdump(ctx, t, td)
	recs := stopTracer(ctx, t, tracer)

	tw := harness.Select(recs, func(r *harness.Record) bool {
		return r.Type == "state" && r.TimeWait && r.LocalAddr == run.client && r.RemoteAddr == run.server
	})
	if len(tw) != 2 || tw[1].TimeWaitEnd != "killed" || tw[1].Time.Before(from.Add(-time.Millisecond)) || tw[1].Time.After(to) {
		t.Fatalf("want TIME_WAIT then its end (killed) between %s and %s for %s:\n%s", from.Format(time.StampMicro),
			to.Format(time.StampMicro), run.client, harness.Describe(tw))
	}
	sum := summaryOf(t, recs, tw[0].ConnID())
	if tw[1].TimeWaitKill != "rst" {
		t.Errorf("TIME_WAIT end record: time_wait_kill %q, want rst", tw[1].TimeWaitKill)
	}
	// The summary comes a quiet second after the close: it repeats the
	// kill only when the RST came within that second.
	if sum == nil || sum["time_wait_side"] != "local" ||
		(sum["time_wait_end"] != nil || sum["time_wait_kill"] != nil) && (sum["time_wait_end"] != "killed" || sum["time_wait_kill"] != "rst") {
		t.Errorf("summary %v: want time_wait_side local and either time_wait_end killed, time_wait_kill rst or neither", sum)
	}
}

// timeWaitListed reports whether `ss -tan state time-wait` in ns lists the
// TIME_WAIT socket local -> remote.
func timeWaitListed(ctx context.Context, t *testing.T, ns *harness.Namespace, local, remote netip.AddrPort) bool {
	t.Helper()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "ss", "-Htan", "state", "time-wait",
		"src", local.String(), "dst", remote.String()).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	return strings.TrimSpace(string(out)) != ""
}

// summaryOf returns the conn record of connection id, parsed; nil when
// there is none.
func summaryOf(t *testing.T, recs []*harness.Record, id uint64) map[string]any {
	t.Helper()
	var sum map[string]any
	for _, r := range recs {
		if r.Type == "conn" && r.ConnID() == id {
			if err := json.Unmarshal([]byte(r.Raw), &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	return sum
}
