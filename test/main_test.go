// Package e2e holds the privileged end-to-end tests of tcpscope: the real
// binary traces real TCP connections between real processes, in network
// namespaces the tests create, and its output is checked against tcpdump.
//
// The tests need root (BPF, network namespaces, tcpdump) and the `ip` and
// `tcpdump` commands. Without them every test skips, unless TCPSCOPE_E2E=1
// is set: then every test fails, so that CI cannot pass by skipping.
//
// The namespaces they create are named PREFIX-PID-TAG; PREFIX is
// $TCPSCOPE_E2E_PREFIX, "tcpscope-e2e" when unset, so that runs beside
// other workloads can be told apart (and cleaned up) by name.
//
//	sudo go test ./test/ -v -count=1
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/tcpscope/tcpscope/test/harness"
)

// netnsPrefix is the prefix of the namespaces the tests create.
var netnsPrefix = "tcpscope-e2e"

// bins are the binaries built by TestMain.
var bins harness.Bins

// notReady says why the tests cannot run here ("" when they can).
// buildErr is a failure to build the binaries: always a test failure.
var notReady, buildErr string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	prefix, err := harness.PrefixFromEnv(netnsPrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	netnsPrefix = prefix
	if reason := missingPrerequisite(); reason != "" {
		notReady = reason
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "tcpscope-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bins, err = harness.BuildBins(dir); err != nil {
		buildErr = err.Error()
	}
	return m.Run()
}

// missingPrerequisite returns why this machine cannot run the tests, or "".
func missingPrerequisite() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("end-to-end tests need root (euid is %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "tcpdump", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("end-to-end tests need %q on PATH: %v", tool, err)
		}
	}
	return ""
}

// requireE2E skips t when the machine cannot run end-to-end tests, or
// fails it when TCPSCOPE_E2E=1 demands that they run. It fails t when the
// binaries did not build.
func requireE2E(t *testing.T) {
	t.Helper()
	harness.Require(t, notReady)
	if buildErr != "" {
		t.Fatal(buildErr)
	}
}

// TestNetnsPrefix: the namespaces the tests create carry the prefix.
func TestNetnsPrefix(t *testing.T) {
	requireE2E(t)
	saved := netnsPrefix
	netnsPrefix = "tcpscope-prefix-test"
	defer func() { netnsPrefix = saved }()
	ns := harness.NewNamespace(t, netnsPrefix, "named")
	want := fmt.Sprintf("tcpscope-prefix-test-%d-named", os.Getpid())
	if ns.Name != want {
		t.Errorf("namespace %q, want %q", ns.Name, want)
	}
	if _, err := os.Stat("/run/netns/" + want); err != nil {
		t.Error(err)
	}
}
