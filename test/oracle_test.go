package e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tcpscope/tcpscope/test/harness"
)

// ------------------------------------------------------------ tcpdump

// tdPacket is one line of `tcpdump -S -n -t`.
type tdPacket struct {
	src, dst netip.AddrPort
	flags    string
	seq      *uint32 // nil when tcpdump did not print it (pure ACKs)
	ack      *uint32
	win      uint32
	length   uint32
	options  string // normalized, see normalizeTcpdumpOptions
	line     string
}

var tcpdumpLine = regexp.MustCompile(`^IP6? (\S+) > (\S+): Flags \[([^\]]+)\]` +
	`(?:, seq (\d+)(?::(\d+))?)?(?:, ack (\d+))?, win (\d+)(?:, urg \d+)?` +
	`(?:, options \[([^\]]*)\])?, length (\d+)`)

// parseTcpdump parses tcpdump's packet lines. A line it cannot read is an
// error: the oracle must be understood completely.
func parseTcpdump(out string) ([]*tdPacket, error) {
	var pkts []*tdPacket
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := tcpdumpLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("cannot parse tcpdump line %q", line)
		}
		p := &tdPacket{flags: m[3], line: line}
		var err error
		if p.src, err = parseTcpdumpEndpoint(m[1]); err != nil {
			return nil, fmt.Errorf("%v in %q", err, line)
		}
		if p.dst, err = parseTcpdumpEndpoint(strings.TrimSuffix(m[2], ":")); err != nil {
			return nil, fmt.Errorf("%v in %q", err, line)
		}
		num := func(s string) uint32 { n, _ := strconv.ParseUint(s, 10, 32); return uint32(n) }
		if m[4] != "" {
			seq := num(m[4])
			p.seq = &seq
		}
		if m[6] != "" {
			ack := num(m[6])
			p.ack = &ack
		}
		p.win = num(m[7])
		p.length = num(m[9])
		if m[5] != "" && num(m[5])-num(m[4]) != p.length {
			return nil, fmt.Errorf("seq range and length disagree in %q", line)
		}
		p.options = normalizeTcpdumpOptions(m[8])
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// parseTcpdumpEndpoint parses "10.0.0.1.80" or "fd00::1.80".
func parseTcpdumpEndpoint(s string) (netip.AddrPort, error) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("bad endpoint %q", s)
	}
	addr, err := netip.ParseAddr(s[:i])
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// normalizeTcpdumpOptions turns tcpdump's option list ("mss 1460,sackOK,TS
// val 1 ecr 0,nop,wscale 7") into the form of recordOptions. Padding
// (nop, eol) is dropped; anything unknown is kept verbatim so that it
// shows up in a mismatch.
func normalizeTcpdumpOptions(s string) string {
	var out []string
	for _, opt := range strings.Split(s, ",") {
		f := strings.Fields(opt)
		switch {
		case len(f) == 0 || f[0] == "nop" || f[0] == "eol":
		case f[0] == "mss" && len(f) == 2:
			out = append(out, "mss="+f[1])
		case f[0] == "wscale" && len(f) == 2:
			out = append(out, "wscale="+f[1])
		case f[0] == "sackOK":
			out = append(out, "sackOK")
		case f[0] == "TS" && len(f) == 5 && f[1] == "val" && f[3] == "ecr":
			out = append(out, "ts="+f[2]+"/"+f[4])
		case f[0] == "sack" && len(f) >= 2:
			out = append(out, "sack="+f[1])
		default:
			out = append(out, "?"+strings.TrimSpace(opt))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// recordOptions renders a packet record's options like
// normalizeTcpdumpOptions.
func recordOptions(o *harness.TCPOptions) string {
	if o == nil {
		return ""
	}
	var out []string
	if o.MSS != nil {
		out = append(out, fmt.Sprintf("mss=%d", *o.MSS))
	}
	if o.WScale != nil {
		out = append(out, fmt.Sprintf("wscale=%d", *o.WScale))
	}
	if o.SackOK {
		out = append(out, "sackOK")
	}
	if o.TSVal != nil || o.TSEcr != nil {
		val, ecr := uint32(0), uint32(0)
		if o.TSVal != nil {
			val = *o.TSVal
		}
		if o.TSEcr != nil {
			ecr = *o.TSEcr
		}
		out = append(out, fmt.Sprintf("ts=%d/%d", val, ecr))
	}
	if o.SackBlocks != nil {
		out = append(out, fmt.Sprintf("sack=%d", *o.SackBlocks))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// ------------------------------------------------------------ comparison

// tcpdumpPrintsSeq reports whether tcpdump prints the sequence number of a
// segment: only for SYN, FIN, RST or when it carries data.
func tcpdumpPrintsSeq(flags string, length uint32) bool {
	return length > 0 || strings.ContainsAny(flags, "SFR")
}

// packetKey is what must agree between tcpdump and tcpscope for one packet.
func packetKey(src, dst netip.AddrPort, flags string, seq, ack *uint32, win, length uint32, opts string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s > %s [%s]", src, dst, flags)
	if seq != nil && tcpdumpPrintsSeq(flags, length) {
		fmt.Fprintf(&b, " seq %d", *seq)
	}
	if ack != nil {
		fmt.Fprintf(&b, " ack %d", *ack)
	}
	fmt.Fprintf(&b, " win %d len %d opts[%s]", win, length, opts)
	return b.String()
}

func (p *tdPacket) key() string {
	return packetKey(p.src, p.dst, p.flags, p.seq, p.ack, p.win, p.length, p.options)
}

// recordKey is the packet key (packetKey) of a packet record.
func recordKey(r *harness.Record) string {
	return packetKey(r.SrcAddr, r.DstAddr, r.Flags, r.Seq, r.Ack, *r.Win, *r.Len, recordOptions(r.Options))
}

// diffPackets compares tcpdump's packets and tcpscope's packet records as
// multisets. It returns the keys tcpscope misses and the ones it has in
// excess (with their multiplicity in the key's text).
func diffPackets(td []*tdPacket, recs []*harness.Record) (missing, extra []string) {
	count := map[string]int{}
	for _, p := range td {
		count[p.key()]++
	}
	for _, r := range recs {
		count[recordKey(r)]--
	}
	for k, n := range count {
		switch {
		case n > 0:
			missing = append(missing, fmt.Sprintf("%dx %s", n, k))
		case n < 0:
			extra = append(extra, fmt.Sprintf("%dx %s", -n, k))
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}
