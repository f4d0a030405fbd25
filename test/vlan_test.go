package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/test/harness"
)

// vlanCase is one crafted TCP segment and the tags it is sent with.
type vlanCase struct {
	name    string
	tags    []uint16 // TPIDs, outermost first, each with its own VLAN id
	sport   uint16
	seq     uint32
	payload int
}

var vlanCases = []vlanCase{
	{"untagged", nil, 50001, 1000, 0},
	{"802.1Q", []uint16{0x8100}, 50002, 2000, 5},
	{"QinQ", []uint16{0x88a8, 0x8100}, 50003, 3000, 11},
}

// TestVLANTaggedFrames sends TCP segments from A's end of the veth pair
// with AF_PACKET: untagged, with an 802.1Q tag, and with 802.1ad + 802.1Q
// (QinQ). The kernel cannot make VLAN links here (no 8021q), and on a VLAN
// link the stack keeps a single tag out of the frame at TC; crafted frames
// carry their tags in the frame. tcpscope on A (egress: every tag in the
// frame) and on B (ingress: the stack strips the outer tag before TC, the
// inner one of QinQ stays) must report each segment once, with the exact
// addresses, ports, flags, seq, ack, window, options and length sent.
func TestVLANTaggedFrames(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "vlan", 71)
	const dport = 7401
	tracerA := startTracer(ctx, t, v.A, "-i", harness.VethA, "--port", fmt.Sprint(dport))
	tracerB := startTracer(ctx, t, v.B, "-i", harness.VethB, "--port", fmt.Sprint(dport))

	err := v.A.Do(func() error {
		ifc, err := net.InterfaceByName(harness.VethA)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		peer, _ := net.ParseMAC("02:00:00:00:47:02")
		for _, c := range vlanCases {
			frame := craftFrame(peer, ifc.HardwareAddr, c, v.A4, v.B4, dport)
			addr := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(tpidOrIP(c)), Halen: 6}
			copy(addr.Addr[:], peer)
			if err := unix.Sendto(fd, frame, 0, addr); err != nil {
				return fmt.Errorf("send %s frame: %w", c.name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle)
	for _, side := range []struct {
		name string
		p    *harness.Proc
		dir  string
	}{{"A egress", tracerA, "out"}, {"B ingress", tracerB, "in"}} {
		recs := harness.Select(stopTracer(ctx, t, side.p), func(r *harness.Record) bool { return r.Type == "packet" })
		for _, c := range vlanCases {
			want := fmt.Sprintf("%s:%d > %s:%d S seq %d win 4321 len %d mss 1400 wscale 5 dir %s",
				v.A4, c.sport, v.B4, dport, c.seq, c.payload, side.dir)
			n := 0
			for _, r := range recs {
				got := fmt.Sprintf("%s > %s %s seq %d win %d len %d mss %d wscale %d dir %s",
					r.SrcAddr, r.DstAddr, r.Flags, *r.Seq, *r.Win, *r.Len, optVal(r, "mss"), optVal(r, "wscale"), r.Dir)
				if got == want {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: %s segment reported %d times, want once: %q\n%s", side.name, c.name, n, want, harness.Describe(recs))
			}
		}
		if len(recs) != len(vlanCases) {
			t.Errorf("%s: %d packet records, want %d:\n%s", side.name, len(recs), len(vlanCases), harness.Describe(recs))
		}
	}
}

func optVal(r *harness.Record, name string) int64 {
	if r.Options == nil {
		return -1
	}
	switch name {
	case "mss":
		if r.Options.MSS != nil {
			return int64(*r.Options.MSS)
		}
	case "wscale":
		if r.Options.WScale != nil {
			return int64(*r.Options.WScale)
		}
	}
	return -1
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func tpidOrIP(c vlanCase) uint16 {
	if len(c.tags) > 0 {
		return c.tags[0]
	}
	return 0x0800
}

// craftFrame builds Ethernet [+ tags] + IPv4 + TCP SYN with MSS and window
// scale options and c.payload bytes of payload.
func craftFrame(dst, src net.HardwareAddr, c vlanCase, saddr, daddr netip.Addr, dport uint16) []byte {
	b := append([]byte{}, dst...)
	b = append(b, src...)
	for i, tpid := range c.tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100-90*i)) // VLAN ids 100, 10
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	tcpLen := 20 + 8 + c.payload
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen))
	s4, d4 := saddr.As4(), daddr.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	tcp := make([]byte, 28, tcpLen)
	binary.BigEndian.PutUint16(tcp[0:], c.sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], c.seq)
	tcp[12], tcp[13] = 7<<4, 0x02 // 28-byte header, SYN
	binary.BigEndian.PutUint16(tcp[14:], 4321)
	copy(tcp[20:], []byte{2, 4, 0x05, 0x78, 1, 3, 3, 5}) // mss 1400, nop, wscale 5
	tcp = append(tcp, make([]byte, c.payload)...)
	b = append(b, ip...)
	return append(b, tcp...)
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
