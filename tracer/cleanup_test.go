//go:build linux

package tracer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFilterNames: the name of a filter says whose it is and whether its
// clsact qdisc is tcpscope's; names of older versions still parse; other
// names are not ours.
func TestFilterNames(t *testing.T) {
	for _, tag := range []filterTag{
		{pid: 1234, pidns: 4026531836, dir: "ingress"},
		{pid: 7, pidns: 4026532999, dir: "egress", ownsQdisc: true},
	} {
		name := filterName(tag)
		got, ok := parseFilterName(name)
		if !ok || got != tag {
			t.Errorf("parseFilterName(%q) = %+v, %v; want %+v", name, got, ok, tag)
		}
	}
	if got, ok := parseFilterName("tcpscope-1234-4026531836-egress-qdisc"); !ok || !got.ownsQdisc || got.pid != 1234 || got.dir != "egress" {
		t.Errorf("qdisc mark: %+v, %v", got, ok)
	}
	if got, ok := parseFilterName("tcpscope-99-ingress"); !ok || got.pid != 99 || got.pidns != 0 || got.dir != "ingress" {
		t.Errorf("old name: %+v, %v", got, ok)
	}
	for _, bad := range []string{"", "tcpscope-", "tcpscope-x-ingress", "tcpscope-0-1-ingress", "tcpscope-12-1-sideways",
		"cilium-12-1-ingress", "tcpscope-12-1-2-ingress", "tcpscope-12-x-ingress", "tcpscope--12-1-ingress"} {
		if got, ok := parseFilterName(bad); ok {
			t.Errorf("parseFilterName(%q) = %+v, want not ours", bad, got)
		}
	}
}

// TestParseProcStat: state and start time come after the last ')' (a
// comm may hold spaces and parentheses).
func TestParseProcStat(t *testing.T) {
	line := "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10 0 0 0\n"
	state, start, err := parseProcStat([]byte(line))
	if err != nil || state != 'S' || start != 123450*time.Millisecond {
		t.Errorf("parseProcStat = %c, %v, %v; want S, 2m3.45s", state, start, err)
	}
	for _, bad := range []string{"", "4242 (a S 1", "4242 (a) S 1 2 3", "4242 (a) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 x 1"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
}

// TestJudgeFilterOwner: a filter of a running process is live, one of an
// exited process (or of a process started after the program was loaded:
// a reused pid) is stale, one of an unknown pid namespace is never live.
func TestJudgeFilterOwner(t *testing.T) {
	self := filterTag{pid: os.Getpid(), pidns: ownPidns(), dir: "ingress"}
	if v, why := judgeFilter(self, 0); v != filterLive {
		t.Errorf("own process: verdict %d (%s), want live", v, why)
	}
	old := self
	old.pidns = 0 // names of older versions
	if v, why := judgeFilter(old, 0); v != filterLive {
		t.Errorf("own process, old name: verdict %d (%s), want live", v, why)
	}

	// Our start time is known: a program loaded before we started was
	// not ours (the pid was reused); one loaded since may be.
	if v, why := judgeOwner(self, time.Nanosecond); v != filterStale || !strings.Contains(why, "reused") {
		t.Errorf("program loaded before the process started: verdict %d (%s), want stale, pid reused", v, why)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	if v, why := judgeOwner(self, time.Duration(ts.Nano())); v != filterLive {
		t.Errorf("program loaded after the process started: verdict %d (%s), want live", v, why)
	}

	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	dead := filterTag{pid: cmd.Process.Pid, pidns: ownPidns(), dir: "egress"}
	if v, why := judgeFilter(dead, 0); v != filterStale || !strings.Contains(why, "gone") {
		t.Errorf("exited process: verdict %d (%s), want stale, process gone", v, why)
	}

	if v, why := judgeFilter(filterTag{pid: 1, pidns: 1, dir: "ingress"}, 0); v == filterLive {
		t.Errorf("process in a pid namespace that does not exist: live (%s)", why)
	}
}

// TestNestedPidns: a process whose NSpid lists one pid lives in our pid
// namespace (not a candidate owner of another namespace's filter); more
// than one, or an unreadable status, may be nested.
func TestNestedPidns(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		status string
		nested bool
	}{
		{"Name:\tinit\nNSpid:\t1\n", false},
		{"Name:\ttcpscope\nNSpid:\t23852\t1\n", true},
		{"Name:\told kernel\n", true},
	} {
		p := filepath.Join(dir, "status")
		if err := os.WriteFile(p, []byte(c.status), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := nestedPidns(p); got != c.nested {
			t.Errorf("%q: nested %v, want %v", c.status, got, c.nested)
		}
	}
	if !nestedPidns(filepath.Join(dir, "missing")) {
		t.Error("an unreadable status must count as possibly nested")
	}
}
