package main

// The load processes. The harness runs each as `ip netns exec NS
// /proc/self/exe SUBCOMMAND ...`: a separate process in its namespace,
// so that its CPU is never the tracer's nor the harness's. They use raw
// blocking syscalls (no netpoller, no epoll): the fewest syscalls per
// connection, so that the load generator is not what limits the rate.
//
// Protocol with the harness: a child prints "ready" on stdout when it is
// set up, the load generators then wait for a line on stdin before they
// start, and every child prints one JSON line with its result.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sizes of the storm's request and reply.
const (
	requestSize = 64
	replySize   = 64
)

// bulkChunk is what the bulk sender writes per call.
const bulkChunk = 256 << 10

// childMain runs a subcommand and returns the exit code.
func childMain(sub string, args []string) int {
	var err error
	switch sub {
	case "serve":
		err = childServe(args)
	case "storm":
		err = childStorm(args)
	case "bulk-recv":
		err = childBulkRecv(args)
	case "bulk-send":
		err = childBulkSend(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", sub)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", sub, err)
		return 1
	}
	return 0
}

// sockaddr converts an address and port for the raw syscalls.
func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// listenFD opens a blocking listening socket.
func listenFD(ap netip.AddrPort, backlog int) (int, error) {
	family, sa := sockaddr(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", ap, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", ap, err)
	}
	return fd, nil
}

// readFull reads exactly len(buf) bytes unless the peer closes first.
func readFull(fd int, buf []byte) (int, error) {
	got := 0
	for got < len(buf) {
		n, err := unix.Read(fd, buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, nil
		}
		got += n
	}
	return got, nil
}

// writeAll writes all of buf.
func writeAll(fd int, buf []byte) error {
	for len(buf) > 0 {
		n, err := unix.Write(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// errSamples keeps the first few distinct error messages and counts all.
type errSamples struct {
	mu      sync.Mutex
	count   int64
	samples map[string]int64
}

func (e *errSamples) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	if e.samples == nil {
		e.samples = map[string]int64{}
	}
	msg := err.Error()
	if _, ok := e.samples[msg]; ok || len(e.samples) < 8 {
		e.samples[msg]++
	}
}

func (e *errSamples) snapshot() (int64, map[string]int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.samples))
	for k, v := range e.samples {
		out[k] = v
	}
	return e.count, out
}

// ------------------------------------------------------------ storm

// serverResult is what the storm server reports when stopped.
type serverResult struct {
	Accepted int64            `json:"accepted"`
	Errors   int64            `json:"errors"`
	Samples  map[string]int64 `json:"error_samples,omitempty"`
	CPU      cpuUse           `json:"cpu"`
}

// cpuUse is a process's own CPU time so far (getrusage).
type cpuUse struct {
	UserNS int64 `json:"user_ns"`
	SysNS  int64 `json:"sys_ns"`
}

func selfCPU() cpuUse {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return cpuUse{}
	}
	return cpuUse{UserNS: ru.Utime.Nano(), SysNS: ru.Stime.Nano()}
}

// childServe is the storm server: threads goroutines each block in
// accept(), read the request, write the reply, wait for the client's FIN
// and close (the client closes first and keeps TIME_WAIT). It runs until
// SIGTERM, then prints its counts.
func childServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "", "listen address:port")
	threads := fs.Int("threads", 8, "accepting goroutines (each blocks in accept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return fmt.Errorf("bad -addr: %w", err)
	}
	lfd, err := listenFD(ap, 4096)
	if err != nil {
		return err
	}
	var accepted atomic.Int64
	var errs errSamples
	for range *threads {
		go func() {
			req := make([]byte, requestSize)
			reply := make([]byte, replySize)
			for i := range reply {
				reply[i] = 'r'
			}
			var drain [64]byte
			for {
				fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
				if err == unix.EINTR || err == unix.ECONNABORTED {
					continue
				}
				if err != nil {
					errs.add(fmt.Errorf("accept: %w", err))
					time.Sleep(10 * time.Millisecond)
					continue
				}
				accepted.Add(1)
				if err := serveConn(fd, req, reply, drain[:]); err != nil {
					errs.add(err)
				}
				unix.Close(fd)
			}
		}()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	<-stop
	n, samples := errs.snapshot()
	return json.NewEncoder(os.Stdout).Encode(serverResult{Accepted: accepted.Load(), Errors: n, Samples: samples, CPU: selfCPU()})
}

