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
		w.lost[tcpscopeEventKindEVENT_PACKET] += 3
		w.lost[tcpscopeEventKindEVENT_STATE]++
		w.evicted += 2
		w.warn(t0.Add(time.Duration(i)*100*time.Millisecond), log, 16)
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
