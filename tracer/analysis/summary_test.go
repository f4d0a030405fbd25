package analysis

import (
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// at is t0 plus us microseconds.
func at(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }

// twRec is a record of the TIME_WAIT socket that replaced cookie's socket.
func twRec(us int, local, remote string, old, new tracer.TCPState, cookie uint64, end string, dur time.Duration) tracer.Record {
	r := sockEvent(us, tracer.TypeState, local, remote, old, new, cookie)
	r.TimeWait, r.TimeWaitEnd, r.TimeWaitDur = true, end, dur
	return r
}

// finishAfter feeds recs, flushes past their quiet period unless stopAt
// comes first, and stops tracing at stopAt.
func finishAfter(t *testing.T, cfg Config, recs []tracer.Record, stopAt time.Time) *collect {
	t.Helper()
	out := &collect{}
	a := New(out, cfg)
	for i := range recs {
		r := recs[i]
		if err := a.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.finishAt(stopAt); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDurationApartFromTimeWait: a 3 ms request whose client socket is
// still in TIME_WAIT when tracing stops 9 s later lasted 3 ms; its
// TIME_WAIT so far is given apart, as the local end's.
func TestDurationApartFromTimeWait(t *testing.T) {
	recs, _ := twConn() // its TIME_WAIT does not end before the stop
	stop := at(9_000_000)
	s := finishAfter(t, Config{TimeWaitTracked: true}, recs, stop).summary(t)
	if !s.Start.Equal(at(0)) || !s.End.Equal(at(3000)) {
		t.Errorf("start %v end %v, want the first and last packet or state change: %v %v", s.Start, s.End, at(0), at(3000))
	}
	if want := stop.Sub(at(2950)); s.TimeWait != want || s.TimeWaitSide != "local" {
		t.Errorf("time_wait %v side %q, want %v so far, local", s.TimeWait, s.TimeWaitSide, want)
	}
	if s.StateTime[tracer.StateTimeWait] != s.TimeWait {
		t.Errorf("state_ms TIME_WAIT %v, time_wait %v", s.StateTime[tracer.StateTimeWait], s.TimeWait)
	}
	if s.Complete {
		t.Error("still in TIME_WAIT at the stop: not complete")
	}
	// A connection still open at the stop lasted until then.
	open := finishAfter(t, Config{}, append([]tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9)}, handshake()...), stop).summary(t)
	if !open.End.Equal(stop) || !open.Start.Equal(at(0)) {
		t.Errorf("open at the stop: start %v end %v, want %v %v", open.Start, open.End, at(0), stop)
	}
}

// TestPreexistingTimeWaitNoise: a TIME_WAIT socket found at start-up has
// no start, end or duration (none of its connection was seen), and no
// TIME_WAIT time (its beginning was not seen): only how TIME_WAIT ended.
func TestPreexistingTimeWaitNoise(t *testing.T) {
	snap := sockEvent(0, tracer.TypeSocket, cli, srv, 0, tracer.StateTimeWait, 9)
	snap.Preexisting = true
	expired := twRec(30_000_000, cli, srv, tracer.StateTimeWait, tracer.StateClose, 9, "expired", 0)
	for name, c := range map[string]struct {
		recs []tracer.Record
		stop time.Time
		end  string
	}{
		"expired while tracing": {[]tracer.Record{snap, expired}, at(40_000_000), "expired"},
	} {
		t.Run(name, func(t *testing.T) {
			s := finishAfter(t, Config{TimeWaitTracked: true}, c.recs, c.stop).summary(t)
			if !s.Start.IsZero() || !s.End.IsZero() {
				t.Errorf("start %v end %v: the start-up and the stop are no times of this connection", s.Start, s.End)
			}
			if s.TimeWait != 0 || s.StateTime[tracer.StateTimeWait] != 0 {
				t.Errorf("time_wait %v state_ms %v: its beginning was not seen", s.TimeWait, s.StateTime[tracer.StateTimeWait])
			}
			if s.TimeWaitEnd != c.end || s.TimeWaitSide != "local" || !s.Preexisting || s.Local.String() != cli {
				t.Errorf("time_wait_end %q side %q preexisting %v local %s", s.TimeWaitEnd, s.TimeWaitSide, s.Preexisting, s.Local)
			}
		})
	}
	// Still in TIME_WAIT at the stop, or any other socket listed at
	// start-up that showed nothing while tracing: no summary (its socket
	// record said all that is known; on a busy host zeros would bury the
	// summaries that say something).
	idle := sockEvent(0, tracer.TypeSocket, "10.0.0.9:22", "10.0.0.8:50000", 0, tracer.StateEstablished, 7)
	idle.Preexisting, idle.Conn = true, 2
	if out := finishAfter(t, Config{TimeWaitTracked: true}, []tracer.Record{snap, idle}, at(9_000_000)); len(out.recs) != 2 ||
		out.recs[0].Type != tracer.TypeSocket || out.recs[1].Type != tracer.TypeSocket {
		t.Errorf("silent preexisting sockets: %d records, want only their 2 socket records", len(out.recs))
	}
	// A preexisting connection's state at start-up was entered before:
	// its time is not counted, later states are.
	est := sockEvent(0, tracer.TypeSocket, cli, srv, 0, tracer.StateEstablished, 9)
	est.Preexisting = true
	s := run(t, Config{}, []tracer.Record{est,
		sockEvent(5_000_000, tracer.TypeState, cli, srv, tracer.StateEstablished, tracer.StateCloseWait, 9),
		sockEvent(5_001_000, tracer.TypeState, cli, srv, tracer.StateCloseWait, tracer.StateLastAck, 9),
		sockEvent(5_002_000, tracer.TypeState, cli, srv, tracer.StateLastAck, tracer.StateClose, 9),
	}).summary(t)
	if s.StateTime[tracer.StateEstablished] != 0 || s.StateTime[tracer.StateCloseWait] != time.Millisecond || !s.Start.IsZero() ||
		!s.End.Equal(at(5_002_000)) {
		t.Errorf("preexisting: state_ms %v start %v end %v", s.StateTime, s.Start, s.End)
	}
}

// TestPeerTimeWait: both ends on this host, the server closed first: the
// summary is the client's view and says the TIME_WAIT is the remote end's.
func TestPeerTimeWait(t *testing.T) {
	const (
		est, fw1, fw2     = tracer.StateEstablished, tracer.StateFinWait1, tracer.StateFinWait2
		cw, la, cl        = tracer.StateCloseWait, tracer.StateLastAck, tracer.StateClose
		synSent, synRecv  = tracer.StateSynSent, tracer.StateSynRecv
		cliCook, srvCook  = 9, 5
		listen            = tracer.StateListen
		twDur             = 60 * time.Second
		twStart, twFinish = 2950, 2950 + 60_000_000
	)
	recs := []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, cl, synSent, cliCook),
		sockEvent(100, tracer.TypeState, srv, cli, listen, synRecv, srvCook),
		sockEvent(150, tracer.TypeState, cli, srv, synSent, est, cliCook),
		sockEvent(200, tracer.TypeState, srv, cli, synRecv, est, srvCook),
		sockEvent(2000, tracer.TypeState, srv, cli, est, fw1, srvCook),
		sockEvent(2100, tracer.TypeState, cli, srv, est, cw, cliCook),
		sockEvent(2200, tracer.TypeState, srv, cli, fw1, fw2, srvCook),
		sockEvent(2800, tracer.TypeState, cli, srv, cw, la, cliCook),
		twRec(twStart, srv, cli, fw2, tracer.StateTimeWait, srvCook, "", 0),
		sockEvent(2950, tracer.TypeState, srv, cli, fw2, cl, srvCook),
		sockEvent(3000, tracer.TypeState, cli, srv, la, cl, cliCook),
		twRec(twFinish, srv, cli, tracer.StateTimeWait, cl, srvCook, "expired", twDur),
	}
	s := run(t, Config{TimeWaitTracked: true}, recs).summary(t)
	if s.Local.String() != cli || s.Role != "client" || s.ClosedBy != "remote" {
		t.Errorf("local %s role %q closed_by %q, want the client's view", s.Local, s.Role, s.ClosedBy)
	}
	if s.TimeWait != twDur || s.TimeWaitEnd != "expired" || s.TimeWaitSide != "remote" {
		t.Errorf("time_wait %v %q side %q, want the server's 60 s, remote", s.TimeWait, s.TimeWaitEnd, s.TimeWaitSide)
	}
	if !s.End.Equal(at(3000)) || !s.Complete {
		t.Errorf("end %v complete %v, want the last state change %v, complete", s.End, s.Complete, at(3000))
	}
}

