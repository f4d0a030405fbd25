package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestNetnsNames: every record of a namespace that `ip netns add` named
// carries that name (netns_name in JSON, "netns NAME" in text), for the
// traced namespace (packets, its sockets) and for the peer namespace (its
// sockets, traced too by default), and every name agrees with the inode.
func TestNetnsNames(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "nsname", 61)
	tp := vethTopology(v, false)
	tracer := startTracer(ctx, t, v.A, "-i", harness.VethA)
	text := startTextTracer(ctx, t, v.A, "-i", harness.VethA)
	run := runScenario(ctx, t, tp, &scenarios[0])
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)
	lines := stopTextTracer(ctx, t, text)

	names := map[uint64]string{v.A.Inode: v.A.Name, v.B.Inode: v.B.Name}
	seen := map[string]int{}
	for _, r := range harness.Select(recs, run.isConn) {
		want, ours := names[r.Netns]
		if !ours {
			t.Errorf("record of the connection in an unexpected namespace %d: %s", r.Netns, r)
			continue
		}
		if r.NetnsName != want {
			t.Errorf("netns_name %q, want %q: %s", r.NetnsName, want, r)
		}
		seen[r.Type+" "+want]++
	}
	for _, want := range []string{"packet " + v.A.Name, "state " + v.A.Name, "state " + v.B.Name} {
		if seen[want] == 0 {
			t.Errorf("no %s record with its namespace name; seen %v", want, seen)
		}
	}
	for _, typ := range []string{" state ", " IP "} {
		found := false
		for _, l := range lines {
			if strings.Contains(l, typ) && strings.Contains(l, " netns "+v.A.Name+" ") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no text line with %q and \"netns %s\":\n%s", typ, v.A.Name, strings.Join(firstStrings(lines, 20), "\n"))
		}
	}
}
