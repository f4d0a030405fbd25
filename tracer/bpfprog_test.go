//go:build linux

package tracer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// These tests run the real TC classifier with BPF_PROG_TEST_RUN on
// hand-made packets: they need root (CAP_BPF and CAP_NET_ADMIN) and are
// skipped without it, unless TCPSCOPE_E2E=1 asks for every privileged test.

// loadEgressClassifier loads tc_egress alone, after configure has set up
// its spec (map sizes, volatile consts); the collection is closed when the
// test ends.
func loadEgressClassifier(t *testing.T, configure func(*ebpf.CollectionSpec) error) *ebpf.Collection {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("TCPSCOPE_E2E") == "1" {
			t.Fatal("needs root (BPF_PROG_TEST_RUN)")
		}
		t.Skip("needs root (BPF_PROG_TEST_RUN)")
	}
	spec, err := loadTcpscope()
	if err != nil {
		t.Fatal(err)
	}
	for name := range spec.Programs {
		if name != tcpscopeProgTcEgress {
			delete(spec.Programs, name)
		}
	}
	if err := configure(spec); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { coll.Close() })
	return coll
}

// loadClassifier loads tc_egress alone with a ring of ringSize bytes and
// the given wakeup threshold.
func loadClassifier(t *testing.T, ringSize uint32, wakeup uint64) (*ebpf.Program, *ebpf.Map) {
	t.Helper()
	coll := loadEgressClassifier(t, func(spec *ebpf.CollectionSpec) error {
		spec.Maps[tcpscopeMapEvents].MaxEntries = ringSize
		return spec.Variables[tcpscopeVarWakeupBytes].Set(wakeup)
	})
	return coll.Programs[tcpscopeProgTcEgress], coll.Maps[tcpscopeMapEvents]
}

// testPacket builds an Ethernet + IPv4 + TCP packet with the given flags,
// TCP options and payload length.
func testPacket(flags byte, opts []byte, payload int) []byte {
	tcpLen := 20 + len(opts)
	p := make([]byte, 14+20+tcpLen+payload)
	binary.BigEndian.PutUint16(p[12:], 0x0800)
	ip := p[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen+payload))
	ip[8], ip[9] = 64, 6
	copy(ip[12:], []byte{10, 201, 0, 1, 10, 201, 0, 2})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 20000)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	binary.BigEndian.PutUint32(tcp[8:], 2000)
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 512)
	copy(tcp[20:], opts)
	return p
}

// irqWorkInterrupts sums the IWI line of /proc/interrupts over all CPUs:
// every forced ring-buffer wakeup queues an irq_work, which interrupts.
func irqWorkInterrupts(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/interrupts")
	if err != nil {
		t.Skipf("no /proc/interrupts: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "IWI:" {
			continue
		}
		var sum uint64
		for _, s := range fields[1:] {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				break
			}
			sum += n
		}
		return sum
	}
	t.Skip("no IWI line in /proc/interrupts")
	return 0
}

