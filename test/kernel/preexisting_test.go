package kernel

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// preConn is a connection the test process itself holds, made before
// tcpscope starts: a listener, the client end and the accepted server end.
type preConn struct {
	name           string
	ns             *harness.Namespace
	server, client netip.AddrPort
	watched        bool // in tcpscope's namespace: its packets are traced too
	ln             *net.TCPListener
	cli, srv       *net.TCPConn
}

// TestPreexisting: connections established before tcpscope starts (IPv4
// and IPv6 over loopback in the tracer's namespace, IPv4 in another one)
// are listed at start-up (sock_diag) with a socket record marked
// preexisting, in their state, owned by the test process, and that is the
// first record of each end; so is the listener that accepted them. What
// happens to them after the start (data, the client closing first, the
// listener closing) joins the same conn, with the owner the kernel tables
// were seeded with, and the summary says preexisting.
//
// sock_diag needs inet_diag and tcp_diag, modules in Debian's kernels
// (test/vm/run.sh loads them). tcpscope's feature list has no row for it:
// a kernel without them fails here, it never passes silently.
func TestPreexisting(t *testing.T) {
	requireSetup(t)
	feats := features(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	watch := harness.NewNamespace(t, netnsPrefix, "pre")
	other := harness.NewNamespace(t, netnsPrefix, "pre-other")
	conns := []*preConn{
		{name: "ipv4", ns: watch, watched: true, server: netip.MustParseAddrPort("127.0.0.1:7201"), client: netip.MustParseAddrPort("127.0.0.1:37201")},
		{name: "ipv6", ns: watch, watched: true, server: netip.MustParseAddrPort("[::1]:7202"), client: netip.MustParseAddrPort("[::1]:37202")},
		{name: "other namespace", ns: other, server: netip.MustParseAddrPort("127.0.0.1:7203"), client: netip.MustParseAddrPort("127.0.0.1:37203")},
	}
	for _, c := range conns {
		c.establish(t)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	self, selfComm := os.Getpid(), strings.TrimSpace(string(comm))

	tr := harness.StartT(t, "tcpscope", watch.Command(ctx,
		bins.Tcpscope, "trace", "-o", "json", "-i", "lo", "--tc-mode", feats["packet_hooks"], "--packets", "all"))
	tr.MustWaitLine(context.Background(), t, true, `msg="tracing started"`, startTimeout)
	// A namespace tcpscope could not list is named in its warning (netns=);
	// without one, it could list none.
	var failed []string
	for _, warn := range preexistingWarnings(tr.Stderr.String()) {
		if !strings.Contains(warn, "netns=") || strings.Contains(warn, fmt.Sprintf("netns=%d ", watch.Inode)) ||
			strings.Contains(warn, fmt.Sprintf("netns=%d ", other.Inode)) {
			failed = append(failed, warn)
		} else {
			t.Logf("tcpscope warned about another namespace: %s", warn)
		}
	}
	if len(failed) > 0 {
		t.Fatalf("tcpscope could not list the preexisting sockets (sock_diag: are inet_diag and tcp_diag loaded?):\n%s", strings.Join(failed, "\n"))
	}
	for _, c := range conns {
		c.finish(t)
	}
	time.Sleep(settle)
	tr.MustStop(context.Background(), t, syscall.SIGINT, stopTimeout)
	recs, err := harness.ParseRecords(tr.Stdout.Bytes())
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	if lost := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "lost" }); len(lost) > 0 {
		t.Errorf("lost records:\n%s", harness.Describe(lost))
	}
	for _, c := range conns {
		t.Run(c.name, func(t *testing.T) { c.check(t, recs, self, selfComm) })
	}
}

// establish listens, connects and accepts inside the connection's
// namespace; everything is closed when the test ends.
func (c *preConn) establish(t *testing.T) {
	t.Helper()
	c.ns.MustDo(t, func() error {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(c.server))
		if err != nil {
			return err
		}
		c.ln = ln
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(c.client), Timeout: stopTimeout}
		cli, err := d.Dial("tcp", c.server.String())
		if err != nil {
			return err
		}
		c.cli = cli.(*net.TCPConn)
		return nil
	})
	t.Cleanup(func() {
		for _, cl := range []io.Closer{c.cli, c.srv, c.ln} {
			if cl != nil {
				cl.Close()
			}
		}
	})
	c.ln.SetDeadline(time.Now().Add(stopTimeout))
	srv, err := c.ln.AcceptTCP()
	if err != nil {
		t.Fatalf("%s: accept: %v", c.name, err)
	}
	c.srv = srv
}

