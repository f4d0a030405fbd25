package e2e

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tcpscope/tcpscope/test/harness"
)

// This file holds the --packets control half of TestAnalysisAgainstTshark
// (issue 11): a second tracer in control mode watches the same interface
// at the same time as the all-mode tracer and tcpdump. docs/analysis.md
// (Packet modes) says what control mode claims: on the packets it reports
// (SYN, FIN, RST, zero windows and what the kernel finds suspicious), the
// zero-window verdict only; in the summaries, exact capture counts and
// the same handshake, close and reset fields as all mode.

// controlVerdicts are the verdicts --packets control gives (docs/analysis.md,
// Packet modes): those a packet supports alone.
var controlVerdicts = map[string]bool{"zero_window": true}

// checkControlPackets compares the packet records of the control-mode
// tracer with tshark's packets, grouped by controlKey (the packets of one
// key are alike for what is checked here: the window and the flags are
// part of it): no packet record tshark did not decode, at most as many
// records of a key as tshark saw packets, no verdict control mode
// disclaims, tshark's zero-window verdict exactly where control mode
// gives it, and every packet control mode must report (SYN, FIN, RST,
// zero window) reported. Grouped instead of matched one by one: the
// tracer's clock and the capture's do not tell apart two packets that
// differ only in their SACK blocks (a duplicate ACK and the next one, tens
// of microseconds apart).
func checkControlPackets(t *testing.T, theirs []tsharkPacket, ctl []*harness.Record, ns *harness.Namespace, ifname string) {
	t.Helper()
	type group struct {
		theirs []tsharkPacket
		ours   []*harness.Record
	}
	groups := map[string]*group{}
	var keys []string
	for _, p := range theirs {
		g := groups[p.base]
		if g == nil {
			g = &group{}
			groups[p.base] = g
			keys = append(keys, p.base)
		}
		g.theirs = append(g.theirs, p)
	}
	pkts := harness.Select(ctl, func(r *harness.Record) bool { return r.Type == "packet" })
	for _, r := range pkts {
		if r.Ifname != ifname || r.Netns != ns.Inode {
			t.Errorf("control: packet record elsewhere than %s in %s: %s", ifname, ns.Name, r)
			continue
		}
		var win uint32
		if r.Win != nil {
			win = *r.Win
		}
		k := controlKey(r.SrcAddr.Port(), *r.Seq, r.Ack, *r.Len, win,
			strings.Contains(r.Flags, "S"), strings.Contains(r.Flags, "F"), strings.Contains(r.Flags, "R"))
		g := groups[k]
		if g == nil {
			t.Errorf("control: packet record of no packet tshark decoded (%s): %s", k, r)
			continue
		}
		g.ours = append(g.ours, r)
	}
	bad, missing, zw := 0, 0, 0
	for _, k := range keys {
		g := groups[k]
		p := g.theirs[0]
		theirZW := slices.Contains(p.verdicts, "zero_window")
		if theirZW {
			zw += len(g.theirs)
		}
		if len(g.ours) > len(g.theirs) {
			t.Errorf("control: %d packet records of %s, tshark saw %d packets:\n%s", len(g.ours), k, len(g.theirs), harness.Describe(g.ours))
		}
		if (p.syn || p.fin || p.rst || theirZW) && len(g.ours) < len(g.theirs) {
			missing += len(g.theirs) - len(g.ours)
			if missing <= 15 {
				t.Errorf("control: %d of the %d packets %s (SYN %v FIN %v RST %v, tshark %v) reported, want all",
					len(g.ours), len(g.theirs), k, p.syn, p.fin, p.rst, p.verdicts)
			}
		}
		for _, r := range g.ours {
			var disclaimed []string
			for _, v := range r.Analysis {
				if !controlVerdicts[v] {
					disclaimed = append(disclaimed, v)
				}
			}
			if len(disclaimed) > 0 || slices.Contains(r.Analysis, "zero_window") != theirZW {
				bad++
				if bad <= 15 {
					t.Errorf("control: packet %s: tshark %v, control mode %v (it gives only %v): %s",
						k, p.verdicts, r.Analysis, slices.Sorted(maps.Keys(controlVerdicts)), r)
				}
			}
		}
	}
	if zw == 0 {
		t.Error("control: tshark saw no zero window: the zero-window comparison compared nothing")
	}
	t.Logf("control: %d of %d packets reported, %d zero windows; %d verdicts differ, %d not reported",
		len(pkts), len(theirs), zw, bad, missing)
}

// controlKey names a packet by source port, seq, ack, length, raw window
// and its SYN, FIN and RST flags: a zero window and the window update that
// follows it differ only in the window, a FIN and the ACK before it only
// in the flag.
func controlKey(port uint16, seq uint32, ack *uint32, length, win uint32, syn, fin, rst bool) string {
	k, _, _ := strings.Cut(verdictKey(port, seq, ack, length, map[string]int{}), "#")
	flags := ""
	for i, set := range []bool{syn, fin, rst} {
		if set {
			flags += "SFR"[i : i+1]
		}
	}
	return fmt.Sprintf("%s/w%d/%s", k, win, flags)
}

