// Package kernel is the kernel-portable end-to-end suite: it needs neither
// iproute2 nor tcpdump, so it runs as one static test binary inside a
// minimal VM (test/vm/run.sh boots Debian's 6.1 and 6.12 kernels) as well
// as natively. It checks the tracer's own guarantees against the traffic
// the test itself makes: exact state sequences of both ends, owners,
// packet fields (ISNs, acks, lengths, FIN sequence numbers), resets and
// their reasons, conn ids, and a clean detach, for IPv4 and IPv6 over a
// veth pair and over loopback, with every TC attach mode the kernel has.
//
// Its namespaces are named PREFIX-PID-TAG; PREFIX is $TCPSCOPE_E2E_PREFIX,
// "tcpscope-k" when unset (as for test/, which defaults to "tcpscope-e2e").
package kernel

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// netnsPrefix is the prefix of the namespaces the suite creates.
var netnsPrefix = "tcpscope-k"

// Time limits: generous, the suite also runs under software emulation.
const (
	// startTimeout bounds waiting for a process's readiness line.
	startTimeout = 60 * time.Second
	// stopTimeout bounds waiting for a process to exit (after a signal,
	// or a peer's run).
	stopTimeout = 30 * time.Second
	// settle is how long in-flight packets and events get after the
	// traffic ends, before the tracer is stopped.
	settle = 300 * time.Millisecond
)

// bins holds the paths of tcpscope and of the peer (as tsrv and tcli).
var bins harness.Bins

var setupErr error

func TestMain(m *testing.M) {
	// The suite runs commands inside its namespaces through this binary
	// (Namespace.Command: the VM has no `ip netns exec`).
	harness.NsexecMain()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	prefix, err := harness.PrefixFromEnv(netnsPrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	netnsPrefix = prefix
	if os.Geteuid() != 0 {
		setupErr = fmt.Errorf("the kernel suite needs root (euid %d)", os.Geteuid())
		return m.Run()
	}
	dir := os.Getenv("TCPSCOPE_BINDIR")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tcpscope-kernel-")
		if err != nil {
			setupErr = err
			return m.Run()
		}
		defer os.RemoveAll(tmp)
		dir = tmp
		_, setupErr = harness.BuildBins(tmp)
	}
	bins = harness.BinsIn(dir)
	return m.Run()
}

// requireSetup fails (TCPSCOPE_E2E=1) or skips when the suite cannot run.
func requireSetup(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		harness.Require(t, setupErr.Error())
	}
}

// TestNetnsPrefix: the namespaces the suite creates carry the prefix.
func TestNetnsPrefix(t *testing.T) {
	requireSetup(t)
	saved := netnsPrefix
	netnsPrefix = "tcpscope-prefix-test"
	defer func() { netnsPrefix = saved }()
	ns := harness.NewNamespace(t, netnsPrefix, "named")
	if want := fmt.Sprintf("tcpscope-prefix-test-%d-named", os.Getpid()); ns.Name != want {
		t.Errorf("namespace %q, want %q", ns.Name, want)
	}
}
