package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces live (as `ip netns` keeps
// them).
const NetnsDir = "/run/netns"

// Namespace is a named network namespace (NetnsDir/NAME).
type Namespace struct {
	// Name is the namespace's name.
	Name string
	// Path is its file, NetnsDir/NAME.
	Path string
	// Inode is its inode, as in the `netns` field of tcpscope's records.
	Inode uint64
}

// NamespaceName is the name the suites give their namespaces:
// PREFIX-PID-TAG, unique to this process.
func NamespaceName(prefix, tag string) string {
	return fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), tag)
}

// CreateNamespace creates the named network namespace and brings its
// loopback up. It does what `ip netns add` does, without iproute2 (the
// kernel-matrix VM has none): NetnsDir becomes a shared mount point, so
// that the namespace's file shows in mount namespaces made later (by `ip
// netns exec`, say), and the namespace is bind-mounted on NetnsDir/NAME.
func CreateNamespace(name string) (*Namespace, error) {
	if err := sharedNetnsDir(); err != nil {
		return nil, err
	}
	n := &Namespace{Name: name, Path: NetnsDir + "/" + name}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name) // also enters it
		if err != nil {
			errc <- err
			if cur, cerr := netns.Get(); cerr == nil && !cur.Equal(orig) {
				cur.Close()
				return // in another namespace: the thread stays locked and dies with the goroutine
			}
			runtime.UnlockOSThread()
			return
		}
		ns.Close()
		if err := netns.Set(orig); err != nil {
			errc <- err // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", name, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(n.Path, &st); err != nil {
		n.Delete()
		return nil, fmt.Errorf("stat namespace %s: %w", name, err)
	}
	n.Inode = st.Ino
	h, err := n.Handle()
	if err == nil {
		var lo netlink.Link
		if lo, err = h.LinkByName("lo"); err == nil {
			err = h.LinkSetUp(lo)
		}
		h.Close()
	}
	if err != nil {
		n.Delete()
		return nil, fmt.Errorf("lo up in %s: %w", name, err)
	}
	return n, nil
}

// sharedNetnsDir makes NetnsDir a mount point with shared propagation, as
// `ip netns add` does.
func sharedNetnsDir() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", NetnsDir, err)
	}
	for made := false; ; made = true {
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("make %s a shared mount: %w", NetnsDir, err)
		}
		// Not a mount point yet.
		if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s on itself: %w", NetnsDir, err)
		}
	}
}

// Delete deletes the namespace's file (as `ip netns del`); the namespace
// goes when nothing else holds it.
func (n *Namespace) Delete() error {
	if err := netns.DeleteNamed(n.Name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", n.Name, err)
	}
	return nil
}

// NewNamespace creates the namespace PREFIX-PID-TAG (NamespaceName) with
// its loopback up, and fails t if it cannot. It is deleted when the test
// ends, pass or fail (processes started after it, with StartT, are killed
// first).
func NewNamespace(t testing.TB, prefix, tag string) *Namespace {
	t.Helper()
	n, err := CreateNamespace(NamespaceName(prefix, tag))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// Handle opens rtnetlink inside the namespace (the route family only:
// XFRM may be an absent module). The caller closes it.
func (n *Namespace) Handle() (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(n.Path)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", n.Name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", n.Name, err)
	}
	return h, nil
}

// MustHandle is Handle that fails t instead of returning an error.
func (n *Namespace) MustHandle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := n.Handle()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Do runs f on a thread inside the namespace: sockets f creates belong to
// it. It returns f's error, or why it could not enter or leave.
func (n *Namespace) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(n.Path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("back to the original namespace: %w", err) // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("in namespace %s: %w", n.Name, err)
	}
	return nil
}

// MustDo is Do that fails t instead of returning an error.
func (n *Namespace) MustDo(t testing.TB, f func() error) {
	t.Helper()
	if err := n.Do(f); err != nil {
		t.Fatal(err)
	}
}

// Exec returns argv prefixed to run inside the namespace with `ip netns
// exec` (which also remounts /sys for the namespace).
func (n *Namespace) Exec(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.Name}, argv...)
}

// nsexecEnv makes a binary that calls NsexecMain a launcher: enter the
// network namespace at that path, then exec the arguments.
const nsexecEnv = "TCPSCOPE_NSEXEC"

// Command returns a command that runs argv inside the namespace without
// iproute2: the current binary is started again as a launcher, enters the
// namespace and execs argv in place (so the pid is argv's). The binary
// must call NsexecMain first thing in main or TestMain.
func (n *Namespace) Command(ctx context.Context, argv ...string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := exec.CommandContext(ctx, self, argv...)
	cmd.Env = append(os.Environ(), nsexecEnv+"="+n.Path)
	return cmd
}

// NsexecMain returns unless this process was started by
// Namespace.Command. Then it enters the namespace and execs the command,
// or exits 127: it never returns.
func NsexecMain() {
	path := os.Getenv(nsexecEnv)
	if path == "" {
		return
	}
	argv := os.Args[1:]
	runtime.LockOSThread()
	ns, err := netns.GetFromPath(path)
	if err == nil {
		err = netns.Set(ns)
	}
	if err == nil {
		var bin string
		if bin, err = exec.LookPath(argv[0]); err == nil {
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, nsexecEnv+"=") {
					env = append(env, kv)
				}
			}
			err = syscall.Exec(bin, argv, env)
		}
	}
	fmt.Fprintf(os.Stderr, "nsexec %s %v: %v\n", path, argv, err)
	os.Exit(127)
}

// Counter reads one SNMP counter of the namespace: file is "snmp" or
// "netstat" (of /proc/net), group "Tcp" or "TcpExt" and so on.
func (n *Namespace) Counter(file, group, name string) (int64, error) {
	var data []byte
	err := n.Do(func() error {
		var err error
		// thread-self: /proc/net is the thread group leader's namespace.
		data, err = os.ReadFile("/proc/thread-self/net/" + file)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read /proc/net/%s: %w", file, err)
	}
	v, err := ParseCounter(string(data), group, name)
	if err != nil {
		return 0, fmt.Errorf("/proc/net/%s of %s: %w", file, n.Name, err)
	}
	return v, nil
}

// MustCounter is Counter that fails t instead of returning an error.
func (n *Namespace) MustCounter(t testing.TB, file, group, name string) int64 {
	t.Helper()
	v, err := n.Counter(file, group, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ParseCounter finds one counter in the text of /proc/net/snmp or
// /proc/net/netstat, where each group is a line of names followed by a
// line of values.
func ParseCounter(text, group, name string) (int64, error) {
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != group+":" || len(values) != len(names) || values[0] != group+":" {
			continue
		}
		for j, k := range names {
			if k == name {
				v, err := strconv.ParseInt(values[j], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("counter %s %s: %w", group, name, err)
				}
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("no counter %s %s", group, name)
}
