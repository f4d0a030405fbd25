package tracer

import (
	"testing"
	"time"
)

// TestCountsJoinTheirConnection: a counts record (--packets control) gets
// the id of its connection, whether a socket flushed it at its CLOSE (with
// its cookie) or the exit drain did (no cookie, stamped later).
func TestCountsJoinTheirConnection(t *testing.T) {
	const cli, srv = "10.0.0.1:40000", "10.0.0.2:8080"
	counts := func(ms int, local, remote string, cookie uint64) Record {
		return Record{Type: TypeCounts, Time: base.Add(time.Duration(ms) * time.Millisecond), Netns: 1,
			Local: ap(local), Remote: ap(remote), Cookie: cookie}
	}
	in := []Record{
		state(0, "10.0.0.1:0", srv, StateClose, StateSynSent, 11, 1),
		pkt(1, cli, srv, FlagSYN, 100, 11),
		synAck(2, srv, cli, 900, 100),
		state(3, cli, srv, StateSynSent, StateEstablished, 11, 1),
		state(7, cli, srv, StateFinWait2, StateClose, 11, 1),
		counts(7, cli, srv, 11),
		counts(9000, srv, cli, 0),
	}
	out := run(t, newCorrelator(0), in)
	if len(out) != len(in) {
		t.Fatalf("%d records out, %d in", len(out), len(in))
	}
	for _, r := range out {
		if r.Conn != out[0].Conn || r.Conn == 0 {
			t.Errorf("record %v %s: conn %d, want %d", r.Type, r.Local, r.Conn, out[0].Conn)
		}
	}
}
