package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// Connections the tests of this file hold open and drive themselves, in
// process: the data is written when the test says, and both ends stay
// open as long as it needs.

// heldConn is a connection made inside namespaces by the test process.
type heldConn struct {
	cli, srv net.Conn
	client   netip.AddrPort
	server   netip.AddrPort
	received chan int // the server's byte count, at EOF
}

// openHeld listens on server inside srvNS, connects from client inside
// cliNS and starts a server that reads until EOF, then closes.
func openHeld(t *testing.T, cliNS, srvNS *harness.Namespace, client, server netip.AddrPort) *heldConn {
	t.Helper()
	h := &heldConn{client: client, server: server, received: make(chan int, 1)}
	var ln *net.TCPListener
	srvNS.MustDo(t, func() error {
		var err error
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(server))
		return err
	})
	defer ln.Close()
	cliNS.MustDo(t, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(client), Timeout: stopTimeout}
		var err error
		h.cli, err = d.Dial("tcp", server.String())
		return err
	})
	t.Cleanup(func() { h.cli.Close() })
	if err := ln.SetDeadline(time.Now().Add(stopTimeout)); err != nil {
		t.Fatal(err)
	}
	var err error
	if h.srv, err = ln.Accept(); err != nil {
		t.Fatalf("accept %s: %v", server, err)
	}
	t.Cleanup(func() { h.srv.Close() })
	go func() {
		h.srv.SetReadDeadline(time.Now().Add(runTimeout))
		n, _ := io.Copy(io.Discard, h.srv)
		h.srv.Close()
		h.received <- int(n)
	}()
	return h
}

// send writes n bytes from the client, in chunks of chunk bytes.
func (h *heldConn) send(t *testing.T, n, chunk int) {
	t.Helper()
	buf := make([]byte, chunk)
	h.cli.SetWriteDeadline(time.Now().Add(stopTimeout))
	for sent := 0; sent < n; sent += chunk {
		if _, err := h.cli.Write(buf[:min(chunk, n-sent)]); err != nil {
			t.Fatalf("send from %s: %v", h.client, err)
		}
	}
}

// close closes the client and waits for the server to read n bytes and
// close too.
func (h *heldConn) close(t *testing.T, n int) {
	t.Helper()
	h.cli.Close()
	select {
	case got := <-h.received:
		if got != n {
			t.Fatalf("server %s read %d bytes, want %d", h.server, got, n)
		}
	case <-time.After(runTimeout):
		t.Fatalf("server %s: no EOF", h.server)
	}
}

// isConn reports whether r is a conn record of h's connection.
func (h *heldConn) isConn(r *harness.Record) bool {
	if r.Type != "conn" {
		return false
	}
	return r.LocalAddr == h.client && r.RemoteAddr == h.server || r.LocalAddr == h.server && r.RemoteAddr == h.client
}

// isProgress reports whether a conn record is a progress record.
func isProgress(r *harness.Record) bool { return strings.Contains(r.Raw, `"progress":true`) }

// summaries returns h's progress records and its final summaries in recs
// (netns 0: any namespace).
func (h *heldConn) summaries(recs []*harness.Record, netns uint64) (progress, final []*harness.Record) {
	for _, r := range recs {
		if !h.isConn(r) || netns != 0 && r.Netns != netns {
			continue
		}
		if isProgress(r) {
			progress = append(progress, r)
		} else {
			final = append(final, r)
		}
	}
	return progress, final
}

