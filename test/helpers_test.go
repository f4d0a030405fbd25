package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/tracer"
)

// Time limits. Every wait of the tests is bounded by one of them.
const (
	// startTimeout bounds waiting for a process's readiness line.
	startTimeout = 20 * time.Second
	// stopTimeout bounds waiting for a process to exit after a signal.
	stopTimeout = 10 * time.Second
	// settle is how long in-flight packets and events get after the
	// traffic ends, before the capture is stopped.
	settle = 300 * time.Millisecond
)

// ------------------------------------------------------------ processes

// lineBuffer is an io.Writer that keeps everything written to it and lets
// a reader wait for a line. It is safe for concurrent use.
type lineBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{} // closed (and replaced) on every write
}

func newLineBuffer() *lineBuffer { return &lineBuffer{notify: make(chan struct{})} }

// Write appends p and wakes waiters.
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	close(b.notify)
	b.notify = make(chan struct{})
	return len(p), nil
}

// Bytes returns a copy of everything written so far.
func (b *lineBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String returns everything written so far.
func (b *lineBuffer) String() string { return string(b.Bytes()) }

// findLine returns the first complete line containing substr, and the
// channel that is closed on the next write.
func (b *lineBuffer) findLine(substr string) (string, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range strings.SplitAfter(b.buf.String(), "\n") {
		if strings.HasSuffix(line, "\n") && strings.Contains(line, substr) {
			return strings.TrimSuffix(line, "\n"), true, nil
		}
	}
	return "", false, b.notify
}

// proc is a child process whose stdout and stderr are kept in memory.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *lineBuffer
	stderr *lineBuffer
	done   chan struct{} // closed when the process has exited and its output is complete
	err    error         // the result of Wait, valid once done is closed
}

// startProc starts argv. The process is killed when the test ends if it is
// still running, so that no namespace is deleted under a live process and
// nothing outlives the test.
func startProc(t *testing.T, name string, argv ...string) *proc {
	t.Helper()
	p := &proc{
		name:   name,
		cmd:    exec.Command(argv[0], argv[1:]...),
		stdout: newLineBuffer(),
		stderr: newLineBuffer(),
		done:   make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, strings.Join(argv, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			t.Errorf("%s (pid %d) did not die after SIGKILL", p.name, p.pid())
		}
	})
	return p
}

// pid is the process id. Programs started through `ip netns exec` replace
// it in place, so this is the program's own pid.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its Wait error.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s (pid %d) still running: %w", p.name, p.pid(), ctx.Err())
	}
}

// stop sends sig and waits (at most stopTimeout) for the process to exit.
func (p *proc) stop(ctx context.Context, sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	return p.wait(ctx)
}

// exitCode is the exit status once the process has exited (-1 if it was
// killed by a signal).
func (p *proc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// waitLine waits for a line containing substr on the process's stdout (or
// stderr with fromStderr) and returns it. It fails early if the process
// exits without printing it.
func (p *proc) waitLine(ctx context.Context, fromStderr bool, substr string) (string, error) {
	b := p.stdout
	if fromStderr {
		b = p.stderr
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		line, ok, changed := b.findLine(substr)
		if ok {
			return line, nil
		}
		select {
		case <-changed:
		case <-p.done:
			if line, ok, _ := b.findLine(substr); ok {
				return line, nil
			}
			return "", fmt.Errorf("%s exited (%v) without printing %q\n%s", p.name, p.err, substr, p.output())
		case <-ctx.Done():
			return "", fmt.Errorf("%s did not print %q: %w\n%s", p.name, substr, ctx.Err(), p.output())
		}
	}
}

// output is the process's stdout and stderr so far, for error messages.
// Long outputs are cut.
func (p *proc) output() string {
	cut := func(s string) string {
		if len(s) > 4000 {
			return s[:2000] + "\n[...]\n" + s[len(s)-2000:]
		}
		return s
	}
	return fmt.Sprintf("--- %s stdout:\n%s--- %s stderr:\n%s", p.name, cut(p.stdout.String()), p.name, cut(p.stderr.String()))
}

// mustSucceed waits for p to exit and fails t unless it exited 0.
func mustSucceed(ctx context.Context, t *testing.T, p *proc) {
	t.Helper()
	if err := p.wait(ctx); err != nil {
		t.Fatalf("%s: %v\n%s", p.name, err, p.output())
	}
}

// ------------------------------------------------------------ namespaces

// netns is a network namespace created by a test.
type netns struct {
	name  string
	inode uint64 // as in the `netns` field of tcpscope's records
}

// exec returns argv prefixed to run inside the namespace.
func (n *netns) exec(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.name}, argv...)
}

