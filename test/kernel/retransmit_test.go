package kernel

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// snmpCounter reads one counter of /proc/net/snmp (group Tcp, Udp, ...)
// inside namespace n.
func snmpCounter(t *testing.T, n *namespace, group, name string) int64 {
	t.Helper()
	out, err := n.command(context.Background(), "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("read /proc/net/snmp in %s: %v", n.name, err)
	}
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != group+":" || len(values) != len(names) || values[0] != group+":" {
			continue
		}
		for j, k := range names {
			if k == name {
				v, err := strconv.ParseInt(values[j], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no counter %s %s in /proc/net/snmp", group, name)
	return 0
}

// TestRetransmitSegments: the segment count of retransmit events (read
// from the skb's control block with CO-RE) is right on every kernel of
// the matrix. The client's SYNs to the server's address go out with a
// MAC nobody has (a wrong static neighbour), so the server's end drops
// them and the client retransmits its SYN until connect() times out:
// every retransmit record is one segment, and the summary's kernel_segs
// equals the namespace's TcpRetransSegs.
func TestRetransmitSegments(t *testing.T) {
	requireSetup(t)
	v := newVethPair(t, "krtx", 70)
	h := v.a.handle(t)
	link, err := h.LinkByName("veth-a")
	if err == nil {
		bogus, _ := net.ParseMAC("02:00:00:00:ff:ff")
		err = h.NeighSet(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: v.b4.AsSlice(), HardwareAddr: bogus,
			State: netlink.NUD_PERMANENT})
	}
	h.Close()
	if err != nil {
		t.Fatalf("wrong neighbour for %s: %v", v.b4, err)
	}

	before := snmpCounter(t, v.a, "Tcp", "RetransSegs")
	tr := startProc(t, "tcpscope", v.a.command(context.Background(), bins.tcpscope, "trace", "-o", "json", "-i", "veth-a"))
	tr.waitFor(t, true, `msg="tracing started"`)
	server := netip.AddrPortFrom(v.b4, 7170)
	client := netip.AddrPortFrom(v.a4, 37170)
	// Long enough for the first retransmission (the initial RTO is 1 s).
	cli := startProc(t, "client", v.a.command(context.Background(), bins.client, "connect-timeout", server.String(), client.String(), "2500"))
	cli.wait(t)
	segs := snmpCounter(t, v.a, "Tcp", "RetransSegs") - before
	tr.stop(t)
	if segs == 0 {
		t.Fatal("the kernel retransmitted no SYN")
	}
	recs, err := parseRecords(tr.stdout.String())
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	var events int64
	var sum map[string]any
	for _, r := range recs {
		if r.local != client || r.remote != server {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.raw), &m); err != nil {
			t.Fatal(err)
		}
		switch r.Type {
		case "retransmit":
			events++
			if m["segs"] != 1.0 || m["flags"] != "S" || m["len"] != 0.0 {
				t.Errorf("retransmitted SYN: segs %v flags %v len %v, want 1, S, 0: %s", m["segs"], m["flags"], m["len"], r)
			}
		case "conn":
			sum = m
		}
	}
	if sum == nil {
		t.Fatalf("no summary of %s -> %s:\n%s", client, server, describe(recs))
	}
	rtx, _ := sum["retransmits"].(map[string]any)
	t.Logf("TcpRetransSegs %d; retransmit records %d; summary retransmits %v", segs, events, rtx)
	if events != segs || rtx["kernel"] != float64(segs) || rtx["kernel_segs"] != float64(segs) || rtx["kernel_bytes"] != 0.0 {
		t.Errorf("retransmit records %d, summary retransmits %v: want %d events and segments (TcpRetransSegs), 0 bytes",
			events, rtx, segs)
	}
	if sum["outcome"] != "timeout" || sum["local"] != client.String() {
		t.Errorf("summary outcome %v local %v, want timeout, %s", sum["outcome"], sum["local"], client)
	}
}
