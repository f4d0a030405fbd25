package analysis

import (
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// TestBytesPast2GiB: bytes by sequence progress stay right past 2 GiB and 4 GiB.
func TestBytesPast2GiB(t *testing.T) {
	const gib = 1 << 30
	for _, n := range []int{3, 5} {
		recs := handshake()
		seq := uint32(1001)
		for i := 0; i < n; i++ {
			r := seg(1000+i*1000, cli, srv, P|A, seq, 5001, gib, 502)
			r.Dir = tracer.DirOut // sent from this host: the client's end is local
			recs = append(recs, r)
			seq += gib
		}
		s := run(t, Config{}, recs).summary(t)
		if s.BytesOut != uint64(n)*gib {
			t.Errorf("%d GiB sent: bytes_out %d (%.2f GiB)", n, s.BytesOut, float64(s.BytesOut)/gib)
		}
		// Without the handshake: from the first byte seen.
		s = run(t, Config{}, recs[3:]).summary(t)
		if s.BytesOut != uint64(n)*gib {
			t.Errorf("%d GiB sent, no SYN seen: bytes_out %d (%.2f GiB)", n, s.BytesOut, float64(s.BytesOut)/gib)
		}
	}
}

// TestIRTTAfterSynRetransmit: the out-of-order window is tshark's iRTT,
// the first ACK without SYN minus the most recent SYN (also one after the
// SYN-ACK). Server-side capture, SYN-ACK lost
// after the capture point, client retransmits the SYN 1 s later.
func TestIRTTAfterSynRetransmit(t *testing.T) {
	recs := []tracer.Record{
		withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7),
		withWScale(seg(100, srv, cli, S|A, 5000, 1001, 0, 508), 7),
		withWScale(seg(1000000, cli, srv, S, 1000, 0, 0, 64240), 7), // SYN retransmitted
		withWScale(seg(1000100, srv, cli, S|A, 5000, 1001, 0, 508), 7),
		seg(1000200, cli, srv, A, 1001, 5001, 0, 502), // tshark iRTT = 200 us
		seg(1001000, cli, srv, P|A, 1001, 5001, 100, 502),
		seg(1001100, cli, srv, P|A, 1101, 5001, 100, 502),
		seg(1301100, cli, srv, P|A, 1001, 5001, 100, 502), // RTO retransmission 300 ms later
	}
	pk := run(t, Config{}, recs).packets()
	if got := pk[7].Verdicts; got != result.VerdictRetransmission {
		t.Errorf("verdicts %b, tshark says retransmission (%b)", got, result.VerdictRetransmission)
	}
}

// TestOrphanFinWait2: FIN_WAIT2 -> CLOSE is no proof of the peer's FIN: an orphaned socket
// (close() without shutdown) goes FIN_WAIT1 -> FIN_WAIT2 -> CLOSE as soon as
// its FIN is acked (tcp_rcv_state_process: tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)).
func TestOrphanFinWait2(t *testing.T) {
	st := func(at int, old, new tracer.TCPState) tracer.Record {
		return sockEvent(at, tracer.TypeState, cli, srv, old, new, 9)
	}
	s := run(t, Config{}, []tracer.Record{
		st(0, tracer.StateClose, tracer.StateSynSent), st(100, tracer.StateSynSent, tracer.StateEstablished),
		st(1000, tracer.StateEstablished, tracer.StateFinWait1),
		st(1100, tracer.StateFinWait1, tracer.StateFinWait2),
		st(1100, tracer.StateFinWait2, tracer.StateClose), // orphan: FIN_WAIT2 mini-socket, peer FIN unknown
	}).summary(t)
	if s.HalfClose != 0 {
		t.Errorf("half_close %v: the peer's FIN was never seen", s.HalfClose)
	}
}

// TestTFOHandshakeCheck: TCP Fast Open: the SYN-ACK acks ISN + 1 + the
// SYN's data, and that data counts as sent.
func TestTFOHandshakeCheck(t *testing.T) {
	s := run(t, Config{}, []tracer.Record{
		withWScale(seg(0, cli, srv, S, 1000, 0, 50, 64240), 7),
		withWScale(seg(100, srv, cli, S|A, 5000, 1051, 0, 508), 7),
		seg(200, cli, srv, A, 1051, 5001, 0, 502),
	}).summary(t)
	if s.HandshakeCheck != "ok" || s.BytesOut != 50 {
		t.Errorf("handshake_check %q bytes_out %d for an accepted TFO SYN with 50 bytes", s.HandshakeCheck, s.BytesOut)
	}
}

// TestAckUnseenAtWrap: ACKed-unseen at the 2^32 wrap. tshark compares
// maxseqtobeacked > nextseq unsigned, so a gap straddling the wrap moves
// maxseqtobeacked to nextseq; so does tcpscope.
func TestAckUnseenAtWrap(t *testing.T) {
	const isn = 0xFFFFEFFF
	recs := []tracer.Record{
		withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7),
		withWScale(seg(100, srv, cli, S|A, isn, 1001, 0, 508), 7),
		seg(200, cli, srv, A, 1001, isn+1, 0, 502),
		seg(1000, srv, cli, P|A, 0xFFFFF000, 1001, 0x800, 508), // A
		// B 0xFFFFF800..0x0 not captured
		seg(1200, srv, cli, P|A, 0x0, 1001, 0x800, 508), // C: lost_segment
		seg(1300, cli, srv, A, 1001, 0x800, 0, 502),     // acks unseen B: both tools
		seg(1400, cli, srv, P|A, 1001, 0x800, 10, 502),
		seg(1500, srv, cli, P|A, 0x800, 1011, 0x100, 508), // D, server ack moved
		seg(1600, cli, srv, A, 1011, 0x900, 0, 502),       // tshark: nothing
	}
	pk := run(t, Config{}, recs).packets()
	if pk[5].Verdicts&result.VerdictAckUnseenSegment == 0 {
		t.Fatalf("first ack unseen missing: %b", pk[5].Verdicts)
	}
	if pk[8].Verdicts&result.VerdictAckUnseenSegment != 0 {
		t.Errorf("packet 8 ack_unseen_segment; tshark 4.0 says nothing (it moved maxseqtobeacked past the gap)")
	}
}

// TestListenerResetEndsNothing: a listener's RST (answering a segment of
// a connection whose socket is gone) does not join the connection as a
// socket that never closes.
func TestListenerResetEndsNothing(t *testing.T) {
	st := func(at int, old, new tracer.TCPState) tracer.Record {
		return sockEvent(at, tracer.TypeState, srv, cli, old, new, 5)
	}
	rst := sockEvent(1500, tracer.TypeReset, srv, cli, 0, tracer.StateListen, 77)
	rst.ResetDir = tracer.ResetSent
	recs := []tracer.Record{st(100, tracer.StateSynRecv, tracer.StateEstablished),
		st(1000, tracer.StateEstablished, tracer.StateClose), rst}
	out := &collect{}
	a := New(out, Config{})
	for i := range recs {
		r := recs[i]
		if err := a.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.flushAt(recs[len(recs)-1].Time.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, r := range out.recs {
		if r.Type == tracer.TypeConn {
			return
		}
	}
	t.Errorf("no summary 5 s after the only socket closed")
}
