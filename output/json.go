package output

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// The JSON is written by append functions on the buffer (a slice kept
// in registers, not behind a pointer). A field's key is one constant
// that begins with the comma separating the field from the one before:
// `,"seq":`; no test of the byte before for whether a comma is due. An
// object's first field is written the same way, and endObject turns its
// comma into the opening brace.

// appendKey appends the key of a field named at run time (with its
// comma, as the constant keys).
func appendKey(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// endObject closes a nested object whose fields were appended from
// start on (the value of the key before start): the comma before its
// first field becomes '{', or "{}" is written for no fields.
func endObject(b []byte, start int) []byte {
	if len(b) == start {
		return append(b, '{', '}')
	}
	b[start] = '{'
	return append(b, '}')
}

// appendStrField appends a string field of a value the tracer chose
// itself (names, enum values): it holds no character that needs JSON
// escaping.
func appendStrField(b []byte, key, v string) []byte {
	b = append(b, key...)
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

// appendFlagsField appends TCP flags as a string field ("SA").
func appendFlagsField(b []byte, key string, flags uint8) []byte {
	b = append(b, key...)
	b = append(b, '"')
	b = tracer.AppendFlags(b, flags)
	return append(b, '"')
}

// appendUintField appends a number field.
func appendUintField(b []byte, key string, v uint64) []byte {
	b = append(b, key...)
	return appendUint(b, v)
}

// appendAddrField appends an address and port field ("10.0.0.1:80").
func appendAddrField(b []byte, key string, ap netip.AddrPort) []byte {
	b = append(b, key...)
	b = append(b, '"')
	b = appendAddrPort(b, ap)
	return append(b, '"')
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
func appendJSONAfterTime(b []byte, r *tracer.Record, c *jsonCache) []byte {
	b = append(b, '"') // the timestamp's closing quote
	b = appendStrField(b, `,"type":`, r.Type.String())
	b = appendUintField(b, `,"conn":`, r.Conn)
	if c != nil {
		b = c.netnsFields(b, r.Netns, r.NetnsName)
	} else {
		b = appendJSONNetns(b, r.Netns, r.NetnsName)
	}
	switch r.Type {
	case tracer.TypePacket:
		if c != nil {
			b = c.ifnameField(b, r.Ifname)
		} else {
			b = appendJSONIfname(b, r.Ifname)
		}
		b = appendStrField(b, `,"dir":`, r.Dir.String())
		b = appendAddrField(b, `,"src":`, r.Src)
		b = appendAddrField(b, `,"dst":`, r.Dst)
		b = appendFlagsField(b, `,"flags":`, r.Flags)
		b = appendUintField(b, `,"seq":`, uint64(r.Seq))
		if r.HasAck() {
			b = appendUintField(b, `,"ack":`, uint64(r.Ack))
		}
		b = appendUintField(b, `,"win":`, uint64(r.Win))
		b = appendUintField(b, `,"len":`, uint64(r.Len))
		if r.Options.Present != 0 {
			b = append(b, `,"options":`...)
			b = appendJSONOptions(b, &r.Options)
		}
		if r.Analyzed {
			b = appendJSONAnalysis(b, r)
		}
	case tracer.TypeState:
		b = appendAddrField(b, `,"local":`, r.Local)
		b = appendAddrField(b, `,"remote":`, r.Remote)
		b = appendStrField(b, `,"old":`, r.OldState.String())
		b = appendStrField(b, `,"new":`, r.State.String())
		if r.HasTCPInfo {
			b = appendUintField(b, `,"srtt_us":`, uint64(r.SRTTMicros))
			b = appendUintField(b, `,"cwnd":`, uint64(r.Cwnd))
		}
		if r.HasCounters {
			b = appendJSONKernel(b, &r.Counters)
		}
		if r.HasPktCounts {
			// The connection's counted packets, taken at this CLOSE.
			b = append(b, `,"counts":`...)
			nested := len(b)
			b = appendJSONPktCounts(b, &r.PktCounts)
			b = endObject(b, nested)
		}
		if r.TimeWait {
			b = appendBoolField(b, `,"timewait":`, true)
		}
		if r.TimeWaitEnd != "" {
			b = appendStrField(b, `,"time_wait_end":`, r.TimeWaitEnd)
			if r.TimeWaitDur > 0 {
				b = appendMillisField(b, `,"time_wait_ms":`, r.TimeWaitDur)
			}
			if r.TimeWaitKill != "" {
				b = appendStrField(b, `,"time_wait_kill":`, r.TimeWaitKill)
			}
		}
		b = appendJSONSocket(b, r)
	case tracer.TypeRetransmit:
		b = appendAddrField(b, `,"local":`, r.Local)
		b = appendAddrField(b, `,"remote":`, r.Remote)
		b = appendStrField(b, `,"state":`, r.State.String())
		b = appendUintField(b, `,"seq":`, uint64(r.Seq))
		b = appendUintField(b, `,"len":`, uint64(r.Len))
		if r.Segs > 0 {
			b = appendUintField(b, `,"segs":`, uint64(r.Segs))
		}
		b = appendFlagsField(b, `,"flags":`, r.Flags)
		b = appendJSONSocket(b, r)
	case tracer.TypeReset:
		b = appendAddrField(b, `,"local":`, r.Local)
		b = appendAddrField(b, `,"remote":`, r.Remote)
		b = appendStrField(b, `,"dir":`, r.ResetDir.String())
		if r.Reason != "" {
			b = appendStrField(b, `,"reason":`, r.Reason)
		}
		if r.HasState {
			b = appendStrField(b, `,"state":`, r.State.String())
		}
		b = appendJSONSocket(b, r)
	case tracer.TypeLost:
		b = appendUintField(b, `,"count":`, r.LostCount)
		b = appendStrField(b, `,"kind":`, r.LostKind)
		if r.LostWhere != "" {
			b = appendStrField(b, `,"where":`, r.LostWhere)
		}
	case tracer.TypeConn:
		b = appendJSONSummary(b, r.Summary)
	case tracer.TypeCounts:
		b = appendAddrField(b, `,"local":`, r.Local)
		b = appendAddrField(b, `,"remote":`, r.Remote)
		b = appendJSONPktCounts(b, &r.PktCounts)
	case tracer.TypeSocket:
		b = appendAddrField(b, `,"local":`, r.Local)
		b = appendAddrField(b, `,"remote":`, r.Remote)
		b = appendStrField(b, `,"state":`, r.State.String())
		b = appendBoolField(b, `,"preexisting":`, r.Preexisting)
		b = appendJSONSocket(b, r)
	}
	return append(b, '}')
}

// appendJSONNetns appends the netns and netns_name fields (after another
// field).
func appendJSONNetns(b []byte, netns uint32, name string) []byte {
	b = appendUintField(b, `,"netns":`, uint64(netns))
	if name != "" {
		b = append(b, `,"netns_name":`...)
		b = appendJSONEscaped(b, []byte(name))
	}
	return b
}

// appendJSONIfname appends the ifname field (after another field).
func appendJSONIfname(b []byte, ifname string) []byte {
	b = append(b, `,"ifname":`...)
	return appendJSONEscaped(b, []byte(ifname))
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
			return append(dst, f.json...)
		}
	}
	f := &c.netns[c.nextNS]
	c.nextNS ^= 1
	f.netns, f.name = netns, name
	f.json = appendJSONNetns(f.json[:0], netns, name)
	return append(dst, f.json...)
}

// ifnameField appends the ifname field as appendJSONIfname.
func (c *jsonCache) ifnameField(dst []byte, ifname string) []byte {
	for i := range c.ifnames {
		if f := &c.ifnames[i]; f.json != nil && f.name == ifname {
			return append(dst, f.json...)
		}
	}
	f := &c.ifnames[c.nextIf]
	c.nextIf ^= 1
	f.name = ifname
	f.json = appendJSONIfname(f.json[:0], ifname)
	return append(dst, f.json...)
}

// appendJSONPktCounts appends the "out" and "in" objects of packets
// counted in the kernel (--packets control).
func appendJSONPktCounts(b []byte, counts *[2]tracer.PacketCounts) []byte {
	for i, k := range [2]string{`,"out":`, `,"in":`} {
		pc := &counts[i]
		b = append(b, k...)
		nested := len(b)
		b = appendUintField(b, `,"segs":`, pc.Segs)
		b = appendUintField(b, `,"bytes":`, pc.Bytes)
		b = endObject(b, nested)
	}
	return b
}

// appendBoolField appends a true or false field.
func appendBoolField(b []byte, key string, v bool) []byte {
	b = append(b, key...)
	return strconv.AppendBool(b, v)
}

// appendMillisField appends a duration field in milliseconds with
// microsecond precision.
func appendMillisField(b []byte, key string, d time.Duration) []byte {
	b = append(b, key...)
	return appendMillis(b, d)
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

// appendTimeField appends a timestamp field in TimeLayout.
func appendTimeField(b []byte, key string, t time.Time) []byte {
	b = append(b, key...)
	b = append(b, '"')
	b = appendTime(b, t)
	return append(b, '"')
}

// appendJSONAnalysis appends rel_seq, rel_ack and the verdicts of a packet.
func appendJSONAnalysis(b []byte, r *tracer.Record) []byte {
	b = appendUintField(b, `,"rel_seq":`, uint64(r.RelSeq))
	if r.HasAck() && r.RelAckValid {
		b = appendUintField(b, `,"rel_ack":`, uint64(r.RelAck))
	}
	if r.Verdicts == 0 {
		return b
	}
	b = append(b, `,"analysis":`...)
	b = append(b, '[')
	first := true
	for _, v := range result.VerdictNames {
		if r.Verdicts&v.Verdict == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, v.JSON...)
		b = append(b, '"')
	}
	b = append(b, ']')
	if r.Verdicts&result.VerdictDuplicateACK != 0 {
		b = appendUintField(b, `,"dup_ack_count":`, uint64(r.DupAckCount))
	}
	if r.KernelConfirmed != 0 {
		b = appendBoolField(b, `,"kernel_confirmed":`, r.KernelConfirmed > 0)
	}
	return b
}

// appendJSONSummary appends the fields of a conn record (docs/schema.md).
func appendJSONSummary(b []byte, s *result.ConnSummary) []byte {
	if s.Local.IsValid() {
		b = appendAddrField(b, `,"local":`, s.Local)
		b = appendAddrField(b, `,"remote":`, s.Remote)
	}
	if s.Role != "" {
		b = appendStrField(b, `,"role":`, s.Role)
	}
	if s.Owner.Known {
		b = appendUintField(b, `,"pid":`, uint64(s.Owner.PID))
		b = append(b, `,"comm":`...)
		b = appendJSONEscaped(b, s.Owner.CommBytes())
	}
	if s.Outcome != "" {
		b = appendStrField(b, `,"outcome":`, s.Outcome)
	}
	if s.HasISN {
		b = appendUintField(b, `,"isn_local":`, uint64(s.ISNLocal))
		b = appendUintField(b, `,"isn_remote":`, uint64(s.ISNRemote))
	}
	if s.HandshakeRTT > 0 {
		b = appendMillisField(b, `,"handshake_rtt_ms":`, s.HandshakeRTT)
	}
	if s.SynAckToAck > 0 {
		b = appendMillisField(b, `,"synack_to_ack_ms":`, s.SynAckToAck)
	}
	if s.SynRetrans > 0 {
		b = appendUintField(b, `,"syn_retransmits":`, uint64(s.SynRetrans))
	}
	if s.HandshakeCheck != "" {
		b = appendStrField(b, `,"handshake_check":`, s.HandshakeCheck)
	}
	// Times of the connection itself, when seen (not its TIME_WAIT).
	if !s.Start.IsZero() {
		b = appendTimeField(b, `,"start":`, s.Start)
	}
	if !s.End.IsZero() {
		b = appendTimeField(b, `,"end":`, s.End)
	}
	if !s.Start.IsZero() && !s.End.IsZero() {
		b = appendMillisField(b, `,"duration_ms":`, s.End.Sub(s.Start))
	}
	if slices.ContainsFunc(s.StateTime[:], func(d time.Duration) bool { return d > 0 }) {
		b = append(b, `,"state_ms":`...)
		nested := len(b)
		for st, d := range s.StateTime {
			if d > 0 {
				b = appendKey(b, tracer.TCPState(st).String())
				b = appendMillis(b, d)
			}
		}
		b = endObject(b, nested)
	}
	if s.PacketsSeen {
		b = appendUintField(b, `,"bytes_out":`, s.BytesOut)
		b = appendUintField(b, `,"bytes_in":`, s.BytesIn)
		b = appendUintField(b, `,"segs_out":`, s.SegsOut)
		b = appendUintField(b, `,"segs_in":`, s.SegsIn)
		if s.PacketsCounted {
			b = appendBoolField(b, `,"packets_counted":`, true)
		}
	}
	if s.HasKernel {
		b = appendJSONKernel(b, &s.Kernel)
	}
	if s.KernelCounted || s.PacketsSeen {
		b = append(b, `,"retransmits":`...)
		nested := len(b)
		if s.KernelCounted {
			b = appendUintField(b, `,"kernel":`, s.RetransKernel)
			b = appendUintField(b, `,"kernel_segs":`, s.RetransSegs)
			b = appendUintField(b, `,"kernel_bytes":`, s.RetransBytes)
		}
		if s.PacketsSeen {
			b = appendUintField(b, `,"seen":`, s.RetransSeen)
			b = appendUintField(b, `,"fast":`, s.FastRetrans)
			b = appendUintField(b, `,"spurious":`, s.Spurious)
		}
		b = endObject(b, nested)
	}
	if s.ResetsCounted {
		b = append(b, `,"resets":`...)
		nested := len(b)
		b = appendUintField(b, `,"sent":`, s.ResetsSent)
		b = appendUintField(b, `,"received":`, s.ResetsRecv)
		b = endObject(b, nested)
	}
	if s.PacketsSeen {
		b = appendUintField(b, `,"zero_windows":`, s.ZeroWindows)
	}
	if s.SRTT > 0 {
		b = appendMillisField(b, `,"srtt_ms":`, s.SRTT)
	}
	if s.Cwnd > 0 {
		b = appendUintField(b, `,"cwnd":`, uint64(s.Cwnd))
	}
	if s.ClosedBy != "" {
		b = appendStrField(b, `,"closed_by":`, s.ClosedBy)
	}
	if s.CloseKind != "" {
		b = appendStrField(b, `,"close_kind":`, s.CloseKind)
	}
	if s.HalfClose > 0 {
		b = appendMillisField(b, `,"half_close_ms":`, s.HalfClose)
	}
	if s.FinSeen[0] || s.FinSeen[1] {
		b = append(b, `,"fin_acked":`...)
		nested := len(b)
		for i, side := range [2]string{`,"local":`, `,"remote":`} {
			if s.FinSeen[i] {
				b = appendBoolField(b, side, s.FinAcked[i])
			}
		}
		b = endObject(b, nested)
	}
	if s.ResetReason != "" {
		b = appendStrField(b, `,"reset_reason":`, s.ResetReason)
	}
	if s.TimeWaitSide != "" {
		b = appendStrField(b, `,"time_wait_side":`, s.TimeWaitSide)
	}
	if s.TimeWait > 0 {
		b = appendMillisField(b, `,"time_wait_ms":`, s.TimeWait)
	}
	if s.TimeWaitEnd != "" {
		b = appendStrField(b, `,"time_wait_end":`, s.TimeWaitEnd)
	}
	if s.TimeWaitKill != "" {
		b = appendStrField(b, `,"time_wait_kill":`, s.TimeWaitKill)
	}
	b = appendBoolField(b, `,"complete":`, s.Complete)
	if s.Progress {
		b = appendBoolField(b, `,"progress":`, true)
	}
	if s.Evicted {
		b = appendBoolField(b, `,"evicted":`, true)
	}
	if s.Preexisting {
		b = appendBoolField(b, `,"preexisting":`, true)
	}
	if s.Incomplete != "" {
		b = appendBoolField(b, `,"incomplete":`, true)
		b = appendStrField(b, `,"incomplete_reason":`, s.Incomplete)
	}
	return b
}

// appendJSONKernel appends the kernel's own counters of a socket at its
// close (the conn summary's, and the CLOSE state record's).
func appendJSONKernel(b []byte, k *result.KernelCounters) []byte {
	b = appendUintField(b, `,"kernel_bytes_out":`, k.BytesAcked)
	b = appendUintField(b, `,"kernel_bytes_in":`, k.BytesReceived)
	b = appendUintField(b, `,"kernel_segs_out":`, uint64(k.SegsOut))
	b = appendUintField(b, `,"kernel_segs_in":`, uint64(k.SegsIn))
	b = appendUintField(b, `,"kernel_data_segs_out":`, uint64(k.DataSegsOut))
	b = appendUintField(b, `,"kernel_data_segs_in":`, uint64(k.DataSegsIn))
	b = appendUintField(b, `,"kernel_retrans_total":`, uint64(k.TotalRetrans))
	if k.HasBytesSent {
		b = appendUintField(b, `,"kernel_bytes_sent":`, k.BytesSent)
	}
	if k.HasBytesRetrans {
		b = appendUintField(b, `,"kernel_bytes_retrans":`, k.BytesRetrans)
	}
	return b
}

// appendJSONSocket appends the owner and cookie of a socket event; absent
// when the kernel could not tell.
func appendJSONSocket(b []byte, r *tracer.Record) []byte {
	if r.Owner.Known {
		b = appendUintField(b, `,"pid":`, uint64(r.Owner.PID))
		if !r.Owner.NoTID {
			b = appendUintField(b, `,"tid":`, uint64(r.Owner.TID))
		}
		b = appendUintField(b, `,"uid":`, uint64(r.Owner.UID))
		if !r.Owner.NoCgroup {
			b = appendUintField(b, `,"cgroup_id":`, r.Owner.CgroupID)
		}
		b = append(b, `,"comm":`...)
		b = appendJSONEscaped(b, r.Owner.CommBytes())
	}
	if r.Cookie != 0 {
		b = appendUintField(b, `,"cookie":`, r.Cookie)
	}
	return b
}

// appendJSONOptions appends the TCP options of a packet as an object.
func appendJSONOptions(b []byte, opt *tracer.TCPOptions) []byte {
	nested := len(b)
	if opt.Present&tracer.OptMSS != 0 {
		b = appendUintField(b, `,"mss":`, uint64(opt.MSS))
	}
	if opt.Present&tracer.OptWScale != 0 {
		b = appendUintField(b, `,"wscale":`, uint64(opt.WScale))
	}
	if opt.Present&tracer.OptSackOK != 0 {
		b = append(b, `,"sack_ok":`...)
		b = append(b, "true"...)
	}
	if opt.Present&tracer.OptTimestamp != 0 {
		b = appendUintField(b, `,"ts_val":`, uint64(opt.TSVal))
		b = appendUintField(b, `,"ts_ecr":`, uint64(opt.TSEcr))
	}
	if opt.Present&tracer.OptSack != 0 {
		b = appendUintField(b, `,"sack_blocks":`, uint64(opt.SackBlocks))
		b = append(b, `,"sack":`...)
		b = append(b, '[')
		for i, block := range opt.Sack[:opt.SackKept()] {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = appendUint(b, uint64(block[0]))
			b = append(b, ',')
			b = appendUint(b, uint64(block[1]))
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	return endObject(b, nested)
}
