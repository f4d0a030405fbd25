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

// Memory test parameters: a storm of short connections (the server closes
// first, so each leaves a TIME_WAIT socket in the traced namespace) for
// stormFor at stormRate (issue 10: "70 s of storms at several thousand
// connections/s"), the tracer's VmRSS sampled every second.
const (
	stormFor     = 70 * time.Second
	stormWarmup  = 20 * time.Second // RSS is flat from here on
	stormRate    = 3000             // connections/s asked for
	stormMinRate = 2000             // connections/s done, or the test measured no storm
	stormWorkers = 64               // each waits for its connection's reply and close
	stormPorts   = 8                // server ports: 4-tuples enough for the TIME_WAITs
	// The target of issue 10: RSS <= 150 MiB, and flat after the
	// warm-up but for the state of TIME_WAIT sockets (perTimeWait below);
	// rssGrowth allows for the heap's steps between collections.
	rssBound  = 150 << 20 // bytes
	rssGrowth = 40 << 20
)

// TestMemoryBoundedInStorm: with analysis on and every packet of a storm
// of a few thousand connections/s captured and analysed (no record lost),
// the tracer's RSS stays under rssBound and grows by less than rssGrowth
// after the warm-up: memory follows what is live, not the connection rate.
func TestMemoryBoundedInStorm(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), stormFor+60*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "mem", 61)
	harness.MustRun(ctx, t, stopTimeout, v.B.Exec("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000")...)

	out := filepath.Join(t.TempDir(), "out.json")
	tr := harness.StartT(t, "tcpscope", harness.Command("sh", "-c", fmt.Sprintf("exec %s trace -o json --summary-only --packets all --netns %s -i %s > %s",
		bins.Tcpscope, v.A.Name, harness.VethA, out)))
	if _, err := tr.WaitLine(ctx, true, `msg="tracing started"`, startTimeout); err != nil {
		t.Fatal(err)
	}

	var lns []net.Listener
	err := v.A.Do(func() error {
		for i := range stormPorts {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(v.A4, uint16(20000+i)).String())
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", v.A.Name, err)
	}
	var wg sync.WaitGroup
	var served, done, failed atomic.Int64
	for _, ln := range lns {
		defer ln.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close() // the server closes first: its TIME_WAIT
					c.SetDeadline(time.Now().Add(5 * time.Second))
					var req [64]byte
					if _, err := io.ReadFull(c, req[:]); err == nil {
						c.Write(bytes.Repeat([]byte{'r'}, 256))
						served.Add(1)
					}
				}()
			}
		}()
	}

	// Clients in B, paced to stormRate overall, until stop.
	stop := make(chan struct{})
	begin := time.Now()
	var clients sync.WaitGroup
	for w := range stormWorkers {
		clients.Add(1)
		go func() {
			defer clients.Done()
			v.B.Do(func() error {
				req := bytes.Repeat([]byte{'q'}, 64)
				for i := 0; ; i++ {
					// Worker w makes connections w, w+stormWorkers, ... of
					// the schedule (one each 1/stormRate s); behind it, at
					// once.
					due := begin.Add(time.Duration(i*stormWorkers+w) * time.Second / stormRate)
					select {
					case <-stop:
						return nil
					case <-time.After(time.Until(due)):
					}
					addr := netip.AddrPortFrom(v.A4, uint16(20000+(w+i)%stormPorts)).String()
					c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
					if err != nil {
						failed.Add(1)
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
			})
		}()
	}

	rss := make([]int64, 0, int(stormFor/time.Second)+1)
	start := time.Now()
	for s := time.Duration(0); s <= stormFor; s += time.Second {
		time.Sleep(time.Until(start.Add(s)))
		kb, err := vmRSS(tr.Pid())
		if err != nil {
			t.Fatalf("tracer RSS: %v\n%s", err, tr.Output())
		}
		rss = append(rss, kb<<10)
	}
	close(stop)
	clients.Wait()
	elapsed := time.Since(start)
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	if err := tr.Stop(ctx, syscall.SIGINT, stopTimeout); err != nil {
		t.Fatalf("tcpscope after SIGINT: %v\n%s", err, tr.Output())
	}
	summaries, lost := countOutput(t, out)

	n := done.Load()
	t.Logf("%d connections in %v (%.0f/s), %d failed; %d summaries, %d lost records", n, elapsed.Round(time.Second),
		float64(n)/elapsed.Seconds(), failed.Load(), summaries, lost)
	var b strings.Builder
	for i, r := range rss {
		fmt.Fprintf(&b, " %ds:%dMiB", i, r>>20)
	}
	t.Logf("tracer VmRSS:%s", b.String())
	if rate := float64(n) / elapsed.Seconds(); rate < stormMinRate {
		t.Fatalf("only %.0f connections/s completed, want >= %d: no storm to measure", rate, stormMinRate)
	}
	if lost != 0 {
		t.Errorf("%d lost records: not every packet was analysed", lost)
	}
	if summaries < n {
		t.Errorf("%d summaries for %d connections", summaries, n)
	}
	warm := rss[int(stormWarmup/time.Second)]
	var peak int64
	for _, r := range rss[int(stormWarmup/time.Second):] {
		peak = max(peak, r)
	}
	if peak > rssBound {
		t.Errorf("tracer VmRSS peaked at %d MiB after the warm-up, want <= %d MiB", peak>>20, rssBound>>20)
	}
	// After the warm-up, what may still grow is the state that lives as
	// long as a TIME_WAIT socket (60 s, longer than the storm after the
	// warm-up): per connection since the warm-up, at most perTimeWait of
	// RSS (the compact entries of docs/analysis.md, about 100 B per quiet
	// connection in BenchmarkStorm, plus the heap's headroom: about 170 B
	// of RSS measured), beyond the heap's steps. The state of 7e19daa
	// (540 B of RSS per connection) fails.
	const perTimeWait = 192
	since := n * int64(stormFor-stormWarmup) / int64(stormFor)
	if allowed := rssGrowth + since*perTimeWait; peak-warm > allowed {
		t.Errorf("tracer VmRSS grew from %d MiB at %v to %d MiB, want < %d MiB growth (%d MiB + %d B for each of the ~%d connections since, in TIME_WAIT)",
			warm>>20, stormWarmup, peak>>20, allowed>>20, rssGrowth>>20, perTimeWait, since)
	}
}

// vmRSS returns the resident set size of pid in KiB.
func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// countOutput counts the conn summaries of connections to the storm's
// server (a complete one each) and the lost records in a JSON output file.
func countOutput(t *testing.T, path string) (summaries, lost int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r harness.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		switch r.Type {
		case "conn":
			summaries++
		case "lost":
			lost++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return summaries, lost
}
