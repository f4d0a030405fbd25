package harness

import (
	"os"
	"strings"
	"testing"
)

// TestPrefixFromEnv: $TCPSCOPE_E2E_PREFIX replaces the default prefix;
// a value that cannot start a namespace name is an error, not ignored.
func TestPrefixFromEnv(t *testing.T) {
	for value, want := range map[string]string{"ci-job-17": "ci-job-17", "A.b_c": "A.b_c"} {
		t.Setenv(PrefixEnv, value)
		if got, err := PrefixFromEnv("def"); err != nil || got != want {
			t.Errorf("%s=%q: %q, %v; want %q", PrefixEnv, value, got, err, want)
		}
	}
	for _, bad := range []string{"", "a/b", "-x", ".hidden", "a b", strings.Repeat("a", 65)} {
		t.Setenv(PrefixEnv, bad)
		if got, err := PrefixFromEnv("def"); err == nil {
			t.Errorf("%s=%q accepted as %q", PrefixEnv, bad, got)
		}
	}
	os.Unsetenv(PrefixEnv) // t.Setenv restores the original value at the end
	if got, err := PrefixFromEnv("def"); err != nil || got != "def" {
		t.Errorf("unset: %q, %v; want the default", got, err)
	}
}
