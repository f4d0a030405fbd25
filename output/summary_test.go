package output

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// renderSummary returns s as a JSON object and as a text line.
func renderSummary(t *testing.T, s result.ConnSummary) (map[string]any, string) {
	t.Helper()
	r := tracer.Record{Time: t0, Type: tracer.TypeConn, Conn: 1, Summary: &s}
	var m map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &r), &m); err != nil {
		t.Fatal(err)
	}
	return m, string(AppendText(nil, &r))
}

// TestSummaryTimesWhenSeen: a connection whose beginning was not seen (a
// TIME_WAIT socket found at start-up) has no start, end or duration: the
// start-up and the stop are no times of it.
func TestSummaryTimesWhenSeen(t *testing.T) {
	m, text := renderSummary(t, result.ConnSummary{Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"),
		TimeWaitSide: "local", TimeWaitEnd: "expired", Preexisting: true, Incomplete: "began before tracing"})
	for _, k := range []string{"start", "end", "duration_ms", "time_wait_ms"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s present: %v", k, m)
		}
	}
	if m["time_wait_side"] != "local" || m["time_wait_end"] != "expired" {
		t.Errorf("time_wait_side %v time_wait_end %v", m["time_wait_side"], m["time_wait_end"])
	}
	if strings.Contains(text, " dur ") || !strings.Contains(text, " time-wait expired ") {
		t.Errorf("text %q: want no dur, and time-wait expired", text)
	}
	// Seen from its start: the duration is the connection's own, TIME_WAIT apart.
	m, text = renderSummary(t, result.ConnSummary{Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"),
		Start: t0, End: t0.Add(3 * time.Millisecond), TimeWait: 9 * time.Second, TimeWaitSide: "local"})
	if m["duration_ms"] != 3.0 || m["time_wait_ms"] != 9000.0 {
		t.Errorf("duration_ms %v time_wait_ms %v, want 3 and 9000", m["duration_ms"], m["time_wait_ms"])
	}
	if !strings.Contains(text, " dur 3ms ") || !strings.Contains(text, " time-wait 9s ") {
		t.Errorf("text %q: want dur 3ms and time-wait 9s", text)
	}
}

// TestSummaryPeerTimeWait: when the TIME_WAIT is the peer's (both ends on
// this host, the summary written from the client's end), JSON and text
// say so.
func TestSummaryPeerTimeWait(t *testing.T) {
	m, text := renderSummary(t, result.ConnSummary{Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"), Role: "client",
		Start: t0, End: t0.Add(time.Millisecond), TimeWait: time.Minute, TimeWaitEnd: "expired", TimeWaitSide: "remote"})
	if m["time_wait_side"] != "remote" {
		t.Errorf("time_wait_side %v, want remote", m["time_wait_side"])
	}
	if !strings.Contains(text, "summary 10.0.0.1:5555 10.0.0.2:80 client ") || !strings.Contains(text, " remote time-wait 1m0s") {
		t.Errorf("text %q: want the client's view and remote time-wait 1m0s", text)
	}
}

// TestSummaryRetransmitKinds: the kernel's retransmit events, their
// segments and bytes, and the capture's retransmitted packets, each
// labelled.
func TestSummaryRetransmitKinds(t *testing.T) {
	m, text := renderSummary(t, result.ConnSummary{Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"),
		RetransKernel: 37, RetransSegs: 719, RetransBytes: 1041112, RetransSeen: 23, PacketsSeen: true, KernelCounted: true})
	rtx, _ := m["retransmits"].(map[string]any)
	if rtx["kernel"] != 37.0 || rtx["kernel_segs"] != 719.0 || rtx["kernel_bytes"] != 1041112.0 || rtx["seen"] != 23.0 {
		t.Errorf("retransmits %v", m["retransmits"])
	}
	if !strings.Contains(text, " retrans seen 23 kernel 37 (719 segs, 1041112B)") {
		t.Errorf("text %q", text)
	}
	_, text = renderSummary(t, result.ConnSummary{RetransKernel: 2, RetransSegs: 3, RetransBytes: 4000, KernelCounted: true})
	if !strings.Contains(text, " retrans kernel 2 (3 segs, 4000B)") || strings.Contains(text, "seen") {
		t.Errorf("kernel events only: text %q", text)
	}
}

// TestRetransmitRecordSegments: a retransmit record says how many
// segments the kernel retransmitted (GSO), when it knows.
func TestRetransmitRecordSegments(t *testing.T) {
	r := tracer.Record{Time: t0, Type: tracer.TypeRetransmit, Conn: 1, Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"),
		State: tracer.StateEstablished, Seq: 1001, Len: 14480, Segs: 10, Flags: tracer.FlagACK}
	var m map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &r), &m); err != nil {
		t.Fatal(err)
	}
	if m["segs"] != 10.0 || m["len"] != 14480.0 {
		t.Errorf("segs %v len %v, want 10 and 14480", m["segs"], m["len"])
	}
	r.Segs = 0
	m = nil
	if err := json.Unmarshal(AppendJSON(nil, &r), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["segs"]; ok {
		t.Errorf("segs %v although unknown", m["segs"])
	}
}
