package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestTupleReuseAfterPreexisting: a connection that exists before tcpscope
// starts is reset (SO_LINGER 0); then a new connect() from the same port
// reuses the 4-tuple with a new SYN, a new ISN and new sockets. The two
// are two connections: every record of the first (its socket records
// listed at start-up, the RST, both sockets' reset and CLOSE events)
// carries one conn, every record of the second another, and each has its
// own summary (the first preexisting, the second established, with the
// ISN of its SYN). The second closes normally, the client first: its
// TIME_WAIT start comes out before the FIN_WAIT2 -> CLOSE it replaces,
// and every socket's records, and the connection's, come out in
// timestamp order.
func TestTupleReuseAfterPreexisting(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "reuse")
	server := netip.MustParseAddrPort("127.0.0.1:7721")
	client := netip.MustParseAddrPort("127.0.0.1:41721")
	var ln *net.TCPListener
	ns.MustDo(t, func() error {
		var err error
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(server))
		return err
	})
	t.Cleanup(func() { ln.Close() })

	// dial connects from client to server and returns both ends.
	dial := func() (cli, srv *net.TCPConn) {
		t.Helper()
		ns.MustDo(t, func() error {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(client), Timeout: stopTimeout}
			c, err := d.DialContext(ctx, "tcp", server.String())
			if err == nil {
				cli = c.(*net.TCPConn)
			}
			return err
		})
		t.Cleanup(func() { cli.Close() })
		if err := ln.SetDeadline(time.Now().Add(stopTimeout)); err != nil {
			t.Fatal(err)
		}
		s, err := ln.AcceptTCP()
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return cli, s
	}
	exchange := func(from, to *net.TCPConn) {
		t.Helper()
		if err := to.SetDeadline(time.Now().Add(stopTimeout)); err != nil {
			t.Fatal(err)
		}
		if _, err := from.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := to.Read(buf); err != nil {
			t.Fatal(err)
		}
	}

	oldCli, oldSrv := dial()
	exchange(oldCli, oldSrv)
	tr := startTracer(ctx, t, ns, "-i", "lo")
	// Reset the preexisting connection: SO_LINGER 0, close.
	if err := oldCli.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	oldCli.Close()
	buf := make([]byte, 1)
	if err := oldSrv.SetDeadline(time.Now().Add(stopTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := oldSrv.Read(buf); err == nil {
		t.Fatal("the server read data, want the reset")
	}
	oldSrv.Close()
	time.Sleep(200 * time.Millisecond) // the tuple is free at once: no TIME_WAIT after a reset
	second := time.Now()
	newCli, newSrv := dial()
	exchange(newCli, newSrv)
	exchange(newSrv, newCli)
	newCli.Close() // the client closes first: its end goes to TIME_WAIT
	if err := newSrv.SetDeadline(time.Now().Add(stopTimeout)); err != nil {
		t.Fatal(err)
	}
	if n, err := newSrv.Read(buf); n != 0 || err == nil {
		t.Fatalf("server read %d bytes, %v; want EOF", n, err)
	}
	newSrv.Close()
	time.Sleep(settle)
	recs := stopTracer(ctx, t, tr)

	run := &connRun{client: client, server: server}
	var first, next uint64
	var syn *harness.Record
	for _, r := range harness.Select(recs, run.isConn) {
		if r.Type == "conn" {
			continue
		}
		id := &first
		if !r.Time.Before(second) {
			id = &next
		}
		if *id == 0 {
			*id = r.ConnID()
		}
		if r.ConnID() != *id {
			t.Errorf("record in conn %d, want %d (the %s connection): %s", r.ConnID(), *id, map[bool]string{true: "first", false: "second"}[id == &first], r)
		}
		if id == &next && r.Type == "packet" && r.Flags == "S" && syn == nil {
			syn = r
		}
	}
	if first == 0 || next == 0 || syn == nil {
		t.Fatalf("records of the first connection in conn %d, of the second in conn %d, SYN of the second %v:\n%s", first, next, syn, harness.Describe(harness.Select(recs, run.isConn)))
	}
	if first == next {
		t.Errorf("both connections in conn %d", first)
	}

	summaries := map[uint64]map[string]any{}
	for _, r := range recs {
		if r.Type != "conn" || (r.ConnID() != first && r.ConnID() != next) {
			continue
		}
		if summaries[r.ConnID()] != nil {
			t.Errorf("two summaries of conn %d", r.ConnID())
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Raw), &m); err != nil {
			t.Fatal(err)
		}
		summaries[r.ConnID()] = m
	}
	if s := summaries[first]; s == nil || s["preexisting"] != true {
		t.Errorf("summary of the preexisting connection: %v", s)
	}
	if s := summaries[next]; s == nil || s["preexisting"] == true || s["outcome"] != "established" ||
		s["isn_local"] != float64(*syn.Seq) || s["local"] != client.String() {
		t.Errorf("summary of the second connection (SYN seq %d): %v", *syn.Seq, s)
	}

	// Order: the client's TIME_WAIT start before the CLOSE it replaces;
	// each socket's records and the connection's in timestamp order.
	var twStart, finClose int
	for i, r := range recs {
		if r.Type == "state" && r.LocalAddr == client && r.ConnID() == next && r.Old == "FIN_WAIT2" {
			if r.New == "TIME_WAIT" {
				twStart = i + 1
			} else if r.New == "CLOSE" {
				finClose = i + 1
			}
		}
	}
	if twStart == 0 || finClose == 0 || twStart > finClose {
		t.Errorf("FIN_WAIT2 -> TIME_WAIT is record %d, FIN_WAIT2 -> CLOSE record %d (0: missing): want the TIME_WAIT start first", twStart, finClose)
	}
	last := map[uint64]*harness.Record{} // by cookie; 0: the connection
	for _, r := range harness.Select(recs, run.isConn) {
		if r.Type == "conn" || r.Type == "socket" {
			continue
		}
		for _, k := range []uint64{0, r.Cookie} {
			if p := last[k]; p != nil && r.Time.Before(p.Time) {
				t.Errorf("out of timestamp order (cookie %d): %s after %s", k, r, p)
			}
			last[k] = r
		}
	}
	if t.Failed() {
		t.Logf("records of the 4-tuple:\n%s", harness.Describe(harness.Select(recs, run.isConn)))
	}
}
