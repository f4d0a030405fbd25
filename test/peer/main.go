// Command peer is the TCP client and server of the tcpscope end-to-end
// tests. The tests build it twice, under two names, so that the server and
// the client have different comms, and run each copy as its own process
// (inside a network namespace with `ip netns exec`).
//
// Usage:
//
//	peer serve-echo ADDR        accept one connection, echo until EOF (or a reset), close
//	peer serve-sink ADDR        accept one connection, read until EOF, report the byte count, close
//	peer connect-echo ADDR LOCAL MSG    send MSG, read it back, close (the client closes first)
//	peer connect-bulk ADDR LOCAL N      send N bytes, close
//	peer connect-refused ADDR LOCAL     connect, expect "connection refused"
//	peer connect-abort ADDR LOCAL MSG   send MSG, read it back, then SO_LINGER 0 and close (RST)
//	peer serve-stall ADDR MS    accept one connection, read nothing for MS milliseconds
//	                            (the window fills up to zero), then read until EOF
//	peer connect-timeout ADDR LOCAL MS  connect, expect no answer within MS milliseconds
//	peer connect-keepalive ADDR LOCAL MS  enable keep-alives every second after one
//	                            idle second, stay idle MS milliseconds, close
//	peer serve-shutdown ADDR    accept one connection, echo one message, shut down
//	                            writing (FIN) at once, read until EOF, close
//	peer serve-first-close ADDR N  accept N connections one after the other; on each
//	                            send a greeting and close first (this end goes to
//	                            TIME_WAIT)
//	peer connect-read ADDR LOCAL  read until EOF, close
//	peer send-rst ADDR FROM SEQ  send one bare RST with sequence number SEQ from FROM to
//	                            ADDR through a raw socket (IPv4): a RST to a TIME_WAIT socket
//	                            kills it (RFC 1337 assassination)
//	peer connect-shutdown ADDR LOCAL MSG  send MSG, read it back, shut down writing,
//	                            read until EOF, close (with serve-shutdown and both
//	                            FINs held back by the test: a simultaneous close)
//
// ADDR and LOCAL are host:port ("10.0.0.1:80", "[fd00::1]:80"); LOCAL is
// the client's own address and fixed port, so the test knows the 4-tuple
// before the connection exists, or "-" to let the kernel pick an ephemeral
// port at connect time (the client prints "connected LOCAL REMOTE").
//
// Every mode prints one line per milestone on stdout; the test waits for
// them instead of sleeping. A server prints "listening ADDR" once it
// accepts connections. Every mode exits 0 on the expected outcome and 1
// (with a message on stderr) otherwise. Every blocking call has a deadline.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
)

// deadline bounds every blocking call of a peer.
const deadline = 15 * time.Second

func main() {
	if len(os.Args) < 3 {
		fail(errors.New("usage: peer MODE ADDR [LOCAL] [ARG]"))
	}
	mode, addr, rest := os.Args[1], os.Args[2], os.Args[3:]
	var err error
	switch mode {
	case "serve-echo":
		err = serveEcho(addr)
	case "serve-sink":
		err = serveSink(addr)
	case "serve-stall":
		err = withArgs(rest, 1, func() error { return serveStall(addr, rest[0]) })
	case "connect-timeout":
		err = withArgs(rest, 2, func() error { return connectTimeout(addr, rest[0], rest[1]) })
	case "connect-keepalive":
		err = withArgs(rest, 2, func() error { return connectKeepAlive(addr, rest[0], rest[1]) })
	case "connect-echo":
		err = withArgs(rest, 2, func() error { return connectEcho(addr, rest[0], rest[1], false) })
	case "connect-abort":
		err = withArgs(rest, 2, func() error { return connectEcho(addr, rest[0], rest[1], true) })
	case "connect-bulk":
		err = withArgs(rest, 2, func() error { return connectBulk(addr, rest[0], rest[1]) })
	case "serve-first-close":
		err = withArgs(rest, 1, func() error { return serveFirstClose(addr, rest[0]) })
	case "connect-read":
		err = withArgs(rest, 1, func() error { return connectRead(addr, rest[0]) })
	case "serve-shutdown":
		err = serveShutdown(addr)
	case "connect-shutdown":
		err = withArgs(rest, 2, func() error { return connectShutdown(addr, rest[0], rest[1]) })
	case "send-rst":
		err = withArgs(rest, 2, func() error { return sendReset(addr, rest[0], rest[1]) })
	case "connect-refused":
		err = withArgs(rest, 1, func() error { return connectRefused(addr, rest[0]) })
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fail(err)
	}
}

