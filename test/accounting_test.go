package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// tally counts one tracer's output per event kind: records delivered and
// reported lost (by place).
type tally struct {
	delivered  map[string]uint64 // packet, state (not TIME_WAIT records), retransmit, reset
	lost       map[string]uint64 // kind -> count, any place
	lostWhere  map[string]uint64 // place -> count
	incomplete int               // conn summaries marked incomplete because events were lost
}

func tallyOutput(t *testing.T, out []byte) *tally {
	t.Helper()
	tl := &tally{delivered: map[string]uint64{}, lost: map[string]uint64{}, lostWhere: map[string]uint64{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r harness.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad output line %q: %v", sc.Text(), err)
		}
		switch r.Type {
		case "lost":
			tl.lost[r.Kind] += r.Count
			tl.lostWhere[r.Where] += r.Count
		case "conn":
			if r.Incomplete && strings.Contains(r.IncompleteReason, "lost") {
				tl.incomplete++
			}
		case "state":
			if !r.TimeWait { // TIME_WAIT records are rebuilt from timer events, not one per event
				tl.delivered["state"]++
			}
		case "packet", "retransmit", "reset":
			tl.delivered[r.Type]++
		}
	}
	return tl
}

// checkAccounting: for every kind, what the tracer under test delivered
// plus what it reported lost equals what the oracle tracer (a big ring, a
// fast reader, nothing lost) delivered.
func checkAccounting(t *testing.T, got, oracle *tally) {
	t.Helper()
	if n := len(oracle.lost); n != 0 {
		t.Fatalf("precondition: the oracle tracer lost events too: %v", oracle.lost)
	}
	for _, kind := range []string{"packet", "state", "retransmit", "reset"} {
		if d, l, want := got.delivered[kind], got.lost[kind], oracle.delivered[kind]; d+l != want {
			t.Errorf("%s: %d delivered + %d reported lost = %d, the oracle saw %d", kind, d, l, d+l, want)
		} else {
			t.Logf("%s: %d delivered + %d reported lost = %d (oracle)", kind, d, l, want)
		}
	}
}

// storm runs n short connections from B to A's port (a listener in A that
// reads 64 bytes, answers 256 and closes first), workers at a time, at
// most rate per second (0: as fast as they go). It returns how many
// completed.
func storm(ctx context.Context, t *testing.T, v *harness.VethPair, port uint16, n, workers, rate int) int64 {
	t.Helper()
	var ln net.Listener
	if err := v.A.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(v.A4, port).String())
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", v.A.Name, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var req [64]byte
				if _, err := io.ReadFull(c, req[:]); err == nil {
					c.Write(bytes.Repeat([]byte{'r'}, 256))
				}
			}()
		}
	}()
	var pace <-chan time.Time
	if rate > 0 {
		tk := time.NewTicker(time.Second / time.Duration(rate))
		defer tk.Stop()
		pace = tk.C
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.B.Do(func() error {
				req := bytes.Repeat([]byte{'q'}, 64)
				for next.Add(1) <= int64(n) && ctx.Err() == nil {
					if pace != nil {
						select {
						case <-pace:
						case <-ctx.Done():
							return nil
						}
					}
					c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(v.A4, port).String(), 2*time.Second)
					if err != nil {
						continue
					}
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write(req); err == nil {
						if _, err := io.Copy(io.Discard, c); err == nil {
							done.Add(1)
						}
					}
					c.Close()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return done.Load()
}

// TestLossAccountingExact: with the smallest ring (4K: it overflows) and a
// bounded storm of short connections in a test namespace, what tcpscope
// delivers plus what it reports lost equals, per kind, what an oracle
// tcpscope with an 8M ring saw of the same storm (both traced at once);
// and connections whose events were lost have summaries marked incomplete.
func TestLossAccountingExact(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "acct", 63)
	common := []string{"trace", "-o", "json", "--netns", v.A.Name, "-i", harness.VethA}
	oracle := startAcctTracer(ctx, t, "oracle", append(common, "--ring-size", "8M")...)
	small := startAcctTracer(ctx, t, "small", append(common, "--ring-size", "4K")...)
	done := storm(ctx, t, v, 7301, 2000, 8, 0)
	time.Sleep(settle)
	smallOut := stopAcctTracer(ctx, t, small)
	oracleOut := stopAcctTracer(ctx, t, oracle)
	if done < 1000 {
		t.Fatalf("precondition: only %d of 2000 connections completed", done)
	}
	got, want := tallyOutput(t, smallOut), tallyOutput(t, oracleOut)
	var lost uint64
	for _, n := range got.lost {
		lost += n
	}
	if lost == 0 {
		t.Fatalf("precondition: the 4K ring lost nothing in a storm of %d connections", done)
	}
	checkAccounting(t, got, want)
	t.Logf("lost by place: %v; %d summaries incomplete", got.lostWhere, got.incomplete)
	if got.incomplete == 0 {
		t.Error("events were lost but no conn summary is marked incomplete")
	}
}

// startAcctTracer runs tcpscope with its output in a file (a reader that
// never slows it down) and waits until it traces.
func startAcctTracer(ctx context.Context, t *testing.T, name string, args ...string) *harness.Proc {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".json")
	p := harness.StartT(t, "tcpscope-"+name, harness.Command(append([]string{bins.Tcpscope}, append(withPacketsAll(args), "-w", out)...)...))
	if _, err := p.WaitLine(ctx, true, `msg="tracing started"`, startTimeout); err != nil {
		t.Fatal(err)
	}
	p.Name = out // where stopAcctTracer finds the output
	return p
}

