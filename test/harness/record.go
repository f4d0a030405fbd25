package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// TCPOptions is the `options` object of a packet record.
type TCPOptions struct {
	MSS        *uint32     `json:"mss"`
	WScale     *uint32     `json:"wscale"`
	SackOK     bool        `json:"sack_ok"`
	TSVal      *uint32     `json:"ts_val"`
	TSEcr      *uint32     `json:"ts_ecr"`
	SackBlocks *uint32     `json:"sack_blocks"`
	Sack       [][2]uint32 `json:"sack"`
}

// Record is one JSON line of tcpscope, any type (docs/schema.md): every
// field of every record type. Optional fields are pointers, so that
// "absent" can be told from zero (the schema: a field the kernel cannot
// give is absent, never zero or empty).
type Record struct {
	// Fields of every record.
	TS    string  `json:"ts"`
	Type  string  `json:"type"`
	Conn  *uint64 `json:"conn"`
	Netns uint64  `json:"netns"`
	// NetnsName is the namespace's name, when it has one.
	NetnsName string `json:"netns_name"`

	// packet
	Ifname          string      `json:"ifname"`
	Dir             string      `json:"dir"` // packet: in/out; reset: sent/received
	Src             string      `json:"src"`
	Dst             string      `json:"dst"`
	Flags           string      `json:"flags"` // also retransmit
	Seq             *uint32     `json:"seq"`   // also retransmit
	Ack             *uint32     `json:"ack"`
	Win             *uint32     `json:"win"`
	Len             *uint32     `json:"len"` // also retransmit
	Options         *TCPOptions `json:"options"`
	RelSeq          *uint32     `json:"rel_seq"`
	RelAck          *uint32     `json:"rel_ack"`
	Analysis        []string    `json:"analysis"`
	DupAckCount     *uint32     `json:"dup_ack_count"`
	KernelConfirmed *bool       `json:"kernel_confirmed"`

	// state, retransmit, reset, socket (and local, remote of conn)
	Local       string   `json:"local"`
	Remote      string   `json:"remote"`
	Old         string   `json:"old"`
	New         string   `json:"new"`
	SRTTMicros  *uint64  `json:"srtt_us"`
	Cwnd        *uint32  `json:"cwnd"` // also conn
	TimeWait    bool     `json:"timewait"`
	TimeWaitEnd string   `json:"time_wait_end"` // also conn
	TimeWaitMs  *float64 `json:"time_wait_ms"`  // also conn
	State       *string  `json:"state"`
	Segs        *uint32  `json:"segs"`
	Reason      *string  `json:"reason"`
	Preexisting *bool    `json:"preexisting"` // also conn

	// owner fields (pid and comm also of conn)
	PID      *uint32 `json:"pid"`
	TID      *uint32 `json:"tid"`
	UID      *uint32 `json:"uid"`
	CgroupID *uint64 `json:"cgroup_id"`
	Comm     *string `json:"comm"`
	Cookie   uint64  `json:"cookie"`

	// conn summaries
	Role             string             `json:"role"`
	Outcome          string             `json:"outcome"`
	ISNLocal         *uint32            `json:"isn_local"`
	ISNRemote        *uint32            `json:"isn_remote"`
	HandshakeRTTMs   *float64           `json:"handshake_rtt_ms"`
	SynackToAckMs    *float64           `json:"synack_to_ack_ms"`
	SynRetransmits   *uint64            `json:"syn_retransmits"`
	HandshakeCheck   string             `json:"handshake_check"`
	Start            string             `json:"start"`
	End              string             `json:"end"`
	DurationMs       *float64           `json:"duration_ms"`
	StateMs          map[string]float64 `json:"state_ms"`
	BytesOut         *uint64            `json:"bytes_out"`
	BytesIn          *uint64            `json:"bytes_in"`
	SegsOut          *uint64            `json:"segs_out"`
	SegsIn           *uint64            `json:"segs_in"`
	Retransmits      map[string]uint64  `json:"retransmits"` // kernel, kernel_segs, kernel_bytes, seen, fast, spurious
	Resets           map[string]uint64  `json:"resets"`      // sent, received
	ZeroWindows      *uint64            `json:"zero_windows"`
	SRTTMs           *float64           `json:"srtt_ms"`
	ClosedBy         string             `json:"closed_by"`
	CloseKind        string             `json:"close_kind"`
	HalfCloseMs      *float64           `json:"half_close_ms"`
	FinAcked         map[string]bool    `json:"fin_acked"` // local, remote
	ResetReason      string             `json:"reset_reason"`
	TimeWaitSide     string             `json:"time_wait_side"`
	TimeWaitKill     string             `json:"time_wait_kill"`
	Complete         *bool              `json:"complete"`
	Evicted          bool               `json:"evicted"`
	Incomplete       bool               `json:"incomplete"`
	IncompleteReason string             `json:"incomplete_reason"`

	// lost
	Count uint64 `json:"count"`
	Kind  string `json:"kind"`
	Where string `json:"where"` // ring, queue; absent for malformed

	// Parsed forms, filled by ParseRecords.

	// Line is the record's line number in the output, from 1.
	Line int `json:"-"`
	// Raw is the line as printed.
	Raw string `json:"-"`
	// Time is TS parsed.
	Time time.Time `json:"-"`
	// SrcAddr, DstAddr, LocalAddr and RemoteAddr are Src, Dst, Local and
	// Remote parsed (zero when absent).
	SrcAddr, DstAddr, LocalAddr, RemoteAddr netip.AddrPort `json:"-"`
}

