package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestPreexistingOwnerCgroup: the owner of a socket listed at start-up
// claims no thread (tid absent: /proc does not say which) and has the real
// cgroup id of its process, the inode of its cgroup v2 directory; the
// socket's later events carry that cgroup id too (the seeded kernel entry,
// then the kernel's own once the process acts on the socket), never 0,
// and a tid only when the kernel recorded one. A connection made while
// tracing has no srtt_us or cwnd while SYN_SENT (the kernel has no RTT
// sample yet) and both once ESTABLISHED.
func TestPreexistingOwnerCgroup(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	mnt := cgroup2MountPoint(t)
	cg := filepath.Join(mnt, fmt.Sprintf("tcpscope-e2e-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("create cgroup %s: %v", cg, err)
	}
	t.Cleanup(func() {
		// The processes in it are dead by now (startProc's cleanups run
		// first, they were registered later); retry briefly while the
		// kernel releases them.
		for i := 0; i < 50; i++ {
			if err := os.Remove(cg); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s left behind", cg)
	})
	wantSrvCg := inodeOf(t, cg)

	ns := harness.NewNamespace(t, netnsPrefix, "ownercg")
	server := netip.MustParseAddrPort("127.0.0.1:7721")
	client := netip.MustParseAddrPort("127.0.0.1:41721")
	srv := harness.StartT(t, "server", harness.Command(ns.Exec(bins.Server, "serve-echo", server.String())...))
	if _, err := srv.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(fmt.Sprint(srv.Pid())), 0o644); err != nil {
		t.Fatalf("move the server into %s: %v", cg, err)
	}
	cli := harness.StartT(t, "client", harness.Command(ns.Exec(bins.Client, "connect-keepalive", server.String(), client.String(), "2000")...))
	if _, err := cli.WaitLine(ctx, false, "connected ", startTimeout); err != nil {
		t.Fatal(err)
	}
	wantCliCg := cgroupIDOf(t, mnt, cli.Pid())
	if wantCliCg == wantSrvCg {
		t.Fatalf("client and server share cgroup %d: the test cannot tell them apart", wantCliCg)
	}

	// Outside the namespace: `ip netns exec` remounts /sys, cgroups lost.
	tr := startTracer(ctx, t, nil, "--netns", ns.Name, "--events", "state")
	cli.MustSucceed(ctx, t, runTimeout)
	srv.MustSucceed(ctx, t, runTimeout)
	// A connection made while tracing, for srtt_us and cwnd.
	server2 := netip.MustParseAddrPort("127.0.0.1:7722")
	client2 := netip.MustParseAddrPort("127.0.0.1:41722")
	srv2 := harness.StartT(t, "server 2", harness.Command(ns.Exec(bins.Server, "serve-echo", server2.String())...))
	if _, err := srv2.WaitLine(ctx, false, "listening ", startTimeout); err != nil {
		t.Fatal(err)
	}
	cli2 := harness.StartT(t, "client 2", harness.Command(ns.Exec(bins.Client, "connect-echo", server2.String(), client2.String(), "hello")...))
	cli2.MustSucceed(ctx, t, runTimeout)
	srv2.MustSucceed(ctx, t, runTimeout)
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tr)

	fields := func(r *harness.Record) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Raw), &m); err != nil {
			t.Fatalf("%v: %s", err, r.Raw)
		}
		return m
	}
	var socketRecs, srvEvents, closeWait, withTID int
	for _, r := range recs {
		var wantPID int
		var wantCg uint64
		switch {
		case r.LocalAddr == server && r.RemoteAddr == client:
			wantPID, wantCg = srv.Pid(), wantSrvCg
		case r.LocalAddr == client && r.RemoteAddr == server:
			wantPID, wantCg = cli.Pid(), wantCliCg
		default:
			continue
		}
		if r.Type != "socket" && !r.IsSocketEvent() {
			continue
		}
		m := fields(r)
		checkOwner(t, r.Type, r, wantPID, map[int]string{srv.Pid(): "tsrv", cli.Pid(): "tcli"}[wantPID])
		switch {
		case r.CgroupID == nil:
			t.Errorf("no cgroup_id, want %d: %s", wantCg, r.Raw)
		case *r.CgroupID != wantCg:
			t.Errorf("cgroup_id %d, want %d: %s", *r.CgroupID, wantCg, r.Raw)
		}
		if tid, ok := m["tid"]; ok {
			withTID++
			if tid == 0.0 {
				t.Errorf("tid 0: %s", r.Raw)
			}
		}
		if r.Type == "socket" {
			socketRecs++
			if _, ok := m["tid"]; ok {
				t.Errorf("a socket listed at start-up claims a thread: %s", r.Raw)
			}
		}
		if r.Type == "state" && r.LocalAddr == server {
			srvEvents++
			// CLOSE_WAIT runs in softirq, before the server acts on
			// the socket: it carries the seeded owner, without a tid.
			if m["new"] == "CLOSE_WAIT" {
				closeWait++
				if _, ok := m["tid"]; ok {
					t.Errorf("CLOSE_WAIT of a preexisting socket has a tid the tracer could not know: %s", r.Raw)
				}
			}
		}
	}
	if socketRecs != 2 || srvEvents == 0 || closeWait != 1 {
		t.Errorf("%d socket records (want 2), %d state events of the server end, %d CLOSE_WAIT (want 1):\n%s",
			socketRecs, srvEvents, closeWait, harness.Describe(recs))
	}
	// The closes (FIN_WAIT1, LAST_ACK) are recorded by the kernel in
	// process context: those events name their thread.
	if withTID == 0 {
		t.Errorf("no event of the preexisting connection has a tid; the kernel records one at close:\n%s", harness.Describe(recs))
	}

	var synSent, established int
	for _, r := range recs {
		if r.Type != "state" || r.LocalAddr != client2 {
			continue
		}
		m := fields(r)
		_, hasSRTT := m["srtt_us"]
		_, hasCwnd := m["cwnd"]
		switch m["new"] {
		case "SYN_SENT":
			synSent++
			if hasSRTT || hasCwnd {
				t.Errorf("SYN_SENT with srtt_us or cwnd (no RTT sample yet): %s", r.Raw)
			}
		case "ESTABLISHED":
			established++
			if !hasSRTT || !hasCwnd || m["srtt_us"] == 0.0 {
				t.Errorf("ESTABLISHED without srtt_us and cwnd: %s", r.Raw)
			}
		}
	}
	if synSent != 1 || established != 1 {
		t.Errorf("client 2: %d SYN_SENT and %d ESTABLISHED records, want 1 each:\n%s", synSent, established, harness.Describe(recs))
	}
}

// cgroup2MountPoint finds where the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a pure v2
// one.
func cgroup2MountPoint(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i, v := range f {
			if v == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && f[3] == "/" {
				return f[4]
			}
		}
	}
	t.Fatal("no cgroup v2 hierarchy mounted")
	return ""
}

// cgroupIDOf is the cgroup v2 id of process pid.
func cgroupIDOf(t *testing.T, mnt string, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return inodeOf(t, filepath.Join(mnt, path))
		}
	}
	t.Fatalf("process %d has no cgroup v2 entry", pid)
	return 0
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
