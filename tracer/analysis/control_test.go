package analysis

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// countsRec is a TypeCounts record (--packets control) as a socket's
// flush gives it: out is what local sent, in what it received.
func countsRec(at int, local, remote string, out, in tracer.PacketCounts) tracer.Record {
	return tracer.Record{Type: tracer.TypeCounts, Time: t0.Add(time.Duration(at) * time.Microsecond), Conn: 1, Netns: 7,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote), Cookie: 9,
		PktCounts: [2]tracer.PacketCounts{out, in}}
}

// TestControlModeSummaryCounts: with --packets control the kernel reports
// the SYNs, FINs and suspicious packets and counts the rest; the summary
// adds the counts and gives the same bytes and segments as with every
// packet reported (a retransmission reported, the original counted, is
// one range of data), and says that they include counted packets.
func TestControlModeSummaryCounts(t *testing.T) {
	syn, synAck := withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7), withWScale(seg(100, srv, cli, S|A, 5000, 1001, 0, 508), 7)
	all := []tracer.Record{syn, synAck,
		seg(200, cli, srv, A, 1001, 5001, 0, 502),
		seg(300, cli, srv, P|A, 1001, 5001, 100, 502),
		seg(350, cli, srv, P|A, 1001, 5001, 100, 502), // retransmission
		seg(400, srv, cli, A, 5001, 1101, 0, 508),
		seg(500, srv, cli, P|A, 5001, 1101, 50, 508),
		seg(600, cli, srv, A, 1101, 5051, 0, 502),
		seg(700, cli, srv, F|P|A, 1101, 5051, 20, 502), // last data on the FIN
		seg(800, srv, cli, F|A, 5051, 1122, 0, 508),
		seg(900, cli, srv, A, 1122, 5052, 0, 502),
	}
	control := []tracer.Record{syn, synAck, all[4], all[8], all[9],
		// The client's socket flushes at its CLOSE: 200, 300, 600, 900
		// sent; 400, 500 received.
		countsRec(950, cli, srv,
			tracer.PacketCounts{Segs: 4, Bytes: 100, HasData: true, FirstSeq: 1001, EndSeq: 1101},
			tracer.PacketCounts{Segs: 2, Bytes: 50, HasData: true, FirstSeq: 5001, EndSeq: 5051}),
	}
	want := run(t, Config{}, all).summary(t)
	got := run(t, Config{}, control).summary(t)
	if want.BytesOut != 120 || want.BytesIn != 50 || want.SegsOut != 7 || want.SegsIn != 4 || want.PacketsCounted {
		t.Fatalf("all packets: out %dB/%d in %dB/%d counted %v, want 120B/7 50B/4 false",
			want.BytesOut, want.SegsOut, want.BytesIn, want.SegsIn, want.PacketsCounted)
	}
	if got.BytesOut != want.BytesOut || got.BytesIn != want.BytesIn || got.SegsOut != want.SegsOut || got.SegsIn != want.SegsIn {
		t.Errorf("control: out %dB/%d in %dB/%d, want out %dB/%d in %dB/%d", got.BytesOut, got.SegsOut, got.BytesIn, got.SegsIn,
			want.BytesOut, want.SegsOut, want.BytesIn, want.SegsIn)
	}
	if !got.PacketsCounted || !got.PacketsSeen {
		t.Errorf("control: packets counted %v seen %v, want both", got.PacketsCounted, got.PacketsSeen)
	}
	// The end is the last reported packet (the final ACK was counted).
	// The retransmission is reported, but its original was counted: no
	// verdict says so (docs/analysis.md, packet modes).
	end := t0.Add(800 * time.Microsecond)
	if got.CloseKind != "fin" || got.ClosedBy != "local" || !got.End.Equal(end) {
		t.Errorf("control: close %s by %s, end %v; want fin by local, %v", got.CloseKind, got.ClosedBy, got.End, end)
	}
	// The server's flush counts the same packets from the other end (and
	// makes the server the summary's local end).
	control[len(control)-1] = countsRec(950, srv, cli,
		tracer.PacketCounts{Segs: 2, Bytes: 50, HasData: true, FirstSeq: 5001, EndSeq: 5051},
		tracer.PacketCounts{Segs: 4, Bytes: 100, HasData: true, FirstSeq: 1001, EndSeq: 1101})
	got = run(t, Config{}, control).summary(t)
	if got.BytesOut != want.BytesIn || got.BytesIn != want.BytesOut || got.SegsOut != want.SegsIn || got.SegsIn != want.SegsOut {
		t.Errorf("control, server's flush: out %dB/%d in %dB/%d, want out %dB/%d in %dB/%d", got.BytesOut, got.SegsOut,
			got.BytesIn, got.SegsIn, want.BytesIn, want.SegsIn, want.BytesOut, want.SegsOut)
	}
	// A late flush (the exit drain, stamped later) does not move the end.
	control[len(control)-1].Time = t0.Add(time.Hour)
	if got = run(t, Config{}, control).summary(t); !got.End.Equal(end) || got.SegsIn != want.SegsOut {
		t.Errorf("late flush: end %v segs in %d, want %v and %d", got.End, got.SegsIn, end, want.SegsOut)
	}
	// The kernel takes the entry at the client socket's CLOSE and puts
	// the counts in that record (HasPktCounts), not in one of their own:
	// the same bytes and segments.
	closing := countsRec(950, cli, srv,
		tracer.PacketCounts{Segs: 4, Bytes: 100, HasData: true, FirstSeq: 1001, EndSeq: 1101},
		tracer.PacketCounts{Segs: 2, Bytes: 50, HasData: true, FirstSeq: 5001, EndSeq: 5051})
	closing.Type, closing.HasState, closing.OldState, closing.State = tracer.TypeState, true, tracer.StateFinWait2, tracer.StateClose
	closing.HasPktCounts = true
	control[len(control)-1] = closing
	got = run(t, Config{PacketsCounted: true}, control).summary(t)
	if got.BytesOut != want.BytesOut || got.BytesIn != want.BytesIn || got.SegsOut != want.SegsOut || got.SegsIn != want.SegsIn ||
		!got.PacketsCounted {
		t.Errorf("counts in the CLOSE record: out %dB/%d in %dB/%d counted %v, want out %dB/%d in %dB/%d counted",
			got.BytesOut, got.SegsOut, got.BytesIn, got.SegsIn, got.PacketsCounted, want.BytesOut, want.SegsOut, want.BytesIn, want.SegsIn)
	}
	// Without HasPktCounts the same CLOSE record adds nothing.
	closing.HasPktCounts = false
	control[len(control)-1] = closing
	if got = run(t, Config{PacketsCounted: true}, control).summary(t); got.SegsOut == want.SegsOut || got.PacketsCounted {
		t.Errorf("CLOSE without packet counts: %d segments out, counted %v; want the reported ones only", got.SegsOut, got.PacketsCounted)
	}
}

