package output

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.UTC)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// order packs option codes in wire order as the kernel does.
func order(codes ...uint8) uint64 {
	var o uint64
	for i, c := range codes {
		o |= uint64(c) << (4 * i)
	}
	return o
}

func owner(pid uint32, comm string) result.Owner {
	o := result.Owner{Known: true, PID: pid, TID: pid + 1, UID: 1000, CgroupID: 4242}
	copy(o.Comm[:], comm)
	return o
}

// sampleRecords covers every record type and the optional fields.
func sampleRecords() []tracer.Record {
	return []tracer.Record{
		{Time: t0, Type: tracer.TypePacket, Conn: 1, Netns: 4026531840, Ifname: "veth0", Dir: tracer.DirOut,
			Src: ap("10.0.0.1:5555"), Dst: ap("10.0.0.2:80"), Flags: tracer.FlagSYN, Seq: 1000, Win: 64240,
			Options: tracer.TCPOptions{Present: tracer.OptMSS | tracer.OptSackOK | tracer.OptTimestamp | tracer.OptWScale,
				MSS: 1460, WScale: 7, TSVal: 11, TSEcr: 0,
				Order: order(tracer.OptCodeMSS, tracer.OptCodeSackOK, tracer.OptCodeTimestamp, tracer.OptCodeNOP, tracer.OptCodeWScale)}},
		{Time: t0.Add(time.Microsecond), Type: tracer.TypePacket, Conn: 1, Netns: 4026531840, Ifname: "veth0", Dir: tracer.DirIn,
			Src: ap("10.0.0.2:80"), Dst: ap("10.0.0.1:5555"), Flags: tracer.FlagSYN | tracer.FlagACK, Seq: 5000, Ack: 1001, Win: 65160,
			Options: tracer.TCPOptions{Present: tracer.OptMSS, MSS: 1460, Order: order(tracer.OptCodeMSS)}},
		{Time: t0.Add(2 * time.Microsecond), Type: tracer.TypePacket, Conn: 1, Netns: 4026531840, Ifname: "veth0", Dir: tracer.DirOut,
			Src: ap("10.0.0.1:5555"), Dst: ap("10.0.0.2:80"), Flags: tracer.FlagACK, Seq: 1001, Ack: 5001, Win: 502},
		{Time: t0.Add(3 * time.Microsecond), Type: tracer.TypePacket, Conn: 1, Netns: 4026531840, Ifname: "veth0", Dir: tracer.DirOut,
			Src: ap("10.0.0.1:5555"), Dst: ap("10.0.0.2:80"), Flags: tracer.FlagPSH | tracer.FlagACK, Seq: 1001, Ack: 5001, Win: 502, Len: 1448,
			Options: tracer.TCPOptions{Present: tracer.OptTimestamp | tracer.OptSack, TSVal: 12, TSEcr: 99, SackBlocks: 2,
				Sack:  [4][2]uint32{{5001, 6449}, {7897, 9345}},
				Order: order(tracer.OptCodeNOP, tracer.OptCodeNOP, tracer.OptCodeTimestamp, tracer.OptCodeNOP, tracer.OptCodeNOP, tracer.OptCodeSack)}},
		{Time: t0.Add(4 * time.Microsecond), Type: tracer.TypePacket, Conn: 2, Netns: 4026531840, Ifname: "lo", Dir: tracer.DirOut,
			Src: ap("[fd00::1]:80"), Dst: ap("[fd00::2]:40000"), Flags: tracer.FlagFIN | tracer.FlagPSH | tracer.FlagACK, Seq: 7, Ack: 9, Win: 0, Len: 5},
		{Time: t0.Add(5 * time.Microsecond), Type: tracer.TypePacket, Conn: 3, Netns: 1, Ifname: "eth0", Dir: tracer.DirIn,
			Src: ap("10.0.0.9:1"), Dst: ap("10.0.0.1:2"), Flags: tracer.FlagRST},
		{Time: t0.Add(6 * time.Microsecond), Type: tracer.TypeState, Conn: 1, Netns: 4026531840, Cookie: 77,
			Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"), OldState: tracer.StateSynSent, State: tracer.StateEstablished, HasState: true,
			Owner: owner(123, "curl")},
		{Time: t0.Add(7 * time.Microsecond), Type: tracer.TypeState, Conn: 1, Netns: 4026531840,
			Local: ap("[fd00::1]:80"), Remote: ap("[fd00::2]:40000"), OldState: tracer.StateFinWait2, State: tracer.StateClose, HasState: true},
		{Time: t0.Add(8 * time.Microsecond), Type: tracer.TypeRetransmit, Conn: 1, Netns: 4026531840, Cookie: 77,
			Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"), State: tracer.StateEstablished, HasState: true,
			Seq: 1001, Len: 1448, Flags: tracer.FlagPSH | tracer.FlagACK, Owner: owner(123, "curl")},
		{Time: t0.Add(9 * time.Microsecond), Type: tracer.TypeReset, Conn: 4, Netns: 4026531840,
			Local: ap("10.0.0.2:81"), Remote: ap("10.0.0.1:5556"), ResetDir: tracer.ResetSent, Reason: "NO_SOCKET"},
		{Time: t0.Add(10 * time.Microsecond), Type: tracer.TypeReset, Conn: 4, Netns: 4026531840, Cookie: 78,
			Local: ap("10.0.0.1:5556"), Remote: ap("10.0.0.2:81"), ResetDir: tracer.ResetReceived, State: tracer.StateSynSent, HasState: true,
			Owner: owner(123, "curl")},
		{Time: t0.Add(11 * time.Microsecond), Type: tracer.TypeLost, LostCount: 12, LostKind: "packet"},
		// Analysis output: a fast retransmission the kernel confirmed,
		// a duplicate ACK, and one connection summary.
		{Time: t0.Add(12 * time.Microsecond), Type: tracer.TypePacket, Conn: 1, Netns: 4026531840, Ifname: "veth0", Dir: tracer.DirOut,
			Src: ap("10.0.0.1:5555"), Dst: ap("10.0.0.2:80"), Flags: tracer.FlagPSH | tracer.FlagACK, Seq: 1001, Ack: 5001, Win: 502, Len: 1448,
			Analyzed: true, RelSeq: 1, RelAck: 1, RelAckValid: true, KernelConfirmed: 1,
			Verdicts: result.VerdictRetransmission | result.VerdictFastRetransmission},
		{Time: t0.Add(13 * time.Microsecond), Type: tracer.TypePacket, Conn: 1, Netns: 4026531840, Ifname: "veth0", Dir: tracer.DirIn,
			Src: ap("10.0.0.2:80"), Dst: ap("10.0.0.1:5555"), Flags: tracer.FlagACK, Seq: 5001, Ack: 1001, Win: 508,
			Analyzed: true, RelSeq: 1, RelAck: 1, RelAckValid: true, Verdicts: result.VerdictDuplicateACK, DupAckCount: 3},
		{Time: t0.Add(14 * time.Microsecond), Type: tracer.TypeConn, Conn: 1, Netns: 4026531840, Summary: &result.ConnSummary{
			Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"), Role: "client", Owner: owner(123, "curl"),
			Outcome: "established", ISNLocal: 1000, ISNRemote: 5000, HasISN: true,
			HandshakeRTT: 123 * time.Microsecond, SynAckToAck: 45 * time.Microsecond, HandshakeCheck: "ok",
			FinSeen: [2]bool{true, true}, FinAcked: [2]bool{true, false},
			Start: t0, End: t0.Add(1500 * time.Millisecond),
			StateTime: [16]time.Duration{tracer.StateEstablished: 1400 * time.Millisecond, tracer.StateFinWait1: 2 * time.Millisecond},
			BytesOut:  1448, BytesIn: 10, SegsOut: 4, SegsIn: 3, RetransKernel: 1, RetransSegs: 1, RetransBytes: 1448,
			RetransSeen: 1, FastRetrans: 1, TimeWaitSide: "local",
			SRTT: 250 * time.Microsecond, Cwnd: 10, ClosedBy: "local", CloseKind: "fin", HalfClose: time.Millisecond,
			TimeWait: 60 * time.Second, Complete: false, Incomplete: "events lost (ring buffer full)",
			PacketsSeen: true, KernelCounted: true, ResetsCounted: true}},
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./output -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func render(t *testing.T, f Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, f)
	for _, r := range sampleRecords() {
		if err := w.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestJSONGolden(t *testing.T) { checkGolden(t, "records.jsonl", render(t, FormatJSON)) }

func TestTextGolden(t *testing.T) { checkGolden(t, "records.txt", render(t, FormatText)) }

// TestJSONContract checks every line is one valid JSON object carrying the
// fields every record must have, and no blank lines.
func TestJSONContract(t *testing.T) {
	out := render(t, FormatJSON)
	if !bytes.HasSuffix(out, []byte("\n")) {
		t.Fatal("output does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(sampleRecords()) {
		t.Fatalf("%d lines for %d records", len(lines), len(sampleRecords()))
	}
	required := map[string][]string{
		"packet":     {"ifname", "dir", "src", "dst", "flags", "seq", "win", "len"},
		"state":      {"local", "remote", "old", "new"},
		"retransmit": {"local", "remote", "state", "seq", "len", "pid", "comm"},
		"reset":      {"local", "remote", "dir"},
		"lost":       {"count", "kind"},
		"conn":       {"local", "remote", "start", "end", "duration_ms", "bytes_out", "bytes_in", "retransmits", "complete"},
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, line)
		}
		for _, k := range []string{"ts", "type", "conn", "netns"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i+1, k, line)
			}
		}
		typ, _ := m["type"].(string)
		for _, k := range required[typ] {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d (%s) lacks %q: %s", i+1, typ, k, line)
			}
		}
		ts, _ := m["ts"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d: ts %q is not RFC 3339: %v", i+1, ts, err)
		}
	}
}

