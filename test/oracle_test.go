package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ------------------------------------------------------------ tcpscope records

// tcpOptions is the `options` object of a packet record.
type tcpOptions struct {
	MSS        *uint32 `json:"mss"`
	WScale     *uint32 `json:"wscale"`
	SackOK     bool    `json:"sack_ok"`
	TSVal      *uint32 `json:"ts_val"`
	TSEcr      *uint32 `json:"ts_ecr"`
	SackBlocks *uint32 `json:"sack_blocks"`
}

// record is one JSON line of tcpscope. Optional fields are pointers so
// that "absent" can be told from zero.
type record struct {
	TS    string  `json:"ts"`
	Type  string  `json:"type"`
	Conn  *uint64 `json:"conn"`
	Netns uint64  `json:"netns"`
	// NetnsName: the namespace's name, when it has one.
	NetnsName string `json:"netns_name"`

	// packet
	Ifname  string      `json:"ifname"`
	Dir     string      `json:"dir"` // packet: in/out; reset: sent/received
	Src     string      `json:"src"`
	Dst     string      `json:"dst"`
	Flags   string      `json:"flags"`
	Seq     *uint32     `json:"seq"`
	Ack     *uint32     `json:"ack"`
	Win     *uint32     `json:"win"`
	Len     *uint32     `json:"len"`
	Options *tcpOptions `json:"options"`

	// state, retransmit, reset
	Local    string  `json:"local"`
	Remote   string  `json:"remote"`
	Old      string  `json:"old"`
	New      string  `json:"new"`
	State    string  `json:"state"`
	Reason   string  `json:"reason"`
	PID      *uint32 `json:"pid"`
	TID      *uint32 `json:"tid"`
	UID      *uint32 `json:"uid"`
	CgroupID *uint64 `json:"cgroup_id"`
	Comm     *string `json:"comm"`
	Cookie   uint64  `json:"cookie"`

	// lost
	Count uint64 `json:"count"`
	Kind  string `json:"kind"`
	Where string `json:"where"` // ring, queue; absent for malformed

	// conn
	Complete *bool `json:"complete"`

	// TIME_WAIT socket records
	TimeWait    bool   `json:"timewait"`
	TimeWaitEnd string `json:"time_wait_end"`

	// packet analysis
	Analysis        []string `json:"analysis"`
	KernelConfirmed *bool    `json:"kernel_confirmed"`

	// Parsed forms, filled by parseRecords.
	line                    int
	raw                     string
	time                    time.Time
	src, dst, local, remote netip.AddrPort
}

func (r *record) String() string { return fmt.Sprintf("line %d: %s", r.line, r.raw) }

// conn returns the conn id (0 if absent; parseRecords rejects that).
func (r *record) conn() uint64 {
	if r.Conn == nil {
		return 0
	}
	return *r.Conn
}

// isSocketEvent reports whether r comes from a socket (not a packet).
func (r *record) isSocketEvent() bool {
	return r.Type == "state" || r.Type == "retransmit" || r.Type == "reset"
}

// parseRecords parses tcpscope's JSON lines. The output must be empty or
// end with a newline, every line must be one JSON object, and every record
// must carry the fields its type requires.
func parseRecords(data []byte) ([]*record, error) {
	if len(data) > 0 && data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("output does not end with a complete line: ...%q", data[max(0, len(data)-200):])
	}
	var recs []*record
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(data) == 0 {
			break
		}
		r := &record{line: i + 1, raw: string(line)}
		if err := json.Unmarshal(line, r); err != nil {
			return nil, fmt.Errorf("line %d is not a JSON object: %v: %s", i+1, err, line)
		}
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("%v: %s", err, r)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// validate checks the fields every record of r's type must have, and
// parses the addresses.
func (r *record) validate() error {
	var err error
	if r.time, err = time.Parse(time.RFC3339Nano, r.TS); err != nil {
		return fmt.Errorf("bad ts %q: %v", r.TS, err)
	}
	if r.Conn == nil {
		return fmt.Errorf("no conn")
	}
	if r.Netns == 0 && r.Type != "lost" {
		return fmt.Errorf("no netns")
	}
	parse := func(name, s string, dst *netip.AddrPort) error {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return fmt.Errorf("bad %s %q: %v", name, s, err)
		}
		*dst = ap
		return nil
	}
	switch r.Type {
	case "packet":
		if r.Ifname == "" || (r.Dir != "in" && r.Dir != "out") || r.Flags == "" ||
			r.Seq == nil || r.Win == nil || r.Len == nil {
			return fmt.Errorf("packet record lacks a field")
		}
		if hasAck := strings.Contains(r.Flags, "."); hasAck != (r.Ack != nil) {
			return fmt.Errorf("flags %q but ack present=%v", r.Flags, r.Ack != nil)
		}
		if err := parse("src", r.Src, &r.src); err != nil {
			return err
		}
		return parse("dst", r.Dst, &r.dst)
	case "state", "retransmit", "reset":
		if err := parse("local", r.Local, &r.local); err != nil {
			return err
		}
		if err := parse("remote", r.Remote, &r.remote); err != nil {
			return err
		}
		switch {
		case r.Type == "state" && (r.Old == "" || r.New == ""):
			return fmt.Errorf("state record without old/new")
		case r.Type == "reset" && r.Dir != "sent" && r.Dir != "received":
			return fmt.Errorf("reset record with dir %q", r.Dir)
		case r.Type == "retransmit" && (r.State == "" || r.Seq == nil || r.Len == nil || r.Flags == ""):
			return fmt.Errorf("retransmit record lacks a field")
		}
		if (r.PID != nil) != (r.Comm != nil) {
			return fmt.Errorf("pid and comm must come together")
		}
		return nil
	case "lost":
		if r.Count == 0 || r.Kind == "" {
			return fmt.Errorf("lost record without count/kind")
		}
		if r.Where == "" && r.Kind != "malformed" || r.Where != "" && r.Where != "ring" && r.Where != "queue" {
			return fmt.Errorf("lost record of kind %q where %q: want ring or queue (none only for malformed)", r.Kind, r.Where)
		}
		return nil
	case "socket":
		// A socket that existed when tracing started.
		if err := parse("local", r.Local, &r.local); err != nil {
			return err
		}
		return parse("remote", r.Remote, &r.remote)
	case "conn":
		// One summary per connection (the analysis layer): its own
		// fields are checked by the analysis tests; here only that it
		// names a connection and says whether it is complete.
		if *r.Conn == 0 || r.Complete == nil {
			return fmt.Errorf("conn record without conn or complete")
		}
		if r.Local != "" {
			if err := parse("local", r.Local, &r.local); err != nil {
				return err
			}
			return parse("remote", r.Remote, &r.remote)
		}
		return nil
	}
	return fmt.Errorf("unknown type %q", r.Type)
}

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
func recordOptions(o *tcpOptions) string {
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

func (r *record) packetKey() string {
	return packetKey(r.src, r.dst, r.Flags, r.Seq, r.Ack, *r.Win, *r.Len, recordOptions(r.Options))
}

// diffPackets compares tcpdump's packets and tcpscope's packet records as
// multisets. It returns the keys tcpscope misses and the ones it has in
// excess (with their multiplicity in the key's text).
func diffPackets(td []*tdPacket, recs []*record) (missing, extra []string) {
	count := map[string]int{}
	for _, p := range td {
		count[p.key()]++
	}
	for _, r := range recs {
		count[r.packetKey()]--
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

// firstN returns at most n items, saying how many were left out.
func firstN(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "\n")
	}
	return strings.Join(items[:n], "\n") + fmt.Sprintf("\n... and %d more", len(items)-n)
}
