package tracer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// kernelBTFPath is where the running kernel exposes its BTF.
const kernelBTFPath = "/sys/kernel/btf/vmlinux"

// tracepointProgram ties a BPF program to the BTF tracepoint it attaches to
// and to the feature a user loses when the kernel lacks that tracepoint.
type tracepointProgram struct {
	program    string
	tracepoint string
	required   bool
	feature    string
}

// tracepointPrograms lists every socket-side program; which record types
// need it comes from the kind table (programNeededBy). A required program
// that the kernel cannot attach is an error; an optional one is dropped
// from the collection before load and its feature reported as unavailable.
var tracepointPrograms = []tracepointProgram{
	{tcpscopeProgOnSetState, "inet_sock_set_state", true, "state events and socket owners (required)"},
	{tcpscopeProgOnDestroySock, "tcp_destroy_sock", false, "owner entries dropped when a socket is destroyed (without: LRU eviction only)"},
	{tcpscopeProgOnSendLength, "sock_send_length", false, "owner refreshed on send (without: set at connect, listen and close only)"},
	{tcpscopeProgOnRecvLength, "sock_recv_length", false, "owner refreshed on receive"},
	{tcpscopeProgOnRetransmit, "tcp_retransmit_skb", false, "retransmit events"},
	{tcpscopeProgOnSendReset, "tcp_send_reset", false, "sent reset events"},
	{tcpscopeProgOnReceiveReset, "tcp_receive_reset", false, "received reset events"},
	{tcpscopeProgOnTimerStart, "timer_start", false, timeWaitFeature},
	{tcpscopeProgOnTimerExpire, "timer_expire_entry", false, timeWaitFeature},
	{tcpscopeProgOnTimerCancel, "timer_cancel", false, timeWaitFeature},
}

const timeWaitFeature = "TIME_WAIT lifecycle (start, expiry, early kill)"

// timeWaitPrograms are the timer programs that observe TIME_WAIT sockets.
var timeWaitPrograms = []string{tcpscopeProgOnTimerStart, tcpscopeProgOnTimerExpire, tcpscopeProgOnTimerCancel}

// kallsymsAddr returns the address of a kernel symbol from /proc/kallsyms
// (0 when absent or hidden by kptr_restrict).
func kallsymsAddr(name string) uint64 {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0
	}
	defer f.Close()
	return kallsymsFind(f, name)
}

// kallsymsFind returns the address of symbol name in a /proc/kallsyms
// listing ("ADDR TYPE NAME [MODULE]" lines), or 0. About 200,000 lines:
// matched as bytes, without a string per line.
func kallsymsFind(r io.Reader, name string) uint64 {
	suffix := []byte(" " + name)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasSuffix(line, suffix) {
			continue
		}
		fields := bytes.Fields(line)
		if len(fields) < 3 || string(fields[2]) != name {
			continue
		}
		addr, err := strconv.ParseUint(string(fields[0]), 16, 64)
		if err != nil {
			return 0
		}
		return addr
	}
	return 0
}

// kernelInfo is what the loader learned from kernel BTF.
type kernelInfo struct {
	spec *btf.Spec
	// resetReasons names enum sk_rst_reason values (nil before ~6.10).
	resetReasons map[uint32]string
	// hasTCX: the kernel knows the TCX attach types (>= 6.6).
	hasTCX bool
	// resetReason: tcp_send_reset carries enum sk_rst_reason (~6.10+).
	resetReason bool
	// retransmitErr: tcp_retransmit_skb carries err (6.17+).
	retransmitErr bool
	// socketlessResets: tcp_send_reset fires also without a full socket
	// (refused connections, TIME_WAIT), since ~6.10; the tracepoint then got
	// its own event class, visible in BTF.
	socketlessResets bool
}

func loadKernelInfo() (*kernelInfo, error) {
	if _, err := os.Stat(kernelBTFPath); err != nil {
		return nil, fmt.Errorf("kernel BTF not found at %s: tcpscope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y: %w", kernelBTFPath, err)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	attachTypes := enumNames(spec, "bpf_attach_type", "")
	hasTCX := false
	for _, name := range attachTypes {
		hasTCX = hasTCX || name == "BPF_TCX_INGRESS"
	}
	var ownClass *btf.Struct
	k := &kernelInfo{
		spec:             spec,
		resetReasons:     enumNames(spec, "sk_rst_reason", "SK_RST_REASON_"),
		hasTCX:           hasTCX,
		socketlessResets: spec.TypeByName("trace_event_raw_tcp_send_reset", &ownClass) == nil,
	}
	resetArgs, _ := k.tracepointArgs("tcp_send_reset")
	retransmitArgs, _ := k.tracepointArgs("tcp_retransmit_skb")
	k.resetReason, k.retransmitErr = resetArgs >= 3, retransmitArgs >= 3
	return k, nil
}

// tracepointArgs returns the number of arguments a BTF tracepoint passes to
// a tp_btf program (the leading context pointer not counted), or false when
// the kernel has no such tracepoint.
func (k *kernelInfo) tracepointArgs(name string) (int, bool) {
	var td *btf.Typedef
	if err := k.spec.TypeByName("btf_trace_"+name, &td); err != nil {
		return 0, false
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, false
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok || len(proto.Params) == 0 {
		return 0, false
	}
	return len(proto.Params) - 1, true
}

// enumNames maps the values of a kernel enum to their names without prefix.
func enumNames(spec *btf.Spec, enum, prefix string) map[uint32]string {
	var e *btf.Enum
	if err := spec.TypeByName(enum, &e); err != nil {
		return nil
	}
	names := make(map[uint32]string, len(e.Values))
	for _, v := range e.Values {
		names[uint32(v.Value)] = strings.TrimPrefix(v.Name, prefix)
	}
	return names
}
