package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// What a killed tcpscope leaves in clsact mode (cls_bpf filters, and the
// clsact qdisc it created), and who removes it: the next run on that
// interface in either TC mode, and `tcpscope cleanup`, never touching the
// filters of a tcpscope that still runs. And a traced interface deleted
// while tracing is reported once.

// killTracer kills p with SIGKILL and waits for it: nothing of tcpscope
// runs at exit.
func killTracer(ctx context.Context, t *testing.T, p *harness.Proc) {
	t.Helper()
	err := p.Stop(ctx, syscall.SIGKILL, stopTimeout)
	if err == nil || p.ExitCode() != -1 {
		t.Fatalf("tcpscope after SIGKILL: %v, exit code %d", err, p.ExitCode())
	}
}

// countLines counts the lines of s that contain substr.
func countLines(s, substr string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// TestClsactLeftoversRemovedByTCXRun: SIGKILL in clsact mode leaves both
// filters; a TCX run on that interface removes them and says so, but not
// those of a clsact tcpscope that still runs there; the qdisc the killed
// run created goes when the last tcpscope on it exits.
func TestClsactLeftoversRemovedByTCXRun(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := harness.NewVethPair(t, netnsPrefix, "stale-tcx", 150)

	killed := startTracer(ctx, t, v.A, "-i", harness.VethA, "--tc-mode", "clsact")
	live := startTracer(ctx, t, v.A, "-i", harness.VethA, "--tc-mode", "clsact")
	killTracer(ctx, t, killed)
	st := v.A.MustClsact(t, harness.VethA)
	if st.FiltersOf(killed.Pid()) != 2 || st.FiltersOf(live.Pid()) != 2 {
		t.Fatalf("after SIGKILL: filters %v, want 2 of the killed pid %d and 2 of the live pid %d", st.Filters, killed.Pid(), live.Pid())
	}

	tcx := startTracer(ctx, t, v.A, "-i", harness.VethA, "--tc-mode", "tcx")
	logged := fmt.Sprintf("removed stale tcpscope filter left by pid %d", killed.Pid())
	if n := countLines(tcx.Stderr.String(), logged); n != 2 {
		t.Errorf("the TCX run logged %q %d times, want 2 (ingress, egress)\n%s", logged, n, tcx.Output())
	}
	if n := countLines(tcx.Stderr.String(), fmt.Sprintf("left by pid %d", live.Pid())); n != 0 {
		t.Errorf("the TCX run removed filters of the live tcpscope\n%s", tcx.Output())
	}
	st = v.A.MustClsact(t, harness.VethA)
	if st.FiltersOf(killed.Pid()) != 0 || st.FiltersOf(live.Pid()) != 2 || len(st.Filters) != 2 || !st.Qdisc {
		t.Errorf("after the TCX run started: filters %v, clsact %v; want only the live pid %d's 2, and the qdisc", st.Filters, st.Qdisc, live.Pid())
	}
	stopTracer(ctx, t, tcx)
	stopTracer(ctx, t, live)
	if st := v.A.MustClsact(t, harness.VethA); len(st.Filters) != 0 || st.Qdisc {
		t.Errorf("after every tcpscope exited: filters %v, clsact qdisc %v; want none (a tcpscope created it)", st.Filters, st.Qdisc)
	}
}

// TestClsactQdiscRemovedAfterKill: the next clsact run removes the killed
// run's filters, says so, and at its clean exit removes the qdisc the
// killed run created.
func TestClsactQdiscRemovedAfterKill(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := harness.NewVethPair(t, netnsPrefix, "stale-qdisc", 151)
	if st := v.A.MustClsact(t, harness.VethA); st.Qdisc {
		t.Fatalf("fresh veth already has a clsact qdisc")
	}

	killed := startTracer(ctx, t, v.A, "-i", harness.VethA, "--tc-mode", "clsact")
	killTracer(ctx, t, killed)
	if st := v.A.MustClsact(t, harness.VethA); st.FiltersOf(killed.Pid()) != 2 || !st.Qdisc {
		t.Fatalf("after SIGKILL: filters %v, clsact %v; want 2 of pid %d and the qdisc", st.Filters, st.Qdisc, killed.Pid())
	}
	next := startTracer(ctx, t, v.A, "-i", harness.VethA, "--tc-mode", "clsact")
	logged := fmt.Sprintf("removed stale tcpscope filter left by pid %d", killed.Pid())
	if n := countLines(next.Stderr.String(), logged); n != 2 {
		t.Errorf("the next clsact run logged %q %d times, want 2\n%s", logged, n, next.Output())
	}
	if st := v.A.MustClsact(t, harness.VethA); st.FiltersOf(killed.Pid()) != 0 || st.FiltersOf(next.Pid()) != 2 {
		t.Errorf("while the next run traces: filters %v, want only its own 2", st.Filters)
	}
	stopTracer(ctx, t, next)
	if st := v.A.MustClsact(t, harness.VethA); len(st.Filters) != 0 || st.Qdisc {
		t.Errorf("after the next run exited: filters %v, clsact qdisc %v; want none", st.Filters, st.Qdisc)
	}
}

// TestCleanupCommand: `tcpscope cleanup --dry-run` lists what a killed
// tcpscope left (one line per item) and removes nothing; `tcpscope
// cleanup` removes it, and leaves a running tcpscope's filters alone; a
// second run finds nothing there.
func TestCleanupCommand(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := harness.NewVethPair(t, netnsPrefix, "cleanup", 152)
	killed := startTracer(ctx, t, v.A, "-i", harness.VethA, "--tc-mode", "clsact")
	live := startTracer(ctx, t, v.B, "-i", harness.VethB, "--tc-mode", "clsact")
	killTracer(ctx, t, killed)

	cleanup := func(args ...string) []string {
		t.Helper()
		p := harness.StartT(t, "tcpscope cleanup", harness.Command(append([]string{bins.Tcpscope, "cleanup"}, args...)...))
		p.MustSucceed(ctx, t, runTimeout)
		var mine []string
		for _, line := range strings.Split(p.Stdout.String(), "\n") {
			if strings.Contains(line, fmt.Sprintf(" netns=%d ", v.B.Inode)) {
				t.Errorf("cleanup %v lists the live tcpscope's objects: %q", args, line)
			}
			if strings.Contains(line, fmt.Sprintf(" netns=%d ", v.A.Inode)) {
				mine = append(mine, line)
			}
		}
		return mine
	}
	pid := fmt.Sprintf(" pid=%d", killed.Pid())
	want := []string{
		fmt.Sprintf("filter netns=%d interface=%s dir=ingress name=tcpscope-%d-", v.A.Inode, harness.VethA, killed.Pid()),
		fmt.Sprintf("filter netns=%d interface=%s dir=egress name=tcpscope-%d-", v.A.Inode, harness.VethA, killed.Pid()),
		fmt.Sprintf("qdisc netns=%d interface=%s kind=clsact%s", v.A.Inode, harness.VethA, pid),
	}
	check := func(what string, lines []string) {
		t.Helper()
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines for the test namespace, want %d:\n%s", what, len(lines), len(want), strings.Join(lines, "\n"))
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], w) || !strings.HasSuffix(lines[i], pid) {
				t.Errorf("%s line %d: %q, want %q...%q", what, i, lines[i], w, pid)
			}
		}
	}

	check("cleanup --dry-run", cleanup("--dry-run"))
	if st := v.A.MustClsact(t, harness.VethA); st.FiltersOf(killed.Pid()) != 2 || !st.Qdisc {
		t.Fatalf("after cleanup --dry-run: filters %v, clsact %v; want them untouched", st.Filters, st.Qdisc)
	}
	check("cleanup", cleanup())
	if st := v.A.MustClsact(t, harness.VethA); len(st.Filters) != 0 || st.Qdisc {
		t.Errorf("after cleanup: filters %v, clsact qdisc %v; want none", st.Filters, st.Qdisc)
	}
	if st := v.B.MustClsact(t, harness.VethB); st.FiltersOf(live.Pid()) != 2 {
		t.Errorf("after cleanup: the live tcpscope's filters %v, want its 2", st.Filters)
	}
	if again := cleanup(); len(again) != 0 {
		t.Errorf("second cleanup found %v", again)
	}
	stopTracer(ctx, t, live)
	if st := v.B.MustClsact(t, harness.VethB); len(st.Filters) != 0 || st.Qdisc {
		t.Errorf("after the live tcpscope exited: filters %v, clsact qdisc %v; want none", st.Filters, st.Qdisc)
	}
}

