// Package output formats tracer records as JSON lines or as text that
// reads like tcpdump -S -n.
package output

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// Format is an output format.
type Format string

// Output formats.
const (
	FormatJSON Format = "json"
	FormatText Format = "text"
)

// ParseFormat parses an --output value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatJSON, FormatText:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown output format %q (want json or text)", s)
}

// TimeLayout is the timestamp format of both outputs: RFC 3339, UTC, with
// all nine digits of nanoseconds.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Writer writes records in one format to a buffered io.Writer. It
// implements tracer.Sink. One line per record, no blank lines.
type Writer struct {
	w      *bufio.Writer
	format Format
	line   []byte
}

// NewWriter returns a Writer of format f on w.
func NewWriter(w io.Writer, f Format) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10), format: f, line: make([]byte, 0, 512)}
}

// Write formats one record and buffers it.
func (w *Writer) Write(r *tracer.Record) error {
	if w.format == FormatText {
		w.line = AppendText(w.line[:0], r)
	} else {
		w.line = AppendJSON(w.line[:0], r)
	}
	w.line = append(w.line, '\n')
	_, err := w.w.Write(w.line)
	return err
}

// Flush writes out buffered records.
func (w *Writer) Flush() error { return w.w.Flush() }

// appendTime appends t in TimeLayout; a hand-rolled equivalent of
// t.UTC().AppendFormat(dst, TimeLayout), three times faster on the hot path.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, min, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond(), 9)
	return append(dst, 'Z')
}

// appendDigits appends v zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// appendJSONEscaped appends a kernel string as a JSON string holding its
// AppendEscaped form, without allocating.
func appendJSONEscaped(dst []byte, raw []byte) []byte {
	var scratch [128]byte
	return appendJSONString(dst, AppendEscaped(scratch[:0], raw))
}

// appendTcpdumpEndpoint appends "10.0.0.1.80" or "fd00::1.80" as tcpdump -n does.
func appendTcpdumpEndpoint(dst []byte, ap netip.AddrPort) []byte {
	dst = ap.Addr().AppendTo(dst)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, uint64(ap.Port()), 10)
}

// ------------------------------------------------------------------ JSON

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
	o := jsonObj{b: append(dst, '{')}
	o.key("ts")
	o.b = append(o.b, '"')
	o.b = appendTime(o.b, r.Time)
	o.b = append(o.b, '"')
	o.str("type", r.Type.String())
	o.uint("conn", r.Conn)
	o.uint("netns", uint64(r.Netns))
	switch r.Type {
	case tracer.TypePacket:
		o.key("ifname")
		o.b = appendJSONEscaped(o.b, []byte(r.Ifname))
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
		if r.TimeWait {
			o.bool("timewait", true)
		}
		if r.TimeWaitEnd != "" {
			o.str("time_wait_end", r.TimeWaitEnd)
			if r.TimeWaitDur > 0 {
				o.ms("time_wait_ms", r.TimeWaitDur)
			}
		}
		appendJSONSocket(&o, r)
	case tracer.TypeRetransmit:
		o.addr("local", r.Local)
		o.addr("remote", r.Remote)
		o.str("state", r.State.String())
		o.uint("seq", uint64(r.Seq))
		o.uint("len", uint64(r.Len))
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
	case tracer.TypeConn:
		appendJSONSummary(&o, r.Summary)
	case tracer.TypeSocket:
		o.addr("local", r.Local)
		o.addr("remote", r.Remote)
		o.str("state", r.State.String())
		o.bool("preexisting", r.Preexisting)
		appendJSONSocket(&o, r)
	}
	return append(o.b, '}')
}

func (o *jsonObj) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