// runCmd runs a short command and fails t if it fails.
func runCmd(ctx context.Context, t *testing.T, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// newNetns creates a network namespace with a name unique to this process
// (PREFIX-PID-TAG, PREFIX from $TCPSCOPE_E2E_PREFIX) and brings its
// loopback up. It is deleted when the test ends, pass or fail (processes
// started after it are killed first).
func newNetns(ctx context.Context, t *testing.T, tag string) *netns {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%s", netnsPrefix, os.Getpid(), tag)
	runCmd(ctx, t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		out, err := exec.Command("ip", "netns", "del", name).CombinedOutput()
		if err != nil {
			t.Errorf("delete network namespace %s: %v\n%s", name, err, out)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatalf("stat namespace %s: %v", name, err)
	}
	n := &netns{name: name, inode: st.Ino}
	runCmd(ctx, t, "ip", "-n", name, "link", "set", "lo", "up")
	return n
}

// Interface names of the veth pair (they live in different namespaces).
const (
	vethA = "veth-a"
	vethB = "veth-b"
)

// vethPair is two namespaces joined by a veth pair, with an IPv4 and an
// IPv6 address at each end: A has 10.200.X.1 and fd00:200:X::1, B has .2
// and ::2.
type vethPair struct {
	a, b   *netns
	a4, b4 netip.Addr
	a6, b6 netip.Addr
}

// newVethPair creates namespaces A and B (tagged with tag) and the veth
// pair between them, subnet number x.
func newVethPair(ctx context.Context, t *testing.T, tag string, x int) *vethPair {
	t.Helper()
	v := &vethPair{
		a:  newNetns(ctx, t, tag+"-a"),
		b:  newNetns(ctx, t, tag+"-b"),
		a4: netip.MustParseAddr(fmt.Sprintf("10.200.%d.1", x)),
		b4: netip.MustParseAddr(fmt.Sprintf("10.200.%d.2", x)),
		a6: netip.MustParseAddr(fmt.Sprintf("fd00:200:%d::1", x)),
		b6: netip.MustParseAddr(fmt.Sprintf("fd00:200:%d::2", x)),
	}
	macA, macB := fmt.Sprintf("02:00:00:00:%02x:01", x), fmt.Sprintf("02:00:00:00:%02x:02", x)
	runCmd(ctx, t, "ip", "link", "add", vethA, "address", macA, "netns", v.a.name, "type", "veth",
		"peer", "name", vethB, "address", macB, "netns", v.b.name)
	a := linkEnd{v.a, vethA, v.a4, v.a6, macA}
	b := linkEnd{v.b, vethB, v.b4, v.b6, macB}
	a.configure(ctx, t, b)
	b.configure(ctx, t, a)
	return v
}

// linkEnd is one host end of a test link: its namespace, interface,
// addresses and MAC.
type linkEnd struct {
	ns       *netns
	ifname   string
	ip4, ip6 netip.Addr
	mac      string
}

// configure gives the end its addresses (a /24 and a /64), brings it up
// and makes peer a static neighbour: no ARP or neighbour discovery can
// hold the first SYN back (a fresh IPv6 peer may miss the first
// solicitation, and the SYN then waits a second in the queue).
func (e linkEnd) configure(ctx context.Context, t *testing.T, peer linkEnd) {
	t.Helper()
	ip := func(args ...string) { runCmd(ctx, t, append([]string{"ip", "-n", e.ns.name}, args...)...) }
	ip("addr", "add", e.ip4.String()+"/24", "dev", e.ifname)
	ip("addr", "add", e.ip6.String()+"/64", "dev", e.ifname, "nodad")
	ip("link", "set", e.ifname, "up")
	ip("neigh", "replace", peer.ip4.String(), "lladdr", peer.mac, "dev", e.ifname, "nud", "permanent")
	ip("neigh", "replace", peer.ip6.String(), "lladdr", peer.mac, "dev", e.ifname, "nud", "permanent")
}

// tcxPrograms returns the ids of the BPF programs attached with TCX to the
// ingress and the egress of interface ifname in ns.
func tcxPrograms(t *testing.T, ns *netns, ifname string) (ingress, egress []ebpf.ProgramID) {
	t.Helper()
	handle, err := tracer.OpenNetns("/run/netns/" + ns.name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns.name, err)
	}
	defer handle.Close()
	err = handle.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		for _, q := range []struct {
			attach ebpf.AttachType
			ids    *[]ebpf.ProgramID
		}{{ebpf.AttachTCXIngress, &ingress}, {ebpf.AttachTCXEgress, &egress}} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: q.attach})
			if err != nil {
				return fmt.Errorf("query %s on %s: %w", q.attach, ifname, err)
			}
			for _, p := range res.Programs {
				*q.ids = append(*q.ids, p.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query TCX programs of %s in %s: %v", ifname, ns.name, err)
	}
	return ingress, egress
}