// TestAckOnlyWithACKFlag: `ack` is present exactly when the ACK flag is.
func TestAckOnlyWithACKFlag(t *testing.T) {
	for _, r := range sampleRecords() {
		if r.Type != tracer.TypePacket {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(AppendJSON(nil, &r), &m); err != nil {
			t.Fatal(err)
		}
		_, has := m["ack"]
		if has != (r.Flags&tracer.FlagACK != 0) {
			t.Errorf("flags %s: ack present = %v", tracer.FlagString(r.Flags), has)
		}
	}
}

// TestHostileComm: no process name can break a line, forge a record or
// produce invalid JSON/UTF-8, in either format.
func TestHostileComm(t *testing.T) {
	hostile := []string{
		"a\nb",
		"x\"},{\"type\":\"lost",
		"evil\r\x1b[2J",
		"back\\slash",
		"\xff\xfe\x80bad",
		"caf\xc3",       // truncated UTF-8
		"\u202etxt.exe", // right-to-left override
		"tab\there",
		"nul\x00after",
	}
	for _, comm := range hostile {
		r := tracer.Record{Time: t0, Type: tracer.TypeState, Local: ap("10.0.0.1:1"), Remote: ap("10.0.0.2:2"),
			OldState: tracer.StateClose, State: tracer.StateSynSent, HasState: true, Owner: owner(1, comm)}
		js := AppendJSON(nil, &r)
		txt := AppendText(nil, &r)
		for _, out := range [][]byte{js, txt} {
			if bytes.ContainsAny(out, "\n\r\x1b\x00\t") {
				t.Errorf("comm %q: control character in output %q", comm, out)
			}
			if bytes.Contains(out, []byte("\u202e")) {
				t.Errorf("comm %q: bidi override in output %q", comm, out)
			}
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatalf("comm %q: invalid JSON %s: %v", comm, js, err)
		}
		if m["type"] != "state" || len(m) != 13 {
			t.Errorf("comm %q: record was altered: %s", comm, js)
		}
		// The JSON value is exactly the escaped form the text shows.
		want := string(AppendEscaped(nil, r.Owner.CommBytes()))
		if m["comm"] != want {
			t.Errorf("comm %q: JSON comm %q, want %q", comm, m["comm"], want)
		}
		if !bytes.Contains(txt, []byte("("+want+")")) {
			t.Errorf("comm %q: text %q lacks (%s)", comm, txt, want)
		}
	}
}

func TestAppendEscaped(t *testing.T) {
	cases := map[string]string{
		"curl":         "curl",
		"a b":          "a b",
		"a\nb":         `a\x0ab`,
		`back\slash`:   `back\\slash`,
		`\x0a`:         `\\x0a`, // a literal backslash-x cannot pass for an escape
		"\xff":         `\xff`,
		"café":         "café",
		"caf\xc3":      `caf\xc3`,
		"\u202e":       `\xe2\x80\xae`,
		"\x7f":         `\x7f`,
		"日本":           "日本",
		"quote\"mark":  "quote\"mark",
		"\x00":         `\x00`,
		"end\u2028end": `end\xe2\x80\xa8end`,
	}
	for in, want := range cases {
		if got := string(AppendEscaped(nil, []byte(in))); got != want {
			t.Errorf("AppendEscaped(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, ok := range []string{"json", "text"} {
		if _, err := ParseFormat(ok); err != nil {
			t.Errorf("ParseFormat(%q): %v", ok, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) accepted")
	}
}

// TestAppendNoAllocs: formatting allocates nothing, for any record type
// (a conn summary with state times included: one per connection in a
// storm).
func TestAppendNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for _, r := range sampleRecords() {
		if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], &r) }); n != 0 {
			t.Errorf("AppendJSON of a %s record: %v allocations", r.Type, n)
		}
		if n := testing.AllocsPerRun(100, func() { buf = AppendText(buf[:0], &r) }); n != 0 {
			t.Errorf("AppendText of a %s record: %v allocations", r.Type, n)
		}
	}
}

