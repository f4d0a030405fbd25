package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tcpscope/tcpscope/test/harness"
)

// TestPacketsControlCounts (issue 11, --packets control): a 1 MiB transfer
// over a veth pair, traced in the client's namespace by two tracers at
// once, --packets all and --packets control, with tcpdump on the same
// interface. In control mode the summary's bytes and segments (each
// direction) are those of all mode and of tcpdump, marked
// packets_counted, with a counts record of the connection, and far fewer
// packet records: the handshake, the FINs and the few the kernel finds
// suspicious.
func TestPacketsControlCounts(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	v := harness.NewVethPair(t, netnsPrefix, "pktctl", 83)
	tp := vethTopology(v, false)
	sc := &scenario{name: "bulk-control", serverPort: 7831, clientPort: 41831,
		serve: "serve-sink", connect: []string{"connect-bulk", fmt.Sprint(bulkBytes)}}
	td := startTcpdump(ctx, t, v.A, harness.VethA)
	tracers := map[string]*harness.Proc{}
	for _, mode := range []string{"all", "control"} {
		tracers[mode] = startTracer(ctx, t, nil, "--netns", v.A.Name, "--packets", mode)
	}
	run := runScenario(ctx, t, tp, sc)
	time.Sleep(settle)
	recs := map[string][]*harness.Record{}
	for mode, p := range tracers {
		recs[mode] = stopTracer(ctx, t, p)
	}
	var tdSegs, tdBytes [2]int
	for _, p := range stopTcpdump(ctx, t, td) {
		if !run.isConnPacket(p) {
			continue
		}
		d := 0
		if p.src == run.server {
			d = 1
		}
		tdSegs[d]++
		tdBytes[d] += int(p.length)
	}

	type counts struct {
		sum                                map[string]any
		packets, countsRecs                int
		flags                              []string
		bytesOut, bytesIn, segsOut, segsIn float64
	}
	res := map[string]*counts{}
	for _, mode := range []string{"all", "control"} {
		sum, id := connSummary(t, recs[mode], run)
		r := &counts{sum: sum}
		for _, rec := range recs[mode] {
			if rec.ConnID() != id {
				continue
			}
			switch rec.Type {
			case "packet":
				r.packets++
				r.flags = append(r.flags, rec.Flags)
			case "counts":
				r.countsRecs++
			case "state":
				// A CLOSE that took the connection's count entry.
				if tookCounts(rec) {
					r.countsRecs++
				}
			}
		}
		var ok [4]bool
		r.bytesOut, ok[0] = sumField(sum, "bytes_out")
		r.bytesIn, ok[1] = sumField(sum, "bytes_in")
		r.segsOut, ok[2] = sumField(sum, "segs_out")
		r.segsIn, ok[3] = sumField(sum, "segs_in")
		if ok != [4]bool{true, true, true, true} {
			t.Fatalf("%s: summary without bytes/segments: %v", mode, sum)
		}
		t.Logf("%s: summary out %vB/%v in %vB/%v; %d packet records, %d counts records", mode,
			r.bytesOut, r.segsOut, r.bytesIn, r.segsIn, r.packets, r.countsRecs)
		// tcpdump's bytes include retransmissions, the summary's are
		// sequence progress: equal on a clean veth.
		if r.bytesOut != bulkBytes || int(r.segsOut) != tdSegs[0] || int(r.segsIn) != tdSegs[1] || r.bytesIn != float64(tdBytes[1]) {
			t.Errorf("%s: summary out %vB/%v in %vB/%v, want %dB and tcpdump's out %dB/%d in %dB/%d",
				mode, r.bytesOut, r.segsOut, r.bytesIn, r.segsIn, bulkBytes, tdBytes[0], tdSegs[0], tdBytes[1], tdSegs[1])
		}
		res[mode] = r
	}
	t.Logf("tcpdump: out %dB/%d in %dB/%d; control mode reported %v", tdBytes[0], tdSegs[0], tdBytes[1], tdSegs[1], res["control"].flags)
	all, ctl := res["all"], res["control"]
	if counted, _ := ctl.sum["packets_counted"].(bool); !counted || ctl.countsRecs == 0 {
		t.Errorf("control: packets_counted %v, %d counts records; want true and at least one", ctl.sum["packets_counted"], ctl.countsRecs)
	}
	if _, ok := all.sum["packets_counted"]; ok || all.countsRecs != 0 {
		t.Errorf("all: packets_counted %v, %d counts records; want neither", all.sum["packets_counted"], all.countsRecs)
	}
	// SYN, SYN-ACK, the third ACK, two FINs, and whatever the kernel
	// found suspicious: a quarter of all mode's records at most (GSO
	// makes a 1 MiB transfer about 50 packets on veth).
	if all.packets != tdSegs[0]+tdSegs[1] || ctl.packets < 5 || ctl.packets*4 > all.packets {
		t.Errorf("control: %d packet records, all: %d, tcpdump %d; want all = tcpdump, control at least the 5 of handshake and close, at most a quarter",
			ctl.packets, all.packets, tdSegs[0]+tdSegs[1])
	}
}
