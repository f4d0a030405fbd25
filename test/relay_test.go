package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/test/harness"
)

// Limits of the relay. Every loop of it is bounded by them.
const (
	// relayPoll bounds one wait for a frame, so that a direction notices
	// that the relay stops.
	relayPoll = 50 * time.Millisecond
	// relayMaxFrames bounds the frames one direction handles.
	relayMaxFrames = 1 << 20
	// relayBuf is the receive buffer: a GSO frame of 64 KiB fits.
	relayBuf = 1 << 17
	// relayRcvBuf is each socket's receive buffer: a whole transfer of the
	// test fits, so the relay drops nothing however late it reads.
	relayRcvBuf = 8 << 20
	// vnetHdrLen is the size of struct virtio_net_hdr, which prefixes
	// every frame read and written with PACKET_VNET_HDR.
	vnetHdrLen = 10
)

// relayStats is what one direction of the relay did.
type relayStats struct {
	forwarded int // frames written out
	data      int // data segments of the watched port seen
	held      int // data segments held back
	reordered int // held segments sent after a later segment of the port
	timedOut  int // held segments sent because nothing followed in time
	dropped   int // frames the kernel dropped before the relay read them
}

// relayEnd is one interface of the relay and its AF_PACKET socket.
type relayEnd struct {
	ifname  string
	ifindex int
	fd      int
}

// l2Relay copies Ethernet frames between two interfaces of one network
// namespace through AF_PACKET sockets, in place of a bridge, and reorders
// TCP data segments in the a -> b direction: it holds back every k-th data
// segment to the watched port and sends it right after the next segment to
// that port (or after holdMax when none comes).
type l2Relay struct {
	a, b    relayEnd
	port    uint16
	every   int
	holdMax time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu    sync.Mutex
	stats [2]relayStats // [0]: a -> b, [1]: b -> a
	errs  []error
}

