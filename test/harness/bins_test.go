package harness

import (
	"fmt"
	"path/filepath"
	"testing"
)

// recordingTB records what Require asks of a test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                        {}
func (r *recordingTB) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recordingTB) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

// TestRequire: nothing without a reason; with one a skip, or a failure
// under TCPSCOPE_E2E=1.
func TestRequire(t *testing.T) {
	t.Setenv(E2EEnv, "")
	var r recordingTB
	Require(&r, "")
	if r.skipped != "" || r.failed != "" {
		t.Errorf("no reason: skipped %q failed %q", r.skipped, r.failed)
	}
	Require(&r, "needs root")
	if r.skipped == "" || r.failed != "" {
		t.Errorf("a reason: skipped %q failed %q", r.skipped, r.failed)
	}
	t.Setenv(E2EEnv, "1")
	r = recordingTB{}
	Require(&r, "needs root")
	if r.failed != "TCPSCOPE_E2E=1 but needs root" || r.skipped != "" {
		t.Errorf("TCPSCOPE_E2E=1: skipped %q failed %q", r.skipped, r.failed)
	}
}

// TestBinsIn: the peer's two copies are named after their comms.
func TestBinsIn(t *testing.T) {
	b := BinsIn("/x")
	if b.Tcpscope != filepath.Join("/x", "tcpscope") || b.Server != "/x/tsrv" || b.Client != "/x/tcli" {
		t.Errorf("BinsIn = %+v", b)
	}
}