func BenchmarkAppendJSONPacket(b *testing.B) {
	r := sampleRecords()[3]
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], &r)
	}
}

func BenchmarkAppendJSONState(b *testing.B) {
	r := sampleRecords()[6]
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], &r)
	}
}

func BenchmarkAppendTextPacket(b *testing.B) {
	r := sampleRecords()[3]
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendText(buf[:0], &r)
	}
}

func TestAppendTimeMatchesLayout(t *testing.T) {
	for _, tm := range []time.Time{t0, time.Unix(0, 0), time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)} {
		want := tm.UTC().Format(TimeLayout)
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestTimeCacheMatchesAppendTime: the Writer's cached date and clock give
// the same text as appendTime across second boundaries, back in time,
// other zones, before 1970 and outside the years 0..9999.
func TestTimeCacheMatchesAppendTime(t *testing.T) {
	var c timeCache
	times := []time.Time{
		t0, t0.Add(time.Nanosecond), t0.Add(999 * time.Millisecond), t0.Add(time.Second),
		t0.Add(-time.Nanosecond), t0.Add(24 * time.Hour), t0.Add(24*time.Hour + 1),
		time.Unix(-1, 5), time.Unix(-1, 999999999), time.Unix(0, 0),
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)),
		time.Date(2026, 1, 2, 2, 4, 5, 7, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 2, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	for _, tm := range times {
		want := string(appendTime(nil, tm))
		if got := string(c.append(nil, tm)); got != want {
			t.Errorf("timeCache.append(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestUnknownCountersAbsent: a summary counter whose source was not traced
// is left out, never printed as zero; known zeros are printed.
func TestUnknownCountersAbsent(t *testing.T) {
	render := func(s result.ConnSummary) map[string]any {
		t.Helper()
		var buf bytes.Buffer
		w := NewWriter(&buf, FormatJSON)
		r := tracer.Record{Type: tracer.TypeConn, Conn: 1, Summary: &s}
		if err := w.Write(&r); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, buf.Bytes())
		}
		return m
	}
	counters := []string{"bytes_out", "bytes_in", "segs_out", "segs_in", "retransmits", "resets", "zero_windows"}
	none := render(result.ConnSummary{})
	for _, k := range counters {
		if _, ok := none[k]; ok {
			t.Errorf("%q present although nothing was counted: %v", k, none)
		}
	}
	all := render(result.ConnSummary{PacketsSeen: true, KernelCounted: true, ResetsCounted: true})
	for _, k := range counters {
		if _, ok := all[k]; !ok {
			t.Errorf("%q absent although counted: %v", k, all)
		}
	}
	kernelOnly := render(result.ConnSummary{KernelCounted: true})
	if got := fmt.Sprint(kernelOnly["retransmits"]); got != "map[kernel:0 kernel_bytes:0 kernel_segs:0]" {
		t.Errorf("retransmits with only kernel events = %s, want map[kernel:0 kernel_bytes:0 kernel_segs:0]", got)
	}
	packetsOnly := render(result.ConnSummary{PacketsSeen: true})
	if got := fmt.Sprint(packetsOnly["retransmits"]); got != "map[fast:0 seen:0 spurious:0]" {
		t.Errorf("retransmits with only packets = %s, want map[fast:0 seen:0 spurious:0]", got)
	}
}

// TestAppendMillis: appendMillis writes what strconv.AppendFloat of the
// milliseconds wrote before it, for edge values and a million random
// durations of every magnitude, both signs.
func TestAppendMillis(t *testing.T) {
	vals := []time.Duration{0, 1, 999, time.Microsecond, 999 * time.Microsecond, time.Millisecond,
		1001 * time.Microsecond, 1500 * time.Microsecond, 1010 * time.Microsecond, -1500 * time.Microsecond,
		-time.Microsecond, 60 * time.Second, 1 << 62, -(1 << 62), math.MaxInt64, math.MinInt64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		d := time.Duration(r.Int64N(1 << (r.IntN(62) + 1)))
		if r.IntN(2) == 0 {
			d = -d
		}
		vals = append(vals, d)
	}
	for _, d := range vals {
		want := string(strconv.AppendFloat(nil, float64(d.Microseconds())/1000, 'f', -1, 64))
		if got := string(appendMillis(nil, d)); got != want {
			t.Fatalf("appendMillis(%d) = %s, want %s", int64(d), got, want)
		}
	}
}