func withArgs(args []string, n int, fn func() error) error {
	if len(args) != n {
		return fmt.Errorf("want %d arguments after ADDR, got %d", n, len(args))
	}
	return fn()
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "peer %s: %v\n", os.Args[0], err)
	os.Exit(1)
}

// say prints one milestone line on stdout, unbuffered.
func say(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

// listen listens on addr, announces it, and bounds accepting by the
// deadline.
func listen(addr string) (*net.TCPListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	say("listening %s", ln.Addr())
	tl := ln.(*net.TCPListener)
	if err := tl.SetDeadline(time.Now().Add(deadline)); err != nil {
		ln.Close()
		return nil, err
	}
	return tl, nil
}

// acceptOne listens on addr, announces it, accepts one connection and
// closes the listener.
func acceptOne(addr string) (*net.TCPConn, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	c, err := ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	say("accepted %s %s", c.LocalAddr(), c.RemoteAddr())
	tc := c.(*net.TCPConn)
	return tc, tc.SetDeadline(time.Now().Add(deadline))
}

// serveEcho echoes one connection until EOF, then closes it. A reset by
// the peer also ends it (the abort scenario) and is reported as "reset".
func serveEcho(addr string) error {
	c, err := acceptOne(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	n, err := io.Copy(c, c)
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		say("reset after %d bytes", n)
	case err != nil:
		return fmt.Errorf("echo: %w", err)
	default:
		say("eof after %d bytes", n)
	}
	if err := c.Close(); err != nil {
		return err
	}
	say("closed")
	return nil
}

// serveSink reads one connection until EOF and reports the byte count.
func serveSink(addr string) error {
	c, err := acceptOne(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	say("received %d", n)
	if err := c.Close(); err != nil {
		return err
	}
	say("closed")
	return nil
}

// dial connects from the fixed local address to addr; with local "-" the
// kernel picks the address and port at connect time.
func dial(addr, local string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: deadline}
	if local != "-" {
		laddr, err := net.ResolveTCPAddr("tcp", local)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = laddr
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	say("connected %s %s", c.LocalAddr(), c.RemoteAddr())
	return tc, tc.SetDeadline(time.Now().Add(deadline))
}

// connectEcho sends msg, reads it back and closes; with abort it sets
// SO_LINGER 0 first so that close sends a reset instead of a FIN.
func connectEcho(addr, local, msg string, abort bool) error {
	c, err := dial(addr, local)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := exchange(c, msg); err != nil {
		return err
	}
	if abort {
		if err := c.SetLinger(0); err != nil {
			return err
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	if abort {
		say("aborted")
	} else {
		say("closed")
	}
	return nil
}

// connectBulk sends n bytes and closes.
func serveStall(addr, ms string) error {
	d, err := strconv.Atoi(ms)
	if err != nil || d < 0 {
		return fmt.Errorf("bad duration %q", ms)
	}
	c, err := acceptOne(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	// A small receive buffer reaches a zero window quickly.
	if err := c.SetReadBuffer(4096); err != nil {
		return err
	}
	time.Sleep(time.Duration(d) * time.Millisecond)
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	say("received %d", n)
	return c.Close()
}

func connectTimeout(addr, local, ms string) error {
	d, err := strconv.Atoi(ms)
	if err != nil || d <= 0 {
		return fmt.Errorf("bad duration %q", ms)
	}
	var laddr *net.TCPAddr
	if local != "-" {
		if laddr, err = net.ResolveTCPAddr("tcp", local); err != nil {
			return err
		}
	}
	dialer := net.Dialer{LocalAddr: laddr, Timeout: time.Duration(d) * time.Millisecond}
	c, err := dialer.Dial("tcp", addr)
	if err == nil {
		c.Close()
		return fmt.Errorf("connected to %s, want no answer", addr)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		return fmt.Errorf("connect: %w, want a timeout", err)
	}
	say("timed out")
	return nil
}

func connectKeepAlive(addr, local, ms string) error {
	d, err := strconv.Atoi(ms)
	if err != nil || d < 0 {
		return fmt.Errorf("bad duration %q", ms)
	}
	c, err := dial(addr, local)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 5}); err != nil {
		return err
	}
	time.Sleep(time.Duration(d) * time.Millisecond)
	say("idle for %dms", d)
	return c.Close()
}

func connectBulk(addr, local, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 {
		return fmt.Errorf("bad byte count %q", count)
	}
	c, err := dial(addr, local)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i)
	}
	w, err := c.Write(buf)
	if err != nil {
		return fmt.Errorf("write after %d bytes: %w", w, err)
	}
	if err := c.Close(); err != nil {
		return err
	}
	say("sent %d", w)
	return nil
}

// connectRefused expects the connection to be refused.
func connectRefused(addr, local string) error {
	c, err := dial(addr, local)
	if err == nil {
		c.Close()
		return fmt.Errorf("connect to %s succeeded, want connection refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("connect: %w, want connection refused", err)
	}
	say("refused")
	return nil
}

// serveShutdown echoes one message (whatever the first read returns), shuts
// its side down and reads until EOF.
func serveShutdown(addr string) error {
	c, err := acceptOne(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if _, err := c.Write(buf[:n]); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return shutdownAndDrain(c)
}

// exchange sends msg, reads it back, checks it and says "echoed N".
func exchange(c *net.TCPConn, msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	say("echoed %d", len(buf))
	return nil
}

// connectShutdown sends msg, reads it back, shuts its side down and reads
// until EOF.
func connectShutdown(addr, local, msg string) error {
	c, err := dial(addr, local)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := exchange(c, msg); err != nil {
		return err
	}
	return shutdownAndDrain(c)
}

// shutdownAndDrain sends a FIN, says "shutdown", reads until the peer's
// FIN and closes.
func shutdownAndDrain(c *net.TCPConn) error {
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	say("shutdown")
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return fmt.Errorf("read after shutdown: %w", err)
	}
	if n != 0 {
		return fmt.Errorf("%d bytes after shutdown, want none", n)
	}
	if err := c.Close(); err != nil {
		return err
	}
	say("closed")
	return nil
}

// greeting is what serve-first-close sends on each connection.
const greeting = "hello, closing now\n"

// serveFirstClose accepts n connections one after the other, sends each
// the greeting and closes it at once: the server closes first.
func serveFirstClose(addr, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return fmt.Errorf("bad connection count %q", count)
	}
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	for i := 0; i < n; i++ {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accept %d: %w", i+1, err)
		}
		say("accepted %s %s", c.LocalAddr(), c.RemoteAddr())
		if _, err := io.WriteString(c, greeting); err != nil {
			c.Close()
			return fmt.Errorf("write: %w", err)
		}
		if err := c.Close(); err != nil {
			return err
		}
		say("closed")
	}
	return nil
}

