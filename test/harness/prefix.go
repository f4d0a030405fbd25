// Package harness is the one harness of the end-to-end suites (test/ and
// test/kernel/) and of the benchmark harness (test/bench): tcpscope's
// decoded JSON records (record.go), child processes whose output is kept
// and waited on line by line (proc.go), named network namespaces, commands
// run inside them, SNMP counters (netns.go) and veth pairs (veth.go).
//
// It needs no iproute2: namespaces and links are made through netlink, so
// that the kernel suite runs in a VM that has only busybox. Namespace.Exec
// (`ip netns exec`) is for the suites that have iproute2.
package harness

import (
	"fmt"
	"os"
	"regexp"
)

// PrefixEnv names the variable with the prefix of the namespaces the
// end-to-end suites create (PREFIX-PID-TAG).
const PrefixEnv = "TCPSCOPE_E2E_PREFIX"

// validPrefix: a namespace name is a file name in /run/netns; keep it
// short and plain, so that PREFIX-PID-TAG is one too.
var validPrefix = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// PrefixFromEnv returns the namespace name prefix $TCPSCOPE_E2E_PREFIX
// asks for, or def when it is unset.
func PrefixFromEnv(def string) (string, error) { return PrefixFrom(PrefixEnv, def) }

// PrefixFrom returns the namespace name prefix the environment variable
// env asks for, or def when it is unset. A value that cannot start a
// namespace name (empty included) is an error.
func PrefixFrom(env, def string) (string, error) {
	p, ok := os.LookupEnv(env)
	if !ok {
		return def, nil
	}
	if !validPrefix.MatchString(p) {
		return "", fmt.Errorf("bad %s %q: want 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit", env, p)
	}
	return p, nil
}