// TestDeletedInterfaceWarned: an interface named with -i and deleted
// while tracing is a warning, once, naming it; tracing goes on and ends
// cleanly.
func TestDeletedInterfaceWarned(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := harness.NewVethPair(t, netnsPrefix, "ifdel", 153)
	p := startTracer(ctx, t, v.A, "-i", harness.VethA, "-i", "lo")
	harness.MustRun(ctx, t, stopTimeout, "ip", "-n", v.A.Name, "link", "del", harness.VethA)
	line, err := p.WaitLine(ctx, true, "traced interface deleted", startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "interface="+harness.VethA) {
		t.Errorf("want a warning naming %s: %q", harness.VethA, line)
	}
	stopTracer(ctx, t, p)
	if n := countLines(p.Stderr.String(), "traced interface deleted"); n != 1 {
		t.Errorf("%d deletion warnings, want 1\n%s", n, p.Output())
	}
	if n := countLines(p.Stderr.String(), "interface=lo"); n != 0 {
		t.Errorf("lo reported, but it was not deleted\n%s", p.Output())
	}
}

// TestInterfacesFollowed: with the default interface set, an interface
// that appears while tracing is traced (every packet tcpdump sees on it,
// named after it), and one deleted is let go, said once in the log.
func TestInterfacesFollowed(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := harness.NewVethPair(t, netnsPrefix, "follow", 154)
	// --netns: socket events of other namespaces (other workloads of the
	// host) cannot fill the ring; interfaces stay the default set.
	p := startTracer(ctx, t, v.A, "--netns", v.A.Name)

	const vethC, vethD = "veth-c", "veth-d"
	subnet := harness.TestSubnet(155)
	c := harness.LinkEnd{NS: v.A, Ifname: vethC, IP4: subnet.A4, IP6: subnet.A6, MAC: subnet.MACA}
	d := harness.LinkEnd{NS: v.B, Ifname: vethD, IP4: subnet.B4, IP6: subnet.B6, MAC: subnet.MACB}
	harness.MustRun(ctx, t, stopTimeout, "ip", "link", "add", vethC, "address", c.MAC.String(), "netns", v.A.Name, "type", "veth",
		"peer", "name", vethD, "address", d.MAC.String(), "netns", v.B.Name)
	if err := c.Configure(d); err != nil {
		t.Fatal(err)
	}
	if err := d.Configure(c); err != nil {
		t.Fatal(err)
	}
	line, err := p.WaitLine(ctx, true, "tracing an interface that appeared", startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "interface="+vethC) {
		t.Fatalf("traced %q, want %s", line, vethC)
	}

	tp := &topology{name: "followed veth", clientNS: v.A, serverNS: v.B, watchNS: v.A, ifname: vethC,
		clientIP: c.IP4, serverIP: d.IP4}
	dump := startTcpdump(ctx, t, v.A, vethC)
	runScenario(ctx, t, tp, &scenarios[0])
	time.Sleep(settle)
	td := stopTcpdump(ctx, t, dump)

	harness.MustRun(ctx, t, stopTimeout, "ip", "-n", v.A.Name, "link", "del", vethC)
	line, err = p.WaitLine(ctx, true, "traced interface deleted", startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "interface="+vethC) {
		t.Errorf("deleted %q, want %s", line, vethC)
	}
	recs := stopTracer(ctx, t, p)
	checkPackets(t, tp, td, recs)
	if n := countLines(p.Stderr.String(), "traced interface deleted"); n != 1 {
		t.Errorf("%d deletion lines, want 1\n%s", n, p.Output())
	}
}

