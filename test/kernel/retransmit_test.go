package kernel

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestRetransmitSegments: the segment count of retransmit events (read
// from the skb's control block with CO-RE) is right on every kernel of
// the matrix. The client's SYNs to the server's address go out with a
// MAC nobody has (a wrong static neighbour), so the server's end drops
// them and the client retransmits its SYN until connect() times out:
// every retransmit record is one segment, and the summary's kernel_segs
// equals the namespace's TcpRetransSegs.
func TestRetransmitSegments(t *testing.T) {
	requireSetup(t)
	v := harness.NewVethPair(t, netnsPrefix, "krtx", 70)
	h := v.A.MustHandle(t)
	link, err := h.LinkByName("veth-a")
	if err == nil {
		bogus, _ := net.ParseMAC("02:00:00:00:ff:ff")
		err = h.NeighSet(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: v.B4.AsSlice(), HardwareAddr: bogus,
			State: netlink.NUD_PERMANENT})
	}
	h.Close()
	if err != nil {
		t.Fatalf("wrong neighbour for %s: %v", v.B4, err)
	}

	// TcpRetransSegs counts every retransmission attempt; those whose
	// transmit failed (TCPRetransFail: a drop on the way out, more likely
	// on a loaded host) fire no tcp_retransmit_skb event (before 6.17) or
	// one with an error that the tracer skips: they sent nothing.
	before := v.A.MustCounter(t, "snmp", "Tcp", "RetransSegs")
	failedBefore := v.A.MustCounter(t, "netstat", "TcpExt", "TCPRetransFail")
	tr := harness.StartT(t, "tcpscope", v.A.Command(context.Background(), bins.Tcpscope, "trace", "-o", "json", "-i", "veth-a", "--packets", "all"))
	tr.MustWaitLine(context.Background(), t, true, `msg="tracing started"`, startTimeout)
	server := netip.AddrPortFrom(v.B4, 7170)
	client := netip.AddrPortFrom(v.A4, 37170)
	// Long enough for the first retransmission (the initial RTO is 1 s).
	cli := harness.StartT(t, "client", v.A.Command(context.Background(), bins.Client, "connect-timeout", server.String(), client.String(), "2500"))
	cli.MustSucceed(context.Background(), t, stopTimeout)
	failed := v.A.MustCounter(t, "netstat", "TcpExt", "TCPRetransFail") - failedBefore
	segs := v.A.MustCounter(t, "snmp", "Tcp", "RetransSegs") - before - failed
	tr.MustStop(context.Background(), t, syscall.SIGINT, stopTimeout)
	if segs == 0 {
		t.Fatal("the kernel retransmitted no SYN")
	}
	recs, err := harness.ParseRecords(tr.Stdout.Bytes())
	if err != nil {
		t.Fatalf("tcpscope output: %v", err)
	}
	var events int64
	var sum map[string]any
	for _, r := range recs {
		if r.LocalAddr != client || r.RemoteAddr != server {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Raw), &m); err != nil {
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
		t.Fatalf("no summary of %s -> %s:\n%s", client, server, harness.Describe(recs))
	}
	rtx, _ := sum["retransmits"].(map[string]any)
	t.Logf("TcpRetransSegs %d (less %d TCPRetransFail); retransmit records %d; summary retransmits %v", segs, failed, events, rtx)
	if events != segs || rtx["kernel"] != float64(segs) || rtx["kernel_segs"] != float64(segs) || rtx["kernel_bytes"] != 0.0 {
		t.Errorf("retransmit records %d, summary retransmits %v: want %d events and segments (TcpRetransSegs less TCPRetransFail), 0 bytes",
			events, rtx, segs)
	}
	if sum["outcome"] != "timeout" || sum["local"] != client.String() {
		t.Errorf("summary outcome %v local %v, want timeout, %s", sum["outcome"], sum["local"], client)
	}
}
