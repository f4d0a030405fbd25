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
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/tcpscope/tcpscope/test/harness"
)

// netnsPrefix is the prefix of the namespaces the suite creates.
var netnsPrefix = "tcpscope-k"

// nsexecEnv makes the test binary a launcher: enter the network namespace
// at that path, then exec the arguments (what `ip netns exec` does, which
// the VM does not have).
const nsexecEnv = "TCPSCOPE_NSEXEC"

// bins holds the paths of tcpscope and of the peer (as tsrv and tcli).
var bins struct{ tcpscope, server, client string }

var setupErr error

func TestMain(m *testing.M) {
	if path := os.Getenv(nsexecEnv); path != "" {
		nsexec(path, os.Args[1:])
	}
	os.Exit(runMain(m))
}

// nsexec never returns: it execs argv inside the namespace, or exits 127.
func nsexec(path string, argv []string) {
	runtime.LockOSThread()
	ns, err := netns.GetFromPath(path)
	if err == nil {
		err = netns.Set(ns)
	}
	if err == nil {
		var bin string
		if bin, err = exec.LookPath(argv[0]); err == nil {
			env := []string{}
			for _, kv := range os.Environ() {
				if len(kv) < len(nsexecEnv) || kv[:len(nsexecEnv)] != nsexecEnv {
					env = append(env, kv)
				}
			}
			err = syscall.Exec(bin, argv, env)
		}
	}
	fmt.Fprintf(os.Stderr, "nsexec %s %v: %v\n", path, argv, err)
	os.Exit(127)
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
		dir, setupErr = tmp, buildBinaries(tmp)
	}
	bins.tcpscope = filepath.Join(dir, "tcpscope")
	bins.server = filepath.Join(dir, "tsrv")
	bins.client = filepath.Join(dir, "tcli")
	return m.Run()
}

func buildBinaries(dir string) error {
	for _, b := range []struct{ out, pkg string }{
		{"tcpscope", "../../cmd/tcpscope"}, {"tsrv", "../peer"}, {"tcli", "../peer"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return nil
}

// requireSetup fails (TCPSCOPE_E2E=1) or skips when the suite cannot run.
func requireSetup(t *testing.T) {
	t.Helper()
	if setupErr == nil {
		return
	}
	if os.Getenv("TCPSCOPE_E2E") == "1" {
		t.Fatal(setupErr)
	}
	t.Skip(setupErr)
}

// TestNetnsPrefix: the namespaces the suite creates carry the prefix.
func TestNetnsPrefix(t *testing.T) {
	requireSetup(t)
	saved := netnsPrefix
	netnsPrefix = "tcpscope-prefix-test"
	defer func() { netnsPrefix = saved }()
	ns := newNamespace(t, "named")
	if want := fmt.Sprintf("tcpscope-prefix-test-%d-named", os.Getpid()); ns.name != want {
		t.Errorf("namespace %q, want %q", ns.name, want)
	}
}
