package harness

import (
	"fmt"
	"os"
	"testing"
)

// snmp is the start of a /proc/net/snmp.
const snmp = `Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 1234
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens RetransSegs
Tcp: 1 200 120000 -1 17 42
Udp: InDatagrams RetransSegs
Udp: 5 99
`

// TestParseCounter: a counter is found in its group only; a missing one
// or a group whose lines do not pair up is an error.
func TestParseCounter(t *testing.T) {
	for _, c := range []struct {
		group, name string
		want        int64
	}{{"Tcp", "RetransSegs", 42}, {"Tcp", "MaxConn", -1}, {"Udp", "RetransSegs", 99}, {"Ip", "InReceives", 1234}} {
		if got, err := ParseCounter(snmp, c.group, c.name); err != nil || got != c.want {
			t.Errorf("%s %s = %d, %v; want %d", c.group, c.name, got, err, c.want)
		}
	}
	for _, c := range [][2]string{{"Tcp", "InDatagrams"}, {"TcpExt", "RetransSegs"}} {
		if got, err := ParseCounter(snmp, c[0], c[1]); err == nil {
			t.Errorf("%s %s found: %d", c[0], c[1], got)
		}
	}
	if _, err := ParseCounter("Tcp: A B\nTcp: 1\n", "Tcp", "B"); err == nil {
		t.Error("values that do not match the names were read")
	}
	if _, err := ParseCounter("Tcp: A\nTcp: x\n", "Tcp", "A"); err == nil {
		t.Error("a value that is no number was read")
	}
}

// TestNamespaceName: PREFIX-PID-TAG, and the Exec prefix.
func TestNamespaceName(t *testing.T) {
	if got, want := NamespaceName("p", "tag"), fmt.Sprintf("p-%d-tag", os.Getpid()); got != want {
		t.Errorf("NamespaceName = %q, want %q", got, want)
	}
	n := &Namespace{Name: "x"}
	if got := fmt.Sprint(n.Exec("tcpdump", "-i", "lo")); got != "[ip netns exec x tcpdump -i lo]" {
		t.Errorf("Exec = %s", got)
	}
}