// TestControlModeVerdicts: with --packets control the data before a
// reported packet was counted, not reported: an ACK of it is no "ACKed
// unseen segment", a FIN after it no "previous segment not captured",
// a retransmission no retransmission guess; a zero window still is one.
func TestControlModeVerdicts(t *testing.T) {
	syn, synAck := withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7), withWScale(seg(100, srv, cli, S|A, 5000, 1001, 0, 508), 7)
	reported := []tracer.Record{syn, synAck,
		seg(200, cli, srv, A, 1001, 5001, 0, 502),
		seg(400, srv, cli, A, 5001, 1101, 0, 508),      // acks counted data
		seg(450, srv, cli, A, 5001, 1101, 0, 0),        // zero window
		seg(500, cli, srv, P|A, 1001, 5001, 100, 502),  // retransmission of counted data
		seg(700, cli, srv, F|P|A, 1101, 5001, 20, 502), // after counted data
	}
	for _, cfg := range []Config{{}, {PacketsCounted: true}} {
		out := run(t, cfg, reported)
		var got []result.Verdicts
		for _, p := range out.packets() {
			got = append(got, p.Verdicts)
		}
		if !cfg.PacketsCounted {
			// Every packet reported: the same packets are suspect.
			if got[3]&result.VerdictAckUnseenSegment == 0 {
				t.Errorf("all mode: the ACK of unseen data has verdicts %b, want ACKed unseen", got[3])
			}
			continue
		}
		for i, v := range got {
			want := result.Verdicts(0)
			if i == 4 {
				want = result.VerdictZeroWindow
			}
			if v != want {
				t.Errorf("control mode, packet %d: verdicts %b, want %b", i, v, want)
			}
		}
	}
}

// TestControlModeFinAcked: with --packets control the pure ACK of the
// peer's FIN is only counted; the local socket's FIN_WAIT2 -> CLOSE (a
// TIME_WAIT socket takes over) after that FIN says the kernel sent it.
func TestControlModeFinAcked(t *testing.T) {
	syn, synAck := withWScale(seg(0, cli, srv, S, 1000, 0, 0, 64240), 7), withWScale(seg(100, srv, cli, S|A, 5000, 1001, 0, 508), 7)
	state := func(at int, old, new tracer.TCPState) tracer.Record {
		return sockEvent(at, tracer.TypeState, cli, srv, old, new, 9)
	}
	recs := []tracer.Record{
		state(0, tracer.StateClose, tracer.StateSynSent), syn, synAck,
		state(150, tracer.StateSynSent, tracer.StateEstablished),
		state(300, tracer.StateEstablished, tracer.StateFinWait1),
		seg(310, cli, srv, F|A, 1001, 5001, 0, 502),
		seg(400, srv, cli, F|A, 5001, 1002, 0, 508), // acks ours
		state(410, tracer.StateFinWait1, tracer.StateFinWait2),
		state(420, tracer.StateFinWait2, tracer.StateClose), // the ACK of its FIN counted, not reported
	}
	for _, cfg := range []Config{{}, {PacketsCounted: true}} {
		s := finishAfter(t, cfg, recs, time.Time{}).summary(t)
		want := [2]bool{true, cfg.PacketsCounted}
		if s.FinAcked != want {
			t.Errorf("packets counted %v: fin_acked %v, want %v", cfg.PacketsCounted, s.FinAcked, want)
		}
	}
}
