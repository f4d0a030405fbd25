package tracer

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLossWarningsRateLimited: under sustained loss (a loss at every
// 100 ms drain) stderr gets one warning per 10 s with the counts summed,
// not one line per drain and kind.
func TestLossWarningsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var w lossWarnings
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 250; i++ { // 25 s of drains
		w.ring[tcpscopeEventKindEVENT_PACKET] += 3
		w.ring[tcpscopeEventKindEVENT_STATE]++
		w.evicted += 2
		w.warn(t0.Add(time.Duration(i)*100*time.Millisecond), log, 16, false)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var lost, evicted []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "events lost"):
			lost = append(lost, l)
		case strings.Contains(l, "connection table full"):
			evicted = append(evicted, l)
		}
	}
	// At 0 s, 10 s and 20 s.
	if len(lost) != 3 || len(evicted) != 3 || len(lines) != 6 {
		t.Fatalf("%d lines, %d about lost events, %d about evictions; want 3 each:\n%s", len(lines), len(lost), len(evicted), buf.String())
	}
	if !strings.Contains(lost[0], "packet=3 state=1") || !strings.Contains(lost[1], "packet=300 state=100 since=10s") {
		t.Errorf("counts not summed since the last warning:\n%s\n%s", lost[0], lost[1])
	}
	if !strings.Contains(evicted[1], "forgotten=200") {
		t.Errorf("evictions not summed: %s", evicted[1])
	}
}

// TestLossWarningsByPlace: ring losses and queue drops are warned apart,
// each with its own remedy (a bigger ring does not help a slow output),
// and at exit what the rate limit held back is warned at once.
func TestLossWarningsByPlace(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var w lossWarnings
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	w.ring[tcpscopeEventKindEVENT_PACKET] = 5
	w.queue[tcpscopeEventKindEVENT_STATE] = 7
	w.warn(t0, log, 16, false)
	first := buf.String()
	if !strings.Contains(first, "ring buffer full") || !strings.Contains(first, "packet=5") {
		t.Errorf("no ring warning with its count:\n%s", first)
	}
	if !strings.Contains(first, "records dropped after the ring") || !strings.Contains(first, "state=7") ||
		strings.Count(first, "--ring-size") != 1 {
		t.Errorf("queue drops not warned apart with their own remedy:\n%s", first)
	}
	buf.Reset()
	w.queue[tcpscopeEventKindEVENT_PACKET] = 77
	w.warn(t0.Add(time.Second), log, 16, false) // within the rate limit
	if buf.Len() != 0 {
		t.Fatalf("warned within the rate limit: %s", buf.String())
	}
	w.warn(t0.Add(2*time.Second), log, 16, true) // exit
	if !strings.Contains(buf.String(), "packet=77") {
		t.Errorf("the losses held back were not warned at exit: %q", buf.String())
	}
}