// serveConn handles one storm connection: request, reply, wait for EOF.
func serveConn(fd int, req, reply, drain []byte) error {
	n, err := readFull(fd, req)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if n < len(req) {
		return fmt.Errorf("short request: %d bytes", n)
	}
	if err := writeAll(fd, reply); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	for range 16 { // the client sends nothing more than its FIN
		n, err := unix.Read(fd, drain)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for FIN: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
	return errors.New("client sent more than its request")
}

// stormResult is what the load generator reports.
type stormResult struct {
	Conns     int64            `json:"conns"`      // completed: connect, request, full reply, close
	Errors    int64            `json:"errors"`     // failed attempts
	ElapsedNS int64            `json:"elapsed_ns"` // from "go" to the last worker's end
	TimedOut  bool             `json:"timed_out"`  // the time limit ended the storm before N
	Stuck     bool             `json:"stuck"`      // a worker was still blocked at the limit plus grace
	Samples   map[string]int64 `json:"error_samples,omitempty"`
	CPU       cpuUse           `json:"cpu"` // the load generator's own, setup included
}

// childStorm is the load generator: workers make n short connections in
// total (connect, write the request, read the reply, close), stopping at
// the time limit.
func childStorm(args []string) error {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address:port")
	n := fs.Int64("n", 100000, "connections in total")
	workers := fs.Int("workers", 4, "concurrent connections")
	limit := fs.Duration("timeout", time.Minute, "time limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return fmt.Errorf("bad -addr: %w", err)
	}
	family, sa := sockaddr(ap)
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("wait for go: %w", err)
	}

	start := time.Now()
	deadline := start.Add(*limit)
	var remaining, done atomic.Int64
	var timedOut atomic.Bool
	remaining.Store(*n)
	var errs errSamples
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := make([]byte, requestSize)
			for i := range req {
				req[i] = 'q'
			}
			reply := make([]byte, replySize)
			for remaining.Add(-1) >= 0 {
				if time.Now().After(deadline) {
					timedOut.Store(true)
					return
				}
				if err := stormConn(family, sa, req, reply); err != nil {
					errs.add(err)
					continue
				}
				done.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	stuck := false
	select {
	case <-finished:
	case <-time.After(*limit + 10*time.Second):
		stuck = true // report what was done; exiting ends the blocked syscalls
	}
	elapsed := time.Since(start)
	count, samples := errs.snapshot()
	return json.NewEncoder(os.Stdout).Encode(stormResult{Conns: done.Load(), Errors: count, ElapsedNS: elapsed.Nanoseconds(),
		TimedOut: timedOut.Load(), Stuck: stuck, Samples: samples, CPU: selfCPU()})
}

// stormConn makes one short connection: 5 syscalls.
func stormConn(family int, sa unix.Sockaddr, req, reply []byte) error {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := writeAll(fd, req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	n, err := readFull(fd, reply)
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if n < len(reply) {
		return fmt.Errorf("short reply: %d bytes", n)
	}
	return nil
}

// ------------------------------------------------------------ bulk

// bulkResult is what the bulk sender and receiver report.
type bulkResult struct {
	Bytes     int64 `json:"bytes"`
	ElapsedNS int64 `json:"elapsed_ns,omitempty"` // sender: from "go" to the receiver's close
}

// childBulkRecv accepts one connection, reads until EOF, closes and
// prints the byte count.
func childBulkRecv(args []string) error {
	fs := flag.NewFlagSet("bulk-recv", flag.ContinueOnError)
	addr := fs.String("addr", "", "listen address:port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return fmt.Errorf("bad -addr: %w", err)
	}
	lfd, err := listenFD(ap, 16)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	var fd int
	for {
		fd, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	buf := make([]byte, bulkChunk)
	var total int64
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			break
		}
		total += int64(n)
	}
	unix.Close(fd)
	return json.NewEncoder(os.Stdout).Encode(bulkResult{Bytes: total})
}

// childBulkSend connects, waits for "go", writes as fast as it can for
// the duration, shuts its side down and waits for the receiver's close,
// so that the elapsed time covers delivering every byte.
func childBulkSend(args []string) error {
	fs := flag.NewFlagSet("bulk-send", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address:port")
	duration := fs.Duration("duration", 5*time.Second, "how long to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return fmt.Errorf("bad -addr: %w", err)
	}
	family, sa := sockaddr(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("wait for go: %w", err)
	}
	buf := make([]byte, bulkChunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	end := start.Add(*duration)
	var total int64
	for time.Now().Before(end) {
		n, err := unix.Write(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		total += int64(n)
	}
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	var one [1]byte
	for {
		n, err := unix.Read(fd, one[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for the receiver's close: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return json.NewEncoder(os.Stdout).Encode(bulkResult{Bytes: total, ElapsedNS: time.Since(start).Nanoseconds()})
}
