package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestRawIPInterface traces a tun device, whose packets start with the
// IP header at TC (no link-layer header, as on WireGuard and IP tunnels).
// A connect() to the far side of the tun sends its SYN out of tun0, where
// the test reads it; the test answers with a RST+ACK written into tun0.
// tcpscope on tun0 must report both, once each, with the addresses, ports,
// flags, seq and ack that crossed the device: the classifiers parse an
// interface as raw IP only once told that one is attached, and a packet
// parsed as Ethernet would not be reported at all.
func TestRawIPInterface(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := harness.NewNamespace(t, netnsPrefix, "tun")
	local, remote := netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.2")
	const dport = 7411

	var fd int
	ns.MustDo(t, func() error {
		var err error
		fd, err = openTun("tun0")
		return err
	})
	defer unix.Close(fd)
	h := ns.MustHandle(t)
	defer h.Close()
	link, err := h.LinkByName("tun0")
	if err != nil {
		t.Fatal(err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: local.AsSlice(), Mask: net.CIDRMask(24, 32)}}
	if err := h.AddrAdd(link, addr); err != nil {
		t.Fatalf("address tun0: %v", err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatalf("tun0 up: %v", err)
	}

	tracer := startTracer(ctx, t, ns, "-i", "tun0", "--port", fmt.Sprint(dport))

	// The connect() runs meanwhile; the RST refuses it.
	refused := make(chan error, 1)
	go func() {
		refused <- ns.Do(func() error {
			d := net.Dialer{Timeout: 10 * time.Second}
			c, err := d.DialContext(ctx, "tcp4", netip.AddrPortFrom(remote, dport).String())
			if err == nil {
				c.Close()
				return errors.New("connect succeeded, want refused")
			}
			if !errors.Is(err, unix.ECONNREFUSED) {
				return fmt.Errorf("connect: %w, want refused", err)
			}
			return nil
		})
	}()
	syn, err := readTCP(fd, dport, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sport, seq := binary.BigEndian.Uint16(syn[20:]), binary.BigEndian.Uint32(syn[24:])
	if _, err := unix.Write(fd, rstFor(remote, local, dport, sport, seq+1)); err != nil {
		t.Fatalf("write RST into tun0: %v", err)
	}
	if err := <-refused; err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle)

	recs := harness.Select(stopTracer(ctx, t, tracer), func(r *harness.Record) bool { return r.Type == "packet" })
	want := []string{
		fmt.Sprintf("tun0 out %s:%d > %s:%d S seq %d", local, sport, remote, dport, seq),
		fmt.Sprintf("tun0 in %s:%d > %s:%d R. seq 0 ack %d", remote, dport, local, sport, seq+1),
	}
	var got []string
	for _, r := range recs {
		s := fmt.Sprintf("%s %s %s > %s %s seq %d", r.Ifname, r.Dir, r.SrcAddr, r.DstAddr, r.Flags, *r.Seq)
		if r.Ack != nil {
			s += fmt.Sprintf(" ack %d", *r.Ack)
		}
		got = append(got, s)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("packet records on tun0:\n got %q\nwant %q\n%s", got, want, harness.Describe(recs))
	}
}

// openTun creates the tun device name (IFF_TUN, no packet information)
// in the calling thread's namespace and returns its file descriptor.
func openTun(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("create %s: %w", name, errno)
	}
	return fd, nil
}

// readTCP returns the next IPv4 TCP packet to dport read from the tun fd,
// skipping anything else (IPv6 router solicitations), within d.
func readTCP(fd int, dport uint16, d time.Duration) ([]byte, error) {
	deadline := time.Now().Add(d)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("no TCP packet to port %d out of tun0 within %v", dport, d)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("poll tun0: %w", err)
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			continue
		}
		n, err := unix.Read(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("read tun0: %w", err)
		}
		p := buf[:n]
		if n >= 40 && p[0] == 0x45 && p[9] == 6 && binary.BigEndian.Uint16(p[22:]) == dport {
			return append([]byte(nil), p...), nil
		}
	}
}

// rstFor builds an IPv4 RST+ACK from src:sport to dst:dport acknowledging
// ack, with valid IP and TCP checksums (the stack checks what tun0
// receives).
func rstFor(src, dst netip.Addr, sport, dport uint16, ack uint32) []byte {
	p := make([]byte, 40)
	p[0], p[8], p[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(p[2:], 40)
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:], s4[:])
	copy(p[16:], d4[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12], tcp[13] = 5<<4, 0x14 // 20-byte header, RST|ACK
	pseudo := append(append(append([]byte{}, s4[:]...), d4[:]...), 0, 6, 0, 20)
	binary.BigEndian.PutUint16(tcp[16:], checksum(append(pseudo, tcp...)))
	return p
}
