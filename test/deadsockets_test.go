package e2e

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// deadSocketsWait: how long after a storm that lost records every
// connection whose closing records were lost is summarized: the tracer
// lists the kernel's sockets at most every 10 s while records are lost
// (tracer/deadsockets.go), and applies a listing a second later.
const deadSocketsWait = 14 * time.Second

// TestDeadSocketsEndedAfterLoss: with the smallest ring a storm loses
// records, among them closing records. The connections that lost them are
// not kept until --idle-timeout (10 min) or the exit: once the kernel no
// longer lists their sockets they are summarized, incomplete. So by
// deadSocketsWait after the storm every connection of the storm with a
// socket event in the output has its summary, one each, and the exit adds
// none. (A connection of which only packets came, its socket events all
// lost, names no socket to look for: it still waits for --idle-timeout.)
func TestDeadSocketsEndedAfterLoss(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "dead", 65)
	const port = 7303
	tr := startAcctTracer(ctx, t, "small", "trace", "-o", "json", "--netns", v.A.Name, "-i", harness.VethA, "--ring-size", "4K")
	done := storm(ctx, t, v, port, 2000, 8, 0)
	time.Sleep(deadSocketsWait)
	running, err := os.ReadFile(tr.Name)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(running, '\n'); i >= 0 {
		running = running[:i+1] // whole lines only: the tracer is writing
	}
	final := stopAcctTracer(ctx, t, tr)
	if done < 1000 {
		t.Fatalf("precondition: only %d of 2000 connections completed", done)
	}
	before, _, _ := stormSummaries(t, running, port)
	after, lost, withSocket := stormSummaries(t, final, port)
	if lost == 0 {
		t.Fatalf("precondition: the 4K ring lost nothing in a storm of %d connections", done)
	}
	m := regexp.MustCompile(`connections ended early.* connections=(\d+)`).FindStringSubmatch(tr.Output())
	if m == nil {
		t.Fatalf("no connection was ended for its sockets being gone (%d records lost); tcpscope said:\n%s", lost, tr.Output())
	}
	ended, _ := strconv.Atoi(m[1])
	t.Logf("%d connections, %d records lost, %d connections ended when their sockets were gone; %d summaries before the exit, %d after",
		done, lost, ended, len(before), len(after))
	var atExit []uint64
	packetsOnly := 0
	for id, n := range after {
		if n > 1 {
			t.Errorf("connection %d has %d summaries", id, n)
		}
		switch {
		case before[id] > 0:
		case withSocket[id]:
			atExit = append(atExit, id)
		default:
			packetsOnly++
		}
	}
	t.Logf("summarized at the exit: %d connections of which only packets came", packetsOnly)
	if len(atExit) > 0 {
		t.Errorf("%d storm connections were summarized only at the exit (e.g. %d): their end was lost and their sockets gone %v before",
			len(atExit), atExit[0], deadSocketsWait)
	}
}

// stormSummaries counts the conn summaries per connection to port in a
// JSON output, the records reported lost, and which connections had a
// socket event (state, retransmit, reset) in it.
func stormSummaries(t *testing.T, out []byte, port int) (summaries map[uint64]int, lost uint64, withSocket map[uint64]bool) {
	t.Helper()
	recs, err := harness.ParseRecords(out)
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	summaries, withSocket = map[uint64]int{}, map[uint64]bool{}
	suffix := ":" + strconv.Itoa(port)
	for _, r := range recs {
		switch {
		case r.Type == "lost":
			lost += r.Count
		case r.Conn == nil || !strings.HasSuffix(r.Local, suffix) && !strings.HasSuffix(r.Remote, suffix):
		case r.Type == "conn":
			summaries[*r.Conn]++
		case r.Type == "state" || r.Type == "retransmit" || r.Type == "reset":
			withSocket[*r.Conn] = true
		}
	}
	return summaries, lost, withSocket
}
