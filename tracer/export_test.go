package tracer

// BenchPath is Run's per-record path without its goroutines, for
// benchmarks in other packages: a raw packet event, built as the kernel
// writes it, is copied into a batch (as the ring reader does), decoded and
// put through the stages into a sink.
type BenchPath struct {
	dec decoder
	st  *stages
	b   *batch
	rec Record
	ev  tcpscopePacketEvent
}

// NewBenchPath feeds sink.
func NewBenchPath(sink Sink) *BenchPath {
	p := &BenchPath{dec: decoder{clock: &monoClock{}, ifaces: map[uint32]ifaceInfo{}},
		st: newStages(newCorrelator(DefaultMaxConns), newTWTracker(), sink, reorderWindow), b: newBatch()}
	p.ev = tcpscopePacketEvent{Kind: uint8(tcpscopeEventKindEVENT_PACKET), Family: afInet, Dport: 80, Window: 65535}
	copy(p.ev.Saddr[:], []byte{10, 0, 0, 1})
	copy(p.ev.Daddr[:], []byte{10, 0, 0, 2})
	return p
}

// Packet feeds one packet of the connection from 10.0.0.1:port to
// 10.0.0.2:80 (out: in that direction).
func (p *BenchPath) Packet(port uint16, out bool, flags uint8, seq, ack, length uint32, ts uint64) error {
	ev := &p.ev
	ev.TsNs, ev.TcpFlags, ev.Seq, ev.Ack, ev.Len = ts, flags, seq, ack, length
	ev.Sport, ev.Dport = port, 80
	ev.Saddr[3], ev.Daddr[3] = 1, 2
	ev.Dir = uint8(tcpscopePacketDirDIR_EGRESS)
	if !out {
		ev.Sport, ev.Dport = 80, port
		ev.Saddr[3], ev.Daddr[3] = 2, 1
		ev.Dir = uint8(tcpscopePacketDirDIR_INGRESS)
	}
	if p.b.full() {
		p.b.reset()
	}
	p.b.add(rawBytes(ev))
	if err := p.dec.decode(p.b.record(p.b.len()-1), &p.rec); err != nil {
		return err
	}
	return p.st.record(&p.rec)
}

// End releases what the stages hold.
func (p *BenchPath) End() error { return p.st.End() }
