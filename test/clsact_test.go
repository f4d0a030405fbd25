package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/tracer"
)

// What a killed tcpscope leaves in clsact mode (cls_bpf filters, and the
// clsact qdisc it created), and who removes it: the next run on that
// interface in either TC mode, and `tcpscope cleanup`, never touching the
// filters of a tcpscope that still runs. And a traced interface deleted
// while tracing is reported once.

// tcState is what TC holds on one interface: tcpscope's cls_bpf filter
// names and whether a clsact qdisc is there.
type tcState struct {
	filters []string
	clsact  bool
}

// tcStateOf reads the TC state of ifname in ns.
func tcStateOf(t *testing.T, ns *netns, ifname string) tcState {
	t.Helper()
	handle, err := tracer.OpenNetns("/run/netns/" + ns.name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns.name, err)
	}
	defer handle.Close()
	var st tcState
	err = handle.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := h.LinkByName(ifname)
		if err != nil {
			return err
		}
		qdiscs, err := h.QdiscList(l)
		if err != nil {
			return err
		}
		for _, q := range qdiscs {
			st.clsact = st.clsact || q.Type() == "clsact"
		}
		if !st.clsact {
			return nil
		}
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			filters, err := h.FilterList(l, parent)
			if err != nil {
				return err
			}
			for _, f := range filters {
				if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "tcpscope-") {
					st.filters = append(st.filters, bf.Name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read TC state of %s in %s: %v", ifname, ns.name, err)
	}
	return st
}

// filtersOf counts the filters of the process pid.
func (s tcState) filtersOf(pid int) int {
	n := 0
	for _, f := range s.filters {
		if strings.HasPrefix(f, fmt.Sprintf("tcpscope-%d-", pid)) {
			n++
		}
	}
	return n
}

