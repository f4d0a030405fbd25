package main

// Unit tests of the harness's parsing and arithmetic; no root needed.

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitArgs(t *testing.T) {
	for in, want := range map[string][]string{
		"":                               nil,
		"  --analysis=off ":              {"--analysis=off"},
		"--events state,reset --debug":   {"--events", "state,reset", "--debug"},
		`--cpu-profile '/tmp/a b.pprof'`: {"--cpu-profile", "/tmp/a b.pprof"},
		`-w "" x`:                        {"-w", "", "x"},
	} {
		got, err := splitArgs(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := splitArgs(`--x 'open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestConfigFlag(t *testing.T) {
	var c configFlag
	if err := c.Set("prof=--cpu-profile /tmp/p --analysis=off"); err != nil {
		t.Fatal(err)
	}
	want := config{Name: "prof", Kind: kindTcpscope, Flags: []string{"--cpu-profile", "/tmp/p", "--analysis=off"}}
	if !reflect.DeepEqual(c[0], want) {
		t.Errorf("got %+v, want %+v", c[0], want)
	}
	if err := c.Set("plain="); err != nil || len(c[1].Flags) != 0 {
		t.Errorf("empty flags: %v %+v", err, c)
	}
	for _, bad := range []string{"prof=--debug", "none=", "tcpdump=-x", "noequals", "=--debug"} {
		if err := c.Set(bad); err == nil {
			t.Errorf("-config %q accepted", bad)
		}
	}
}

func TestSelectedConfigsAndRotate(t *testing.T) {
	o := &options{}
	all, err := o.selectedConfigs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range all {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, " "); got != "none default packets-all analysis-off sockets-only summary-only packets-none tcpstates tcpdump" {
		t.Errorf("default configurations: %s", got)
	}
	o.only = "tcpdump,default"
	sel, err := o.selectedConfigs()
	if err != nil || len(sel) != 3 || sel[0].Name != "none" || sel[1].Name != "default" || sel[2].Name != "tcpdump" {
		t.Errorf("-only: %+v %v", sel, err)
	}
	o.only = "nosuch"
	if _, err := o.selectedConfigs(); err == nil {
		t.Error("-only with an unknown name accepted")
	}
	o.only = ""
	o.configs = configFlag{{Name: "x", Kind: kindTcpscope}}
	sel, _ = o.selectedConfigs()
	if len(sel) != 4 || sel[1].Name != "x" {
		t.Errorf("-config does not replace the default tcpscope set: %+v", sel)
	}

	abc := []config{{Name: "A"}, {Name: "B"}, {Name: "C"}}
	for r, want := range []string{"ABC", "BCA", "CAB", "ABC"} {
		got := ""
		for _, c := range rotate(abc, r) {
			got += c.Name
		}
		if got != want {
			t.Errorf("round %d: %s, want %s", r, got, want)
		}
	}
}

func TestTracesPackets(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  bool
	}{
		{nil, true},
		{[]string{"--analysis=off"}, true},
		{[]string{"--events", "state,retransmit,reset"}, false},
		{[]string{"--events=state,packet"}, true},
		{[]string{"--events", "packet", "--events=state"}, false},
		{[]string{"--packets", "none"}, false},
		{[]string{"--packets=none"}, false},
		{[]string{"--packets", "all"}, true},
	} {
		if got := tracesPackets(tc.flags); got != tc.want {
			t.Errorf("tracesPackets(%q) = %v", tc.flags, got)
		}
	}
}

func TestParseOptions(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseOptions(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 5 || o.conns != 100000 || o.workers != 4 || o.mode != "storm" || o.duration != 5*time.Second || o.tcpscope != "bin/tcpscope" {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range [][]string{
		{"-mode", "x"}, {"-rounds", "0"}, {"-family", "5"}, {"-port-range", "80 90"},
		{"-port-range", "5000 4000"}, {"extra"}, {"-n", "0"},
	} {
		if _, err := parseOptions(bad, &stderr); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// Field 2 with spaces and a ')': fields are counted after the last ')'.
	line := "1234 (a) b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 5000 1000 200\n"
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Duration(300 * int64(time.Second) / clockTicks); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if c, err := parseStatTimes(line); err != nil || c.user != time.Duration(250*int64(time.Second)/clockTicks) || c.sys != time.Duration(50*int64(time.Second)/clockTicks) {
		t.Errorf("user %s sys %s (%v), want 250 and 50 ticks", c.user, c.sys, err)
	}
	if _, err := parseStatCPU("1234 (x) S 1 2"); err == nil {
		t.Error("short line accepted")
	}
}

func TestParseHostCPU(t *testing.T) {
	h, err := parseHostCPU("cpu  100 5 50 1000 7 3 20 2 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Second / time.Duration(clockTicks)
	if h.busy != 180*tick || h.softirq != 20*tick || h.total != 1187*tick {
		t.Errorf("got %+v", h)
	}
	if _, err := parseHostCPU("intr 1 2 3"); err == nil {
		t.Error("bad line accepted")
	}
}

func TestParseStatus(t *testing.T) {
	s := "Name:\ttcpscope\nVmPeak:\t 1000 kB\nVmHWM:\t   45320 kB\nVmRSS:\t 40000 kB\n"
	if v, err := parseStatusKiB(s, "VmHWM"); err != nil || v != 45320 {
		t.Errorf("VmHWM = %d, %v", v, err)
	}
	if _, err := parseStatusKiB(s, "VmSwap"); err == nil {
		t.Error("missing field found")
	}
}

func TestAuxv(t *testing.T) {
	vec := func(kvs ...[2]uint64) []byte {
		var b []byte
		for _, kv := range kvs {
			b = binary.NativeEndian.AppendUint64(b, kv[0])
			b = binary.NativeEndian.AppendUint64(b, kv[1])
		}
		return b
	}
	if v, ok := auxvValue(vec([2]uint64{6, 4096}, [2]uint64{17, 250}, [2]uint64{0, 0}), 17); !ok || v != 250 {
		t.Errorf("AT_CLKTCK = %d, %v", v, ok)
	}
	if v, ok := auxvValue(vec([2]uint64{6, 4096}, [2]uint64{0, 0}, [2]uint64{17, 1}), 17); ok {
		t.Errorf("the scan went past AT_NULL: %d", v)
	}
	if clockTicks <= 0 {
		t.Errorf("clockTicks %d", clockTicks)
	}
}

func TestFdinfoAndProgDeltas(t *testing.T) {
	ids := parseFdinfoProgIDs("pos:\t0\nflags:\t02000002\nlink_type:\ttracing\nlink_id:\t5\nprog_id:\t736\n")
	if !reflect.DeepEqual(ids, []uint32{736}) {
		t.Errorf("prog ids %v", ids)
	}
	before, err := parseBpftoolProgs([]byte(`[{"id":1,"type":"sched_cls","name":"tc_egress","run_time_ns":1000,"run_cnt":2},
		{"id":2,"type":"sched_cls","name":"tc_egress"},
		{"id":3,"type":"tracing","name":"on_set_state","run_time_ns":50,"run_cnt":1},
		{"id":9,"type":"tracing","name":"someone_else","run_time_ns":5,"run_cnt":5}]`))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := parseBpftoolProgs([]byte(`[{"id":1,"type":"sched_cls","name":"tc_egress","run_time_ns":4000,"run_cnt":5},
		{"id":2,"type":"sched_cls","name":"tc_egress","run_time_ns":3000,"run_cnt":5},
		{"id":3,"type":"tracing","name":"on_set_state","run_time_ns":50,"run_cnt":1},
		{"id":9,"type":"tracing","name":"someone_else","run_time_ns":500,"run_cnt":500}]`))
	got := progDeltas([]uint32{1, 2, 3, 4}, before, after, 4)
	want := []ProgCost{
		{Name: "on_set_state", Type: "tracing", IDs: []uint32{3}},
		{Name: "tc_egress", Type: "sched_cls", IDs: []uint32{1, 2}, RunCnt: 8, RunTimeNS: 6000, NSPerRun: 750, RunsPerConn: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("progDeltas:\n got %+v\nwant %+v", got, want)
	}
}

func TestCountTcpscope(t *testing.T) {
	in := `{"ts":"x","type":"socket","conn":1,"netns":10,"local":"10.201.0.2:20000","state":"LISTEN","preexisting":true}
{"ts":"x","type":"packet","conn":2,"netns":10,"flags":"S"}
{"ts":"x","type":"state","conn":2,"netns":11,"old":"SYN_SENT","new":"ESTABLISHED"}
{"ts":"x","type":"state","conn":3,"netns":4026531840,"old":"SYN_SENT","new":"ESTABLISHED"}
{"ts":"x","type":"lost","conn":0,"netns":0,"count":12,"kind":"packet"}
{"ts":"x","type":"lost","conn":0,"netns":0,"count":3,"kind":"state"}
{"ts":"x","type":"conn","conn":2,"netns":10,"comm":"a \"type\":\"lost\""}`
	out, err := countTcpscope(strings.NewReader(in), map[uint64]bool{10: true, 11: true})
	if err != nil {
		t.Fatal(err)
	}
	want := Output{Total: 7, Records: 3, Preexisting: 1, Foreign: 1, Lost: 15,
		LostByKind: map[string]int64{"packet": 12, "state": 3},
		ByType:     map[string]int64{"packet": 1, "state": 1, "conn": 1}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got  %+v\nwant %+v", out, want)
	}
}

func TestCountLines(t *testing.T) {
	in := "SKADDR           PID     COMM       LADDR           LPORT RADDR\n" +
		"ffff8 123 storm 10.201.0.1 40000 10.201.0.2 20000 CLOSE -> SYN_SENT 0.000\n" +
		"ffff9 0 swapper fd00:201::2 20000 fd00:201::1 40000 SYN_RECV -> ESTABLISHED 0.010\n" +
		"ffffa 9 other 10.200.3.1 1 10.200.3.2 2 CLOSE -> SYN_SENT 0.000"
	out, err := countLines(strings.NewReader(in), benchAddrPrefixes)
	if err != nil {
		t.Fatal(err)
	}
	if out.Total != 4 || out.Records != 2 || out.Foreign != 1 {
		t.Errorf("got %+v", out)
	}
}

// pcap builds a pcap file with packets of the given captured lengths.
func pcap(order binary.AppendByteOrder, lens ...uint32) []byte {
	var b []byte
	b = order.AppendUint32(b, 0xa1b2c3d4)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, 128)
	b = order.AppendUint32(b, 1)
	for _, l := range lens {
		b = order.AppendUint32(b, 1)
		b = order.AppendUint32(b, 2)
		b = order.AppendUint32(b, l)
		b = order.AppendUint32(b, l+1000)
		b = append(b, make([]byte, l)...)
	}
	return b
}

func TestCountPcap(t *testing.T) {
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		out, err := countPcap(bytes.NewReader(pcap(order, 54, 128, 66)))
		if err != nil || out.Records != 3 || out.Total != 3 {
			t.Errorf("%s: %+v %v", order, out, err)
		}
	}
	if out, err := countPcap(bytes.NewReader(nil)); err != nil || out.Records != 0 {
		t.Errorf("empty file: %+v %v", out, err)
	}
	full := pcap(binary.LittleEndian, 54, 54)
	if _, err := countPcap(bytes.NewReader(full[:len(full)-10])); err == nil {
		t.Error("truncated packet accepted")
	}
	if _, err := countPcap(bytes.NewReader(make([]byte, 40))); err == nil {
		t.Error("bad magic accepted")
	}
}

func TestLostFromStderr(t *testing.T) {
	td := "listening on veth-a, link-type EN10MB\n1000 packets captured\n1200 packets received by filter\n17 packets dropped by kernel\n"
	if n := lostFromStderr(kindTcpdump, td); n != 17 {
		t.Errorf("tcpdump: %d", n)
	}
	ts := "lost 5 events on CPU #0\nlost 7 events on CPU #1\n"
	if n := lostFromStderr(kindTcpstates, ts); n != 12 {
		t.Errorf("tcpstates: %d", n)
	}
}

func TestSummarizeAndRatio(t *testing.T) {
	if s := summarize([]float64{3, 1, 2}); s.med != 2 || s.min != 1 || s.max != 3 || s.format(1) != "2.0 [1.0–3.0]" {
		t.Errorf("odd: %+v %s", s, s.format(1))
	}
	if s := summarize([]float64{4, 1, 2, 3}); s.med != 2.5 {
		t.Errorf("even: %+v", s)
	}
	if s := summarize([]float64{7}); s.format(0) != "7" {
		t.Errorf("one: %s", s.format(0))
	}
	if s := summarize(nil); s.format(0) != "–" {
		t.Errorf("none: %s", s.format(0))
	}

	r := &report{Meta: meta{Mode: "storm", Rounds: 2}, Configs: []config{{Name: "none", Kind: kindNone}, {Name: "t", Kind: kindTcpdump}}}
	r.finish([]*Result{{Config: "t", Kind: kindTcpdump, Rate: 500, Conns: 10, Tracer: &TracerResult{ExitStatus: "0"}}, {Config: "none", Kind: kindNone, Rate: 1000}})
	r.finish([]*Result{{Config: "none", Kind: kindNone, Rate: 2000}, {Config: "t", Kind: kindTcpdump, Rate: 1600, Conns: 10, Tracer: &TracerResult{ExitStatus: "0"}}})
	if r.Results[0].Ratio != 0.5 || r.Results[3].Ratio != 0.8 {
		t.Errorf("ratios are not against the same round's none: %v %v", r.Results[0].Ratio, r.Results[3].Ratio)
	}
	if md := r.markdown(); !strings.Contains(md, "| 0.65 [0.50–0.80] |") {
		t.Errorf("markdown lacks the ratio cell:\n%s", md)
	}
}

// TestModeConfigs: bulk leaves --summary-only out (one record, the cost of
// the mode it runs in), unless nothing else was asked for; storm keeps
// every configuration.
func TestModeConfigs(t *testing.T) {
	cs := []config{{Name: "default"}, {Name: "summary-only", Flags: []string{"--summary-only"}}, {Name: "tcpdump"}}
	names := func(cs []config) string {
		var n []string
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return strings.Join(n, " ")
	}
	if got := names(modeConfigs("storm", cs)); got != "default summary-only tcpdump" {
		t.Errorf("storm: %s", got)
	}
	if got := names(modeConfigs("bulk", cs)); got != "default tcpdump" {
		t.Errorf("bulk: %s", got)
	}
	if got := names(modeConfigs("bulk", cs[1:2])); got != "summary-only" {
		t.Errorf("bulk, summary-only alone: %s", got)
	}
}
