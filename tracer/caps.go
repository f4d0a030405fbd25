//go:build linux

package tracer

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkPrivileges fails early, with the missing capabilities named, when
// the process cannot load tracing programs (or attach TC, with packets).
// CAP_SYS_ADMIN covers CAP_BPF and CAP_PERFMON.
func checkPrivileges(packets bool) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell: let the kernel decide
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var missing []string
	if !has(capSysAdmin) {
		if !has(capBPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(capPerfmon) {
			missing = append(missing, "CAP_PERFMON")
		}
	}
	if packets && !has(capNetAdmin) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if len(missing) > 0 {
		return fmt.Errorf("insufficient privileges: tcpscope needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (missing %s)", strings.Join(missing, ", "))
	}
	return nil
}
