package analysis

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

const (
	cli = "10.0.0.1:40000"
	srv = "10.0.0.2:80"
)

// collect is a tracer.Sink that keeps copies of what it gets.
type collect struct{ recs []tracer.Record }

// Write keeps a copy of r and of its summary (both reused after Write).
func (c *collect) Write(r *tracer.Record) error {
	c.recs = append(c.recs, *r)
	c.recs[len(c.recs)-1].Slot = nil
	if r.Summary != nil {
		sum := *r.Summary
		c.recs[len(c.recs)-1].Summary = &sum
	}
	return nil
}
func (c *collect) Flush() error { return nil }

func (c *collect) packets() []tracer.Record {
	var out []tracer.Record
	for _, r := range c.recs {
		if r.Type == tracer.TypePacket {
			out = append(out, r)
		}
	}
	return out
}

// count is the number of records of type typ.
func (c *collect) count(typ tracer.RecordType) int {
	n := 0
	for _, r := range c.recs {
		if r.Type == typ {
			n++
		}
	}
	return n
}

func (c *collect) summary(t *testing.T) *result.ConnSummary {
	t.Helper()
	var s *result.ConnSummary
	for _, r := range c.recs {
		if r.Type == tracer.TypeConn {
			if s != nil {
				t.Fatal("two conn records")
			}
			s = r.Summary
		}
	}
	if s == nil {
		t.Fatal("no conn record")
	}
	return s
}

// seg builds a packet record; at is in microseconds from t0.
func seg(at int, src, dst string, flags uint8, seq, ack uint32, length uint32, win uint16) tracer.Record {
	return tracer.Record{Type: tracer.TypePacket, Time: t0.Add(time.Duration(at) * time.Microsecond), Conn: 1,
		Ifindex: 2, Ifname: "veth0", Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst),
		Flags: flags, Seq: seq, Ack: ack, Len: length, Win: win}
}

func withWScale(r tracer.Record, ws uint8) tracer.Record {
	r.Options.Present |= tracer.OptWScale
	r.Options.WScale = ws
	return r
}

func withTCPInfo(r tracer.Record, srttUs, cwnd uint32) tracer.Record {
	r.HasTCPInfo, r.SRTTMicros, r.Cwnd = true, srttUs, cwnd
	return r
}

func sockEvent(at int, typ tracer.RecordType, local, remote string, old, new tracer.TCPState, cookie uint64) tracer.Record {
	return tracer.Record{Type: typ, Time: t0.Add(time.Duration(at) * time.Microsecond), Conn: 1, Netns: 7,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		OldState: old, State: new, HasState: true, Cookie: cookie,
		Owner: result.Owner{Known: true, PID: 42, Comm: [16]byte{'c', 'u', 'r', 'l'}}}
}

const (
	S = tracer.FlagSYN
	A = tracer.FlagACK
	P = tracer.FlagPSH
	F = tracer.FlagFIN
	R = tracer.FlagRST
)

// handshake: client ISN 1000, server ISN 5000, both window scale 7.
func handshake() []tracer.Record {
	return []tracer.Record{
		withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7),
		withWScale(seg(100, srv, cli, S|A, 5000, 1001, 0, 508), 7),
		seg(200, cli, srv, A, 1001, 5001, 0, 502),
	}
}

// run analyses recs and returns the output. It does so three times, the
// records carrying no correlator slot (Record.Slot), a slot per
// connection (as the correlator gives), and one slot shared by every
// record (always another connection's state, or a summarized one's): the
// output must not differ.
func run(t *testing.T, cfg Config, recs []tracer.Record) *collect {
	t.Helper()
	out := runSlots(t, cfg, recs, func(*tracer.Record) *tracer.ConnSlot { return nil })
	perConn := map[uint64]*tracer.ConnSlot{}
	withSlots := runSlots(t, cfg, recs, func(r *tracer.Record) *tracer.ConnSlot {
		if perConn[r.Conn] == nil {
			perConn[r.Conn] = &tracer.ConnSlot{}
		}
		return perConn[r.Conn]
	})
	shared := &tracer.ConnSlot{}
	withShared := runSlots(t, cfg, recs, func(*tracer.Record) *tracer.ConnSlot { return shared })
	for name, got := range map[string]*collect{"a slot per connection": withSlots, "one shared slot": withShared} {
		if !reflect.DeepEqual(got.recs, out.recs) {
			t.Fatalf("with %s the output differs from the output without slots", name)
		}
	}
	return out
}

