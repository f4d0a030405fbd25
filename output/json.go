package output

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

type jsonObj struct{ b []byte }

func (o *jsonObj) key(k string) {
	if len(o.b) > 0 && o.b[len(o.b)-1] != '{' {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// str appends a string the tracer chose itself (names, enum values): it
// holds no character that needs JSON escaping.
func (o *jsonObj) str(k, v string) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = append(o.b, v...)
	o.b = append(o.b, '"')
}

func (o *jsonObj) uint(k string, v uint64) {
	o.key(k)
	o.b = strconv.AppendUint(o.b, v, 10)
}

func (o *jsonObj) addr(k string, ap netip.AddrPort) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = ap.AppendTo(o.b)
	o.b = append(o.b, '"')
}

// AppendJSON appends r as one JSON object (no newline). The field order is
// fixed; see docs/schema.md.
func AppendJSON(dst []byte, r *tracer.Record) []byte {
	dst = append(dst, jsonTimeKey...)
	dst = appendTime(dst, r.Time)
	return appendJSONAfterTime(dst, r, nil)
}

// jsonTimeKey opens every JSON record: the timestamp is its first field.
const jsonTimeKey = `{"ts":"`

// appendJSONAfterTime appends the rest of r's JSON object after
// jsonTimeKey and the timestamp.
func appendJSONAfterTime(dst []byte, r *tracer.Record, c *jsonCache) []byte {
	o := jsonObj{b: append(dst, '"')}
	o.str("type", r.Type.String())
	o.uint("conn", r.Conn)
	if c != nil {
		o.b = c.netnsFields(o.b, r.Netns, r.NetnsName)
	} else {
		o.b = appendJSONNetns(o.b, r.Netns, r.NetnsName)
	}
	switch r.Type {
	case tracer.TypePacket:
		if c != nil {
			o.b = c.ifnameField(o.b, r.Ifname)
		} else {
			o.b = appendJSONIfname(o.b, r.Ifname)
		}
		o.str("dir", r.Dir.String())
		o.addr("src", r.Src)
		o.addr("dst", r.Dst)
		o.key("flags")
		o.b = append(o.b, '"')
		o.b = tracer.AppendFlags(o.b, r.Flags)
		o.b = append(o.b, '"')
		o.uint("seq", uint64(r.Seq))
		if r.HasAck() {
			o.uint("ack", uint64(r.Ack))
		}
		o.uint("win", uint64(r.Win))
		o.uint("len", uint64(r.Len))
		if r.Options.Present != 0 {
			o.key("options")
			o.b = appendJSONOptions(o.b, &r.Options)
		}
		if r.Analyzed {
			appendJSONAnalysis(&o, r)
		}
	case tracer.TypeState:
		o.addr("local", r.Local)
		o.addr("remote", r.Remote)
		o.str("old", r.OldState.String())
		o.str("new", r.State.String())
		if r.HasTCPInfo {
			o.uint("srtt_us", uint64(r.SRTTMicros))
			o.uint("cwnd", uint64(r.Cwnd))
		}
		if r.HasCounters {
			appendJSONKernel(&o, &r.Counters)
		}
		if r.HasPktCounts {
			// The connection's counted packets, taken at this CLOSE.
			o.key("counts")
			sub := jsonObj{b: append(o.b, '{')}
			appendJSONPktCounts(&sub, &r.PktCounts)
			o.b = append(sub.b, '}')
		}
		if r.TimeWait {
			o.bool("timewait", true)
		}
		if r.TimeWaitEnd != "" {
			o.str("time_wait_end", r.TimeWaitEnd)
			if r.TimeWaitDur > 0 {
				o.ms("time_wait_ms", r.TimeWaitDur)
			}
			if r.TimeWaitKill != "" {
				o.str("time_wait_kill", r.TimeWaitKill)
			}
		}
		appendJSONSocket(&o, r)
	case tracer.TypeRetransmit:
		o.addr("local", r.Local)
		o.addr("remote", r.Remote)
		o.str("state", r.State.String())
		o.uint("seq", uint64(r.Seq))
		o.uint("len", uint64(r.Len))
		if r.Segs > 0 {
			o.uint("segs", uint64(r.Segs))
		}
		o.key("flags")
		o.b = append(o.b, '"')
		o.b = tracer.AppendFlags(o.b, r.Flags)
		o.b = append(o.b, '"')
		appendJSONSocket(&o, r)
	case tracer.TypeReset:
		o.addr("local", r.Local)
		o.addr("remote", r.Remote)
		o.str("dir", r.ResetDir.String())
		if r.Reason != "" {
			o.str("reason", r.Reason)
		}
		if r.HasState {
			o.str("state", r.State.String())
		}
		appendJSONSocket(&o, r)
	case tracer.TypeLost:
		o.uint("count", r.LostCount)
		o.str("kind", r.LostKind)
		if r.LostWhere != "" {
			o.str("where", r.LostWhere)
		}
	case tracer.TypeConn:
		appendJSONSummary(&o, r.Summary)
	case tracer.TypeCounts:
		o.addr("local", r.Local)
		o.addr("remote", r.Remote)
		appendJSONPktCounts(&o, &r.PktCounts)
	case tracer.TypeSocket:
		o.addr("local", r.Local)
		o.addr("remote", r.Remote)
		o.str("state", r.State.String())
		o.bool("preexisting", r.Preexisting)
		appendJSONSocket(&o, r)
	}
	return append(o.b, '}')
}