// ms appends a duration in milliseconds with microsecond precision.
func (o *jsonObj) ms(k string, d time.Duration) {
	o.key(k)
	o.b = strconv.AppendFloat(o.b, float64(d.Microseconds())/1000, 'f', -1, 64)
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
	for _, v := range tracer.VerdictNames {
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
	if r.Verdicts&tracer.VerdictDuplicateACK != 0 {
		o.uint("dup_ack_count", uint64(r.DupAckCount))
	}
	if r.KernelConfirmed != 0 {
		o.bool("kernel_confirmed", r.KernelConfirmed > 0)
	}
}

// appendJSONSummary appends the fields of a conn record (docs/schema.md).
func appendJSONSummary(o *jsonObj, s *tracer.ConnSummary) {
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
	o.time("start", s.Start)
	o.time("end", s.End)
	o.ms("duration_ms", s.End.Sub(s.Start))
	var states []int
	for st, d := range s.StateTime {
		if d > 0 {
			states = append(states, st)
		}
	}
	if len(states) > 0 {
		o.key("state_ms")
		sub := jsonObj{b: append(o.b, '{')}
		for _, st := range states {
			sub.ms(tracer.TCPState(st).String(), s.StateTime[st])
		}
		o.b = append(sub.b, '}')
	}
	if s.PacketsSeen {
		o.uint("bytes_out", s.BytesOut)
		o.uint("bytes_in", s.BytesIn)
		o.uint("segs_out", s.SegsOut)
		o.uint("segs_in", s.SegsIn)
	}
	if s.KernelCounted || s.PacketsSeen {
		o.key("retransmits")
		sub := jsonObj{b: append(o.b, '{')}
		if s.KernelCounted {
			sub.uint("kernel", s.RetransKernel)
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

// appendJSONSocket appends the owner and cookie of a socket event; absent
// when the kernel could not tell.
func appendJSONSocket(o *jsonObj, r *tracer.Record) {
	if r.Owner.Known {
		o.uint("pid", uint64(r.Owner.PID))
		o.uint("tid", uint64(r.Owner.TID))
		o.uint("uid", uint64(r.Owner.UID))
		o.uint("cgroup_id", r.Owner.CgroupID)
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

// ------------------------------------------------------------------ text

// AppendText appends r as one human-readable line (no newline). Packets
// read like tcpdump -S -n; socket events like
// "10.0.0.1:5555 10.0.0.2:80 SYN_SENT -> ESTABLISHED pid 123 (curl)".
func AppendText(dst []byte, r *tracer.Record) []byte {
	dst = appendTime(dst, r.Time)
	if r.Type != tracer.TypeLost {
		dst = append(dst, " conn "...)
		dst = strconv.AppendUint(dst, r.Conn, 10)
	}
	dst = append(dst, ' ')
	switch r.Type {
	case tracer.TypePacket:
		dst = AppendEscaped(dst, []byte(r.Ifname))
		dst = append(dst, ' ')
		dst = append(dst, r.Dir.String()...)
		if r.Src.Addr().Is4() {
			dst = append(dst, " IP "...)
		} else {
			dst = append(dst, " IP6 "...)
		}
		dst = appendTcpdumpEndpoint(dst, r.Src)
		dst = append(dst, " > "...)
		dst = appendTcpdumpEndpoint(dst, r.Dst)
		dst = append(dst, ": Flags ["...)
		dst = tracer.AppendFlags(dst, r.Flags)
		dst = append(dst, ']')
		// tcpdump prints seq only when the segment occupies sequence space.
		if r.Len > 0 || r.Flags&(tracer.FlagSYN|tracer.FlagFIN|tracer.FlagRST) != 0 {
			dst = append(dst, ", seq "...)
			dst = strconv.AppendUint(dst, uint64(r.Seq), 10)
			if r.Len > 0 {
				dst = append(dst, ':')
				dst = strconv.AppendUint(dst, uint64(r.Seq+r.Len), 10)
			}
		}
		if r.HasAck() {
			dst = append(dst, ", ack "...)
			dst = strconv.AppendUint(dst, uint64(r.Ack), 10)
		}
		dst = append(dst, ", win "...)
		dst = strconv.AppendUint(dst, uint64(r.Win), 10)
		if r.Options.Present != 0 {
			dst = append(dst, ", options ["...)
			dst = appendTextOptions(dst, &r.Options)
			dst = append(dst, ']')
		}
		dst = append(dst, ", length "...)
		dst = strconv.AppendUint(dst, uint64(r.Len), 10)
		dst = appendTextVerdicts(dst, r)
	case tracer.TypeState:
		dst = append(dst, "state "...)
		dst = appendTextEndpoints(dst, r)
		dst = append(dst, r.OldState.String()...)
		dst = append(dst, " -> "...)
		dst = append(dst, r.State.String()...)
		if r.TimeWaitEnd != "" {
			dst = append(dst, " ("...)
			dst = append(dst, r.TimeWaitEnd...)
			if r.TimeWaitDur > 0 {
				dst = append(dst, " after "...)
				dst = appendDuration(dst, r.TimeWaitDur)
			}
			dst = append(dst, ')')
		}
		dst = appendTextOwner(dst, r)
	case tracer.TypeRetransmit:
		dst = append(dst, "retransmit "...)
		dst = appendTextEndpoints(dst, r)
		dst = append(dst, r.State.String()...)
		dst = append(dst, " Flags ["...)
		dst = tracer.AppendFlags(dst, r.Flags)
		dst = append(dst, "], seq "...)
		dst = strconv.AppendUint(dst, uint64(r.Seq), 10)
		dst = append(dst, ", length "...)
		dst = strconv.AppendUint(dst, uint64(r.Len), 10)
		dst = appendTextOwner(dst, r)
	case tracer.TypeReset:
		dst = append(dst, "reset "...)
		dst = append(dst, r.ResetDir.String()...)
		dst = append(dst, ' ')
		dst = appendTextEndpoints(dst, r)
		if r.HasState {
			dst = append(dst, r.State.String()...)
		} else {
			dst = append(dst, "no-socket"...)
		}
		if r.Reason != "" {
			dst = append(dst, " reason "...)
			dst = append(dst, r.Reason...)
		}
		dst = appendTextOwner(dst, r)
	case tracer.TypeConn:
		dst = appendTextSummary(dst, r.Summary)
	case tracer.TypeSocket:
		dst = append(dst, "socket "...)
		dst = appendTextEndpoints(dst, r)
		dst = append(dst, r.State.String()...)
		if r.Preexisting {
			dst = append(dst, " preexisting"...)
		}
		dst = appendTextOwner(dst, r)
	case tracer.TypeLost:
		dst = append(dst, "lost "...)
		dst = strconv.AppendUint(dst, r.LostCount, 10)
		dst = append(dst, ' ')
		dst = append(dst, r.LostKind...)
		if r.LostKind == "malformed" {
			dst = append(dst, " records (could not be decoded)"...)
		} else {
			dst = append(dst, " events (ring buffer full: raise --ring-size or narrow filters)"...)
		}
	}
	return dst
}

// appendTextVerdicts appends the verdicts as tshark prints them:
// " [TCP Retransmission]", " [TCP Dup ACK #2]".
func appendTextVerdicts(dst []byte, r *tracer.Record) []byte {
	verdicts := r.Verdicts
	if verdicts&(tracer.VerdictFastRetransmission|tracer.VerdictSpuriousRetransmission) != 0 {
		verdicts &^= tracer.VerdictRetransmission // tshark's Info names the specific kind only
	}
	for _, v := range tracer.VerdictNames {
		if verdicts&v.Verdict == 0 {
			continue
		}
		dst = append(dst, " ["...)
		dst = append(dst, v.Text...)
		if v.Verdict == tracer.VerdictDuplicateACK {
			dst = append(dst, " #"...)
			dst = strconv.AppendUint(dst, uint64(r.DupAckCount), 10)
		}
		if v.Verdict&(tracer.Retransmissions|tracer.VerdictOutOfOrder) != 0 && r.KernelConfirmed != 0 {
			if r.KernelConfirmed > 0 {
				dst = append(dst, ", kernel retransmitted it"...)
			} else {
				dst = append(dst, ", not retransmitted by the kernel"...)
			}
		}
		dst = append(dst, ']')
	}
	return dst
}

// appendTextSummary appends one readable line about a connection.
func appendTextSummary(dst []byte, s *tracer.ConnSummary) []byte {
	dst = append(dst, "summary "...)
	if s.Local.IsValid() {
		dst = s.Local.AppendTo(dst)
		dst = append(dst, ' ')
		dst = s.Remote.AppendTo(dst)
		dst = append(dst, ' ')
	}
	if s.Role != "" {
		dst = append(dst, s.Role...)
		dst = append(dst, ' ')
	}
	if s.Outcome != "" {
		dst = append(dst, s.Outcome...)
		dst = append(dst, ' ')
	}
	dst = append(dst, "dur "...)
	dst = appendDuration(dst, s.End.Sub(s.Start))
	if s.HandshakeRTT > 0 {
		dst = append(dst, " rtt "...)
		dst = appendDuration(dst, s.HandshakeRTT)
	}
	if s.HandshakeCheck != "" && s.HandshakeCheck != "ok" {
		dst = append(dst, " handshake "...)
		dst = append(dst, s.HandshakeCheck...)
	}
	if s.PacketsSeen {
		dst = append(dst, " out "...)
		dst = strconv.AppendUint(dst, s.BytesOut, 10)
		dst = append(dst, "B/"...)
		dst = strconv.AppendUint(dst, s.SegsOut, 10)
		dst = append(dst, " in "...)
		dst = strconv.AppendUint(dst, s.BytesIn, 10)
		dst = append(dst, "B/"...)
		dst = strconv.AppendUint(dst, s.SegsIn, 10)
	}
	if s.RetransSeen > 0 || s.RetransKernel > 0 {
		dst = append(dst, " retrans "...)
		dst = strconv.AppendUint(dst, s.RetransSeen, 10)
		dst = append(dst, " (kernel "...)
		dst = strconv.AppendUint(dst, s.RetransKernel, 10)
		dst = append(dst, ')')
	}
	if s.ZeroWindows > 0 {
		dst = append(dst, " zero-windows "...)
		dst = strconv.AppendUint(dst, s.ZeroWindows, 10)
	}
	if s.CloseKind != "" {
		dst = append(dst, " closed "...)
		dst = append(dst, s.CloseKind...)
		if s.ClosedBy != "" {
			dst = append(dst, " by "...)
			dst = append(dst, s.ClosedBy...)
		}
		if s.ResetReason != "" {
			dst = append(dst, " ("...)
			dst = append(dst, s.ResetReason...)
			dst = append(dst, ')')
		}
		for i, side := range [2]string{" local", " remote"} {
			if s.FinSeen[i] && !s.FinAcked[i] {
				dst = append(dst, side...)
				dst = append(dst, " FIN unacked"...)
			}
		}
	}
	if s.TimeWait > 0 {
		dst = append(dst, " time-wait "...)
		dst = appendDuration(dst, s.TimeWait)
		if s.TimeWaitEnd == "killed" {
			dst = append(dst, " killed"...)
			if s.TimeWaitKill != "" {
				dst = append(dst, " by "...)
				dst = append(dst, s.TimeWaitKill...)
			}
		}
	}
	if !s.Complete {
		dst = append(dst, " incomplete"...)
		if s.Evicted {
			dst = append(dst, " (evicted)"...)
		}
	}
	if s.Incomplete != "" {
		dst = append(dst, " ("...)
		dst = append(dst, s.Incomplete...)
		dst = append(dst, ')')
	}
	if s.Owner.Known {
		dst = append(dst, " pid "...)
		dst = strconv.AppendUint(dst, uint64(s.Owner.PID), 10)
		dst = append(dst, " ("...)
		dst = AppendEscaped(dst, s.Owner.CommBytes())
		dst = append(dst, ')')
	}
	return dst
}

// appendDuration appends d rounded to microseconds ("1.234ms", "2.5s").
func appendDuration(dst []byte, d time.Duration) []byte {
	return append(dst, d.Round(time.Microsecond).String()...)
}

func appendTextEndpoints(dst []byte, r *tracer.Record) []byte {
	dst = r.Local.AppendTo(dst)
	dst = append(dst, ' ')
	dst = r.Remote.AppendTo(dst)
	return append(dst, ' ')
}

func appendTextOwner(dst []byte, r *tracer.Record) []byte {
	if !r.Owner.Known {
		return dst
	}
	dst = append(dst, " pid "...)
	dst = strconv.AppendUint(dst, uint64(r.Owner.PID), 10)
	dst = append(dst, " ("...)
	dst = AppendEscaped(dst, r.Owner.CommBytes())
	return append(dst, ')')
}

// appendTextOptions appends the options as tcpdump prints them: in wire
// order, NOPs included (`mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7`).
func appendTextOptions(dst []byte, opt *tracer.TCPOptions) []byte {
	for i, order := 0, opt.Order; order&0xf != uint64(tracer.OptCodeEnd); i, order = i+1, order>>4 {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch uint8(order & 0xf) {
		case tracer.OptCodeNOP:
			dst = append(dst, "nop"...)
		case tracer.OptCodeEOL:
			dst = append(dst, "eol"...)
		case tracer.OptCodeMSS:
			dst = append(dst, "mss "...)
			dst = strconv.AppendUint(dst, uint64(opt.MSS), 10)
		case tracer.OptCodeSackOK:
			dst = append(dst, "sackOK"...)
		case tracer.OptCodeTimestamp:
			dst = append(dst, "TS val "...)
			dst = strconv.AppendUint(dst, uint64(opt.TSVal), 10)
			dst = append(dst, " ecr "...)
			dst = strconv.AppendUint(dst, uint64(opt.TSEcr), 10)
		case tracer.OptCodeWScale:
			dst = append(dst, "wscale "...)
			dst = strconv.AppendUint(dst, uint64(opt.WScale), 10)
		case tracer.OptCodeSack:
			dst = append(dst, "sack "...)
			dst = strconv.AppendUint(dst, uint64(opt.SackBlocks), 10)
			dst = append(dst, ' ')
			for _, b := range opt.Sack[:opt.SackKept()] {
				dst = append(dst, '{')
				dst = strconv.AppendUint(dst, uint64(b[0]), 10)
				dst = append(dst, ':')
				dst = strconv.AppendUint(dst, uint64(b[1]), 10)
				dst = append(dst, '}')
			}
		default:
			dst = append(dst, "unknown"...)
		}
	}
	return dst
}