func runSlots(t *testing.T, cfg Config, recs []tracer.Record, slot func(*tracer.Record) *tracer.ConnSlot) *collect {
	t.Helper()
	out := &collect{}
	a := New(out, cfg)
	for i := range recs {
		r := recs[i]
		if r.Conn != 0 && r.Type != tracer.TypeConn {
			r.Slot = slot(&r)
		}
		if err := a.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	// Past the quiet period of the last record, within the idle timeout.
	if err := a.flushAt(recs[len(recs)-1].Time.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.finishAt(recs[len(recs)-1].Time.Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return out
}

func verdictsOf(recs []tracer.Record) []result.Verdicts {
	var v []result.Verdicts
	for _, r := range recs {
		v = append(v, r.Verdicts)
	}
	return v
}

func TestCleanConnection(t *testing.T) {
	recs := append(handshake(),
		seg(300, cli, srv, P|A, 1001, 5001, 100, 502),
		seg(400, srv, cli, A, 5001, 1101, 0, 508),
		seg(500, srv, cli, P|A, 5001, 1101, 50, 508),
		seg(600, cli, srv, A, 1101, 5051, 0, 502),
		seg(700, cli, srv, F|A, 1101, 5051, 0, 502),
		seg(800, srv, cli, F|A, 5051, 1102, 0, 508),
		seg(900, cli, srv, A, 1102, 5052, 0, 502),
	)
	out := run(t, Config{}, recs)
	pk := out.packets()
	for i, r := range pk {
		if r.Verdicts != 0 {
			t.Errorf("packet %d: verdicts %b on a clean connection", i, r.Verdicts)
		}
	}
	// Relative numbers as Wireshark shows them.
	if pk[3].RelSeq != 1 || pk[3].RelAck != 1 || pk[5].RelSeq != 1 || pk[5].RelAck != 101 || pk[9].RelAck != 52 {
		t.Errorf("relative numbers: %d/%d %d/%d %d", pk[3].RelSeq, pk[3].RelAck, pk[5].RelSeq, pk[5].RelAck, pk[9].RelAck)
	}
	s := out.summary(t)
	if s.Outcome != "established" || s.HandshakeRTT != 100*time.Microsecond || s.SynAckToAck != 100*time.Microsecond {
		t.Errorf("handshake: %+v", s)
	}
	if !s.HasISN || s.ISNLocal != 1000 || s.ISNRemote != 5000 {
		t.Errorf("ISNs %d %d", s.ISNLocal, s.ISNRemote)
	}
	if s.BytesOut != 100 || s.BytesIn != 50 || s.ClosedBy != "local" || s.CloseKind != "fin" || s.HalfClose != 100*time.Microsecond {
		t.Errorf("data/close: %+v", s)
	}
	// Each side's FIN sent before the other's arrived: simultaneous.
	both := run(t, Config{}, append(handshake(),
		seg(700, cli, srv, F|A, 1001, 5001, 0, 502),
		seg(710, srv, cli, F|A, 5001, 1001, 0, 508),
	)).summary(t)
	if both.ClosedBy != "both" {
		t.Errorf("simultaneous close: closed_by %q", both.ClosedBy)
	}
	if !s.Complete {
		t.Error("both FINs acknowledged and quiet: the connection is gone")
	}
}

func TestRetransmissionsKinds(t *testing.T) {
	base := append(handshake(),
		seg(1000, cli, srv, P|A, 1001, 5001, 100, 502), // 1001-1101
		seg(1100, cli, srv, P|A, 1101, 5001, 100, 502), // 1101-1201
	)
	cases := []struct {
		name string
		more []tracer.Record
		want result.Verdicts
	}{
		{"retransmission", []tracer.Record{seg(300000, cli, srv, P|A, 1001, 5001, 100, 502)}, result.VerdictRetransmission},
		{"out of order", []tracer.Record{seg(1200, cli, srv, P|A, 1001, 5001, 50, 502)}, result.VerdictOutOfOrder},
		{"spurious", []tracer.Record{
			seg(2000, srv, cli, A, 5001, 1201, 0, 508),
			seg(300000, cli, srv, P|A, 1001, 5001, 100, 502)}, result.VerdictSpuriousRetransmission},
		{"fast", []tracer.Record{
			seg(2000, srv, cli, A, 5001, 1001, 0, 508),
			seg(2100, srv, cli, A, 5001, 1001, 0, 508),
			seg(2200, srv, cli, A, 5001, 1001, 0, 508),
			seg(2300, srv, cli, A, 5001, 1001, 0, 508),
			seg(9000, cli, srv, P|A, 1001, 5001, 100, 502)}, result.VerdictFastRetransmission},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := run(t, Config{}, append(append([]tracer.Record{}, base...), c.more...))
			pk := out.packets()
			last := pk[len(pk)-1]
			if last.Verdicts&^result.VerdictRetransmission != c.want&^result.VerdictRetransmission ||
				last.Verdicts&result.VerdictRetransmission == 0 && c.want != result.VerdictOutOfOrder {
				t.Errorf("verdicts %b, want %b", last.Verdicts, c.want)
			}
		})
	}
}

func TestDuplicateACKsAreCounted(t *testing.T) {
	recs := append(handshake(),
		seg(1000, cli, srv, P|A, 1001, 5001, 100, 502),
		seg(1100, cli, srv, P|A, 1201, 5001, 100, 502), // 1101-1201 lost
		seg(2000, srv, cli, A, 5001, 1101, 0, 508),
		seg(2100, srv, cli, A, 5001, 1101, 0, 508),
		seg(2200, srv, cli, A, 5001, 1101, 0, 508),
	)
	pk := run(t, Config{}, recs).packets()
	for i, want := range []uint32{1, 2} {
		r := pk[len(pk)-2+i]
		if r.Verdicts&result.VerdictDuplicateACK == 0 || r.DupAckCount != want {
			t.Errorf("dup ack %d: verdicts %b count %d", i, r.Verdicts, r.DupAckCount)
		}
	}
	if pk[len(pk)-3].Verdicts != 0 {
		t.Error("the first ACK of a value is not a duplicate")
	}
}

func TestLostAndUnseen(t *testing.T) {
	recs := append(handshake(),
		seg(1000, cli, srv, P|A, 1201, 5001, 100, 502), // 1001-1201 never seen
		seg(2000, srv, cli, A, 5001, 1301, 0, 508),     // acks the unseen 1001-1201
		seg(3000, srv, cli, A, 5001, 1401, 0, 508),     // the same gap: said once (as tshark)
		seg(4000, cli, srv, P|A, 1301, 5001, 100, 502),
		seg(4500, srv, cli, P|A, 5001, 1401, 10, 508),
		seg(5000, cli, srv, P|A, 1401, 5011, 100, 502), // the client's ack moves
		seg(6000, srv, cli, A, 5011, 1501, 0, 508),     // so the gap is said again
	)
	pk := run(t, Config{}, recs).packets()
	if pk[3].Verdicts&result.VerdictLostSegment == 0 {
		t.Errorf("gap: %b, want lost_segment", pk[3].Verdicts)
	}
	want := []bool{4: true, 5: false, 6: false, 7: false, 8: false, 9: true}
	for i := 4; i < len(want); i++ {
		if got := pk[i].Verdicts&result.VerdictAckUnseenSegment != 0; got != want[i] {
			t.Errorf("packet %d: ack_unseen_segment %v, want %v (verdicts %b)", i, got, want[i], pk[i].Verdicts)
		}
	}
}

func TestWindowVerdicts(t *testing.T) {
	recs := append(handshake(),
		seg(1000, cli, srv, P|A, 1001, 5001, 100, 502),
		seg(2000, srv, cli, A, 5001, 1101, 0, 0),         // zero window
		seg(4000, cli, srv, P|A, 1101, 5001, 1, 502),     // zero window probe
		seg(5000, srv, cli, A, 5001, 1101, 0, 100),       // window update
		seg(6000, cli, srv, P|A, 1101, 5001, 12800, 502), // fills 100<<7 = 12800: window full
	)
	pk := run(t, Config{}, recs).packets()
	checks := []struct {
		i    int
		want result.Verdicts
	}{
		{4, result.VerdictZeroWindow},
		{5, result.VerdictZeroWindowProbe},
		{6, result.VerdictWindowUpdate},
		{7, result.VerdictWindowFull},
	}
	for _, c := range checks {
		if pk[c.i].Verdicts != c.want {
			t.Errorf("packet %d: verdicts %b, want exactly %b", c.i, pk[c.i].Verdicts, c.want)
		}
	}
}

func TestKeepAliveAndAck(t *testing.T) {
	recs := append(handshake(),
		seg(1000, cli, srv, A, 1000, 5001, 0, 502), // keep-alive: seq = next - 1
		seg(1100, srv, cli, A, 5001, 1001, 0, 508), // its ack
	)
	pk := run(t, Config{}, recs).packets()
	if pk[3].Verdicts != result.VerdictKeepAlive {
		t.Errorf("keep-alive: %b", pk[3].Verdicts)
	}
	if pk[4].Verdicts&result.VerdictKeepAliveACK == 0 {
		t.Errorf("keep-alive ack: %b", pk[4].Verdicts)
	}
}

// TestPerCapturePoint: the same packet on two interfaces is not a
// retransmission.
func TestPerCapturePoint(t *testing.T) {
	a := seg(1000, cli, srv, P|A, 1001, 5001, 100, 502)
	b := a
	b.Ifindex, b.Time = 3, a.Time.Add(time.Millisecond*10)
	pk := run(t, Config{}, append(handshake(), a, b)).packets()
	if pk[4].Verdicts != 0 {
		t.Errorf("same packet on another interface: %b", pk[4].Verdicts)
	}
}

// TestKernelConfirmation: a retransmission seen on the wire is confirmed
// by the sending socket's tcp_retransmit_skb event, which the kernel emits
// after the packet passed TC; without one it is contradicted once the
// wait is over; a remote sender, or untraced retransmits, leave it unknown.
func TestKernelConfirmation(t *testing.T) {
	client := sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9)
	data := seg(1000, cli, srv, P|A, 1001, 5001, 100, 502)
	again := seg(300000, cli, srv, P|A, 1001, 5001, 100, 502)
	rtxEvent := sockEvent(300010, tracer.TypeRetransmit, cli, srv, 0, tracer.StateEstablished, 9)
	rtxEvent.Seq, rtxEvent.Len = 1001, 100
	local := append([]tracer.Record{client}, handshake()...)
	cfg := Config{KernelRetransmits: true}

	last := func(out *collect) tracer.Record {
		pk := out.packets()
		return pk[len(pk)-1]
	}
	out := run(t, cfg, append(append(local, data, again), rtxEvent))
	if r := last(out); r.Verdicts&result.VerdictRetransmission == 0 || r.KernelConfirmed != 1 {
		t.Errorf("with the kernel event after it: verdicts %b confirmed %d", r.Verdicts, r.KernelConfirmed)
	}
	// The held packet comes out before the event that confirmed it.
	for i, r := range out.recs {
		if r.Type == tracer.TypeRetransmit && out.recs[i-1].Type != tracer.TypePacket {
			t.Errorf("retransmit event not right after its packet: %v", out.recs[i-1].Type)
		}
	}
	if r := last(run(t, cfg, append(local, data, again))); r.KernelConfirmed != -1 {
		t.Errorf("no kernel event from a local socket: confirmed %d, want -1", r.KernelConfirmed)
	}
	if r := last(run(t, cfg, append(handshake(), data, again))); r.KernelConfirmed != 0 {
		t.Errorf("remote sender: confirmed %d, want 0 (unknown)", r.KernelConfirmed)
	}
	if r := last(run(t, Config{}, append(local, data, again))); r.KernelConfirmed != 0 {
		t.Errorf("retransmit events not traced: confirmed %d, want 0", r.KernelConfirmed)
	}
}

