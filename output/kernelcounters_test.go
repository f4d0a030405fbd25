package output

import (
	"strings"
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// TestSummaryKernelCounters: the kernel's counters are in the summary only
// when the kernel gave them (never as zeros), bytes_sent and bytes_retrans
// only when the kernel has them; the text line shows bytes and segments.
func TestSummaryKernelCounters(t *testing.T) {
	keys := []string{"kernel_bytes_out", "kernel_bytes_in", "kernel_segs_out", "kernel_segs_in",
		"kernel_data_segs_out", "kernel_data_segs_in", "kernel_retrans_total"}
	m, text := renderSummary(t, result.ConnSummary{Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80")})
	for _, k := range append(keys, "kernel_bytes_sent", "kernel_bytes_retrans") {
		if _, ok := m[k]; ok {
			t.Errorf("no counters, yet %s present: %v", k, m)
		}
	}
	if strings.Contains(text, " kernel out ") {
		t.Errorf("no counters, yet text %q", text)
	}
	m, text = renderSummary(t, result.ConnSummary{Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"), HasKernel: true,
		Kernel: result.KernelCounters{BytesAcked: 100000, BytesReceived: 20, SegsOut: 12, SegsIn: 9, DataSegsOut: 8,
			DataSegsIn: 1, TotalRetrans: 2, BytesSent: 102896, HasBytesSent: true}})
	want := map[string]float64{"kernel_bytes_out": 100000, "kernel_bytes_in": 20, "kernel_segs_out": 12, "kernel_segs_in": 9,
		"kernel_data_segs_out": 8, "kernel_data_segs_in": 1, "kernel_retrans_total": 2, "kernel_bytes_sent": 102896}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["kernel_bytes_retrans"]; ok {
		t.Error("kernel_bytes_retrans present, though the kernel did not give it")
	}
	// Zero counters the kernel gave are zeros, not absent.
	m, _ = renderSummary(t, result.ConnSummary{Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"), HasKernel: true})
	for _, k := range keys {
		if m[k] != 0.0 {
			t.Errorf("%s = %v, want 0", k, m[k])
		}
	}
	if !strings.Contains(text, " kernel out 100000B/12 in 20B/9") {
		t.Errorf("text %q: want kernel out 100000B/12 in 20B/9", text)
	}
}

// TestStateRecordKernelCounters: a CLOSE state record that carries the
// kernel's counters prints them (with --analysis off, the only place they
// appear); other state records do not.
func TestStateRecordKernelCounters(t *testing.T) {
	r := tracer.Record{Type: tracer.TypeState, Conn: 3, Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"),
		OldState: tracer.StateFinWait2, State: tracer.StateClose, HasCounters: true,
		Counters: result.KernelCounters{BytesAcked: 65, BytesReceived: 66, SegsOut: 6, SegsIn: 5}}
	js := string(AppendJSON(nil, &r))
	for _, want := range []string{`"kernel_bytes_out":65`, `"kernel_bytes_in":66`, `"kernel_segs_out":6`, `"kernel_segs_in":5`} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON %s lacks %s", js, want)
		}
	}
	if text := string(AppendText(nil, &r)); !strings.Contains(text, " kernel out 65B/6 in 66B/5") {
		t.Errorf("text %q lacks the kernel's counts", text)
	}
	r.HasCounters = false
	if js := string(AppendJSON(nil, &r)); strings.Contains(js, "kernel_") {
		t.Errorf("JSON without counters: %s", js)
	}
}
