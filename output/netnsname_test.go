package output

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
)

// A named namespace shows in JSON as netns_name (escaped, valid JSON) and in
// text as one word after the conn id; an unnamed one adds nothing.
func TestNetnsName(t *testing.T) {
	base := tracer.Record{Time: t0, Type: tracer.TypeState, Conn: 3, Netns: 4026532000,
		Local: ap("10.0.0.1:5555"), Remote: ap("10.0.0.2:80"), OldState: tracer.StateSynSent, State: tracer.StateEstablished}
	for _, tc := range []struct {
		name, jsonName, text string
	}{
		{"", "", " conn 3 state 10.0.0.1:5555"},
		{"blue", "blue", " conn 3 netns blue state 10.0.0.1:5555"},
		{"a b\x1b[31m\xff", `a b\x1b[31m\xff`, ` conn 3 netns a\x20b\x1b[31m\xff state 10.0.0.1:5555`},
		{"/run/docker/netns/c0ffee", "/run/docker/netns/c0ffee", " conn 3 netns /run/docker/netns/c0ffee state"},
	} {
		r := base
		r.NetnsName = tc.name
		line := AppendJSON(nil, &r)
		var obj map[string]any
		if err := json.Unmarshal(line, &obj); err != nil {
			t.Fatalf("name %q: invalid JSON %s: %v", tc.name, line, err)
		}
		got, ok := obj["netns_name"]
		if tc.jsonName == "" && ok {
			t.Errorf("unnamed namespace has netns_name %v", got)
		}
		if tc.jsonName != "" && got != tc.jsonName {
			t.Errorf("netns_name: got %q, want %q", got, tc.jsonName)
		}
		if i, j := strings.Index(string(line), `"netns":`), strings.Index(string(line), `"netns_name"`); ok && j < i {
			t.Errorf("netns_name before netns: %s", line)
		}
		text := string(AppendText(nil, &r))
		if !strings.Contains(text, tc.text) {
			t.Errorf("text %q lacks %q", text, tc.text)
		}
		if strings.ContainsAny(text, "\x1b\n") {
			t.Errorf("text carries raw control bytes: %q", text)
		}
	}
}

// Packet lines keep tcpdump's addr.port endpoints; every other line kind
// and JSON use addr:port ([v6]:port), as ss prints them.
func TestEndpointForms(t *testing.T) {
	pkt := tracer.Record{Time: t0, Type: tracer.TypePacket, Conn: 1, Ifname: "lo",
		Src: ap("[fd00::1]:5555"), Dst: ap("[fd00::2]:80"), Flags: tracer.FlagSYN}
	if text := string(AppendText(nil, &pkt)); !strings.Contains(text, "IP6 fd00::1.5555 > fd00::2.80:") {
		t.Errorf("packet line not in tcpdump form: %q", text)
	}
	for _, typ := range []tracer.RecordType{tracer.TypeState, tracer.TypeRetransmit, tracer.TypeReset, tracer.TypeSocket} {
		r := tracer.Record{Time: t0, Type: typ, Conn: 1, Local: ap("[fd00::1]:5555"), Remote: ap("[fd00::2]:80"),
			OldState: tracer.StateClose, State: tracer.StateSynSent, HasState: true}
		if text := string(AppendText(nil, &r)); !strings.Contains(text, " [fd00::1]:5555 [fd00::2]:80 ") {
			t.Errorf("%s line not in addr:port form: %q", typ, text)
		}
	}
}