// rstEvent is a reset event; cookie 0 is a reset sent with no socket.
func rstEvent(us int, local, remote string, dir tracer.ResetDir, state tracer.TCPState, cookie uint64) tracer.Record {
	r := sockEvent(us, tracer.TypeReset, local, remote, 0, state, cookie)
	r.ResetDir = dir
	if cookie == 0 {
		r.HasState, r.State, r.Owner = false, 0, result.Owner{}
	}
	return r
}

// TestSummariesFromSelectedEvents: with --events reset (or retransmit)
// alone, every connection still gets its summary, from what those events
// tell, when it ends (a reset ends it), with the fields whose source was
// not traced absent.
func TestSummariesFromSelectedEvents(t *testing.T) {
	resetOnly := Config{Events: 1 << tracer.TypeReset, ResetEvents: true, SummaryOnly: true}
	refusedAtServer := rstEvent(100, srv, cli, tracer.ResetSent, 0, 0)
	refusedAtServer.Flags, refusedAtServer.Reason = S, "NO_SOCKET"
	cases := []struct {
		name                  string
		cfg                   Config
		recs                  []tracer.Record
		local, role, outcome  string
		sent, recv            uint64
		closedBy, kind        string
		kernelKnown, complete bool
	}{
		{"refused, client side", resetOnly,
			[]tracer.Record{rstEvent(100, cli, srv, tracer.ResetReceived, tracer.StateSynSent, 9)},
			cli, "client", "refused", 0, 1, "remote", "reset", false, true},
		{"refused, server side (no socket)", resetOnly, []tracer.Record{refusedAtServer},
			srv, "server", "refused", 1, 0, "local", "reset", false, true},
		{"refused, both ends", resetOnly,
			[]tracer.Record{refusedAtServer, rstEvent(120, cli, srv, tracer.ResetReceived, tracer.StateSynSent, 9)},
			cli, "client", "refused", 1, 1, "remote", "reset", false, true},
		{"aborted", resetOnly,
			[]tracer.Record{rstEvent(5000, cli, srv, tracer.ResetSent, tracer.StateEstablished, 9)},
			cli, "", "", 1, 0, "local", "reset", false, true},
		{"retransmit events only", Config{Events: 1 << tracer.TypeRetransmit, KernelRetransmits: true, SummaryOnly: true},
			[]tracer.Record{sockEvent(5000, tracer.TypeRetransmit, cli, srv, 0, tracer.StateEstablished, 9)},
			cli, "", "", 0, 0, "", "", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := &collect{}
			a := New(out, c.cfg)
			for i := range c.recs {
				r := c.recs[i]
				if err := a.Write(&r); err != nil {
					t.Fatal(err)
				}
			}
			// A reset ends the connection: summarized after the quiet
			// second, before the stop.
			if err := a.flushAt(c.recs[len(c.recs)-1].Time.Add(2 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if c.complete && len(out.recs) != 1 {
				t.Fatalf("%d records after the quiet second, want its summary", len(out.recs))
			}
			if err := a.finishAt(c.recs[len(c.recs)-1].Time.Add(3 * time.Second)); err != nil {
				t.Fatal(err)
			}
			s := out.summary(t)
			if s.Local.String() != c.local || s.Role != c.role || s.Outcome != c.outcome {
				t.Errorf("local %s role %q outcome %q, want %s %q %q", s.Local, s.Role, s.Outcome, c.local, c.role, c.outcome)
			}
			if s.ResetsCounted != c.cfg.ResetEvents || s.ResetsSent != c.sent || s.ResetsRecv != c.recv {
				t.Errorf("resets known %v sent %d received %d, want %v %d %d", s.ResetsCounted, s.ResetsSent, s.ResetsRecv,
					c.cfg.ResetEvents, c.sent, c.recv)
			}
			if s.ClosedBy != c.closedBy || s.CloseKind != c.kind || s.Complete != c.complete {
				t.Errorf("closed_by %q close_kind %q complete %v, want %q %q %v", s.ClosedBy, s.CloseKind, s.Complete,
					c.closedBy, c.kind, c.complete)
			}
			if s.PacketsSeen || s.KernelCounted != c.kernelKnown || !s.Start.IsZero() {
				t.Errorf("packets known %v kernel known %v start %v: no packet or opening was traced", s.PacketsSeen, s.KernelCounted, s.Start)
			}
		})
	}
}

// TestRetransmitSegmentsAndBytes: the summary counts the kernel's
// retransmit events, the segments they carried (a GSO skb is several, as
// TcpRetransSegs counts) and their payload bytes, apart from the
// retransmissions the capture saw.
func TestRetransmitSegmentsAndBytes(t *testing.T) {
	rtx := func(us int, seq, n uint32, segs uint16) tracer.Record {
		r := sockEvent(us, tracer.TypeRetransmit, cli, srv, 0, tracer.StateEstablished, 9)
		r.Seq, r.Len, r.Segs, r.Flags = seq, n, segs, P|A
		return r
	}
	recs := append([]tracer.Record{sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9)}, handshake()...)
	recs = append(recs,
		seg(1000, cli, srv, P|A, 1001, 5001, 14480, 502),
		seg(1100, cli, srv, P|A, 15481, 5001, 1448, 502),
		seg(300000, cli, srv, P|A, 1001, 5001, 14480, 502), // one GSO packet at the capture point
		rtx(300010, 1001, 14480, 10),
		rtx(600000, 15481, 1448, 1),
	)
	s := run(t, Config{KernelRetransmits: true}, recs).summary(t)
	if s.RetransKernel != 2 || s.RetransSegs != 11 || s.RetransBytes != 15928 || s.RetransSeen != 1 {
		t.Errorf("kernel %d events %d segments %d bytes, seen %d; want 2, 11, 15928, 1",
			s.RetransKernel, s.RetransSegs, s.RetransBytes, s.RetransSeen)
	}
}

