package output

import (
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// TestProgressSummary: a progress record (--progress-interval) says so in
// JSON ("progress": true, after complete) and in text ("progress" instead
// of "incomplete"); a final summary has neither.
func TestProgressSummary(t *testing.T) {
	r := tracer.Record{Type: tracer.TypeConn, Time: time.Unix(1, 0), Conn: 3,
		Summary: &result.ConnSummary{PacketsSeen: true, BytesOut: 5, Progress: true}}
	if js := string(AppendJSON(nil, &r)); !strings.Contains(js, `"complete":false,"progress":true`) {
		t.Errorf("progress JSON: %s", js)
	}
	if txt := string(AppendText(nil, &r)); !strings.Contains(txt, " progress") || strings.Contains(txt, "incomplete") {
		t.Errorf("progress text: %q", txt)
	}
	r.Summary.Progress = false
	if js, txt := string(AppendJSON(nil, &r)), string(AppendText(nil, &r)); strings.Contains(js, "progress") || strings.Contains(txt, "progress") {
		t.Errorf("final summary says progress: %s %q", js, txt)
	}
}