// finish, while tcpscope traces: the client sends the message and closes
// first, the server reads it and the EOF and closes, the listener closes.
func (c *preConn) finish(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(stopTimeout)
	c.cli.SetDeadline(deadline)
	c.srv.SetDeadline(deadline)
	if _, err := io.WriteString(c.cli, message); err != nil {
		t.Fatalf("%s: client write: %v", c.name, err)
	}
	if err := c.cli.Close(); err != nil {
		t.Fatalf("%s: client close: %v", c.name, err)
	}
	got, err := io.ReadAll(c.srv)
	if err != nil || string(got) != message {
		t.Fatalf("%s: server read %q, %v; want %q then EOF", c.name, got, err, message)
	}
	if err := c.srv.Close(); err != nil {
		t.Fatalf("%s: server close: %v", c.name, err)
	}
	if err := c.ln.Close(); err != nil {
		t.Fatalf("%s: listener close: %v", c.name, err)
	}
}

func (c *preConn) check(t *testing.T, all []*harness.Record, pid int, comm string) {
	isConn := func(r *harness.Record) bool {
		if r.Type == "packet" {
			return r.SrcAddr == c.client && r.DstAddr == c.server || r.SrcAddr == c.server && r.DstAddr == c.client
		}
		return r.LocalAddr == c.client && r.RemoteAddr == c.server || r.LocalAddr == c.server && r.RemoteAddr == c.client
	}
	recs := harness.Select(all, func(r *harness.Record) bool { return isConn(r) && r.Netns == c.ns.Inode && r.Type != "conn" })
	defer func() {
		if t.Failed() {
			t.Logf("records of %s <-> %s:\n%s", c.client, c.server, harness.Describe(recs))
		}
	}()
	if len(recs) == 0 {
		t.Fatalf("no records for %s <-> %s in netns %d", c.client, c.server, c.ns.Inode)
	}
	if recs[0].Type != "socket" {
		t.Errorf("first record of the connection is not its preexisting socket record: %s", recs[0])
	}
	conn := recs[0].ConnID()
	for _, r := range recs {
		if r.ConnID() != conn || conn == 0 {
			t.Errorf("records of one connection carry conns %d and %d: %s", conn, r.ConnID(), r)
			break
		}
	}
	listener := harness.Select(all, func(r *harness.Record) bool {
		return r.Type != "packet" && r.LocalAddr == c.server && r.RemoteAddr.Port() == 0 && r.RemoteAddr.Addr().IsUnspecified() && r.Netns == c.ns.Inode
	})
	for _, end := range []struct {
		name   string
		recs   []*harness.Record
		state  string
		states string
	}{
		{"client", harness.Select(recs, func(r *harness.Record) bool { return r.Type != "packet" && r.LocalAddr == c.client }),
			"ESTABLISHED", "ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2 -> CLOSE"},
		{"server", harness.Select(recs, func(r *harness.Record) bool { return r.Type != "packet" && r.LocalAddr == c.server }),
			"ESTABLISHED", "ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSE"},
		{"listener", listener, "LISTEN", "LISTEN -> CLOSE"},
	} {
		if len(end.recs) == 0 {
			t.Errorf("no records of the %s", end.name)
			continue
		}
		first := end.recs[0]
		if first.Type != "socket" || first.Preexisting == nil || !*first.Preexisting || first.State == nil || *first.State != end.state {
			t.Errorf("%s: first record is not a socket record, preexisting: true, state %s: %s", end.name, end.state, first)
		}
		if n := len(harness.Select(end.recs, func(r *harness.Record) bool { return r.Type == "socket" })); n != 1 {
			t.Errorf("%s: %d socket records, want 1:\n%s", end.name, n, harness.Describe(end.recs))
		}
		for _, r := range end.recs[1:] {
			if r.Preexisting != nil {
				t.Errorf("%s: a later record says preexisting: %s", end.name, r)
			}
		}
		if got := harness.StateChain(end.recs); got != end.states {
			t.Errorf("%s states after the start %q, want %q:\n%s", end.name, got, end.states, harness.Describe(end.recs))
		}
		// Owners: from /proc at the start, then from the kernel's tables
		// (seeded with it), also for events in softirq (CLOSE_WAIT).
		checkOwner(t, end.name, end.recs, pid, comm)
	}
	if c.watched {
		packets := harness.Select(recs, func(r *harness.Record) bool { return r.Type == "packet" })
		checkNoDuplicates(t, packets)
		var data, fin bool
		for _, p := range packets {
			data = data || p.SrcAddr == c.client && deref(p.Len) == int64(len(message))
			fin = fin || p.SrcAddr == c.client && strings.Contains(p.Flags, "F")
		}
		if !data || !fin {
			t.Errorf("want the client's data and FIN among the packets:\n%s", harness.Describe(packets))
		}
	}
	var sum []*harness.Record
	for _, r := range all {
		if r.Type == "conn" && r.ConnID() == conn {
			sum = append(sum, r)
		}
	}
	if len(sum) != 1 || sum[0].Preexisting == nil || !*sum[0].Preexisting {
		t.Errorf("want one summary of conn %d with preexisting: true:\n%s", conn, harness.Describe(sum))
	}
}