// TestLocalEndInTracedNamespace: traced in the server's namespace only, a
// refused connection's local end is the server: it sent the reset (no
// socket), it closed the connection.
func TestLocalEndInTracedNamespace(t *testing.T) {
	in := func(r tracer.Record, d tracer.Direction) tracer.Record { r.Dir = d; return r }
	noSocketRST := rstEvent(50, srv, cli, tracer.ResetSent, 0, 0)
	noSocketRST.Flags, noSocketRST.Reason = S, "NO_SOCKET"
	syn := in(seg(0, cli, srv, S, 1000, 0, 0, 64240), tracer.DirIn)
	rst := in(seg(100, srv, cli, R|A, 0, 1001, 0, 0), tracer.DirOut)
	all := Config{KernelRetransmits: true, ResetEvents: true}
	cases := []struct {
		name string
		cfg  Config
		recs []tracer.Record
	}{
		{"all events", all, []tracer.Record{syn, noSocketRST, rst}},
		{"socket events only", Config{Events: 1<<tracer.TypeState | 1<<tracer.TypeReset, ResetEvents: true},
			[]tracer.Record{noSocketRST}},
		{"packets only", Config{Events: 1 << tracer.TypePacket}, []tracer.Record{syn, rst}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := run(t, c.cfg, c.recs).summary(t)
			if s.Local.String() != srv || s.Remote.String() != cli || s.Role != "server" || s.Outcome != "refused" {
				t.Errorf("local %s remote %s role %q outcome %q, want the server's view", s.Local, s.Remote, s.Role, s.Outcome)
			}
			if s.ClosedBy != "local" || s.CloseKind != "reset" {
				t.Errorf("closed_by %q close_kind %q, want local reset", s.ClosedBy, s.CloseKind)
			}
			if c.cfg.ResetEvents && (!s.ResetsCounted || s.ResetsSent != 1 || s.ResetsRecv != 0) {
				t.Errorf("resets known %v sent %d received %d, want 1 sent", s.ResetsCounted, s.ResetsSent, s.ResetsRecv)
			}
		})
	}
	// Both ends traced (lo, or both namespaces): the client's view, as
	// before.
	client := sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9)
	both := run(t, all, []tracer.Record{client, syn, noSocketRST, rst,
		rstEvent(120, cli, srv, tracer.ResetReceived, tracer.StateSynSent, 9)}).summary(t)
	if both.Local.String() != cli || both.Role != "client" || both.ClosedBy != "remote" {
		t.Errorf("both ends local: local %s role %q closed_by %q, want the client's view", both.Local, both.Role, both.ClosedBy)
	}
}