// killTracer kills p with SIGKILL and waits for it: nothing of tcpscope
// runs at exit.
func killTracer(ctx context.Context, t *testing.T, p *proc) {
	t.Helper()
	err := p.stop(ctx, syscall.SIGKILL)
	if err == nil || p.exitCode() != -1 {
		t.Fatalf("tcpscope after SIGKILL: %v, exit code %d", err, p.exitCode())
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
	v := newVethPair(ctx, t, "stale-tcx", 150)

	killed := startTracer(ctx, t, v.a, "-i", vethA, "--tc-mode", "clsact")
	live := startTracer(ctx, t, v.a, "-i", vethA, "--tc-mode", "clsact")
	killTracer(ctx, t, killed)
	st := tcStateOf(t, v.a, vethA)
	if st.filtersOf(killed.pid()) != 2 || st.filtersOf(live.pid()) != 2 {
		t.Fatalf("after SIGKILL: filters %v, want 2 of the killed pid %d and 2 of the live pid %d", st.filters, killed.pid(), live.pid())
	}

	tcx := startTracer(ctx, t, v.a, "-i", vethA, "--tc-mode", "tcx")
	logged := fmt.Sprintf("removed stale tcpscope filter left by pid %d", killed.pid())
	if n := countLines(tcx.stderr.String(), logged); n != 2 {
		t.Errorf("the TCX run logged %q %d times, want 2 (ingress, egress)\n%s", logged, n, tcx.output())
	}
	if n := countLines(tcx.stderr.String(), fmt.Sprintf("left by pid %d", live.pid())); n != 0 {
		t.Errorf("the TCX run removed filters of the live tcpscope\n%s", tcx.output())
	}
	st = tcStateOf(t, v.a, vethA)
	if st.filtersOf(killed.pid()) != 0 || st.filtersOf(live.pid()) != 2 || len(st.filters) != 2 || !st.clsact {
		t.Errorf("after the TCX run started: filters %v, clsact %v; want only the live pid %d's 2, and the qdisc", st.filters, st.clsact, live.pid())
	}
	stopTracer(ctx, t, tcx)
	stopTracer(ctx, t, live)
	if st := tcStateOf(t, v.a, vethA); len(st.filters) != 0 || st.clsact {
		t.Errorf("after every tcpscope exited: filters %v, clsact qdisc %v; want none (a tcpscope created it)", st.filters, st.clsact)
	}
}

// TestClsactQdiscRemovedAfterKill: the next clsact run removes the killed
// run's filters, says so, and at its clean exit removes the qdisc the
// killed run created.
func TestClsactQdiscRemovedAfterKill(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := newVethPair(ctx, t, "stale-qdisc", 151)
	if st := tcStateOf(t, v.a, vethA); st.clsact {
		t.Fatalf("fresh veth already has a clsact qdisc")
	}

	killed := startTracer(ctx, t, v.a, "-i", vethA, "--tc-mode", "clsact")
	killTracer(ctx, t, killed)
	if st := tcStateOf(t, v.a, vethA); st.filtersOf(killed.pid()) != 2 || !st.clsact {
		t.Fatalf("after SIGKILL: filters %v, clsact %v; want 2 of pid %d and the qdisc", st.filters, st.clsact, killed.pid())
	}
	next := startTracer(ctx, t, v.a, "-i", vethA, "--tc-mode", "clsact")
	logged := fmt.Sprintf("removed stale tcpscope filter left by pid %d", killed.pid())
	if n := countLines(next.stderr.String(), logged); n != 2 {
		t.Errorf("the next clsact run logged %q %d times, want 2\n%s", logged, n, next.output())
	}
	if st := tcStateOf(t, v.a, vethA); st.filtersOf(killed.pid()) != 0 || st.filtersOf(next.pid()) != 2 {
		t.Errorf("while the next run traces: filters %v, want only its own 2", st.filters)
	}
	stopTracer(ctx, t, next)
	if st := tcStateOf(t, v.a, vethA); len(st.filters) != 0 || st.clsact {
		t.Errorf("after the next run exited: filters %v, clsact qdisc %v; want none", st.filters, st.clsact)
	}
}

// TestCleanupCommand: `tcpscope cleanup --dry-run` lists what a killed
// tcpscope left (one line per item) and removes nothing; `tcpscope
// cleanup` removes it, and leaves a running tcpscope's filters alone; a
// second run finds nothing there.
func TestCleanupCommand(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := newVethPair(ctx, t, "cleanup", 152)
	killed := startTracer(ctx, t, v.a, "-i", vethA, "--tc-mode", "clsact")
	live := startTracer(ctx, t, v.b, "-i", vethB, "--tc-mode", "clsact")
	killTracer(ctx, t, killed)

	cleanup := func(args ...string) []string {
		t.Helper()
		p := startProc(t, "tcpscope cleanup", append([]string{bins.tcpscope, "cleanup"}, args...)...)
		mustSucceed(ctx, t, p)
		var mine []string
		for _, line := range strings.Split(p.stdout.String(), "\n") {
			if strings.Contains(line, fmt.Sprintf(" netns=%d ", v.b.inode)) {
				t.Errorf("cleanup %v lists the live tcpscope's objects: %q", args, line)
			}
			if strings.Contains(line, fmt.Sprintf(" netns=%d ", v.a.inode)) {
				mine = append(mine, line)
			}
		}
		return mine
	}
	pid := fmt.Sprintf(" pid=%d", killed.pid())
	want := []string{
		fmt.Sprintf("filter netns=%d interface=%s dir=ingress name=tcpscope-%d-", v.a.inode, vethA, killed.pid()),
		fmt.Sprintf("filter netns=%d interface=%s dir=egress name=tcpscope-%d-", v.a.inode, vethA, killed.pid()),
		fmt.Sprintf("qdisc netns=%d interface=%s kind=clsact%s", v.a.inode, vethA, pid),
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
	if st := tcStateOf(t, v.a, vethA); st.filtersOf(killed.pid()) != 2 || !st.clsact {
		t.Fatalf("after cleanup --dry-run: filters %v, clsact %v; want them untouched", st.filters, st.clsact)
	}
	check("cleanup", cleanup())
	if st := tcStateOf(t, v.a, vethA); len(st.filters) != 0 || st.clsact {
		t.Errorf("after cleanup: filters %v, clsact qdisc %v; want none", st.filters, st.clsact)
	}
	if st := tcStateOf(t, v.b, vethB); st.filtersOf(live.pid()) != 2 {
		t.Errorf("after cleanup: the live tcpscope's filters %v, want its 2", st.filters)
	}
	if again := cleanup(); len(again) != 0 {
		t.Errorf("second cleanup found %v", again)
	}
	stopTracer(ctx, t, live)
	if st := tcStateOf(t, v.b, vethB); len(st.filters) != 0 || st.clsact {
		t.Errorf("after the live tcpscope exited: filters %v, clsact qdisc %v; want none", st.filters, st.clsact)
	}
}

// TestDeletedInterfaceWarned: an interface named with -i and deleted
// while tracing is a warning, once, naming it; tracing goes on and ends
// cleanly.
func TestDeletedInterfaceWarned(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := newVethPair(ctx, t, "ifdel", 153)
	p := startTracer(ctx, t, v.a, "-i", vethA, "-i", "lo")
	runCmd(ctx, t, "ip", "-n", v.a.name, "link", "del", vethA)
	line, err := p.waitLine(ctx, true, "traced interface deleted")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "interface="+vethA) {
		t.Errorf("want a warning naming %s: %q", vethA, line)
	}
	stopTracer(ctx, t, p)
	if n := countLines(p.stderr.String(), "traced interface deleted"); n != 1 {
		t.Errorf("%d deletion warnings, want 1\n%s", n, p.output())
	}
	if n := countLines(p.stderr.String(), "interface=lo"); n != 0 {
		t.Errorf("lo reported, but it was not deleted\n%s", p.output())
	}
}

// TestInterfacesFollowed: with the default interface set, an interface
// that appears while tracing is traced (every packet tcpdump sees on it,
// named after it), and one deleted is let go, said once in the log.
func TestInterfacesFollowed(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	v := newVethPair(ctx, t, "follow", 154)
	// --netns: socket events of other namespaces (other workloads of the
	// host) cannot fill the ring; interfaces stay the default set.
	p := startTracer(ctx, t, v.a, "--netns", v.a.name)

	const vethC, vethD = "veth-c", "veth-d"
	c := linkEnd{v.a, vethC, netip.MustParseAddr("10.200.155.1"), netip.MustParseAddr("fd00:200:155::1"), "02:00:00:00:9b:01"}
	d := linkEnd{v.b, vethD, netip.MustParseAddr("10.200.155.2"), netip.MustParseAddr("fd00:200:155::2"), "02:00:00:00:9b:02"}
	runCmd(ctx, t, "ip", "link", "add", vethC, "address", c.mac, "netns", v.a.name, "type", "veth",
		"peer", "name", vethD, "address", d.mac, "netns", v.b.name)
	c.configure(ctx, t, d)
	d.configure(ctx, t, c)
	line, err := p.waitLine(ctx, true, "tracing an interface that appeared")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "interface="+vethC) {
		t.Fatalf("traced %q, want %s", line, vethC)
	}

	tp := &topology{name: "followed veth", clientNS: v.a, serverNS: v.b, watchNS: v.a, ifname: vethC,
		clientIP: c.ip4, serverIP: d.ip4}
	dump := startTcpdump(ctx, t, v.a, vethC)
	runScenario(ctx, t, tp, &scenarios[0])
	time.Sleep(settle)
	td := stopTcpdump(ctx, t, dump)

	runCmd(ctx, t, "ip", "-n", v.a.name, "link", "del", vethC)
	line, err = p.waitLine(ctx, true, "traced interface deleted")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "interface="+vethC) {
		t.Errorf("deleted %q, want %s", line, vethC)
	}
	recs := stopTracer(ctx, t, p)
	checkPackets(t, tp, td, recs)
	if n := countLines(p.stderr.String(), "traced interface deleted"); n != 1 {
		t.Errorf("%d deletion lines, want 1\n%s", n, p.output())
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
	ns := newNetns(ctx, t, "pidns")
	p := startProc(t, "tcpscope in a pid namespace", ns.exec("unshare", "-p", "-f", "--mount-proc",
		bins.tcpscope, "trace", "-o", "json", "-i", "lo", "--tc-mode", "clsact")...)
	if _, err := p.waitLine(ctx, true, `msg="tracing started"`); err != nil {
		t.Fatal(err)
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.pid(), p.pid()))
	if err != nil || len(strings.Fields(string(children))) != 1 {
		t.Fatalf("unshare's child: %q, %v", children, err)
	}
	child, _ := strconv.Atoi(strings.Fields(string(children))[0])
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(ctx); err == nil {
		t.Fatal("unshare exited 0 although its tcpscope was killed")
	}
	if st := tcStateOf(t, ns, "lo"); len(st.filters) != 2 || !st.clsact {
		t.Fatalf("after SIGKILL: filters %v, clsact %v; want the killed run's 2 and its qdisc", st.filters, st.clsact)
	}
	c := startProc(t, "tcpscope cleanup", bins.tcpscope, "cleanup")
	mustSucceed(ctx, t, c)
	if n := countLines(c.stdout.String(), fmt.Sprintf(" netns=%d ", ns.inode)); n != 3 {
		t.Errorf("cleanup listed %d items of the test namespace, want 2 filters and the qdisc:\n%s\n%s", n, c.stdout.String(), c.stderr.String())
	}
	if st := tcStateOf(t, ns, "lo"); len(st.filters) != 0 || st.clsact {
		t.Errorf("after cleanup: filters %v, clsact qdisc %v; want none\n%s", st.filters, st.clsact, c.stderr.String())
	}
}