// captureCounts are a connection's bytes and segments in each direction
// (0: client to server) as the summary defines them (docs/analysis.md,
// Summaries): segments seen, retransmissions included; bytes of sequence
// progress, from the byte after the SYN to the highest byte seen.
type captureCounts struct {
	segs, bytes [2]uint64
}

// tsharkCounts computes c's captureCounts from tshark's packets.
func tsharkCounts(c analysisCase, theirs []tsharkPacket) captureCounts {
	var cc captureCounts
	var isn [2]uint32
	var synSeen [2]bool
	for _, p := range theirs {
		d := 0
		switch {
		case p.port == c.sc.clientPort && p.dport == c.sc.serverPort:
		case p.port == c.sc.serverPort && p.dport == c.sc.clientPort:
			d = 1
		default:
			continue
		}
		cc.segs[d]++
		if p.syn && !synSeen[d] {
			isn[d], synSeen[d] = p.seq, true
		}
		if p.length > 0 && synSeen[d] {
			cc.bytes[d] = max(cc.bytes[d], uint64(p.seq-(isn[d]+1))+uint64(p.length))
		}
	}
	return cc
}

// checkCaptureCounts requires each connection's bytes_out, bytes_in,
// segs_out and segs_in, in the summary of every tracer of recs (by mode),
// to be exactly what tshark's capture shows.
func checkCaptureCounts(t *testing.T, cases []analysisCase, tp *topology, theirs []tsharkPacket, recs map[string][]*harness.Record) {
	t.Helper()
	for _, c := range cases {
		want := tsharkCounts(c, theirs)
		for _, mode := range []string{"all", "control"} {
			s, sum, ok := caseSummary(t, mode, c, tp, recs[mode])
			if !ok {
				continue
			}
			got := fmt.Sprint(s["segs_out"], s["segs_in"], s["bytes_out"], s["bytes_in"])
			exp := fmt.Sprint(float64(want.segs[0]), float64(want.segs[1]), float64(want.bytes[0]), float64(want.bytes[1]))
			if got != exp {
				t.Errorf("%s: %s: segs_out segs_in bytes_out bytes_in %s, tshark's capture %s: %s", mode, c.name, got, exp, sum.Raw)
			}
		}
	}
}

// controlSameAsAll are the summary fields control mode gives as all mode
// does (docs/analysis.md, Packet modes): handshake from the reported
// SYNs, close and resets from the socket events, zero windows from the
// reported zero-window packets, fin_acked from the reported FINs and ACKs
// and the sockets' state changes. retransmits.seen is not among them:
// control mode gives no retransmission verdict.
var controlSameAsAll = []string{"outcome", "role", "isn_local", "isn_remote", "syn_retransmits", "handshake_check",
	"close_kind", "closed_by", "resets", "zero_windows", "fin_acked", "time_wait_side"}

// checkControlSummaries requires each connection's summary in control
// mode to say what all mode's says in controlSameAsAll, no
// retransmission counted from verdicts, and packets_counted exactly when
// the kernel counted some of the connection's packets: fewer packet
// records than tshark's packets.
func checkControlSummaries(t *testing.T, cases []analysisCase, tp *topology, theirs []tsharkPacket, all, ctl []*harness.Record) {
	t.Helper()
	for _, c := range cases {
		client, server := netip.AddrPortFrom(tp.clientIP, c.sc.clientPort), netip.AddrPortFrom(tp.serverIP, c.sc.serverPort)
		reported := len(harness.Select(ctl, func(r *harness.Record) bool {
			return r.Type == "packet" && (r.SrcAddr == client && r.DstAddr == server || r.SrcAddr == server && r.DstAddr == client)
		}))
		captured := 0
		for _, p := range theirs {
			if p.port == c.sc.clientPort && p.dport == c.sc.serverPort || p.port == c.sc.serverPort && p.dport == c.sc.clientPort {
				captured++
			}
		}
		a, _, ok1 := caseSummary(t, "all", c, tp, all)
		s, sum, ok2 := caseSummary(t, "control", c, tp, ctl)
		if !ok1 || !ok2 {
			continue
		}
		for _, k := range controlSameAsAll {
			if fmt.Sprint(s[k]) != fmt.Sprint(a[k]) {
				t.Errorf("control: %s: %s = %v, all mode %v: %s", c.name, k, s[k], a[k], sum.Raw)
			}
		}
		// No retransmission verdict, so none counted in the summary.
		if rtx, _ := s["retransmits"].(map[string]any); rtx["seen"] != float64(0) || rtx["fast"] != float64(0) || rtx["spurious"] != float64(0) {
			t.Errorf("control: %s: retransmits %v, want seen, fast and spurious 0: %s", c.name, s["retransmits"], sum.Raw)
		}
		if _, counted := a["packets_counted"]; counted {
			t.Errorf("all: %s: packets_counted in all mode: %v", c.name, a)
		}
		if counted := s["packets_counted"] == true; counted != (reported < captured) {
			t.Errorf("control: %s: packets_counted %v, with %d of the %d packets reported: %s", c.name, s["packets_counted"], reported, captured, sum.Raw)
		}
	}
}
