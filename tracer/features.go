//go:build linux

package tracer

import (
	"strings"

	"github.com/vishvananda/netlink"
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
		note := p.feature
		if !ok {
			note = "tracepoint not in this kernel; lost: " + p.feature
		}
		features = append(features, Feature{Name: p.tracepoint, Value: yesNo(ok), Note: note})
	}
	// Each row: when the kernel has it, and when it does not.
	for _, c := range []struct {
		has     bool
		yes, no Feature
	}{
		{kinfo.hasTCX,
			Feature{"packet_hooks", string(TCX), "TCX links, detached by the kernel when tcpscope exits"},
			Feature{"packet_hooks", string(TCClsact), "clsact qdisc + cls_bpf filters (no TCX before 6.6), removed at exit"}},
		{kinfo.resetReason,
			Feature{"reset_reasons", "kernel", "sent resets carry the kernel's enum sk_rst_reason"},
			Feature{"reset_reasons", "inferred", "no reason argument (before ~6.10): NO_SOCKET, TCP_TIMEWAIT_SOCKET or NOT_SPECIFIED from context"}},
		{kinfo.socketlessResets,
			Feature{"reset_without_socket", "yes", "resets sent with no full socket (connection refused, TIME_WAIT) are reported"},
			Feature{"reset_without_socket", "no", "before ~6.10 the kernel reports sent resets only for full sockets: none for refused connections or TIME_WAIT"}},
		{kinfo.retransmitErr,
			Feature{"retransmit_err", "yes", "failed retransmit attempts (err != 0, 6.17+) are skipped"},
			Feature{"retransmit_err", "no", "the tracepoint fires only for retransmits that were sent"}},
		{canDiagTCP(),
			Feature{"preexisting", "yes", "sockets open before tracing are listed at start (sock_diag)"},
			Feature{"preexisting", "no", "sock_diag cannot dump TCP sockets (tcp_diag module missing?): sockets open before tracing are not listed"}},
		{kallsymsAddr("tw_timer_handler") != 0,
			Feature{"time_wait", "yes", "TIME_WAIT start and end (expired or killed) from the TIME_WAIT socket's timer"},
			Feature{"time_wait", "no", "tw_timer_handler not in /proc/kallsyms (run as root, kptr_restrict): TIME_WAIT end not observed"}},
	} {
		if c.has {
			features = append(features, c.yes)
		} else {
			features = append(features, c.no)
		}
	}
	return features, nil
}

// canDiagTCP reports whether sock_diag dumps TCP sockets here (tcp_diag is a
// module on some kernels; without it the start-up listing fails).
func canDiagTCP() bool {
	h, err := netlink.NewHandle(unix.NETLINK_INET_DIAG)
	if err != nil {
		return false
	}
	defer h.Close()
	_, err = h.SocketDiagTCP(unix.AF_INET)
	return err == nil
}