// String is the record as printed, with its line number.
func (r *Record) String() string { return fmt.Sprintf("line %d: %s", r.Line, r.Raw) }

// ConnID returns the conn id (0 if absent; ParseRecords rejects that).
func (r *Record) ConnID() uint64 {
	if r.Conn == nil {
		return 0
	}
	return *r.Conn
}

// IsSocketEvent reports whether r comes from a socket event (not a
// packet, a start-up listing, a summary or a loss).
func (r *Record) IsSocketEvent() bool {
	return r.Type == "state" || r.Type == "retransmit" || r.Type == "reset"
}

// StateName is the `state` field, "" when absent.
func (r *Record) StateName() string { return deref(r.State) }

// ReasonName is the `reason` field, "" when absent.
func (r *Record) ReasonName() string { return deref(r.Reason) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ParseRecords parses tcpscope's JSON lines. The output must be empty or
// end with a newline, every line must be one JSON object, and every record
// must carry the fields its type requires (Validate).
func ParseRecords(data []byte) ([]*Record, error) {
	if len(data) > 0 && data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("output does not end with a complete line: ...%q", data[max(0, len(data)-200):])
	}
	var recs []*Record
	if len(data) == 0 {
		return nil, nil
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		r := &Record{Line: i + 1, Raw: string(line)}
		if err := json.Unmarshal(line, r); err != nil {
			return nil, fmt.Errorf("line %d is not a JSON object: %v: %s", i+1, err, line)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%v: %s", err, r)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// Validate checks the fields every record of r's type must have, and
// parses the time and the addresses.
func (r *Record) Validate() error {
	var err error
	if r.Time, err = time.Parse(time.RFC3339Nano, r.TS); err != nil {
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
		if err := parse("src", r.Src, &r.SrcAddr); err != nil {
			return err
		}
		return parse("dst", r.Dst, &r.DstAddr)
	case "state", "retransmit", "reset":
		if err := parse("local", r.Local, &r.LocalAddr); err != nil {
			return err
		}
		if err := parse("remote", r.Remote, &r.RemoteAddr); err != nil {
			return err
		}
		switch {
		case r.Type == "state" && (r.Old == "" || r.New == ""):
			return fmt.Errorf("state record without old/new")
		case r.Type == "reset" && r.Dir != "sent" && r.Dir != "received":
			return fmt.Errorf("reset record with dir %q", r.Dir)
		case r.Type == "retransmit" && (r.StateName() == "" || r.Seq == nil || r.Len == nil || r.Flags == ""):
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
	case "counts":
		// Packets counted in the kernel, not reported (--packets control).
		if err := parse("local", r.Local, &r.LocalAddr); err != nil {
			return err
		}
		return parse("remote", r.Remote, &r.RemoteAddr)
	case "socket":
		// A socket that existed when tracing started.
		if err := parse("local", r.Local, &r.LocalAddr); err != nil {
			return err
		}
		return parse("remote", r.Remote, &r.RemoteAddr)
	case "conn":
		// One summary per connection (the analysis layer): its own
		// fields are checked by the analysis tests; here only that it
		// names a connection and says whether it is complete.
		if *r.Conn == 0 || r.Complete == nil {
			return fmt.Errorf("conn record without conn or complete")
		}
		if r.Local != "" {
			if err := parse("local", r.Local, &r.LocalAddr); err != nil {
				return err
			}
			return parse("remote", r.Remote, &r.RemoteAddr)
		}
		return nil
	}
	return fmt.Errorf("unknown type %q", r.Type)
}

// Select returns the records that satisfy keep, in output order.
func Select(recs []*Record, keep func(*Record) bool) []*Record {
	var out []*Record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// StateChain renders the state records of one socket as
// "CLOSE -> SYN_SENT -> ...". A record whose old state is not the previous
// record's new state shows as " // OLD", so that the chain cannot match an
// expected one. The TIME_WAIT socket's own records (timewait: true) are
// left out: the tests check them apart.
func StateChain(recs []*Record) string {
	var b strings.Builder
	prev := ""
	for _, r := range recs {
		if r.Type != "state" || r.TimeWait {
			continue
		}
		if r.Old != prev {
			if prev != "" {
				b.WriteString(" // ")
			}
			b.WriteString(r.Old)
		}
		b.WriteString(" -> " + r.New)
		prev = r.New
	}
	return b.String()
}

// Describe lists records for a failure message, at most 40 of them.
func Describe(recs []*Record) string {
	lines := make([]string, len(recs))
	for i, r := range recs {
		lines[i] = r.String()
	}
	return FirstN(lines, 40)
}

// FirstN joins at most n items, one per line, saying how many were left
// out.
func FirstN(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "\n")
	}
	return strings.Join(items[:n], "\n") + fmt.Sprintf("\n... and %d more", len(items)-n)
}
