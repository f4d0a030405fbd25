package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNetnsNames: every record of a namespace that `ip netns add` named
// carries that name (netns_name in JSON, "netns NAME" in text), for the
// traced namespace (packets, its sockets) and for the peer namespace (its
// sockets, traced too by default), and every name agrees with the inode.
func TestNetnsNames(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := newVethPair(ctx, t, "nsname", 61)
	tp := vethTopology(v, false)
	tracer := startTracer(ctx, t, v.a, "-i", vethA)
	text := startTextTracer(ctx, t, v.a, "-i", vethA)
	run := runScenario(ctx, t, tp, &scenarios[0])
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)
	lines := stopTextTracer(ctx, t, text)

	names := map[uint64]string{v.a.inode: v.a.name, v.b.inode: v.b.name}
	seen := map[string]int{}
	for _, r := range selectRecords(recs, run.isConn) {
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
	for _, want := range []string{"packet " + v.a.name, "state " + v.a.name, "state " + v.b.name} {
		if seen[want] == 0 {
			t.Errorf("no %s record with its namespace name; seen %v", want, seen)
		}
	}
	for _, typ := range []string{" state ", " IP "} {
		found := false
		for _, l := range lines {
			if strings.Contains(l, typ) && strings.Contains(l, " netns "+v.a.name+" ") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no text line with %q and \"netns %s\":\n%s", typ, v.a.name, strings.Join(firstStrings(lines, 20), "\n"))
		}
	}
}