// TestCleanupAfterKillInPidNamespace: a clsact tcpscope killed inside its
// own pid namespace (a container) names its filters after a pid of that
// namespace. Once the namespace is gone, `tcpscope cleanup` from the host
// removes them, also where the host hides some processes' namespaces from
// root (a sandbox's pid 1).
func TestCleanupAfterKillInPidNamespace(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	ns := harness.NewNamespace(t, netnsPrefix, "pidns")
	p := harness.StartT(t, "tcpscope in a pid namespace", harness.Command(ns.Exec("unshare", "-p", "-f", "--mount-proc",
		bins.Tcpscope, "trace", "-o", "json", "-i", "lo", "--tc-mode", "clsact", "--packets", "all")...))
	if _, err := p.WaitLine(ctx, true, `msg="tracing started"`, startTimeout); err != nil {
		t.Fatal(err)
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid(), p.Pid()))
	if err != nil || len(strings.Fields(string(children))) != 1 {
		t.Fatalf("unshare's child: %q, %v", children, err)
	}
	child, _ := strconv.Atoi(strings.Fields(string(children))[0])
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err == nil {
		t.Fatal("unshare exited 0 although its tcpscope was killed")
	}
	if st := ns.MustClsact(t, "lo"); len(st.Filters) != 2 || !st.Qdisc {
		t.Fatalf("after SIGKILL: filters %v, clsact %v; want the killed run's 2 and its qdisc", st.Filters, st.Qdisc)
	}
	c := harness.StartT(t, "tcpscope cleanup", harness.Command(bins.Tcpscope, "cleanup"))
	c.MustSucceed(ctx, t, runTimeout)
	if n := countLines(c.Stdout.String(), fmt.Sprintf(" netns=%d ", ns.Inode)); n != 3 {
		t.Errorf("cleanup listed %d items of the test namespace, want 2 filters and the qdisc:\n%s\n%s", n, c.Stdout.String(), c.Stderr.String())
	}
	if st := ns.MustClsact(t, "lo"); len(st.Filters) != 0 || st.Qdisc {
		t.Errorf("after cleanup: filters %v, clsact qdisc %v; want none\n%s", st.Filters, st.Qdisc, c.Stderr.String())
	}
}
