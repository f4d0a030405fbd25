package e2e

import (
	"strings"
	"testing"

	"github.com/tcpscope/tcpscope/test/harness"
)

// Sample lines of one connection as tcpdump -S -n -t and tcpscope print it.
const (
	sampleTcpdump = `IP 127.0.0.1.40001 > 127.0.0.1.5001: Flags [S], seq 1390346452, win 65495, options [mss 65495,sackOK,TS val 3912749977 ecr 0,nop,wscale 10], length 0
IP 127.0.0.1.40001 > 127.0.0.1.5001: Flags [.], ack 185581895, win 64, options [nop,nop,TS val 3912749977 ecr 1167000497], length 0
IP6 fd00::1.40001 > fd00::2.5001: Flags [P.], seq 1390346453:1390346458, ack 185581895, win 64, options [nop,nop,TS val 3912749977 ecr 1167000497], length 5
IP 127.0.0.1.5002 > 127.0.0.1.40002: Flags [R.], seq 0, ack 203427438, win 0, length 0
`
	sampleJSON = `{"ts":"2026-11-21T19:51:50.504108506Z","type":"packet","conn":2,"netns":1,"ifname":"lo","dir":"in","src":"127.0.0.1:40001","dst":"127.0.0.1:5001","flags":"S","seq":1390346452,"win":65495,"len":0,"options":{"mss":65495,"wscale":10,"sack_ok":true,"ts_val":3912749977,"ts_ecr":0}}
{"ts":"2026-11-21T19:51:50.504161513Z","type":"packet","conn":2,"netns":1,"ifname":"lo","dir":"in","src":"127.0.0.1:40001","dst":"127.0.0.1:5001","flags":".","seq":1390346453,"ack":185581895,"win":64,"len":0,"options":{"ts_val":3912749977,"ts_ecr":1167000497}}
{"ts":"2026-11-21T19:51:50.504355822Z","type":"packet","conn":2,"netns":1,"ifname":"lo","dir":"in","src":"[fd00::1]:40001","dst":"[fd00::2]:5001","flags":"P.","seq":1390346453,"ack":185581895,"win":64,"len":5,"options":{"ts_val":3912749977,"ts_ecr":1167000497}}
{"ts":"2026-11-21T19:51:50.508799440Z","type":"packet","conn":3,"netns":1,"ifname":"lo","dir":"in","src":"127.0.0.1:5002","dst":"127.0.0.1:40002","flags":"R.","seq":0,"ack":203427438,"win":0,"len":0}
`
)

// TestOracleSelfCheck makes sure the comparison used by the end-to-end
// tests can fail: identical samples compare equal, and any one change to a
// compared field of a record is reported. It needs no privileges. (That
// the record parser rejects broken output, and state chains show gaps, is
// tested with the harness: TestParseRecordsRejects, TestStateChain.)
func TestOracleSelfCheck(t *testing.T) {
	td, err := parseTcpdump(sampleTcpdump)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := harness.ParseRecords([]byte(sampleJSON))
	if err != nil {
		t.Fatal(err)
	}
	if missing, extra := diffPackets(td, recs); len(missing)+len(extra) != 0 {
		t.Fatalf("identical samples differ:\nmissing %v\nextra %v", missing, extra)
	}
	// The seq of a pure ACK is not compared (tcpdump does not print it).
	pureAck := strings.Replace(sampleJSON, `"seq":1390346453,"ack"`, `"seq":7,"ack"`, 1)
	if recs, err := harness.ParseRecords([]byte(pureAck)); err != nil {
		t.Fatal(err)
	} else if missing, extra := diffPackets(td, recs); len(missing)+len(extra) != 0 {
		t.Errorf("the seq of a pure ACK was compared: %v %v", missing, extra)
	}

	mutations := []struct{ from, to string }{
		{`"flags":"P."`, `"flags":"."`},
		{`"seq":1390346452`, `"seq":1390346451`},
		{`"ack":203427438`, `"ack":203427439`},
		{`"win":64,"len":5`, `"win":65,"len":5`},
		{`"len":5`, `"len":4`},
		{`"src":"127.0.0.1:5002"`, `"src":"127.0.0.1:5003"`},
		{`"mss":65495`, `"mss":1460`},
		{`"ts_ecr":0}`, `"ts_ecr":1}`},
		{`"sack_ok":true,`, ``},
	}
	for _, m := range mutations {
		mutated := strings.Replace(sampleJSON, m.from, m.to, 1)
		if mutated == sampleJSON {
			t.Fatalf("mutation %q matches nothing", m.from)
		}
		recs, err := harness.ParseRecords([]byte(mutated))
		if err != nil {
			t.Fatal(err)
		}
		if missing, extra := diffPackets(td, recs); len(missing) == 0 || len(extra) == 0 {
			t.Errorf("mutation %q -> %q not detected", m.from, m.to)
		}
	}
	// A record too many, or one too few.
	lines := strings.SplitAfter(sampleJSON, "\n")
	if recs, _ := harness.ParseRecords([]byte(sampleJSON + lines[0])); len(recs) != 5 {
		t.Fatal("duplicate line not parsed")
	} else if _, extra := diffPackets(td, recs); len(extra) != 1 {
		t.Errorf("duplicated record not detected: %v", extra)
	}
	if recs, _ := harness.ParseRecords([]byte(strings.Join(lines[1:], ""))); len(recs) != 3 {
		t.Fatal("shortened output not parsed")
	} else if missing, _ := diffPackets(td, recs); len(missing) != 1 {
		t.Errorf("missing record not detected: %v", missing)
	}
}