// connectRead reads until EOF and closes.
func connectRead(addr, local string) error {
	c, err := dial(addr, local)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	say("read %d", len(b))
	if err := c.Close(); err != nil {
		return err
	}
	say("closed")
	return nil
}

// sendReset sends one bare RST (no ACK, no options) from "from" to addr
// with sequence number seq, through a raw IPv4 socket.
func sendReset(addr, from, seqArg string) error {
	dst, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	src, err := netip.ParseAddrPort(from)
	if err != nil {
		return err
	}
	seq, err := strconv.ParseUint(seqArg, 10, 32)
	if err != nil {
		return fmt.Errorf("bad sequence number %q", seqArg)
	}
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return errors.New("send-rst: IPv4 only")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer syscall.Close(fd)
	// The kernel writes the IP header, from the bound source address.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: src.Addr().As4()}); err != nil {
		return fmt.Errorf("bind raw socket: %w", err)
	}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], uint32(seq))
	tcp[12] = 5 << 4 // data offset: 5 words, no options
	tcp[13] = 0x04   // RST
	// Checksum over the IPv4 pseudo-header and the segment.
	var sum uint32
	s, d := src.Addr().As4(), dst.Addr().As4()
	pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, syscall.IPPROTO_TCP, 0, byte(len(tcp)))
	for _, b := range [][]byte{pseudo, tcp} {
		for i := 0; i < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
	if err := syscall.Sendto(fd, tcp, 0, &syscall.SockaddrInet4{Addr: d}); err != nil {
		return fmt.Errorf("send reset: %w", err)
	}
	say("reset sent")
	return nil
}
