package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Names of the peer binary's two copies. They differ so that the comm of
// a server socket event can be told from that of a client one.
const (
	ServerComm = "tsrv"
	ClientComm = "tcli"
)

// Bins are the paths of the binaries the suites run: tcpscope, and the
// peer (test/peer) as the server and as the client.
type Bins struct {
	Tcpscope, Server, Client string
}

// BinsIn returns the paths of the binaries in dir: tcpscope, tsrv, tcli.
func BinsIn(dir string) Bins {
	return Bins{
		Tcpscope: filepath.Join(dir, "tcpscope"),
		Server:   filepath.Join(dir, ServerComm),
		Client:   filepath.Join(dir, ClientComm),
	}
}

// BuildBins builds tcpscope and the peer (twice, under the server's and
// the client's names) into dir, with the go command of the toolchain that
// built the running binary when it is there ($GOROOT/bin/go), else go on
// PATH.
func BuildBins(dir string) (Bins, error) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	b := BinsIn(dir)
	for _, x := range []struct{ out, pkg string }{
		{b.Tcpscope, "github.com/tcpscope/tcpscope/cmd/tcpscope"},
		{b.Server, "github.com/tcpscope/tcpscope/test/peer"},
		{b.Client, "github.com/tcpscope/tcpscope/test/peer"},
	} {
		out, err := exec.Command(gobin, "build", "-o", x.out, x.pkg).CombinedOutput()
		if err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, out)
		}
	}
	return b, nil
}

// E2EEnv names the variable that turns the suites' skips into failures
// (TCPSCOPE_E2E=1), so that CI cannot pass by skipping.
const E2EEnv = "TCPSCOPE_E2E"

// Require does nothing when reason is empty. Otherwise it skips t saying
// why the suite cannot run here, or fails t when $TCPSCOPE_E2E=1 demands
// that it run.
func Require(t testing.TB, reason string) {
	t.Helper()
	if reason == "" {
		return
	}
	if os.Getenv(E2EEnv) == "1" {
		t.Fatalf("%s=1 but %s", E2EEnv, reason)
		return
	}
	t.Skipf("skipping: %s (set %s=1 to make this a failure)", reason, E2EEnv)
}