func TestOutcomes(t *testing.T) {
	refused := run(t, Config{}, []tracer.Record{
		seg(0, cli, srv, S, 1000, 0, 0, 64240),
		seg(100, srv, cli, R|A, 0, 1001, 0, 0),
	}).summary(t)
	if refused.Outcome != "refused" || refused.CloseKind != "reset" || refused.ClosedBy != "remote" ||
		refused.Incomplete != "" || !refused.Complete {
		t.Errorf("refused: %+v", refused)
	}
	timeout := run(t, Config{}, []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
		seg(10, cli, srv, S, 1000, 0, 0, 64240),
		seg(1000010, cli, srv, S, 1000, 0, 0, 64240),
		sockEvent(3000000, tracer.TypeState, cli, srv, tracer.StateSynSent, tracer.StateClose, 9),
	}).summary(t)
	if timeout.Outcome != "timeout" || timeout.SynRetrans != 1 || !timeout.Complete || timeout.CloseKind != "timeout" {
		t.Errorf("timeout: %+v", timeout)
	}
}

// TestSummaryAfterSocketsClose: with socket events, the summary comes when
// every local socket is gone (complete), with state times and owner.
func TestSummaryAfterSocketsClose(t *testing.T) {
	recs := []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
		sockEvent(100, tracer.TypeState, cli, srv, tracer.StateSynSent, tracer.StateEstablished, 9),
		withTCPInfo(sockEvent(1100, tracer.TypeState, cli, srv, tracer.StateEstablished, tracer.StateFinWait1, 9), 250, 10),
		sockEvent(1200, tracer.TypeState, cli, srv, tracer.StateFinWait1, tracer.StateCloseWait+100, 9), // unknown state
		sockEvent(1300, tracer.TypeState, cli, srv, tracer.StateCloseWait+100, tracer.StateClose, 9),
	}
	out := &collect{}
	a := New(out, Config{})
	for i := range recs {
		if err := a.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Not before a quiet second: late packets may still come.
	if err := a.flushAt(t0.Add(1400 * time.Microsecond)); err != nil || out.recs[len(out.recs)-1].Type == tracer.TypeConn {
		t.Fatalf("summarized before the quiet period: %v", err)
	}
	if err := a.flushAt(t0.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	s := out.summary(t)
	if !s.Complete || s.StateTime[tracer.StateEstablished] != time.Millisecond || s.Owner.PID != 42 || s.Role != "client" ||
		s.SRTT != 250*time.Microsecond || s.Cwnd != 10 {
		t.Errorf("summary: %+v", s)
	}
}

func TestSummaryOnly(t *testing.T) {
	out := run(t, Config{SummaryOnly: true}, append(handshake(), seg(300, srv, cli, R, 5001, 0, 0, 0)))
	if len(out.recs) != 1 {
		t.Errorf("%d records, want the one summary", len(out.recs))
	}
	for _, r := range out.recs {
		if r.Type != tracer.TypeConn {
			t.Errorf("summary-only passed a %s record", r.Type)
		}
	}
}

// TestBoundedTable: beyond MaxConns the least recently seen connection is
// summarized as evicted.
func TestBoundedTable(t *testing.T) {
	out := &collect{}
	a := New(out, Config{MaxConns: 2})
	for i := 1; i <= 3; i++ {
		r := seg(i, cli, srv, A, 1, 1, 0, 1)
		r.Conn = uint64(i)
		if err := a.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.conns) != 2 || len(out.recs) != 4 || out.recs[2].Type != tracer.TypeConn ||
		out.recs[2].Conn != 1 || !out.recs[2].Summary.Evicted {
		t.Errorf("after 3 conns with a cap of 2: %d tracked, records %+v", len(a.conns), out.recs)
	}
}

// TestOutOfOrderKernelTruth: an out-of-order guess on a packet the kernel
// retransmitted is confirmed as a retransmission.
func TestOutOfOrderKernelTruth(t *testing.T) {
	client := sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9)
	rtx := sockEvent(1210, tracer.TypeRetransmit, cli, srv, 0, tracer.StateEstablished, 9)
	rtx.Seq, rtx.Len = 1001, 100
	pk := run(t, Config{KernelRetransmits: true}, append(append([]tracer.Record{client}, handshake()...),
		seg(1000, cli, srv, P|A, 1001, 5001, 100, 502),
		seg(1100, cli, srv, P|A, 1101, 5001, 100, 502),
		seg(1200, cli, srv, P|A, 1001, 5001, 100, 502), // within the iRTT window
		rtx,
	)).packets()
	last := pk[len(pk)-1]
	if last.Verdicts != result.VerdictOutOfOrder || last.KernelConfirmed != 1 {
		t.Errorf("verdicts %b confirmed %d, want out_of_order confirmed", last.Verdicts, last.KernelConfirmed)
	}
}

