package kernel

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// record is one JSON line of tcpscope; absent fields stay nil.
type record struct {
	Type   string  `json:"type"`
	Conn   uint64  `json:"conn"`
	Netns  uint64  `json:"netns"`
	Ifname string  `json:"ifname"`
	Dir    string  `json:"dir"`
	Src    string  `json:"src"`
	Dst    string  `json:"dst"`
	Flags  string  `json:"flags"`
	Seq    *uint32 `json:"seq"`
	Ack    *uint32 `json:"ack"`
	Len    *uint32 `json:"len"`
	Local  string  `json:"local"`
	Remote string  `json:"remote"`
	Old    string  `json:"old"`
	New    string  `json:"new"`
	State  *string `json:"state"`
	Reason *string `json:"reason"`
	PID    *int    `json:"pid"`
	Comm   *string `json:"comm"`

	TimeWait    bool   `json:"timewait"`
	TimeWaitEnd string `json:"time_wait_end"`
	Preexisting *bool  `json:"preexisting"`

	raw                     string
	src, dst, local, remote netip.AddrPort
}

func (r *record) String() string { return r.raw }

func parseRecords(out string) ([]*record, error) {
	if out != "" && !strings.HasSuffix(out, "\n") {
		return nil, fmt.Errorf("output does not end with a complete line")
	}
	var recs []*record
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			if out == "" {
				break
			}
			return nil, fmt.Errorf("line %d is blank", i+1)
		}
		r := &record{raw: line}
		if err := json.Unmarshal([]byte(line), r); err != nil {
			return nil, fmt.Errorf("line %d: %v: %s", i+1, err, line)
		}
		for _, f := range []struct {
			s   string
			dst *netip.AddrPort
		}{{r.Src, &r.src}, {r.Dst, &r.dst}, {r.Local, &r.local}, {r.Remote, &r.remote}} {
			if f.s != "" {
				ap, err := netip.ParseAddrPort(f.s)
				if err != nil {
					return nil, fmt.Errorf("line %d: %v", i+1, err)
				}
				*f.dst = ap
			}
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func filter(recs []*record, keep func(*record) bool) []*record {
	var out []*record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// chain renders state records as "CLOSE -> SYN_SENT -> ...".
func chain(recs []*record) string {
	var states []string
	for _, r := range recs {
		// The TIME_WAIT socket's own records (timewait: true) are checked apart.
		if r.Type != "state" || r.TimeWait {
			continue
		}
		if len(states) == 0 {
			states = append(states, r.Old)
		} else if states[len(states)-1] != r.Old {
			states = append(states, "?"+r.Old)
		}
		states = append(states, r.New)
	}
	return strings.Join(states, " -> ")
}

func describe(recs []*record) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString("  " + r.raw + "\n")
	}
	return b.String()
}