// appendJSONNetns appends the netns and netns_name fields (after another
// field).
func appendJSONNetns(dst []byte, netns uint32, name string) []byte {
	o := jsonObj{b: dst}
	o.uint("netns", uint64(netns))
	if name != "" {
		o.key("netns_name")
		o.b = appendJSONEscaped(o.b, []byte(name))
	}
	return o.b
}

// appendJSONIfname appends the ifname field (after another field).
func appendJSONIfname(dst []byte, ifname string) []byte {
	o := jsonObj{b: dst}
	o.key("ifname")
	return appendJSONEscaped(o.b, []byte(ifname))
}

// jsonCache keeps the JSON of fields that repeat from record to record,
// formatted once: a namespace's inode and name, an interface's name (a
// storm's records come from a few of each). Two entries each, replaced in
// turn.
type jsonCache struct {
	netns   [2]netnsFragment
	ifnames [2]ifnameFragment
	nextNS  uint8
	nextIf  uint8
}

type netnsFragment struct {
	netns uint32
	name  string
	json  []byte
}

type ifnameFragment struct {
	name string
	json []byte
}

// netnsFields appends the netns and netns_name fields as appendJSONNetns.
func (c *jsonCache) netnsFields(dst []byte, netns uint32, name string) []byte {
	for i := range c.netns {
		if f := &c.netns[i]; f.json != nil && f.netns == netns && f.name == name {
			return append(dst, f.json[1:]...)
		}
	}
	// Formatted after a ',' of its own (what key expects before a
	// field), which is not copied.
	f := &c.netns[c.nextNS]
	c.nextNS ^= 1
	f.netns, f.name = netns, name
	f.json = appendJSONNetns(append(f.json[:0], ','), netns, name)
	return append(dst, f.json[1:]...)
}

// ifnameField appends the ifname field as appendJSONIfname.
func (c *jsonCache) ifnameField(dst []byte, ifname string) []byte {
	for i := range c.ifnames {
		if f := &c.ifnames[i]; f.json != nil && f.name == ifname {
			return append(dst, f.json[1:]...)
		}
	}
	f := &c.ifnames[c.nextIf]
	c.nextIf ^= 1
	f.name = ifname
	f.json = appendJSONIfname(append(f.json[:0], ','), ifname)
	return append(dst, f.json[1:]...)
}

// appendJSONPktCounts appends the "out" and "in" objects of packets
// counted in the kernel (--packets control).
func appendJSONPktCounts(o *jsonObj, counts *[2]tracer.PacketCounts) {
	for i, k := range [2]string{"out", "in"} {
		pc := &counts[i]
		o.key(k)
		sub := jsonObj{b: append(o.b, '{')}
		sub.uint("segs", pc.Segs)
		sub.uint("bytes", pc.Bytes)
		o.b = append(sub.b, '}')
	}
}

func (o *jsonObj) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

// ms appends a duration in milliseconds with microsecond precision.
func (o *jsonObj) ms(k string, d time.Duration) {
	o.key(k)
	o.b = appendMillis(o.b, d)
}

// appendMillis appends d in milliseconds with microsecond precision, as
// strconv.AppendFloat(float64(d.Microseconds())/1000, 'f', -1, 64) does
// (the shortest form: "1.5", "0.012", "60000"), three times faster:
// integers, no float formatting. Beyond 2^53 µs (285 years) it is that
// call.
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us >= 1<<53 || us <= -(1<<53) {
		return strconv.AppendFloat(b, float64(us)/1000, 'f', -1, 64)
	}
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	return append(append(b, '.'), digits[:n]...)
}

func (o *jsonObj) time(k string, t time.Time) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = appendTime(o.b, t)
	o.b = append(o.b, '"')
}