// TestRingWakesReaderOncePerThreshold: while the ring holds more than
// wakeup_bytes (a reader that lags), records no longer force a wakeup
// each (an irq_work and a self-IPI, ~5 us per record on a VM); one is
// forced when the fill level crosses a multiple of wakeup_bytes, and a
// reader blocked on the empty ring is woken by it.
func TestRingWakesReaderOncePerThreshold(t *testing.T) {
	const (
		ringSize = 1 << 16
		wakeup   = 4096
		runs     = 400 // 400 records of 104 bytes: 41 KiB, 10 crossings, no ring loss
	)
	// A packet without SACK blocks: a short record, with the ring's
	// 8-byte header.
	recSize := packetEventShortSize + 8
	prog, events := loadClassifier(t, ringSize, wakeup)
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	pkt := testPacket(0x10, nil, 0)

	// A reader blocked on the empty ring: the first crossing wakes it.
	// Without that wakeup it would sleep until its deadline (an hour);
	// the test gives up on it long before.
	got := make(chan error, 1)
	go func() {
		var rec ringbuf.Record
		rd.SetDeadline(time.Now().Add(time.Hour))
		got <- rd.ReadInto(&rec)
	}()
	// Below the threshold: no wakeup.
	below := uint32(wakeup/recSize - 1)
	if _, err := prog.Run(&ebpf.RunOptions{Data: pkt, Repeat: below}); err != nil {
		t.Fatal(err)
	}
	// Two more records take the ring across wakeup_bytes.
	if _, err := prog.Run(&ebpf.RunOptions{Data: pkt, Repeat: 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("blocked reader: %v, want a record", err)
		}
	case <-time.After(30 * time.Second):
		rd.Close() // ends the blocked read
		t.Fatal("a reader blocked on the ring was not woken when it filled past wakeup_bytes")
	}

	// Drain, then fill past the threshold again and count interrupts.
	drain := func() int {
		var rec ringbuf.Record
		n := 0
		rd.SetDeadline(time.Now())
		for {
			err := rd.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	drain()
	before := irqWorkInterrupts(t)
	if _, err := prog.Run(&ebpf.RunOptions{Data: pkt, Repeat: runs}); err != nil {
		t.Fatal(err)
	}
	after := irqWorkInterrupts(t)
	if n := drain(); n != runs {
		t.Fatalf("read %d records, want %d", n, runs)
	}
	// Forcing a wakeup per record above the threshold makes ~360
	// interrupts here; one per crossing makes 10. The margin is for
	// other irq_work on the host meanwhile.
	t.Logf("%d irq_work interrupts for %d records", after-before, runs)
	if d := after - before; d > runs/4 {
		t.Errorf("%d irq_work interrupts for %d records (%d threshold crossings): a wakeup forced per record", d, runs, runs*recSize/wakeup)
	}
}

// TestPacketRecordCutBeforeSack: the classifier writes a packet without
// SACK blocks as a short record (up to the cookie: 104 bytes of ring
// memory with the header instead of 136), one with SACK blocks whole;
// both decode to what the packet carried.
func TestPacketRecordCutBeforeSack(t *testing.T) {
	prog, events := loadClassifier(t, 1<<16, 1<<15)
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6}
	sack := []byte{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0}
	d := &decoder{clock: newMonoClock(), ifaces: map[uint32]ifaceInfo{}}
	for _, c := range []struct {
		name  string
		opts  []byte
		size  int
		order uint64
		sack  [4][2]uint32
	}{
		{"timestamps", ts, packetEventShortSize, 0x611, [4][2]uint32{}},
		{"timestamps and SACK", sack, packetEventSize, 0x511611, [4][2]uint32{{0x1000, 0x2000}}},
	} {
		if _, err := prog.Run(&ebpf.RunOptions{Data: testPacket(0x10, c.opts, 0)}); err != nil {
			t.Fatal(err)
		}
		var rec ringbuf.Record
		rd.SetDeadline(time.Now())
		if err := rd.ReadInto(&rec); err != nil {
			t.Fatalf("%s: read: %v", c.name, err)
		}
		if len(rec.RawSample) != c.size {
			t.Errorf("%s: record of %d bytes, want %d", c.name, len(rec.RawSample), c.size)
		}
		var r Record
		if err := d.decode(rec.RawSample, &r); err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		o := r.Options
		if r.Seq != 1000 || r.Ack != 2000 || r.Src.Port() != 40000 || r.Dst.Port() != 20000 ||
			o.TSVal != 5 || o.TSEcr != 6 || o.Order != c.order || o.Sack != c.sack {
			t.Errorf("%s: decoded seq %d ack %d ports %d>%d ts %d/%d order %#x sack %v", c.name,
				r.Seq, r.Ack, r.Src.Port(), r.Dst.Port(), o.TSVal, o.TSEcr, o.Order, o.Sack)
		}
	}
}
