package kernel

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Time limits: generous, the suite also runs under software emulation.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
	settle       = 300 * time.Millisecond
)

// namespace is a named network namespace (/run/netns/NAME) the test made.
type namespace struct {
	name  string
	path  string
	inode uint64
}

// newNamespace creates a named namespace (PREFIX-PID-TAG, PREFIX from
// $TCPSCOPE_E2E_PREFIX) with lo up; it is deleted when the test ends.
func newNamespace(t *testing.T, tag string) *namespace {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%s", netnsPrefix, os.Getpid(), tag)
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
			return
		}
		ns.Close()
		if err := netns.Set(orig); err != nil {
			errc <- err // leave the thread locked: it dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	n := &namespace{name: name, path: "/run/netns/" + name}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(n.path, &st); err != nil {
		t.Fatal(err)
	}
	n.inode = st.Ino
	h := n.handle(t)
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return n
}

// handle opens rtnetlink inside the namespace (route family only: XFRM
// may be an absent module).
func (n *namespace) handle(t *testing.T) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(n.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink in %s: %v", n.name, err)
	}
	return h
}

// cmd returns argv to run inside the namespace (through nsexec).
func (n *namespace) command(ctx context.Context, argv ...string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := exec.CommandContext(ctx, self, argv...)
	cmd.Env = append(os.Environ(), nsexecEnv+"="+n.path)
	return cmd
}

// vethPair is namespaces a and b joined by veth-a / veth-b, with
// 10.200.X.1|2/24 and fd00:200:X::1|2/64, static neighbours.
type vethPair struct {
	a, b   *namespace
	a4, b4 netip.Addr
	a6, b6 netip.Addr
}

func newVethPair(t *testing.T, tag string, x int) *vethPair {
	t.Helper()
	v := &vethPair{
		a: newNamespace(t, tag+"-a"), b: newNamespace(t, tag+"-b"),
		a4: netip.MustParseAddr(fmt.Sprintf("10.200.%d.1", x)), b4: netip.MustParseAddr(fmt.Sprintf("10.200.%d.2", x)),
		a6: netip.MustParseAddr(fmt.Sprintf("fd00:200:%d::1", x)), b6: netip.MustParseAddr(fmt.Sprintf("fd00:200:%d::2", x)),
	}
	nsA, err := netns.GetFromPath(v.a.path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsA.Close()
	nsB, err := netns.GetFromPath(v.b.path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()
	hA := v.a.handle(t)
	defer hA.Close()
	macA, _ := net.ParseMAC(fmt.Sprintf("02:00:00:00:%02x:01", x))
	macB, _ := net.ParseMAC(fmt.Sprintf("02:00:00:00:%02x:02", x))
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: "veth-a", HardwareAddr: macA},
		PeerName:         "veth-b",
		PeerHardwareAddr: macB,
		PeerNamespace:    netlink.NsFd(int(nsB)),
	}
	if err := hA.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	ends := []struct {
		ns       *namespace
		ifname   string
		ip4, ip6 netip.Addr
		peer4    netip.Addr
		peer6    netip.Addr
		peerMAC  net.HardwareAddr
	}{
		{v.a, "veth-a", v.a4, v.a6, v.b4, v.b6, macB},
		{v.b, "veth-b", v.b4, v.b6, v.a4, v.a6, macA},
	}
	for _, e := range ends {
		h := e.ns.handle(t)
		link, err := h.LinkByName(e.ifname)
		if err != nil {
			h.Close()
			t.Fatal(err)
		}
		for _, a := range []netip.Prefix{netip.PrefixFrom(e.ip4, 24), netip.PrefixFrom(e.ip6, 64)} {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
			if a.Addr().Is6() {
				addr.Flags = unix.IFA_F_NODAD
			}
			if err := h.AddrAdd(link, addr); err != nil {
				h.Close()
				t.Fatalf("address %s on %s: %v", a, e.ifname, err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			h.Close()
			t.Fatal(err)
		}
		for _, p := range []netip.Addr{e.peer4, e.peer6} {
			neigh := &netlink.Neigh{LinkIndex: link.Attrs().Index, IP: p.AsSlice(), HardwareAddr: e.peerMAC, State: netlink.NUD_PERMANENT}
			if err := h.NeighSet(neigh); err != nil {
				h.Close()
				t.Fatalf("neighbour %s on %s: %v", p, e.ifname, err)
			}
		}
		h.Close()
	}
	return v
}

// proc is a started process with its output captured.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitFor waits until the process printed substr (stderr or stdout).
func (p *proc) waitFor(t *testing.T, stderr bool, substr string) string {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		out := p.stdout.String()
		if stderr {
			out = p.stderr.String()
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, substr) {
				return line
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q\nstdout: %s\nstderr: %s", p.name, p.err, substr, p.stdout.String(), p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not print %q within %s\nstderr: %s", p.name, substr, startTimeout, p.stderr.String())
	return ""
}

// wait waits for exit and requires status 0.
func (p *proc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Fatalf("%s still running after %s", p.name, stopTimeout)
	}
	if p.err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", p.name, p.err, p.stdout.String(), p.stderr.String())
	}
}

// stop sends SIGINT and requires exit status 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	p.wait(t)
}
