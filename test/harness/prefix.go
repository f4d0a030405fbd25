// Package harness holds what the end-to-end suites (test/ and
// test/kernel/) share. It is the start of their one harness.
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
func PrefixFromEnv(def string) (string, error) {
	p, ok := os.LookupEnv(PrefixEnv)
	if !ok {
		return def, nil
	}
	if !validPrefix.MatchString(p) {
		return "", fmt.Errorf("bad %s %q: want 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit", PrefixEnv, p)
	}
	return p, nil
}
