package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// sample is one record of every type, as tcpscope prints them.
const sample = `{"ts":"2026-11-21T19:51:50.504108506Z","type":"packet","conn":2,"netns":1,"ifname":"lo","dir":"in","src":"127.0.0.1:40001","dst":"127.0.0.1:5001","flags":"S","seq":1390346452,"win":65495,"len":0,"options":{"mss":65495,"wscale":10,"sack_ok":true,"ts_val":3912749977,"ts_ecr":0}}
{"ts":"2026-11-21T19:51:50.504161513Z","type":"packet","conn":2,"netns":1,"ifname":"lo","dir":"in","src":"[fd00::1]:40001","dst":"[fd00::2]:5001","flags":".","seq":1390346453,"ack":185581895,"win":64,"len":0}
{"ts":"2026-11-21T19:51:50.504200000Z","type":"state","conn":2,"netns":1,"local":"127.0.0.1:40001","remote":"127.0.0.1:5001","old":"SYN_SENT","new":"ESTABLISHED","pid":123,"tid":124,"uid":0,"cgroup_id":4242,"comm":"tcli","cookie":77}
{"ts":"2026-11-21T19:51:50.504300000Z","type":"retransmit","conn":2,"netns":1,"local":"127.0.0.1:40001","remote":"127.0.0.1:5001","state":"ESTABLISHED","seq":1390346453,"len":5,"segs":1,"flags":"P."}
{"ts":"2026-11-21T19:51:50.504400000Z","type":"reset","conn":3,"netns":1,"local":"127.0.0.1:5002","remote":"127.0.0.1:40002","dir":"sent","reason":"NO_SOCKET"}
{"ts":"2026-11-21T19:51:50.504500000Z","type":"socket","conn":4,"netns":1,"local":"0.0.0.0:5001","remote":"0.0.0.0:0","state":"LISTEN","preexisting":true}
{"ts":"2026-11-21T19:51:50.504600000Z","type":"conn","conn":2,"netns":1,"local":"127.0.0.1:40001","remote":"127.0.0.1:5001","outcome":"established","complete":true}
{"ts":"2026-11-21T19:51:50.504700000Z","type":"lost","conn":0,"netns":0,"count":12,"kind":"packet","where":"ring"}
`