// appendJSONAnalysis appends rel_seq, rel_ack and the verdicts of a packet.
func appendJSONAnalysis(o *jsonObj, r *tracer.Record) {
	o.uint("rel_seq", uint64(r.RelSeq))
	if r.HasAck() && r.RelAckValid {
		o.uint("rel_ack", uint64(r.RelAck))
	}
	if r.Verdicts == 0 {
		return
	}
	o.key("analysis")
	o.b = append(o.b, '[')
	first := true
	for _, v := range result.VerdictNames {
		if r.Verdicts&v.Verdict == 0 {
			continue
		}
		if !first {
			o.b = append(o.b, ',')
		}
		first = false
		o.b = append(o.b, '"')
		o.b = append(o.b, v.JSON...)
		o.b = append(o.b, '"')
	}
	o.b = append(o.b, ']')
	if r.Verdicts&result.VerdictDuplicateACK != 0 {
		o.uint("dup_ack_count", uint64(r.DupAckCount))
	}
	if r.KernelConfirmed != 0 {
		o.bool("kernel_confirmed", r.KernelConfirmed > 0)
	}
}

// appendJSONSummary appends the fields of a conn record (docs/schema.md).
func appendJSONSummary(o *jsonObj, s *result.ConnSummary) {
	if s.Local.IsValid() {
		o.addr("local", s.Local)
		o.addr("remote", s.Remote)
	}
	if s.Role != "" {
		o.str("role", s.Role)
	}
	if s.Owner.Known {
		o.uint("pid", uint64(s.Owner.PID))
		o.key("comm")
		o.b = appendJSONEscaped(o.b, s.Owner.CommBytes())
	}
	if s.Outcome != "" {
		o.str("outcome", s.Outcome)
	}
	if s.HasISN {
		o.uint("isn_local", uint64(s.ISNLocal))
		o.uint("isn_remote", uint64(s.ISNRemote))
	}
	if s.HandshakeRTT > 0 {
		o.ms("handshake_rtt_ms", s.HandshakeRTT)
	}
	if s.SynAckToAck > 0 {
		o.ms("synack_to_ack_ms", s.SynAckToAck)
	}
	if s.SynRetrans > 0 {
		o.uint("syn_retransmits", uint64(s.SynRetrans))
	}
	if s.HandshakeCheck != "" {
		o.str("handshake_check", s.HandshakeCheck)
	}
	// Times of the connection itself, when seen (not its TIME_WAIT).
	if !s.Start.IsZero() {
		o.time("start", s.Start)
	}
	if !s.End.IsZero() {
		o.time("end", s.End)
	}
	if !s.Start.IsZero() && !s.End.IsZero() {
		o.ms("duration_ms", s.End.Sub(s.Start))
	}
	if slices.ContainsFunc(s.StateTime[:], func(d time.Duration) bool { return d > 0 }) {
		o.key("state_ms")
		sub := jsonObj{b: append(o.b, '{')}
		for st, d := range s.StateTime {
			if d > 0 {
				sub.ms(tracer.TCPState(st).String(), d)
			}
		}
		o.b = append(sub.b, '}')
	}
	if s.PacketsSeen {
		o.uint("bytes_out", s.BytesOut)
		o.uint("bytes_in", s.BytesIn)
		o.uint("segs_out", s.SegsOut)
		o.uint("segs_in", s.SegsIn)
		if s.PacketsCounted {
			o.bool("packets_counted", true)
		}
	}
	if s.HasKernel {
		appendJSONKernel(o, &s.Kernel)
	}
	if s.KernelCounted || s.PacketsSeen {
		o.key("retransmits")
		sub := jsonObj{b: append(o.b, '{')}
		if s.KernelCounted {
			sub.uint("kernel", s.RetransKernel)
			sub.uint("kernel_segs", s.RetransSegs)
			sub.uint("kernel_bytes", s.RetransBytes)
		}
		if s.PacketsSeen {
			sub.uint("seen", s.RetransSeen)
			sub.uint("fast", s.FastRetrans)
			sub.uint("spurious", s.Spurious)
		}
		o.b = append(sub.b, '}')
	}
	if s.ResetsCounted {
		o.key("resets")
		sub := jsonObj{b: append(o.b, '{')}
		sub.uint("sent", s.ResetsSent)
		sub.uint("received", s.ResetsRecv)
		o.b = append(sub.b, '}')
	}
	if s.PacketsSeen {
		o.uint("zero_windows", s.ZeroWindows)
	}
	if s.SRTT > 0 {
		o.ms("srtt_ms", s.SRTT)
	}
	if s.Cwnd > 0 {
		o.uint("cwnd", uint64(s.Cwnd))
	}
	if s.ClosedBy != "" {
		o.str("closed_by", s.ClosedBy)
	}
	if s.CloseKind != "" {
		o.str("close_kind", s.CloseKind)
	}
	if s.HalfClose > 0 {
		o.ms("half_close_ms", s.HalfClose)
	}
	if s.FinSeen[0] || s.FinSeen[1] {
		o.key("fin_acked")
		sub := jsonObj{b: append(o.b, '{')}
		for i, side := range [2]string{"local", "remote"} {
			if s.FinSeen[i] {
				sub.bool(side, s.FinAcked[i])
			}
		}
		o.b = append(sub.b, '}')
	}
	if s.ResetReason != "" {
		o.str("reset_reason", s.ResetReason)
	}
	if s.TimeWaitSide != "" {
		o.str("time_wait_side", s.TimeWaitSide)
	}
	if s.TimeWait > 0 {
		o.ms("time_wait_ms", s.TimeWait)
	}
	if s.TimeWaitEnd != "" {
		o.str("time_wait_end", s.TimeWaitEnd)
	}
	if s.TimeWaitKill != "" {
		o.str("time_wait_kill", s.TimeWaitKill)
	}
	o.bool("complete", s.Complete)
	if s.Progress {
		o.bool("progress", true)
	}
	if s.Evicted {
		o.bool("evicted", true)
	}
	if s.Preexisting {
		o.bool("preexisting", true)
	}
	if s.Incomplete != "" {
		o.bool("incomplete", true)
		o.str("incomplete_reason", s.Incomplete)
	}
}

