package output

import (
	"strconv"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// AppendText appends r as one human-readable line (no newline). Packets
// read like tcpdump -S -n; socket events like
// "10.0.0.1:5555 10.0.0.2:80 SYN_SENT -> ESTABLISHED pid 123 (curl)".
func AppendText(dst []byte, r *tracer.Record) []byte {
	return appendTextAfterTime(appendTime(dst, r.Time), r)
}

// appendTextAfterTime appends the rest of r's text line after its
// timestamp.
func appendTextAfterTime(dst []byte, r *tracer.Record) []byte {
	if r.Type != tracer.TypeLost {
		dst = append(dst, " conn "...)
		dst = strconv.AppendUint(dst, r.Conn, 10)
	}
	if r.NetnsName != "" {
		dst = append(dst, " netns "...)
		dst = appendTextWord(dst, r.NetnsName)
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
			if r.TimeWaitKill != "" {
				dst = append(dst, " by "...)
				dst = append(dst, r.TimeWaitKill...)
			}
			if r.TimeWaitDur > 0 {
				dst = append(dst, " after "...)
				dst = appendDuration(dst, r.TimeWaitDur)
			}
			dst = append(dst, ')')
		}
		if r.HasCounters {
			dst = appendTextKernel(dst, &r.Counters)
		}
		if r.HasPktCounts {
			dst = append(dst, " counted"...)
			dst = appendTextPktCounts(dst, &r.PktCounts)
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
	case tracer.TypeCounts:
		// Packets counted in the kernel, not reported (--packets control).
		dst = append(dst, "counted "...)
		dst = appendTextEndpoints(dst, r)
		dst = appendTextPktCounts(dst[:len(dst)-1], &r.PktCounts)
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
		if r.LostWhere == tracer.LostInQueue {
			dst = append(dst, " events (output too slow: dropped after the ring buffer, see --on-overflow)"...)
		} else if r.LostKind == "malformed" {
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
	if verdicts&(result.VerdictFastRetransmission|result.VerdictSpuriousRetransmission) != 0 {
		verdicts &^= result.VerdictRetransmission // tshark's Info names the specific kind only
	}
	for _, v := range result.VerdictNames {
		if verdicts&v.Verdict == 0 {
			continue
		}
		dst = append(dst, " ["...)
		dst = append(dst, v.Text...)
		if v.Verdict == result.VerdictDuplicateACK {
			dst = append(dst, " #"...)
			dst = strconv.AppendUint(dst, uint64(r.DupAckCount), 10)
		}
		if v.Verdict&(result.Retransmissions|result.VerdictOutOfOrder) != 0 && r.KernelConfirmed != 0 {
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
func appendTextSummary(dst []byte, s *result.ConnSummary) []byte {
	dst = append(dst, "summary"...)
	if s.Local.IsValid() {
		dst = append(dst, ' ')
		dst = s.Local.AppendTo(dst)
		dst = append(dst, ' ')
		dst = s.Remote.AppendTo(dst)
	}
	if s.Role != "" {
		dst = append(dst, ' ')
		dst = append(dst, s.Role...)
	}
	if s.Outcome != "" {
		dst = append(dst, ' ')
		dst = append(dst, s.Outcome...)
	}
	// The connection's own duration (TIME_WAIT apart), when its start
	// was seen.
	if !s.Start.IsZero() && !s.End.IsZero() {
		dst = append(dst, " dur "...)
		dst = appendDuration(dst, s.End.Sub(s.Start))
	}
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
		if s.PacketsCounted {
			dst = append(dst, " (counted)"...)
		}
	}
	// The kernel's own counts at close: acked bytes / segments sent,
	// received bytes / segments received.
	if s.HasKernel {
		dst = appendTextKernel(dst, &s.Kernel)
	}
	// Retransmissions the capture saw (packets), then the kernel's:
	// events (skbs), the segments in them (as TcpRetransSegs), bytes.
	if s.RetransSeen > 0 || s.RetransKernel > 0 {
		dst = append(dst, " retrans"...)
		if s.PacketsSeen {
			dst = append(dst, " seen "...)
			dst = strconv.AppendUint(dst, s.RetransSeen, 10)
		}
		if s.KernelCounted {
			dst = append(dst, " kernel "...)
			dst = strconv.AppendUint(dst, s.RetransKernel, 10)
			dst = append(dst, " ("...)
			dst = strconv.AppendUint(dst, s.RetransSegs, 10)
			dst = append(dst, " segs, "...)
			dst = strconv.AppendUint(dst, s.RetransBytes, 10)
			dst = append(dst, "B)"...)
		}
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
	// Whose TIME_WAIT: "remote" when the peer (also on this host) had it.
	if s.TimeWaitSide != "" || s.TimeWait > 0 || s.TimeWaitEnd != "" {
		if s.TimeWaitSide == "remote" {
			dst = append(dst, " remote"...)
		}
		dst = append(dst, " time-wait"...)
		if s.TimeWait > 0 {
			dst = append(dst, ' ')
			dst = appendDuration(dst, s.TimeWait)
		}
		switch {
		case s.TimeWaitEnd == "killed":
			dst = append(dst, " killed"...)
			if s.TimeWaitKill != "" {
				dst = append(dst, " by "...)
				dst = append(dst, s.TimeWaitKill...)
			}
		case s.TimeWaitEnd == "not_observed":
			dst = append(dst, " not-observed"...)
		case s.TimeWaitEnd != "" && s.TimeWait == 0:
			dst = append(dst, ' ')
			dst = append(dst, s.TimeWaitEnd...) // expired, its start not seen: no time
		}
	}
	if s.Progress {
		dst = append(dst, " progress"...)
	} else if !s.Complete {
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

// appendTextWord appends a name from user space (a namespace name) as one
// space-free word: escaped like comm, and a space as \x20, so that the
// fields of a line stay where a reader expects them.
func appendTextWord(dst []byte, name string) []byte {
	var scratch [128]byte
	for _, c := range AppendEscaped(scratch[:0], []byte(name)) {
		if c == ' ' {
			dst = append(dst, `\x20`...)
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// appendTextKernel appends the kernel's own counts at a socket's close:
// acked bytes / segments sent, received bytes / segments received.
func appendTextKernel(dst []byte, k *result.KernelCounters) []byte {
	dst = append(dst, " kernel out "...)
	dst = strconv.AppendUint(dst, k.BytesAcked, 10)
	dst = append(dst, "B/"...)
	dst = strconv.AppendUint(dst, uint64(k.SegsOut), 10)
	dst = append(dst, " in "...)
	dst = strconv.AppendUint(dst, k.BytesReceived, 10)
	dst = append(dst, "B/"...)
	return strconv.AppendUint(dst, uint64(k.SegsIn), 10)
}

// appendTextPktCounts appends " out NB/N in NB/N": packets counted in the
// kernel (--packets control), bytes and segments each way.
func appendTextPktCounts(dst []byte, counts *[2]tracer.PacketCounts) []byte {
	for i, k := range [2]string{" out ", " in "} {
		dst = append(dst, k...)
		dst = strconv.AppendUint(dst, counts[i].Bytes, 10)
		dst = append(dst, "B/"...)
		dst = strconv.AppendUint(dst, counts[i].Segs, 10)
	}
	return dst
}