// TestParseRecords: every type parses, with the parsed forms filled in
// and absent optional fields nil.
func TestParseRecords(t *testing.T) {
	recs, err := ParseRecords([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 8 {
		t.Fatalf("%d records, want 8", len(recs))
	}
	syn, ack, st, rtx, rst, sock, sum, lost := recs[0], recs[1], recs[2], recs[3], recs[4], recs[5], recs[6], recs[7]
	if syn.Line != 1 || !strings.HasPrefix(syn.Raw, `{"ts":"2026-11-21T19:51:50.504108506Z"`) || syn.Time.Nanosecond() != 504108506 {
		t.Errorf("first record: line %d time %v raw %q", syn.Line, syn.Time, syn.Raw)
	}
	if syn.SrcAddr != netip.MustParseAddrPort("127.0.0.1:40001") || ack.DstAddr != netip.MustParseAddrPort("[fd00::2]:5001") {
		t.Errorf("addresses %v %v", syn.SrcAddr, ack.DstAddr)
	}
	if syn.Ack != nil || ack.Ack == nil || *ack.Ack != 185581895 || syn.Options == nil || *syn.Options.MSS != 65495 || ack.Options != nil {
		t.Errorf("optional fields: %s / %s", syn, ack)
	}
	if st.LocalAddr.Port() != 40001 || st.RemoteAddr.Port() != 5001 || *st.PID != 123 || *st.Comm != "tcli" || st.State != nil {
		t.Errorf("state record: %+v", st)
	}
	if rtx.StateName() != "ESTABLISHED" || *rtx.Segs != 1 || !rtx.IsSocketEvent() || syn.IsSocketEvent() {
		t.Errorf("retransmit record: %+v", rtx)
	}
	if rst.ReasonName() != "NO_SOCKET" || rst.State != nil || rst.PID != nil || rst.ConnID() != 3 {
		t.Errorf("reset record: %+v", rst)
	}
	if sock.Preexisting == nil || !*sock.Preexisting || sock.StateName() != "LISTEN" {
		t.Errorf("socket record: %+v", sock)
	}
	if sum.Complete == nil || !*sum.Complete || sum.Outcome != "established" || sum.LocalAddr != st.LocalAddr {
		t.Errorf("conn record: %+v", sum)
	}
	if lost.ConnID() != 0 || lost.Count != 12 || lost.Where != "ring" {
		t.Errorf("lost record: %+v", lost)
	}
	if recs, err := ParseRecords(nil); err != nil || len(recs) != 0 {
		t.Errorf("empty output: %v, %v", recs, err)
	}
}

// TestParseRecordsRejects: output that does not end with a complete line,
// a broken line, and records that lack what their type requires are
// errors.
func TestParseRecordsRejects(t *testing.T) {
	for _, bad := range []string{
		strings.TrimSuffix(sample, "\n"),
		sample + "{\"ts\":",
		sample + "\n", // a blank line
		strings.Replace(sample, `"ack":185581895,`, ``, 1),                                      // ACK flag without ack
		strings.Replace(sample, `"flags":"S","seq":1390346452,`, `"flags":"S",`, 1),             // packet without seq
		strings.Replace(sample, `"ts":"2026-11-21T19:51:50.504108506Z"`, `"ts":"yesterday"`, 1), // bad time
		strings.Replace(sample, `"conn":2,"netns":1,"ifname"`, `"netns":1,"ifname"`, 1),         // no conn
		strings.Replace(sample, `"netns":1,"ifname"`, `"netns":0,"ifname"`, 1),                  // no netns
		strings.Replace(sample, `"src":"127.0.0.1:40001"`, `"src":"127.0.0.1"`, 1),              // no port
		strings.Replace(sample, `"old":"SYN_SENT",`, ``, 1),                                     // state without old
		strings.Replace(sample, `"pid":123,`, ``, 1),                                            // comm without pid
		strings.Replace(sample, `"dir":"sent"`, `"dir":"out"`, 1),                               // reset dir
		strings.Replace(sample, `"state":"ESTABLISHED","seq"`, `"seq"`, 1),                      // retransmit without state
		strings.Replace(sample, `"outcome":"established","complete":true`, `"outcome":"established"`, 1),
		strings.Replace(sample, `"where":"ring"`, `"where":"disk"`, 1),
		strings.Replace(sample, `,"where":"ring"`, ``, 1), // only malformed has no place
		strings.Replace(sample, `"type":"socket"`, `"type":"sock"`, 1),
	} {
		if bad == sample {
			t.Fatalf("a mutation matches nothing")
		}
		if _, err := ParseRecords([]byte(bad)); err == nil {
			t.Errorf("bad output accepted: %q", firstDiff(sample, bad))
		}
	}
}

// firstDiff is the part of b around its first difference from a.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return b[max(0, i-40):min(len(b), i+40)]
}

// TestRecordKnowsEveryField: every field of the golden output (one record
// of every kind, output/testdata/records.jsonl) is a field of Record, of
// the right type, so that the suites can read all of the schema.
func TestRecordKnowsEveryField(t *testing.T) {
	f, err := os.Open("../../output/testdata/records.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var r Record
		if err := dec.Decode(&r); err != nil {
			t.Errorf("%v: %s", err, sc.Text())
		}
		n++
	}
	if err := sc.Err(); err != nil || n == 0 {
		t.Fatalf("golden file: %d lines, %v", n, err)
	}
	// The check itself: an unknown field is found.
	dec := json.NewDecoder(strings.NewReader(`{"type":"packet","no_such_field":1}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&Record{}); err == nil {
		t.Error("an unknown field passed")
	}
}

// TestStateChain: a continuous chain reads as one; a gap between records
// shows, so that it cannot match the chain without the gap; TIME_WAIT
// socket records and other types are left out.
func TestStateChain(t *testing.T) {
	chain := func(pairs ...string) []*Record {
		var out []*Record
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, &Record{Type: "state", Old: pairs[i], New: pairs[i+1]})
		}
		return out
	}
	if got := StateChain(chain("CLOSE", "SYN_SENT", "SYN_SENT", "ESTABLISHED")); got != "CLOSE -> SYN_SENT -> ESTABLISHED" {
		t.Errorf("chain %q", got)
	}
	if got := StateChain(chain("CLOSE", "SYN_SENT", "ESTABLISHED", "CLOSE")); got == "CLOSE -> SYN_SENT -> CLOSE" || got != "CLOSE -> SYN_SENT // ESTABLISHED -> CLOSE" {
		t.Errorf("a gap in the chain: %q", got)
	}
	recs := chain("FIN_WAIT2", "CLOSE")
	recs = append(recs, &Record{Type: "state", Old: "FIN_WAIT2", New: "TIME_WAIT", TimeWait: true}, &Record{Type: "packet"})
	if got := StateChain(recs); got != "FIN_WAIT2 -> CLOSE" {
		t.Errorf("chain with a TIME_WAIT record and a packet: %q", got)
	}
}

// TestSelectDescribe: Select keeps order; Describe cuts long lists and
// says how many it left out.
func TestSelectDescribe(t *testing.T) {
	var recs []*Record
	for i := range 50 {
		recs = append(recs, &Record{Line: i + 1, Raw: "{}", Type: []string{"packet", "state"}[i%2]})
	}
	states := Select(recs, func(r *Record) bool { return r.Type == "state" })
	if len(states) != 25 || states[0].Line != 2 || states[24].Line != 50 {
		t.Errorf("selected %d, first line %d", len(states), states[0].Line)
	}
	d := Describe(recs)
	if lines := strings.Split(d, "\n"); len(lines) != 41 || lines[0] != "line 1: {}" || lines[40] != "... and 10 more" {
		t.Errorf("describe: %d lines, %q ... %q", len(lines), lines[0], lines[len(lines)-1])
	}
	if got := FirstN([]string{"a", "b"}, 2); got != "a\nb" {
		t.Errorf("FirstN %q", got)
	}
}