// appendJSONKernel appends the kernel's own counters of a socket at its
// close (the conn summary's, and the CLOSE state record's).
func appendJSONKernel(o *jsonObj, k *result.KernelCounters) {
	o.uint("kernel_bytes_out", k.BytesAcked)
	o.uint("kernel_bytes_in", k.BytesReceived)
	o.uint("kernel_segs_out", uint64(k.SegsOut))
	o.uint("kernel_segs_in", uint64(k.SegsIn))
	o.uint("kernel_data_segs_out", uint64(k.DataSegsOut))
	o.uint("kernel_data_segs_in", uint64(k.DataSegsIn))
	o.uint("kernel_retrans_total", uint64(k.TotalRetrans))
	if k.HasBytesSent {
		o.uint("kernel_bytes_sent", k.BytesSent)
	}
	if k.HasBytesRetrans {
		o.uint("kernel_bytes_retrans", k.BytesRetrans)
	}
}

// appendJSONSocket appends the owner and cookie of a socket event; absent
// when the kernel could not tell.
func appendJSONSocket(o *jsonObj, r *tracer.Record) {
	if r.Owner.Known {
		o.uint("pid", uint64(r.Owner.PID))
		if !r.Owner.NoTID {
			o.uint("tid", uint64(r.Owner.TID))
		}
		o.uint("uid", uint64(r.Owner.UID))
		if !r.Owner.NoCgroup {
			o.uint("cgroup_id", r.Owner.CgroupID)
		}
		o.key("comm")
		o.b = appendJSONEscaped(o.b, r.Owner.CommBytes())
	}
	if r.Cookie != 0 {
		o.uint("cookie", r.Cookie)
	}
}

func appendJSONOptions(dst []byte, opt *tracer.TCPOptions) []byte {
	o := jsonObj{b: append(dst, '{')}
	if opt.Present&tracer.OptMSS != 0 {
		o.uint("mss", uint64(opt.MSS))
	}
	if opt.Present&tracer.OptWScale != 0 {
		o.uint("wscale", uint64(opt.WScale))
	}
	if opt.Present&tracer.OptSackOK != 0 {
		o.key("sack_ok")
		o.b = append(o.b, "true"...)
	}
	if opt.Present&tracer.OptTimestamp != 0 {
		o.uint("ts_val", uint64(opt.TSVal))
		o.uint("ts_ecr", uint64(opt.TSEcr))
	}
	if opt.Present&tracer.OptSack != 0 {
		o.uint("sack_blocks", uint64(opt.SackBlocks))
		o.key("sack")
		o.b = append(o.b, '[')
		for i, b := range opt.Sack[:opt.SackKept()] {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = append(o.b, '[')
			o.b = strconv.AppendUint(o.b, uint64(b[0]), 10)
			o.b = append(o.b, ',')
			o.b = strconv.AppendUint(o.b, uint64(b[1]), 10)
			o.b = append(o.b, ']')
		}
		o.b = append(o.b, ']')
	}
	return append(o.b, '}')
}