func u64(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// waitRecord polls a running tracer's output until a record satisfies
// ok, for at most d; it returns nil when none did.
func waitRecord(ctx context.Context, t *testing.T, p *harness.Proc, d time.Duration, ok func(*harness.Record) bool) *harness.Record {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, r := range currentRecords(t, p) {
			if ok(r) {
				return r
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// TestProgressRecords (issue 11, --progress-interval): a connection over a
// veth pair, held open by the test, traced in the client's namespace by
// three tracers at once: --packets control with --progress-interval 1s,
// --packets control without, and --packets all with 1s. While the
// connection is open, progress records come with the data sent so far:
// in control mode the kernel's counts, read without flushing them (all
// but the first of the data packets are counted, not reported). After the
// close, the final summary of the control tracer with progress records
// is that of the one without (nothing counted twice), and no progress
// record of the connection follows it.
func TestProgressRecords(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "progress", 91)
	tracers := map[string]*harness.Proc{
		"control+progress": startTracer(ctx, t, nil, "--netns", v.A.Name, "--packets", "control", "--progress-interval", "1s"),
		"control":          startTracer(ctx, t, nil, "--netns", v.A.Name, "--packets", "control"),
		"all+progress":     startTracer(ctx, t, nil, "--netns", v.A.Name, "--packets", "all", "--progress-interval", "1s"),
	}
	const total = 256 << 10
	h := openHeld(t, v.A, v.B, netip.AddrPortFrom(v.A4, 41991), netip.AddrPortFrom(v.B4, 7991))
	h.send(t, total, 16<<10)
	for _, mode := range []string{"control+progress", "all+progress"} {
		r := waitRecord(ctx, t, tracers[mode], 20*time.Second, func(r *harness.Record) bool {
			return h.isConn(r) && isProgress(r) && u64(r.BytesOut) == total
		})
		if r == nil {
			var last string
			if p, _ := h.summaries(currentRecords(t, tracers[mode]), 0); len(p) > 0 {
				last = p[len(p)-1].Raw
			}
			t.Fatalf("%s: no progress record with bytes_out %d while the connection is open; last one: %s", mode, total, last)
		}
		if r.Complete == nil || *r.Complete || mode == "control+progress" && !strings.Contains(r.Raw, `"packets_counted":true`) {
			t.Errorf("%s: progress record %s: want complete false (and packets_counted in control mode)", mode, r.Raw)
		}
	}
	h.close(t, total)
	time.Sleep(settle)
	recs := map[string][]*harness.Record{}
	for mode, p := range tracers {
		recs[mode] = stopTracer(ctx, t, p)
	}
	finals := map[string]*harness.Record{}
	for mode := range tracers {
		progress, final := h.summaries(recs[mode], v.A.Inode)
		if len(final) != 1 {
			t.Fatalf("%s: %d final summaries of the connection, want 1:\n%s", mode, len(final), harness.Describe(recs[mode]))
		}
		finals[mode] = final[0]
		// Not complete: its TIME_WAIT goes on at exit.
		if f := final[0]; f.Complete == nil || u64(f.BytesOut) != total || f.CloseKind != "fin" {
			t.Errorf("%s: final summary %s: want bytes_out %d, closed by a FIN", mode, f.Raw, total)
		}
		if want := mode != "control"; (len(progress) > 0) != want {
			t.Errorf("%s: %d progress records", mode, len(progress))
		}
		for _, p := range progress {
			if p.Line > final[0].Line {
				t.Errorf("%s: progress record after the final summary: %s", mode, p.Raw)
			}
			if u64(p.SegsOut) > u64(final[0].SegsOut) || u64(p.BytesOut) > total {
				t.Errorf("%s: progress record beyond the final summary: %s", mode, p.Raw)
			}
		}
	}
	with, without := finals["control+progress"], finals["control"]
	if u64(with.SegsOut) != u64(without.SegsOut) || u64(with.SegsIn) != u64(without.SegsIn) ||
		u64(with.BytesOut) != u64(without.BytesOut) || u64(with.BytesIn) != u64(without.BytesIn) {
		t.Errorf("control mode with progress records: out %dB/%d in %dB/%d; without: out %dB/%d in %dB/%d",
			u64(with.BytesOut), u64(with.SegsOut), u64(with.BytesIn), u64(with.SegsIn),
			u64(without.BytesOut), u64(without.SegsOut), u64(without.BytesIn), u64(without.SegsIn))
	}
	t.Logf("final: control out %dB/%d segs in %d segs; all out %dB/%d segs in %d segs", u64(with.BytesOut), u64(with.SegsOut),
		u64(with.SegsIn), u64(finals["all+progress"].BytesOut), u64(finals["all+progress"].SegsOut), u64(finals["all+progress"].SegsIn))
}

// TestPacketsControlSweep (issue 11): forwarded traffic has no local
// socket to flush its count entries. Namespace R routes between A and B;
// tcpscope traces R (--packets control, --idle-timeout 2s: entries idle
// 1 s are swept). A connection from A to B through R sends data and stays
// open, idle: the counts of both of R's interfaces come out as counts
// records while it is still open (before, only the exit drain took them),
// the count map is empty again, and the exit log says how many entries
// were swept.
func TestPacketsControlSweep(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	a, r, b, ar, rb := routedNamespaces(ctx, t, "sweep", 92)

	tracer := startTracer(ctx, t, nil, "--netns", r.Name, "--packets", "control", "--idle-timeout", "2s")
	const total = 64 << 10
	h := openHeld(t, a, b, netip.AddrPortFrom(ar.A4, 41992), netip.AddrPortFrom(rb.B4, 7992))
	h.send(t, total, 4<<10)
	// Both of R's entries (one per interface: the client's end as local
	// on veth-a, the server's on veth-b), while the connection is open.
	swept := map[netip.AddrPort]*harness.Record{}
	waitRecord(ctx, t, tracer, 30*time.Second, func(rec *harness.Record) bool {
		if rec.Type == "counts" && (rec.LocalAddr == h.client || rec.LocalAddr == h.server) {
			swept[rec.LocalAddr] = rec
		}
		return len(swept) == 2
	})
	if len(swept) != 2 {
		t.Fatalf("counts records of the open connection: %d of 2 (no local socket flushes them: the sweep must)\n%s",
			len(swept), harness.Describe(currentRecords(t, tracer)))
	}
	for _, rec := range swept {
		if rec.Netns != r.Inode || rec.Cookie != 0 || !strings.Contains(rec.Raw, `"segs"`) {
			t.Errorf("swept counts record %s: want netns %d (R), no cookie, segments", rec.Raw, r.Inode)
		}
	}
	h.close(t, total)
	time.Sleep(settle)
	stopTracer(ctx, t, tracer)
	log := tracer.Stderr.String()
	if !strings.Contains(log, "packet count entries swept") {
		t.Errorf("exit log without the swept entries:\n%s", log)
	}
}

// TestPacketsControlNetnsKey (issue 11): the count key holds the
// namespace. tcpscope runs inside namespace T without --netns: its
// classifiers hook T's interfaces (lo), its socket events come from every
// namespace. T and U each hold a loopback connection with the same
// 4-tuple. U's connection closes first: its sockets' flush must not take
// T's counts (before, the key had no namespace: U's summary got T's
// counted packets and T's lost them). T's summary has all its data, U's
// none (no classifier watches U), and no counts record names U.
func TestPacketsControlNetnsKey(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	nsT := harness.NewNamespace(t, netnsPrefix, "nskey-t")
	nsU := harness.NewNamespace(t, netnsPrefix, "nskey-u")
	tracer := startTracer(ctx, t, nsT, "--packets", "control", "--port", "7993")
	client, server := netip.MustParseAddrPort("127.0.0.1:41993"), netip.MustParseAddrPort("127.0.0.1:7993")
	const total, other = 128 << 10, 1000
	ht := openHeld(t, nsT, nsT, client, server)
	ht.send(t, total, 8<<10)
	hu := openHeld(t, nsU, nsU, client, server)
	hu.send(t, other, other)
	hu.close(t, other)
	// U's sockets are closed: their flush ran (the server closes after its
	// EOF; the client's close is older).
	if waitRecord(ctx, t, tracer, 10*time.Second, func(r *harness.Record) bool {
		return r.Type == "state" && r.Netns == nsU.Inode && r.New == "CLOSE" && r.LocalAddr == server
	}) == nil {
		t.Fatal("no CLOSE of U's server socket")
	}
	ht.close(t, total)
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)
	for _, r := range recs {
		if (r.Type == "counts" || tookCounts(r)) && r.Netns != nsT.Inode {
			t.Errorf("counts record of another namespace than T (%d): %s", nsT.Inode, r.Raw)
		}
	}
	_, finalT := ht.summaries(recs, nsT.Inode)
	_, finalU := hu.summaries(recs, nsU.Inode)
	if len(finalT) != 1 || len(finalU) != 1 {
		t.Fatalf("summaries: %d in T, %d in U, want 1 each:\n%s", len(finalT), len(finalU), harness.Describe(recs))
	}
	if st := finalT[0]; u64(st.BytesOut)+u64(st.BytesIn) != total || !strings.Contains(st.Raw, `"packets_counted":true`) {
		t.Errorf("T's summary %s: want %d bytes (out + in), packets_counted", st.Raw, total)
	}
	if su := finalU[0]; u64(su.BytesOut)+u64(su.BytesIn) != 0 || strings.Contains(su.Raw, "packets_counted") {
		t.Errorf("U's summary %s: want no captured bytes (no classifier in U), not packets_counted", su.Raw)
	}
}

// TestPacketsControlContainerSockets (issue 11): tcpscope runs in R, the
// "host", without --netns: its classifiers hook R's interfaces, its socket
// events come from every namespace. A and B, the "containers", talk
// through R. The count entries of R's interfaces are keyed by R's
// namespace; the sockets live in A and B. Each socket's flush at its close
// still finds an entry of its connection (the client's end is local on
// the server's side of R, and the other way round), so the summary has
// the exact bytes (packets_counted), not only those of the reported
// packets.
func TestPacketsControlContainerSockets(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	a, r, b, ar, rb := routedNamespaces(ctx, t, "pods", 94)

	tracer := startTracer(ctx, t, r, "--packets", "control", "--port", "7994")
	const total = 96 << 10
	h := openHeld(t, a, b, netip.AddrPortFrom(ar.A4, 41994), netip.AddrPortFrom(rb.B4, 7994))
	h.send(t, total, 8<<10)
	h.close(t, total)
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tracer)
	// Both sockets took their entry at their close: CLOSE records with
	// the counts (or counts records) named by the sockets' namespaces, not
	// left to the exit drain (R's).
	for _, ns := range []*harness.Namespace{a, b} {
		if len(harness.Select(recs, func(r *harness.Record) bool {
			return (r.Type == "counts" || tookCounts(r)) && r.Netns == ns.Inode
		})) == 0 {
			t.Errorf("no counts record flushed by %s's socket:\n%s", ns.Name, harness.Describe(recs))
		}
	}
	// One connection, both ends local: one summary.
	_, final := h.summaries(recs, 0)
	if len(final) != 1 {
		t.Fatalf("%d summaries, want 1:\n%s", len(final), harness.Describe(recs))
	}
	if s := final[0]; u64(s.BytesOut)+u64(s.BytesIn) != total || !strings.Contains(s.Raw, `"packets_counted":true`) {
		t.Errorf("summary %s: want %d bytes (out + in), packets_counted", s.Raw, total)
	}
}

// routedNamespaces makes namespaces A, R and B, A and B each linked to R by
// a veth pair (A-R on test subnet n: A 10.200.n.1, R .2; R-B on n+1: R
// 10.200.n+1.1, B .2), R forwarding between them and A and B routed
// through it.
func routedNamespaces(ctx context.Context, t *testing.T, tag string, n int) (a, r, b *harness.Namespace, ar, rb *harness.VethPair) {
	t.Helper()
	a = harness.NewNamespace(t, netnsPrefix, tag+"-a")
	r = harness.NewNamespace(t, netnsPrefix, tag+"-r")
	b = harness.NewNamespace(t, netnsPrefix, tag+"-b")
	var err error
	if ar, err = harness.ConnectVeth(a, r, harness.TestSubnet(n)); err != nil {
		t.Fatal(err)
	}
	if rb, err = harness.ConnectVeth(r, b, harness.TestSubnet(n+1)); err != nil {
		t.Fatal(err)
	}
	harness.MustRun(ctx, t, stopTimeout, r.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")...)
	harness.MustRun(ctx, t, stopTimeout, "ip", "-n", a.Name, "route", "add", fmt.Sprintf("10.200.%d.0/24", n+1), "via", ar.B4.String())
	harness.MustRun(ctx, t, stopTimeout, "ip", "-n", b.Name, "route", "add", fmt.Sprintf("10.200.%d.0/24", n), "via", rb.A4.String())
	return a, r, b, ar, rb
}

// tookCounts reports whether rec is a socket's CLOSE record that carries
// its connection's counted packets (--packets control: the kernel takes
// the count entry there instead of writing a counts record).
func tookCounts(rec *harness.Record) bool {
	return rec.Type == "state" && rec.New == "CLOSE" && strings.Contains(rec.Raw, `"counts":{"out":`)
}