func stopAcctTracer(ctx context.Context, t *testing.T, p *harness.Proc) []byte {
	t.Helper()
	if err := p.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
		t.Fatalf("tcpscope after SIGINT: %v\n%s", err, p.Output())
	}
	data, err := os.ReadFile(p.Name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// procRSS returns a process's resident memory in KiB.
func procRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// slowReaderRSSBound is the most resident memory tcpscope may use while
// its reader stalls: the queue is bounded, so a stall costs no memory.
const slowReaderRSSBound = 200 << 10 // KiB

// TestSlowReaderOverflow: tcpscope writes into a FIFO whose reader stops
// reading for 10 s during a storm. The ring keeps being drained: what is
// dropped after it is reported ("where":"queue"), and delivered + reported
// lost equals what an oracle tracer saw, per kind. Memory stays bounded
// during the stall, and records flow again once the reader resumes.
func TestSlowReaderOverflow(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "slowrd", 64)
	fifo := filepath.Join(t.TempDir(), "out.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened for reading first, without waiting for a writer.
	rd, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	common := []string{"trace", "-o", "json", "--analysis", "off", "--netns", v.A.Name, "-i", harness.VethA, "--packets", "all"}
	oracle := startAcctTracer(ctx, t, "oracle", common...)
	// The queue of the old default (16,384 records): with the default
	// one, ring and queue together hold about as much as this storm
	// makes during the stall.
	slow := harness.StartT(t, "tcpscope", harness.Command(append([]string{bins.Tcpscope}, append(common, "--queue-size", "16384", "-w", fifo)...)...))
	if _, err := slow.WaitLine(ctx, true, `msg="tracing started"`, startTimeout); err != nil {
		t.Fatal(err)
	}

	// The reader: copies the FIFO into out, except while paused.
	var (
		mu     sync.Mutex
		out    bytes.Buffer
		paused atomic.Bool
		eof    = make(chan struct{})
	)
	go func() {
		defer close(eof)
		buf := make([]byte, 64<<10)
		for {
			if paused.Load() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			rd.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := rd.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err == io.EOF {
				return
			}
		}
	}()
	snapshot := func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return append([]byte(nil), out.Bytes()...)
	}

	// A storm of about 15 s; the reader stalls for 10 s of it.
	stormDone := make(chan int64)
	go func() { stormDone <- storm(ctx, t, v, 7302, 15000, 8, 1000) }()
	time.Sleep(2 * time.Second)
	paused.Store(true)
	rssBefore := procRSS(t, slow.Pid())
	var rssMax int64
	for range 20 {
		time.Sleep(500 * time.Millisecond)
		rssMax = max(rssMax, procRSS(t, slow.Pid()))
	}
	stalled := len(snapshot())
	paused.Store(false)
	done := <-stormDone
	t.Logf("%d connections; RSS %d KiB before the stall, at most %d KiB during it", done, rssBefore, rssMax)
	if rssMax > slowReaderRSSBound {
		t.Errorf("RSS reached %d KiB while the reader stalled, bound %d KiB", rssMax, slowReaderRSSBound)
	}

	// Recovery: connections after the stall reach the reader while the
	// tracer runs.
	storm(ctx, t, v, 7303, 5, 1, 0)
	for !bytes.Contains(snapshot()[stalled:], []byte(`:7303"`)) {
		if ctx.Err() != nil {
			t.Fatalf("no record of the connections after the stall reached the reader\n%s", slow.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(settle)
	if err := slow.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
		t.Fatalf("tcpscope after SIGINT: %v\n%s", err, slow.Output())
	}
	<-eof
	oracleOut := stopAcctTracer(ctx, t, oracle)

	got, want := tallyOutput(t, snapshot()), tallyOutput(t, oracleOut)
	t.Logf("lost by place: %v", got.lostWhere)
	if got.lostWhere["queue"] == 0 {
		t.Error("the reader stalled 10 s in a storm and nothing was dropped after the ring: the reader blocked")
	}
	checkAccounting(t, got, want)
}