// ------------------------------------------------------------ tracer and tcpdump

// startTracer starts `tcpscope trace -o json ARGS...` (inside ns unless ns
// is nil) and waits until it has logged that tracing started.
func startTracer(ctx context.Context, t *testing.T, ns *netns, args ...string) *proc {
	t.Helper()
	argv := append([]string{bins.tcpscope, "trace", "-o", "json"}, args...)
	if ns != nil {
		argv = ns.exec(argv...)
	}
	p := startProc(t, "tcpscope", argv...)
	if _, err := p.waitLine(ctx, true, `msg="tracing started"`); err != nil {
		t.Fatal(err)
	}
	return p
}

// stopTracer sends SIGINT to the tracer, requires exit status 0 and
// returns its records.
func stopTracer(ctx context.Context, t *testing.T, p *proc) []*record {
	t.Helper()
	if err := p.stop(ctx, syscall.SIGINT); err != nil {
		t.Fatalf("tcpscope after SIGINT: %v\n%s", err, p.output())
	}
	recs, err := parseRecords(p.stdout.Bytes())
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	return recs
}

// startTcpdump starts the oracle, `tcpdump -S -n` on ifname inside ns,
// TCP only, and waits until it captures.
func startTcpdump(ctx context.Context, t *testing.T, ns *netns, ifname string) *proc {
	t.Helper()
	p := startProc(t, "tcpdump", ns.exec("tcpdump", "-S", "-n", "-t", "-l", "-s", "128", "-B", "16384", "-i", ifname, "tcp")...)
	if _, err := p.waitLine(ctx, true, "listening on "+ifname); err != nil {
		t.Fatal(err)
	}
	return p
}

// stopTcpdump stops tcpdump, checks that it dropped nothing (else it is
// no oracle) and returns the packets it printed.
func stopTcpdump(ctx context.Context, t *testing.T, p *proc) []*tdPacket {
	t.Helper()
	if err := p.stop(ctx, syscall.SIGINT); err != nil {
		t.Fatalf("tcpdump after SIGINT: %v\n%s", err, p.output())
	}
	stats := p.stderr.String()
	if !regexp.MustCompile(`(?m)^0 packets dropped by kernel$`).MatchString(stats) {
		t.Fatalf("tcpdump dropped packets, cannot be used as the oracle:\n%s", stats)
	}
	pkts := parseTcpdumpLines(t, p)
	if want := fmt.Sprintf("%d packets captured", len(pkts)); !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(stats) {
		t.Fatalf("tcpdump printed %d packets, but its statistics do not say %q:\n%s", len(pkts), want, stats)
	}
	return pkts
}

// parseTcpdumpLines parses what a running tcpdump printed so far.
func parseTcpdumpLines(t *testing.T, p *proc) []*tdPacket {
	t.Helper()
	pkts, err := parseTcpdump(p.stdout.String())
	if err != nil {
		t.Fatalf("tcpdump output: %v", err)
	}
	return pkts
}

// kernelCounter reads one SNMP counter of namespace ns: file is
// "/proc/net/snmp" or "/proc/net/netstat", group "Tcp" or "TcpExt".
func kernelCounter(ctx context.Context, t *testing.T, ns *netns, file, group, name string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns.name, "cat", file).Output()
	if err != nil {
		t.Fatalf("read %s in %s: %v", file, ns.name, err)
	}
	// Each group is a line of names followed by a line of values.
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != group+":" || len(values) != len(names) || values[0] != group+":" {
			continue
		}
		for j, n := range names {
			if n == name {
				v, err := strconv.ParseInt(values[j], 10, 64)
				if err != nil {
					t.Fatalf("counter %s %s: %v", group, name, err)
				}
				return v
			}
		}
	}
	t.Fatalf("no counter %s %s in %s", group, name, file)
	return 0
}