// preexistingWarnings returns tcpscope's warnings about listing
// preexisting sockets (they say why it failed).
func preexistingWarnings(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "preexisting") {
			out = append(out, line)
		}
	}
	return out
}

// TestPreexistingFiltered: --port, --host and -c hold for the sockets
// listed at start-up as for the kernel's events: with an IPv4 and an IPv6
// connection in tcpscope's namespace and one in another, `--port P` lists
// only P's listener and ends, `--host ::1` only the IPv6 ones, and
// `-c 3 --port P` prints three records of P and exits.
func TestPreexistingFiltered(t *testing.T) {
	requireSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	watch := harness.NewNamespace(t, netnsPrefix, "prefilter")
	other := harness.NewNamespace(t, netnsPrefix, "prefilter-other")
	v4 := &preConn{name: "ipv4", ns: watch, server: netip.MustParseAddrPort("127.0.0.1:7211"), client: netip.MustParseAddrPort("127.0.0.1:37211")}
	v6 := &preConn{name: "ipv6", ns: watch, server: netip.MustParseAddrPort("[::1]:7212"), client: netip.MustParseAddrPort("[::1]:37212")}
	far := &preConn{name: "other namespace", ns: other, server: netip.MustParseAddrPort("127.0.0.1:7211"), client: netip.MustParseAddrPort("127.0.0.1:37213")}
	for _, c := range []*preConn{v4, v6, far} {
		c.establish(t)
	}
	type sock struct {
		ns            *harness.Namespace
		local, remote netip.AddrPort
	}
	sockets := func(c *preConn, unspec string) []sock {
		return []sock{{c.ns, c.server, netip.MustParseAddrPort(unspec)}, {c.ns, c.server, c.client}, {c.ns, c.client, c.server}}
	}
	trace := func(t *testing.T, args ...string) []*harness.Record {
		tr := harness.StartT(t, "tcpscope", watch.Command(ctx, append([]string{bins.Tcpscope, "trace", "-o", "json", "--events", "state"}, args...)...))
		if args[0] == "-c" {
			tr.MustSucceed(context.Background(), t, stopTimeout)
		} else {
			tr.MustWaitLine(context.Background(), t, true, `msg="tracing started"`, startTimeout)
			time.Sleep(settle)
			tr.MustStop(context.Background(), t, syscall.SIGINT, stopTimeout)
		}
		recs, err := harness.ParseRecords(tr.Stdout.Bytes())
		if err != nil {
			t.Fatalf("tcpscope output: %v", err)
		}
		return recs
	}
	for _, c := range []struct {
		name string
		args []string
		pass func(netip.AddrPort) bool
		want []sock // at least these
		n    int    // exactly this many records when > 0
	}{
		// The other namespace's connection is on the same port: --port
		// does not narrow namespaces, so it is listed too.
		{"port", []string{"--port", "7211"}, func(a netip.AddrPort) bool { return a.Port() == 7211 },
			append(sockets(v4, "0.0.0.0:0"), sockets(far, "0.0.0.0:0")...), 0},
		{"host", []string{"--host", "::1"}, func(a netip.AddrPort) bool { return a.Addr() == v6.server.Addr() },
			sockets(v6, "[::]:0"), 0},
		{"count", []string{"-c", "3", "--port", "7212"}, func(a netip.AddrPort) bool { return a.Port() == 7212 },
			nil, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			recs := trace(t, c.args...)
			defer func() {
				if t.Failed() {
					t.Logf("records:\n%s", harness.Describe(recs))
				}
			}()
			for _, r := range recs {
				if r.Type == "socket" && !c.pass(r.LocalAddr) && !c.pass(r.RemoteAddr) {
					t.Errorf("%s: a socket record that does not pass: %s", strings.Join(c.args, " "), r)
				}
			}
			for _, s := range c.want {
				if len(harness.Select(recs, func(r *harness.Record) bool {
					return r.Type == "socket" && r.Netns == s.ns.Inode && r.LocalAddr == s.local && r.RemoteAddr == s.remote
				})) != 1 {
					t.Errorf("want one socket record of %s %s in %s", s.local, s.remote, s.ns.Name)
				}
			}
			if c.n > 0 && (len(recs) != c.n || len(harness.Select(recs, func(r *harness.Record) bool { return r.Type == "socket" })) != c.n) {
				t.Errorf("want exactly %d socket records, got %d records", c.n, len(recs))
			}
		})
	}
}
