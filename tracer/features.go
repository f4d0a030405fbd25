package tracer

import (
	"strings"

	"golang.org/x/sys/unix"
)

// Feature is one capability of the tracer on the running kernel.
type Feature struct {
	Name  string // stable, for scripts and docs
	Value string // "yes", "no", or what is used ("tcx", "clsact", "kernel", "inferred")
	Note  string // what the value means for the user
}

// ProbeFeatures reports what the tracer can do on the running kernel,
// from its BTF: the same probes Open uses to choose and drop programs. It
// needs no privileges.
func ProbeFeatures() ([]Feature, error) {
	kinfo, err := loadKernelInfo()
	if err != nil {
		return nil, err
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := strings.TrimRight(string(uts.Release[:]), "\x00")

	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	features := []Feature{{Name: "kernel", Value: release, Note: "running kernel (for reference; features below come from its BTF)"}}
	for _, p := range tracepointPrograms {
		_, ok := kinfo.tracepointArgs(p.tracepoint)
		features = append(features, Feature{Name: p.tracepoint, Value: yesNo(ok), Note: p.feature})
	}
	tc := Feature{Name: "packet_hooks", Value: string(TCX), Note: "TCX links, detached by the kernel when tcpscope exits"}
	if !kinfo.hasTCX {
		tc = Feature{Name: "packet_hooks", Value: string(TCClsact), Note: "clsact qdisc + cls_bpf filters (no TCX before 6.6), removed at exit"}
	}
	features = append(features, tc)
	resetArgs, _ := kinfo.tracepointArgs("tcp_send_reset")
	reasons := Feature{Name: "reset_reasons", Value: "kernel", Note: "sent resets carry the kernel's enum sk_rst_reason"}
	if resetArgs < 3 {
		reasons = Feature{Name: "reset_reasons", Value: "inferred", Note: "no reason argument (before ~6.10): NO_SOCKET, TCP_TIMEWAIT_SOCKET or NOT_SPECIFIED from context"}
	}
	features = append(features, reasons)
	socketless := Feature{Name: "reset_without_socket", Value: "yes", Note: "resets sent with no full socket (connection refused, TIME_WAIT) are reported"}
	if !kinfo.socketlessResets {
		socketless = Feature{Name: "reset_without_socket", Value: "no", Note: "before ~6.8 the kernel reports sent resets only for full sockets: none for refused connections or TIME_WAIT"}
	}
	features = append(features, socketless)
	retransmitArgs, _ := kinfo.tracepointArgs("tcp_retransmit_skb")
	rtx := Feature{Name: "retransmit_err", Value: "yes", Note: "failed retransmit attempts (err != 0, 6.17+) are skipped"}
	if retransmitArgs < 3 {
		rtx = Feature{Name: "retransmit_err", Value: "no", Note: "the tracepoint fires only for retransmits that were sent"}
	}
	features = append(features, rtx)
	tw := Feature{Name: "time_wait", Value: "yes", Note: "TIME_WAIT start and end (expired or killed) from the TIME_WAIT socket's timer"}
	if kallsymsAddr("tw_timer_handler") == 0 {
		tw = Feature{Name: "time_wait", Value: "no", Note: "tw_timer_handler not in /proc/kallsyms (run as root, kptr_restrict): TIME_WAIT end not observed"}
	}
	return append(features, tw), nil
}
