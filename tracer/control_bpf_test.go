//go:build linux

package tracer

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// loadCountingClassifier loads tc_egress alone in --packets control mode
// with a count map of maxConns entries.
func loadCountingClassifier(t *testing.T, maxConns uint32) *ebpf.Collection {
	t.Helper()
	return loadEgressClassifier(t, func(spec *ebpf.CollectionSpec) error {
		spec.Maps[tcpscopeMapEvents].MaxEntries = 1 << 16
		spec.Maps[tcpscopeMapConnCounts].MaxEntries = maxConns
		return spec.Variables[tcpscopeVarCountPackets].Set(uint8(1))
	})
}

// ctlPacket is testPacket (10.201.0.1:40000 > 10.201.0.2:20000) with the
// given sequence and acknowledgment numbers, window and source port.
func ctlPacket(flags byte, opts []byte, payload int, seq, ack uint32, win uint16, sport uint16) []byte {
	p := testPacket(flags, opts, payload)
	tcp := p[14+20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	binary.BigEndian.PutUint16(tcp[14:], win)
	return p
}

// TestControlModeCountsOrReports runs the classifier in control mode on
// hand-made packets: plain data and ACKs are counted in the connection's
// entry (no record) but the first, which makes the entry; a retransmission, a duplicate ACK, a SYN, a FIN, a
// zero window and SACK blocks are reported; when the map is full the
// packet is reported and the overflow counted.
func TestControlModeCountsOrReports(t *testing.T) {
	coll := loadCountingClassifier(t, 1024)
	prog := coll.Programs[tcpscopeProgTcEgress]
	rd, err := ringbuf.NewReader(coll.Maps[tcpscopeMapEvents])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6}
	sack := []byte{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0}
	const ack = 0x10
	for _, c := range []struct {
		name     string
		pkt      []byte
		reported bool
	}{
		{"first of the connection", ctlPacket(ack, ts, 100, 1000, 2000, 512, 40000), true},
		{"more data", ctlPacket(ack|0x08, ts, 50, 1100, 2000, 512, 40000), false},
		{"retransmission", ctlPacket(ack, ts, 100, 1000, 2000, 512, 40000), true},
		{"pure ACK, new ack", ctlPacket(ack, ts, 0, 1150, 2100, 512, 40000), false},
		{"duplicate ACK", ctlPacket(ack, ts, 0, 1150, 2100, 512, 40000), true},
		{"window update", ctlPacket(ack, ts, 0, 1150, 2100, 1024, 40000), false},
		{"no options", ctlPacket(ack, nil, 10, 1150, 2100, 1024, 40000), false},
		{"SACK", ctlPacket(ack, sack, 0, 1160, 2100, 1024, 40000), true},
		{"zero window", ctlPacket(ack, ts, 0, 1160, 2200, 0, 40000), true},
		{"keepalive", ctlPacket(ack, ts, 0, 1159, 2100, 1024, 40000), true},
		{"FIN", ctlPacket(ack|0x01, ts, 0, 1160, 2100, 1024, 40000), true},
		{"SYN", ctlPacket(0x02, ts, 0, 999, 0, 1024, 40001), true},
		{"RST", ctlPacket(0x04, nil, 0, 1161, 0, 0, 40000), true},
	} {
		if _, err := prog.Run(&ebpf.RunOptions{Data: c.pkt}); err != nil {
			t.Fatal(err)
		}
		var rec ringbuf.Record
		rd.SetDeadline(time.Now())
		err := rd.ReadInto(&rec)
		if got := err == nil; got != c.reported {
			t.Errorf("%s: reported %v, want %v (%v)", c.name, got, c.reported, err)
		} else if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: read: %v", c.name, err)
		}
	}
	key := tcpscopePktKey{Family: afInet, Lport: 40000, Rport: 20000}
	copy(key.Laddr[:], []byte{10, 201, 0, 1})
	copy(key.Raddr[:], []byte{10, 201, 0, 2})
	var v tcpscopePktCounts
	if err := coll.Maps[tcpscopeMapConnCounts].Lookup(&key, &v); err != nil {
		t.Fatalf("count entry: %v", err)
	}
	d := v.Dir[0]
	if d.Segs != 4 || d.Bytes != 60 || d.Seen != 1 || d.FirstSeq != 1000 || d.HighEnd != 1160 || v.Dir[1] != (tcpscopePktDirCounts{}) {
		t.Errorf("counts: out %+v in %+v; want 4 segments, 60 bytes, [1000, 1160), nothing in", d, v.Dir[1])
	}

	// A full map: the packet of another connection is reported, and
	// counted as an overflow.
	coll = loadCountingClassifier(t, 1)
	prog = coll.Programs[tcpscopeProgTcEgress]
	rd2, err := ringbuf.NewReader(coll.Maps[tcpscopeMapEvents])
	if err != nil {
		t.Fatal(err)
	}
	defer rd2.Close()
	for i, sport := range []uint16{40000, 40000, 40002} {
		if _, err := prog.Run(&ebpf.RunOptions{Data: ctlPacket(ack, ts, 10, 1000+10*uint32(i), 2000, 512, sport)}); err != nil {
			t.Fatal(err)
		}
		var rec ringbuf.Record
		rd2.SetDeadline(time.Now())
		if err := rd2.ReadInto(&rec); (err == nil) != (i != 1) {
			t.Errorf("packet %d with a map of one entry: read %v, want a record for the first (new entry) and the third (map full)", i, err)
		}
	}
	var perCPU []uint64
	if err := coll.Maps[tcpscopeMapCountOverflow].Lookup(uint32(0), &perCPU); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, x := range perCPU {
		n += x
	}
	if n != 1 {
		t.Errorf("overflow count %d, want 1", n)
	}
}