// startRelay opens packet sockets on ifA and ifB inside ns and starts
// relaying between them until ctx ends or stop is called (the test's
// cleanup calls it too). In the ifA -> ifB direction every k-th data
// segment to TCP port port is held back.
func startRelay(ctx context.Context, t *testing.T, ns *harness.Namespace, ifA, ifB string, port uint16, every int, holdMax time.Duration) *l2Relay {
	t.Helper()
	r := &l2Relay{a: relayEnd{ifname: ifA, fd: -1}, b: relayEnd{ifname: ifB, fd: -1}, port: port, every: every, holdMax: holdMax}
	// A packet socket stays in the namespace it was created in.
	err := ns.Do(func() error {
		for _, end := range []*relayEnd{&r.a, &r.b} {
			if err := end.open(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.closeFDs()
		t.Fatalf("open relay sockets in %s: %v", ns.Name, err)
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(2)
	go r.run(ctx, &r.a, &r.b, &r.stats[0], true)
	go r.run(ctx, &r.b, &r.a, &r.stats[1], false)
	t.Cleanup(func() { r.stop() })
	return r
}

// open creates a packet socket bound to the interface that sees neither
// its own nor any other outgoing frame, with a virtio_net_hdr before
// each frame so that GSO and checksum offload survive the round trip.
func (e *relayEnd) open() error {
	ifc, err := net.InterfaceByName(e.ifname)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", e.ifname, err)
	}
	e.ifindex = ifc.Index
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("create packet socket for %s: %w", e.ifname, err)
	}
	e.fd = fd
	for _, opt := range []struct {
		name string
		opt  int
	}{{"PACKET_IGNORE_OUTGOING", unix.PACKET_IGNORE_OUTGOING}, {"PACKET_VNET_HDR", unix.PACKET_VNET_HDR}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, opt.opt, 1); err != nil {
			return fmt.Errorf("set %s on %s: %w", opt.name, e.ifname, err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, relayRcvBuf); err != nil {
		return fmt.Errorf("set the receive buffer of %s: %w", e.ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: e.ifindex}); err != nil {
		return fmt.Errorf("bind packet socket to %s: %w", e.ifname, err)
	}
	return nil
}

// closeFDs closes the sockets that are open.
func (r *l2Relay) closeFDs() {
	for _, end := range []*relayEnd{&r.a, &r.b} {
		if end.fd >= 0 {
			unix.Close(end.fd)
			end.fd = -1
		}
	}
}

// stop ends both directions, waits for them and closes the sockets. It
// returns the statistics of the a -> b and b -> a directions and the
// errors the relay met. It may be called more than once.
func (r *l2Relay) stop() (ab, ba relayStats, err error) {
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
		for i, end := range []*relayEnd{&r.a, &r.b} {
			st, err := unix.GetsockoptTpacketStats(end.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
			if err != nil {
				r.fail(fmt.Errorf("read packet statistics of %s: %w", end.ifname, err))
				continue
			}
			r.stats[i].dropped = int(st.Drops)
		}
		r.closeFDs()
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats[0], r.stats[1], errors.Join(r.errs...)
}

// fail records an error of the relay.
func (r *l2Relay) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, err)
	}
}

// count applies f to the statistics of one direction.
func (r *l2Relay) count(st *relayStats, f func(*relayStats)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(st)
}

// run relays frames from in to out until ctx ends or relayMaxFrames
// frames were read. With reorder it holds segments back (see l2Relay).
func (r *l2Relay) run(ctx context.Context, in, out *relayEnd, st *relayStats, reorder bool) {
	defer r.wg.Done()
	buf := make([]byte, relayBuf)
	var held []byte
	var heldAt time.Time
	dataSeen := 0
	send := func(frame []byte) bool {
		if err := r.send(out, frame); err != nil {
			r.fail(err)
			return false
		}
		r.count(st, func(s *relayStats) { s.forwarded++ })
		return true
	}
	for frames := 0; frames < relayMaxFrames && ctx.Err() == nil; {
		if held != nil && time.Since(heldAt) >= r.holdMax {
			// No segment of the port followed: let it go, late but in order.
			if !send(held) {
				return
			}
			held = nil
			r.count(st, func(s *relayStats) { s.timedOut++ })
		}
		wait := relayPoll
		if held != nil {
			wait = max(0, time.Until(heldAt.Add(r.holdMax)))
		}
		ready, err := pollIn(in.fd, wait)
		if err != nil {
			r.fail(fmt.Errorf("poll %s: %w", in.ifname, err))
			return
		}
		if !ready {
			continue
		}
		n, from, err := unix.Recvfrom(in.fd, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			r.fail(fmt.Errorf("receive on %s: %w", in.ifname, err))
			return
		}
		frames++
		if n > len(buf) {
			r.fail(fmt.Errorf("receive on %s: frame of %d bytes truncated to %d", in.ifname, n, len(buf)))
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // PACKET_IGNORE_OUTGOING should have dropped it
		}
		frame := buf[:n]
		seg, ok := parseSegment(frame)
		ours := ok && seg.dport == r.port
		if !reorder || !ours {
			if !send(frame) {
				return
			}
			continue
		}
		data := seg.payload > 0 && seg.flags&(tcpSYN|tcpFIN|tcpRST) == 0
		if data {
			dataSeen++
			r.count(st, func(s *relayStats) { s.data++ })
		}
		if held == nil {
			if data && r.every > 0 && dataSeen%r.every == 0 {
				held, heldAt = append([]byte(nil), frame...), time.Now()
				r.count(st, func(s *relayStats) { s.held++ })
				continue
			}
			if !send(frame) {
				return
			}
			continue
		}
		// A later segment overtakes the held one.
		if !send(frame) || !send(held) {
			return
		}
		held = nil
		r.count(st, func(s *relayStats) { s.reordered++ })
	}
}

// send writes one frame (virtio_net_hdr first) out of end.
func (r *l2Relay) send(end *relayEnd, frame []byte) error {
	if len(frame) < vnetHdrLen+14 {
		return fmt.Errorf("send on %s: frame of %d bytes is too short", end.ifname, len(frame))
	}
	proto := binary.BigEndian.Uint16(frame[vnetHdrLen+12:])
	addr := &unix.SockaddrLinklayer{Ifindex: end.ifindex, Protocol: htons(proto)}
	if err := unix.Sendto(end.fd, frame, 0, addr); err != nil {
		return fmt.Errorf("send %d bytes on %s: %w", len(frame), end.ifname, err)
	}
	return nil
}

// pollIn waits at most d for fd to become readable.
func pollIn(fd int, d time.Duration) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int((d+time.Millisecond-1)/time.Millisecond))
	if errors.Is(err, unix.EINTR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("socket error (revents %#x)", fds[0].Revents)
	}
	return n > 0, nil
}

// TCP flags the relay looks at.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
)

// segment is what the relay needs to know of a TCP segment.
type segment struct {
	sport, dport uint16
	flags        uint8
	payload      int
}

// parseSegment decodes the TCP header of a frame read with a
// virtio_net_hdr (IPv4, or IPv6 without extension headers). ok is false
// for anything else.
func parseSegment(frame []byte) (seg segment, ok bool) {
	if len(frame) < vnetHdrLen+14 {
		return seg, false
	}
	eth := frame[vnetHdrLen:]
	l3 := eth[14:]
	var l4 []byte
	var l4len int
	switch binary.BigEndian.Uint16(eth[12:]) {
	case unix.ETH_P_IP:
		if len(l3) < 20 || l3[9] != unix.IPPROTO_TCP {
			return seg, false
		}
		ihl := int(l3[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(l3[2:]))
		if ihl < 20 || total < ihl || len(l3) < ihl {
			return seg, false
		}
		l4, l4len = l3[ihl:], total-ihl
	case unix.ETH_P_IPV6:
		if len(l3) < 40 || l3[6] != unix.IPPROTO_TCP {
			return seg, false
		}
		l4, l4len = l3[40:], int(binary.BigEndian.Uint16(l3[4:]))
	default:
		return seg, false
	}
	if len(l4) < 20 {
		return seg, false
	}
	doff := int(l4[12]>>4) * 4
	if doff < 20 || l4len < doff {
		return seg, false
	}
	return segment{
		sport:   binary.BigEndian.Uint16(l4[0:]),
		dport:   binary.BigEndian.Uint16(l4[2:]),
		flags:   l4[13],
		payload: l4len - doff,
	}, true
}
