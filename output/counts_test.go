package output

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// TestCountsRecordAndCountedSummary: a counts record (--packets control)
// shows its endpoints and both directions' segments and bytes, in JSON
// and text; a summary whose bytes include counted packets says so.
func TestCountsRecordAndCountedSummary(t *testing.T) {
	r := tracer.Record{Type: tracer.TypeCounts, Time: time.Unix(1, 0), Conn: 3, Netns: 9,
		Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:80"),
		PktCounts: [2]tracer.PacketCounts{{Segs: 3, Bytes: 1000}, {Segs: 2, Bytes: 7}}}
	var m map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &r), &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "counts" || m["local"] != "10.0.0.1:40000" || m["remote"] != "10.0.0.2:80" ||
		m["out"].(map[string]any)["segs"] != 3.0 || m["out"].(map[string]any)["bytes"] != 1000.0 ||
		m["in"].(map[string]any)["segs"] != 2.0 || m["in"].(map[string]any)["bytes"] != 7.0 {
		t.Errorf("counts JSON: %v", m)
	}
	if txt := string(AppendText(nil, &r)); !strings.Contains(txt, "counted 10.0.0.1:40000 10.0.0.2:80 out 1000B/3 in 7B/2") {
		t.Errorf("counts text: %q", txt)
	}
	sum := tracer.Record{Type: tracer.TypeConn, Time: time.Unix(1, 0), Conn: 3,
		Summary: &result.ConnSummary{PacketsSeen: true, PacketsCounted: true, BytesOut: 5}}
	if js := string(AppendJSON(nil, &sum)); !strings.Contains(js, `"packets_counted":true`) {
		t.Errorf("summary JSON without packets_counted: %s", js)
	}
	if txt := string(AppendText(nil, &sum)); !strings.Contains(txt, "(counted)") {
		t.Errorf("summary text without (counted): %q", txt)
	}
	sum.Summary.PacketsCounted = false
	if js := string(AppendJSON(nil, &sum)); strings.Contains(js, "packets_counted") {
		t.Errorf("summary JSON with packets_counted although nothing was counted: %s", js)
	}
}

// TestClosePacketCounts: a CLOSE state record that carries its
// connection's counted packets (--packets control) shows them in a
// "counts" object (JSON) and after "counted" (text); one without shows
// neither.
func TestClosePacketCounts(t *testing.T) {
	r := tracer.Record{Type: tracer.TypeState, Time: time.Unix(1, 0), Conn: 3, Netns: 9, HasState: true,
		OldState: tracer.StateFinWait2, State: tracer.StateClose,
		Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:80"), HasPktCounts: true,
		PktCounts: [2]tracer.PacketCounts{{Segs: 3, Bytes: 1000}, {Segs: 2, Bytes: 7}}}
	var m map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &r), &m); err != nil {
		t.Fatal(err)
	}
	c, _ := m["counts"].(map[string]any)
	out, _ := c["out"].(map[string]any)
	in, _ := c["in"].(map[string]any)
	if m["type"] != "state" || out["segs"] != 3.0 || out["bytes"] != 1000.0 || in["segs"] != 2.0 || in["bytes"] != 7.0 {
		t.Errorf("CLOSE JSON with packet counts: %v", m)
	}
	if txt := string(AppendText(nil, &r)); !strings.Contains(txt, "FIN_WAIT2 -> CLOSE counted out 1000B/3 in 7B/2") {
		t.Errorf("CLOSE text with packet counts: %q", txt)
	}
	r.HasPktCounts = false
	if js, txt := string(AppendJSON(nil, &r)), string(AppendText(nil, &r)); strings.Contains(js, "counts") || strings.Contains(txt, "counted") {
		t.Errorf("CLOSE without packet counts shows some: %s / %s", js, txt)
	}
}