// stopAfter passes n records on, then asks to stop, like --count.
type stopAfter struct {
	collect
	left int
}

func (s *stopAfter) Write(r *tracer.Record) error {
	if s.left <= 0 {
		return tracer.ErrStop
	}
	s.left--
	return s.collect.Write(r)
}

// TestStopDuringFlush: when the sink asks to stop while summaries are
// written at a flush, the sink is still flushed and nothing more is
// written.
func TestStopDuringFlush(t *testing.T) {
	sink := &stopAfter{left: 1}
	a := New(sink, Config{SummaryOnly: true})
	for i := 1; i <= 2; i++ {
		for _, r := range []tracer.Record{
			seg(0, cli, srv, S, 1000, 0, 0, 64240),
			seg(100, srv, cli, R|A, 0, 1001, 0, 0),
		} {
			r.Conn = uint64(i)
			if err := a.Write(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.flushAt(t0.Add(5 * time.Second)); err != tracer.ErrStop {
		t.Fatalf("flush: %v, want ErrStop", err)
	}
	if len(sink.recs) != 1 {
		t.Errorf("%d records written, want 1", len(sink.recs))
	}
	r := seg(200, cli, srv, A, 1, 1, 0, 1)
	if err := a.Write(&r); err != tracer.ErrStop {
		t.Errorf("write after stop: %v", err)
	}
}

// TestOneSummaryPerConnection: a record arriving after the summary is
// passed on but starts no second summary.
func TestOneSummaryPerConnection(t *testing.T) {
	out := run(t, Config{}, []tracer.Record{
		seg(0, cli, srv, S, 1000, 0, 0, 64240),
		seg(100, srv, cli, R|A, 0, 1001, 0, 0),
	})
	a := New(out, Config{})
	a.markGone(1, t0, true)
	late := seg(9000000, srv, cli, R|A, 0, 1001, 0, 0)
	if err := a.Write(&late); err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range out.recs {
		if r.Type == tracer.TypeConn {
			n++
		}
	}
	if n != 1 || out.recs[len(out.recs)-1].Analyzed {
		t.Errorf("%d conn records; late record analyzed: %v", n, out.recs[len(out.recs)-1].Analyzed)
	}
}

// TestHandshakeAtOnePoint: a connection seen on two interfaces has no
// SYN retransmission.
func TestHandshakeAtOnePoint(t *testing.T) {
	var recs []tracer.Record
	for _, r := range handshake() {
		recs = append(recs, r)
		r.Ifindex = 3
		recs = append(recs, r)
	}
	s := run(t, Config{}, append(recs, seg(300, srv, cli, R, 5001, 0, 0, 0))).summary(t)
	if s.SynRetrans != 0 || s.HandshakeRTT != 100*time.Microsecond {
		t.Errorf("syn retransmits %d, rtt %s", s.SynRetrans, s.HandshakeRTT)
	}
}

// TestTimeWaitObserved: with TIME_WAIT observed, a TIME_WAIT that ends
// within the quiet second after the sockets closed is in the summary (how
// long, how it ended); one that goes on does not hold the summary back:
// it says only that TIME_WAIT began (time_wait_side), and the TIME_WAIT's
// end record later starts no second summary.
// TestTimeWaitKillAfterSummary: a TIME_WAIT killed after its
// connection's summary (a new connect() taking the 4-tuple over 2 s
// later, tcp_tw_reuse) gets its cause on the TIME_WAIT -> CLOSE record.
// Nothing is kept for the TIME_WAIT meanwhile but the summarized id, and
// the sign goes signKeep after it.
func TestTimeWaitKillAfterSummary(t *testing.T) {
	tw := func(at int, old, new tracer.TCPState, end string, dur time.Duration) tracer.Record {
		return twRec(at, cli, srv, old, new, 9, end, dur)
	}
	closed := []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
		sockEvent(100, tracer.TypeState, cli, srv, tracer.StateSynSent, tracer.StateEstablished, 9),
		sockEvent(200, tracer.TypeState, cli, srv, tracer.StateEstablished, tracer.StateFinWait1, 9),
		sockEvent(300, tracer.TypeState, cli, srv, tracer.StateFinWait1, tracer.StateFinWait2, 9),
		tw(399, tracer.StateFinWait2, tracer.StateTimeWait, "", 0),
		sockEvent(400, tracer.TypeState, cli, srv, tracer.StateFinWait2, tracer.StateClose, 9),
	}
	out := &collect{}
	a := New(out, Config{TimeWaitTracked: true})
	feed(t, a, closed)
	a.latest = t0.Add(1500 * time.Millisecond).UnixNano()
	if err := a.flushAt(t0.Add(1500 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n := out.count(tracer.TypeConn); n != 1 {
		t.Fatalf("%d summaries after the quiet second, want 1", n)
	}
	if len(a.conns) != 0 || a.gone.ids != 1 || len(a.kill.q) != 0 || len(a.kill.kills) != 0 {
		t.Fatalf("after the summary: %d connections, %d gone ids, %d signs, %d kills; want the gone id only",
			len(a.conns), a.gone.ids, len(a.kill.q), len(a.kill.kills))
	}
	reuse := sockEvent(2_000_000, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 10)
	reuse.Conn = 2
	feed(t, a, []tracer.Record{reuse, tw(2_000_010, tracer.StateTimeWait, tracer.StateClose, "killed", 2*time.Second)})
	end := out.recs[len(out.recs)-1]
	if end.State != tracer.StateClose || !end.TimeWait || end.TimeWaitKill != "tw_reuse" {
		t.Errorf("TIME_WAIT end record: %s timewait %v kill %q, want CLOSE by tw_reuse", end.State, end.TimeWait, end.TimeWaitKill)
	}
	// Signs expire by record time (the clock, past backlogSlack).
	if err := a.flushAt(t0.Add(2*time.Second + backlogSlack + signKeep + time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n := len(a.kill.q) - a.kill.head; n != 0 {
		t.Errorf("%d signs signKeep after the last, want 0", n)
	}
}

// TestTimeWaitKillAfterTakeover: the kill record of a summarized
// connection's TIME_WAIT (held back by the tracer) comes after the new
// connection on its 4-tuple went to TIME_WAIT itself: the record still
// finds its own entry and names the kill.
func TestTimeWaitKillAfterTakeover(t *testing.T) {
	tw := func(at int, conn uint64, cookie uint64, old, new tracer.TCPState, end string, dur time.Duration) tracer.Record {
		r := twRec(at, cli, srv, old, new, cookie, end, dur)
		r.Conn = conn
		return r
	}
	state := func(at int, old, new tracer.TCPState) tracer.Record {
		r := sockEvent(at, tracer.TypeState, cli, srv, old, new, 10)
		r.Conn = 2
		return r
	}
	out := &collect{}
	a := New(out, Config{TimeWaitTracked: true})
	feed(t, a, []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
		sockEvent(100, tracer.TypeState, cli, srv, tracer.StateSynSent, tracer.StateEstablished, 9),
		sockEvent(200, tracer.TypeState, cli, srv, tracer.StateEstablished, tracer.StateFinWait1, 9),
		sockEvent(300, tracer.TypeState, cli, srv, tracer.StateFinWait1, tracer.StateFinWait2, 9),
		tw(399, 1, 9, tracer.StateFinWait2, tracer.StateTimeWait, "", 0),
		sockEvent(400, tracer.TypeState, cli, srv, tracer.StateFinWait2, tracer.StateClose, 9),
	})
	if err := a.flushAt(t0.Add(1500 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	feed(t, a, []tracer.Record{
		state(2_000_000, tracer.StateClose, tracer.StateSynSent),
		state(2_000_100, tracer.StateSynSent, tracer.StateEstablished),
		state(2_000_200, tracer.StateEstablished, tracer.StateFinWait1),
		state(2_000_300, tracer.StateFinWait1, tracer.StateFinWait2),
		tw(2_000_399, 2, 10, tracer.StateFinWait2, tracer.StateTimeWait, "", 0),
		state(2_000_400, tracer.StateFinWait2, tracer.StateClose),
		tw(2_000_010, 1, 9, tracer.StateTimeWait, tracer.StateClose, "killed", 2*time.Second),
	})
	end := out.recs[len(out.recs)-1]
	if end.Conn != 1 || end.State != tracer.StateClose || !end.TimeWait || end.TimeWaitKill != "tw_reuse" {
		t.Errorf("TIME_WAIT end record: conn %d %s timewait %v kill %q, want conn 1 CLOSE by tw_reuse",
			end.Conn, end.State, end.TimeWait, end.TimeWaitKill)
	}
}

func TestTimeWaitObserved(t *testing.T) {
	tw := func(at int, old, new tracer.TCPState, end string, dur time.Duration) tracer.Record {
		r := sockEvent(at, tracer.TypeState, cli, srv, old, new, 9)
		r.TimeWait, r.TimeWaitEnd, r.TimeWaitDur = true, end, dur
		return r
	}
	recs := []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
		sockEvent(100, tracer.TypeState, cli, srv, tracer.StateSynSent, tracer.StateEstablished, 9),
		sockEvent(200, tracer.TypeState, cli, srv, tracer.StateEstablished, tracer.StateFinWait1, 9),
		sockEvent(300, tracer.TypeState, cli, srv, tracer.StateFinWait1, tracer.StateFinWait2, 9),
		sockEvent(400, tracer.TypeState, cli, srv, tracer.StateFinWait2, tracer.StateClose, 9),
		tw(399, tracer.StateFinWait2, tracer.StateTimeWait, "", 0),
	}
	out := &collect{}
	a := New(out, Config{TimeWaitTracked: true})
	feed(t, a, recs)
	if err := a.flushAt(t0.Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	s := out.summary(t)
	if s.TimeWaitSide != "local" || s.TimeWait != 0 || s.TimeWaitEnd != "" || !s.Complete ||
		s.StateTime[tracer.StateTimeWait] != 0 {
		t.Errorf("summary while in TIME_WAIT: side %q time wait %s %q complete %v", s.TimeWaitSide, s.TimeWait, s.TimeWaitEnd, s.Complete)
	}
	end := tw(60000399, tracer.StateTimeWait, tracer.StateClose, "expired", 60*time.Second)
	feed(t, a, []tracer.Record{end})
	if err := a.flushAt(t0.Add(62 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := out.count(tracer.TypeConn); n != 1 {
		t.Errorf("%d summaries after the TIME_WAIT end, want 1", n)
	}

	// Killed within the quiet second: the summary has it.
	out = &collect{}
	a = New(out, Config{TimeWaitTracked: true})
	feed(t, a, append(recs, tw(500399, tracer.StateTimeWait, tracer.StateClose, "killed", 500*time.Millisecond)))
	if err := a.flushAt(t0.Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	s = out.summary(t)
	if s.TimeWait != 500*time.Millisecond || s.TimeWaitEnd != "killed" || !s.Complete ||
		s.StateTime[tracer.StateTimeWait] != 500*time.Millisecond {
		t.Errorf("summary: time wait %s %q complete %v", s.TimeWait, s.TimeWaitEnd, s.Complete)
	}

	// Still in TIME_WAIT when tracing stops: the time so far, in
	// time_wait_ms and in state_ms alike; the connection itself ended
	// with its full socket (TIME_WAIT is apart).
	out = &collect{}
	a = New(out, Config{TimeWaitTracked: true})
	for i := range recs {
		if err := a.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.finishAt(t0.Add(20*time.Second + 399*time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	s = out.summary(t)
	if want := t0.Add(400 * time.Microsecond); !s.End.Equal(want) {
		t.Errorf("at exit in TIME_WAIT: end %s, want the full socket's CLOSE %s", s.End, want)
	}
	if s.TimeWait != 20*time.Second || s.StateTime[tracer.StateTimeWait] != 20*time.Second || s.Complete || s.TimeWaitEnd != "" {
		t.Errorf("at exit in TIME_WAIT: time_wait %s, state_ms TIME_WAIT %s, complete %v, end %q; want 20s, 20s, false, none",
			s.TimeWait, s.StateTime[tracer.StateTimeWait], s.Complete, s.TimeWaitEnd)
	}
}

// TestTsharkPrecedence pins the order of tshark's checks where two
// verdicts could apply.
func TestTsharkPrecedence(t *testing.T) {
	t.Run("spurious before out-of-order", func(t *testing.T) {
		pk := run(t, Config{}, append(handshake(),
			seg(1000, cli, srv, P|A, 1001, 5001, 100, 502),
			seg(1005, cli, srv, P|A, 1101, 5001, 100, 502),
			seg(1010, srv, cli, A, 5001, 1101, 0, 508),
			seg(1020, cli, srv, P|A, 1001, 5001, 100, 502), // within the iRTT, but acked already
		)).packets()
		if want := result.VerdictSpuriousRetransmission | result.VerdictRetransmission; pk[6].Verdicts != want {
			t.Errorf("verdicts %b, want %b", pk[6].Verdicts, want)
		}
	})
	t.Run("fast retransmission clock runs from the peer's last packet", func(t *testing.T) {
		pk := run(t, Config{}, append(handshake(),
			seg(1000, cli, srv, P|A, 1001, 5001, 100, 502), // lost on the way
			seg(1100, cli, srv, P|A, 1101, 5001, 100, 502),
			seg(1200, srv, cli, A, 5001, 1001, 0, 508),
			seg(1300, srv, cli, A, 5001, 1001, 0, 508), // dup #1
			seg(1400, srv, cli, A, 5001, 1001, 0, 508), // dup #2
			// 30 ms later the server sends data, same ack: no dup,
			// but tshark's 20 ms clock restarts.
			seg(31400, srv, cli, P|A, 5001, 1001, 10, 508),
			seg(41400, cli, srv, P|A, 1001, 5011, 100, 502),
		)).packets()
		if want := result.VerdictFastRetransmission | result.VerdictRetransmission; pk[9].Verdicts != want {
			t.Errorf("verdicts %b, want %b", pk[9].Verdicts, want)
		}
	})
	t.Run("new data from one before next seq after a zero-window probe", func(t *testing.T) {
		pk := run(t, Config{}, append(handshake(),
			seg(1000, cli, srv, P|A, 1001, 5001, 100, 502),
			seg(1100, srv, cli, A, 5001, 1101, 0, 0),
			seg(2000, cli, srv, P|A, 1101, 5001, 1, 502),   // zero-window probe
			seg(3000, srv, cli, A, 5001, 1101, 0, 0),       // its ACK: no duplicate
			seg(4000, srv, cli, A, 5001, 1101, 0, 100),     // window update
			seg(5000, cli, srv, P|A, 1100, 5001, 201, 502), // resends the probe's byte with new data
		)).packets()
		want := map[int]result.Verdicts{5: result.VerdictZeroWindowProbe, 6: result.VerdictZeroWindow,
			7: result.VerdictWindowUpdate, 8: 0}
		for i, w := range want {
			if pk[i].Verdicts != w {
				t.Errorf("packet %d: verdicts %b, want %b", i, pk[i].Verdicts, w)
			}
		}
	})
}

// TestCloseFromSocketEvents: without captured packets (no interface
// traced, or --events state), the outcome and the close come from the
// sockets' state changes and reset events.
func TestCloseFromSocketEvents(t *testing.T) {
	st := func(at int, local, remote string, old, new tracer.TCPState, cookie uint64) tracer.Record {
		return sockEvent(at, tracer.TypeState, local, remote, old, new, cookie)
	}
	rst := func(at int, local, remote string, dir tracer.ResetDir, state tracer.TCPState, cookie uint64) tracer.Record {
		r := sockEvent(at, tracer.TypeReset, local, remote, 0, state, cookie)
		r.HasState, r.ResetDir = true, dir
		return r
	}
	const (
		est, synSent, synRecv = tracer.StateEstablished, tracer.StateSynSent, tracer.StateSynRecv
		fw1, fw2, closing     = tracer.StateFinWait1, tracer.StateFinWait2, tracer.StateClosing
		cw, la, cl            = tracer.StateCloseWait, tracer.StateLastAck, tracer.StateClose
	)
	clientOpen := []tracer.Record{st(0, cli, srv, cl, synSent, 9), st(100, cli, srv, synSent, est, 9)}
	cases := []struct {
		name                    string
		recs                    []tracer.Record
		outcome, kind, closedBy string
		halfClose               time.Duration
	}{
		{"client closes", append(clientOpen, st(1000, cli, srv, est, fw1, 9), st(1100, cli, srv, fw1, fw2, 9),
			// FIN_WAIT2 -> CLOSE says nothing of the peer's FIN.
			st(1300, cli, srv, fw2, cl, 9)), "established", "fin", "local", 0},
		{"server side, client closes", []tracer.Record{st(100, srv, cli, synRecv, est, 5),
			st(1000, srv, cli, est, cw, 5), st(1200, srv, cli, cw, la, 5), st(1300, srv, cli, la, cl, 5)},
			"established", "fin", "remote", 200 * time.Microsecond},
		{"simultaneous close", append(clientOpen, st(1000, cli, srv, est, fw1, 9), st(1050, cli, srv, fw1, closing, 9),
			st(1300, cli, srv, closing, cl, 9)), "established", "fin", "both", 50 * time.Microsecond},
		{"both ends local, both close first", append(clientOpen, st(100, srv, cli, synRecv, est, 5),
			st(1000, cli, srv, est, fw1, 9), st(1001, srv, cli, est, fw1, 5),
			st(1100, cli, srv, fw1, fw2, 9), st(1101, srv, cli, fw1, fw2, 5),
			st(1300, cli, srv, fw2, cl, 9), st(1301, srv, cli, fw2, cl, 5)), "established", "fin", "both", time.Microsecond},
		{"reset received", append(clientOpen, rst(1000, cli, srv, tracer.ResetReceived, est, 9),
			st(1000, cli, srv, est, cl, 9)), "established", "reset", "remote", 0},
		{"reset sent", append(clientOpen, rst(1000, cli, srv, tracer.ResetSent, est, 9),
			st(1000, cli, srv, est, cl, 9)), "established", "reset", "local", 0},
		{"resets crossed", append(clientOpen, rst(1000, cli, srv, tracer.ResetSent, est, 9),
			rst(1010, cli, srv, tracer.ResetReceived, est, 9), st(1010, cli, srv, est, cl, 9)), "established", "reset", "both", 0},
		{"refused", []tracer.Record{st(0, cli, srv, cl, synSent, 9), rst(100, cli, srv, tracer.ResetReceived, synSent, 9),
			st(100, cli, srv, synSent, cl, 9)}, "refused", "reset", "remote", 0},
		{"timeout", []tracer.Record{st(0, cli, srv, cl, synSent, 9), st(3000000, cli, srv, synSent, cl, 9)},
			"timeout", "timeout", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := run(t, Config{}, c.recs).summary(t)
			if s.Outcome != c.outcome || s.CloseKind != c.kind || s.ClosedBy != c.closedBy || s.HalfClose != c.halfClose {
				t.Errorf("outcome %q close %q by %q half-close %v, want %q %q %q %v",
					s.Outcome, s.CloseKind, s.ClosedBy, s.HalfClose, c.outcome, c.kind, c.closedBy, c.halfClose)
			}
		})
	}
}

// TestBytesBySequence: bytes sent are the sequence space the data
// covered, so retransmitted or reordered data counts once and data the
// capture missed counts.
func TestBytesBySequence(t *testing.T) {
	s := run(t, Config{}, append(handshake(),
		seg(1000, cli, srv, P|A, 1101, 5001, 100, 502), // 1001-1101 not captured
		seg(1100, cli, srv, P|A, 1001, 5001, 100, 502), // now it is: reordered
		seg(1200, srv, cli, A, 5001, 1201, 0, 508),
		seg(300000, cli, srv, P|A, 1101, 5001, 100, 502), // retransmitted
		seg(300100, srv, cli, P|A, 5001, 1201, 30, 508),
		seg(300200, cli, srv, P|A, 1201, 5031, 50, 502),
	)).summary(t)
	if s.BytesOut != 250 || s.BytesIn != 30 {
		t.Errorf("bytes out %d in %d, want 250 and 30", s.BytesOut, s.BytesIn)
	}
}

// TestHandshakeAndFinChecks: the SYN-ACK must ack the client's ISN + 1,
// the handshake's last ACK the server's ISN + 1, and a FIN is acked by
// its seq + len + 1.
func TestHandshakeAndFinChecks(t *testing.T) {
	syn := withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7)
	close := []tracer.Record{
		seg(700, cli, srv, F|A, 1001, 5001, 0, 502),
		seg(800, srv, cli, F|A, 5001, 1002, 0, 508), // acks the FIN: 1001 + 0 + 1
		seg(900, cli, srv, A, 1002, 5001, 0, 502),   // acks the FIN's seq, not past it
	}
	cases := []struct {
		name     string
		recs     []tracer.Record
		check    string
		finAcked [2]bool
	}{
		{"clean", append(handshake(), close...), "ok", [2]bool{true, false}},
		{"SYN-ACK acks the wrong number", []tracer.Record{syn,
			withWScale(seg(100, srv, cli, S|A, 5000, 1005, 0, 508), 7),
			seg(150, cli, srv, R, 1005, 0, 0, 0)}, "synack_ack_mismatch", [2]bool{}},
		{"last ACK acks the wrong number", []tracer.Record{syn,
			withWScale(seg(100, srv, cli, S|A, 5000, 1001, 0, 508), 7),
			seg(200, cli, srv, A, 1001, 5007, 0, 502)}, "ack_mismatch", [2]bool{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := run(t, Config{}, c.recs).summary(t)
			if s.HandshakeCheck != c.check || s.FinAcked != c.finAcked {
				t.Errorf("handshake_check %q fin_acked %v, want %q %v", s.HandshakeCheck, s.FinAcked, c.check, c.finAcked)
			}
		})
	}
}

// TestCountersKnownBySource: a counter is known only where its source was
// traced: packets for bytes and capture-seen verdicts, retransmit and
// reset events (of a local socket) for the kernel's counts.
func TestCountersKnownBySource(t *testing.T) {
	st := func(at int, old, new tracer.TCPState) tracer.Record {
		return sockEvent(at, tracer.TypeState, cli, srv, old, new, 9)
	}
	socketOnly := []tracer.Record{st(0, tracer.StateClose, tracer.StateSynSent),
		st(100, tracer.StateSynSent, tracer.StateEstablished), st(900, tracer.StateEstablished, tracer.StateClose)}
	all := Config{KernelRetransmits: true, ResetEvents: true}
	cases := []struct {
		name                    string
		cfg                     Config
		recs                    []tracer.Record
		packets, kernel, resets bool
	}{
		{"socket events only", all, socketOnly, false, true, true},
		{"packets only (forwarded)", all, handshake(), true, false, false},
		{"both", all, append(append([]tracer.Record{}, socketOnly...), handshake()...), true, true, true},
		{"retransmit and reset events not traced", Config{}, append(append([]tracer.Record{}, socketOnly...), handshake()...), true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := run(t, c.cfg, c.recs).summary(t)
			if s.PacketsSeen != c.packets || s.KernelCounted != c.kernel || s.ResetsCounted != c.resets {
				t.Errorf("packets %v kernel %v resets %v known, want %v %v %v",
					s.PacketsSeen, s.KernelCounted, s.ResetsCounted, c.packets, c.kernel, c.resets)
			}
		})
	}
}

// TestTimeWaitKillCause: an early end of TIME_WAIT says what killed it
// when a sign of the killer came within killWindow of the kill.
func TestTimeWaitKillCause(t *testing.T) {
	tw := func(at int, old, new tracer.TCPState, end string) tracer.Record {
		r := sockEvent(at, tracer.TypeState, cli, srv, old, new, 9)
		r.TimeWait, r.TimeWaitEnd = true, end
		return r
	}
	closed := []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
		sockEvent(100, tracer.TypeState, cli, srv, tracer.StateSynSent, tracer.StateEstablished, 9),
		sockEvent(200, tracer.TypeState, cli, srv, tracer.StateEstablished, tracer.StateFinWait1, 9),
		sockEvent(300, tracer.TypeState, cli, srv, tracer.StateFinWait1, tracer.StateFinWait2, 9),
		tw(399, tracer.StateFinWait2, tracer.StateTimeWait, ""),
		sockEvent(400, tracer.TypeState, cli, srv, tracer.StateFinWait2, tracer.StateClose, 9),
	}
	killed := tw(300000, tracer.StateTimeWait, tracer.StateClose, "killed")
	newConn := func(r tracer.Record) tracer.Record { r.Conn = 2; r.Cookie = 10; return r }
	peerSYN := newConn(seg(299990, srv, cli, S, 7000, 0, 0, 64240))
	peerRST := seg(299990, srv, cli, R, 5001, 0, 0, 0)
	ownSYN := newConn(seg(300010, cli, srv, S, 9000, 0, 0, 64240))
	reuse := newConn(sockEvent(300005, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 10))
	early := newConn(seg(100000, srv, cli, S, 7000, 0, 0, 64240)) // 200 ms before the kill
	wrongTuple := newConn(seg(299990, "10.0.0.3:80", cli, S, 7000, 0, 0, 64240))
	cases := []struct {
		name string
		tail []tracer.Record
		want string
	}{
		{"peer's SYN", []tracer.Record{peerSYN, killed}, "syn"},
		{"RST received", []tracer.Record{peerRST, killed}, "rst"},
		{"tcp_tw_reuse, state first", []tracer.Record{killed, reuse, ownSYN}, "tw_reuse"},
		{"tcp_tw_reuse, SYN only", []tracer.Record{killed, ownSYN}, "tw_reuse"},
		{"no sign (ss -K)", []tracer.Record{killed}, ""},
		{"sign too early", []tracer.Record{early, killed}, ""},
		{"other 4-tuple", []tracer.Record{wrongTuple, killed}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs := append(append([]tracer.Record{}, closed...), c.tail...)
			out := run(t, Config{TimeWaitTracked: true}, recs)
			var s *result.ConnSummary
			for _, r := range out.recs {
				if r.Type == tracer.TypeConn && r.Conn == 1 {
					s = r.Summary
				}
			}
			if s == nil {
				t.Fatal("no summary of the TIME_WAIT connection")
			}
			if s.TimeWaitEnd != "killed" || s.TimeWaitKill != c.want {
				t.Errorf("time_wait_end %q kill %q, want killed %q", s.TimeWaitEnd, s.TimeWaitKill, c.want)
			}
		})
	}
}

// TestConnOfSlot: the analyzer keeps a connection's state in the
// correlator's slot and takes it from there only while it is that
// connection's live state.
func TestConnOfSlot(t *testing.T) {
	a := New(&collect{}, Config{})
	slot := &tracer.ConnSlot{}
	r := seg(0, cli, srv, S, 1000, 0, 0, 64240)
	r.Slot = slot
	if err := a.Write(&r); err != nil {
		t.Fatal(err)
	}
	c, ok := slot.Analysis.(*conn)
	if !ok || c != a.conns[1] {
		t.Fatalf("slot holds %v, want the state of conn 1", slot.Analysis)
	}
	if got := a.connOf(&r); got != c {
		t.Fatalf("connOf: %p, want %p", got, c)
	}
	other := r
	other.Conn = 2 // the slot's state is conn 1's, not 2's
	if got := a.connOf(&other); got != nil {
		t.Errorf("connOf of conn 2 gave conn %d's state", got.id)
	}
	// Dropped from the table but not zeroed (a summarized conn that
	// still holds records is left to the garbage collector as it is).
	if err := a.drop(c); err != nil {
		t.Fatal(err)
	}
	if got := a.connOf(&r); got != nil {
		t.Error("connOf gave the state of a connection no longer in the table")
	}
	// Without a slot: the table.
	r.Slot = nil
	if err := a.Write(&r); err != nil {
		t.Fatal(err)
	}
	if got := a.connOf(&r); got == nil || got != a.conns[1] {
		t.Error("connOf without a slot did not find the table's state")
	}
}
