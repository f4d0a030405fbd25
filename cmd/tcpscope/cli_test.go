//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// TestNetnsGivenTwice: --netns a --netns b is rejected (the kernel filter
// holds one namespace) with advice, not silently narrowed to b.
func TestNetnsGivenTwice(t *testing.T) {
	_, _, err := execute("--netns", "/proc/self/ns/net", "--netns", "/proc/thread-self/ns/net", "--events", "state")
	if err == nil {
		t.Fatal("accepted")
	}
	if code := exitCode(err); code != exitUsage {
		t.Errorf("exit status %d, want %d (err: %v)", code, exitUsage, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "given twice") || !strings.Contains(msg, "one tcpscope per namespace") {
		t.Errorf("message %q does not say what to do", msg)
	}
}

// cleanMessage fails unless msg is safe for a terminal and a log line:
// valid UTF-8 without control characters, and short.
func cleanMessage(t *testing.T, what, msg string) {
	t.Helper()
	if !utf8.ValidString(msg) {
		t.Errorf("%s: message is not valid UTF-8: %q", what, msg)
	}
	for _, r := range msg {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			t.Errorf("%s: message holds control character %U: %.300q", what, r, msg)
			break
		}
	}
	if len(msg) > 400 {
		t.Errorf("%s: message is %d bytes: %.300q", what, len(msg), msg)
	}
}

// TestHostileInputEscaped: whatever the user passes is echoed escaped and
// shortened, wherever the error comes from (pflag, cobra, the tracer's
// parsers, the file system).
func TestHostileInputEscaped(t *testing.T) {
	esc := "\x1b[2J\x1b]0;pwned\x07\xff\xfe"
	long := strings.Repeat("A", 100_000)
	cases := map[string][]string{
		"unknown flag":        {"--" + esc},
		"unknown long flag":   {"--" + long},
		"unknown shorthand":   {"-\x1bx"},
		"stray argument":      {"trace", esc},
		"long stray argument": {long},
		"write path":          {"-w", "/nonexistent-tcpscope-dir/" + esc + long},
		"netns path":          {"--netns", "/nonexistent-tcpscope-dir/" + esc + long},
		"netns name":          {"--netns", esc + long},
		"netns inode":         {"--netns", strings.Repeat("9", 100_000)},
		"interface":           {"-i", esc},
		"port":                {"--port", esc + long},
		"host":                {"--host", esc + long},
		"events":              {"--events", esc + long},
		"output":              {"-o", esc + long},
		"ring size":           {"--ring-size", esc + long},
		"count":               {"-c", esc + long},
		"flush interval":      {"--flush-interval", esc + long},
		"tc mode":             {"--tc-mode", esc + long},
		"log format":          {"--log-format", esc + long},
		"version output":      {"version", "-o", esc + long},
	}
	for name, args := range cases {
		_, _, err := execute(args...)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if code := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit status %d, want %d", name, code, exitUsage)
		}
		cleanMessage(t, name, err.Error())
	}
}

// TestInterfaceNamesNotSplit: -i takes one interface name per value;
// commas and double quotes are legal in Linux interface names.
func TestInterfaceNamesNotSplit(t *testing.T) {
	for _, name := range []string{`we"ird`, "lo,nosuch0"} {
		_, _, err := execute("-i", name)
		if err == nil {
			t.Fatalf("-i %s accepted", name)
		}
		msg := err.Error()
		if !strings.Contains(msg, "unknown interface") || !strings.Contains(msg, strings.ReplaceAll(name, `"`, `\"`)) {
			t.Errorf("-i %s: message %q does not name the whole interface", name, msg)
		}
		if strings.Contains(name, ",") && !strings.Contains(msg, "repeat -i") {
			t.Errorf("-i %s: message %q gives no hint about repeating -i", name, msg)
		}
	}
}

// complete runs cobra's hidden __complete command, as the shell scripts
// do, and returns the values offered.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	stdout, _, err := execute(append([]string{"__complete"}, args...)...)
	if err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	var values []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.HasPrefix(line, ":") { // the directive
			continue
		}
		values = append(values, strings.SplitN(line, "\t", 2)[0])
	}
	return values
}

// TestCompletion: flag values are completed, not only flag names.
func TestCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-o", ""}, []string{"json", "text"}},
		{[]string{"trace", "--output", "j"}, []string{"json"}},
		{[]string{"--tc-mode", ""}, []string{"auto", "tcx", "clsact"}},
		{[]string{"--analysis", ""}, []string{"on", "off"}},
		{[]string{"--log-format", ""}, []string{"text", "json"}},
		{[]string{"version", "-o", ""}, []string{"text", "json"}},
		{[]string{"--events", ""}, []string{"packet", "state", "retransmit", "reset", "all"}},
		{[]string{"--on-overflow", ""}, []string{"drop", "block"}},
		{[]string{"--events", "packet,re"}, []string{"packet,retransmit", "packet,reset"}},
	} {
		if got := complete(t, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := complete(t, "-i", ""); !slices.Contains(got, "lo") {
		t.Errorf("complete -i: %q, want the interfaces of this namespace (lo)", got)
	}
	if got := complete(t, "--netns", "/proc/self/ns/net", "-i", "l"); !slices.Contains(got, "lo") {
		t.Errorf("complete --netns NS -i l: %q, want lo", got)
	}
}

// TestNetnsCompletions: ip netns names by name, Docker's by path.
func TestNetnsCompletions(t *testing.T) {
	named, docker := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(named, "blue"), filepath.Join(named, "green"), filepath.Join(docker, "abc123")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := netnsCompletions(named, docker, "")
	want := []string{filepath.Join(docker, "abc123"), "blue", "green"}
	if !slices.Equal(got, want) {
		t.Errorf("netns completions %q, want %q", got, want)
	}
	if got, _ := netnsCompletions(named, docker, "g"); !slices.Equal(got, []string{"green"}) {
		t.Errorf("netns completions of g: %q", got)
	}
}

// TestVersionJSON: version -o json prints one JSON object; with
// --features it holds the same features as the table.
func TestVersionJSON(t *testing.T) {
	stdout, _, err := execute("version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version  string `json:"version"`
		Go       string `json:"go"`
		Features []struct{ Name, Value, Note string }
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("version -o json: %v: %q", err, stdout)
	}
	if v.Version == "" || v.Go == "" || v.Features != nil {
		t.Errorf("version -o json: %+v", v)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF: features cannot be probed")
	}
	stdout, _, err = execute("version", "--features", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("version --features -o json: %v: %q", err, stdout)
	}
	table, _, err := execute("version", "--features")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Features) == 0 || len(v.Features) != strings.Count(table, "\n")-1 {
		t.Errorf("%d features in JSON, table:\n%s", len(v.Features), table)
	}
	for _, f := range v.Features {
		if f.Name == "" || f.Value == "" || !strings.Contains(table, f.Name) {
			t.Errorf("feature %+v", f)
		}
	}
}

// TestErrorLogged: the error that ends the process goes through the same
// slog logger as the logs, in --log-format, at level ERROR with the exit
// status.
func TestErrorLogged(t *testing.T) {
	for _, tc := range []struct {
		args []string
		json bool
	}{
		{[]string{"--port", "0"}, false},
		{[]string{"--log-format", "json", "--port", "0"}, true},
		{[]string{"--port", "0", "--log-format", "json"}, true},
		{[]string{"--log-format", "json", "--bogus-flag"}, true},
		{[]string{"version", "--log-format", "json", "extra"}, true},
	} {
		var out, errb bytes.Buffer
		root, a := newRootCmd(&out, &errb)
		root.SetArgs(tc.args)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := root.ExecuteContext(ctx)
		if err == nil {
			t.Fatalf("%q accepted", tc.args)
		}
		a.logError(err)
		line := errb.String()
		if strings.Count(line, "\n") != 1 {
			t.Errorf("%q: want one line on stderr, got %q", tc.args, line)
			continue
		}
		if tc.json {
			var m map[string]any
			if jerr := json.Unmarshal([]byte(line), &m); jerr != nil {
				t.Errorf("%q: not a JSON log line: %q", tc.args, line)
			} else if m["level"] != "ERROR" || m["msg"] != err.Error() || m["exit_status"] != float64(exitUsage) {
				t.Errorf("%q: log line %v", tc.args, m)
			}
		} else if !strings.HasPrefix(line, "time=") || !strings.Contains(line, " level=ERROR msg=") || !strings.Contains(line, "exit_status=2") {
			t.Errorf("%q: not a slog text line at level ERROR: %q", tc.args, line)
		}
	}
}

// TestSecondSignalExits: the first signal cancels, the second exits with
// 128+signal even when SIGINT was ignored when the process started (a
// script's background job), where restoring the default action would
// ignore it again.
func TestSecondSignalExits(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		ignoreSignal(t, sig)
		var errb bytes.Buffer
		a := &app{stderr: &errb}
		ctx, cancel := context.WithCancel(context.Background())
		exited := make(chan int, 1)
		ready := make(chan struct{})
		go func() {
			close(ready)
			handleSignals(a, cancel, func(code int) { exited <- code }, 0, time.Now)
		}()
		<-ready
		// Signal until the handler (installed asynchronously) has taken
		// it: bounded, each signal is harmless once it is installed.
		for i := 0; i < 1000 && ctx.Err() == nil; i++ {
			_ = syscall.Kill(os.Getpid(), sig)
			waitBriefly(ctx.Done())
		}
		if ctx.Err() == nil {
			t.Fatalf("%s: first signal did not cancel", sig)
		}
		var code int
		for i := 0; i < 1000; i++ {
			_ = syscall.Kill(os.Getpid(), sig)
			if c, ok := waitBrieflyCode(exited); ok {
				code = c
				break
			}
		}
		if want := 128 + int(sig); code != want {
			t.Errorf("%s: exit status %d, want %d", sig, code, want)
		}
		if !strings.Contains(errb.String(), "level=ERROR") || !strings.Contains(errb.String(), "second signal") {
			t.Errorf("%s: log %q", sig, errb.String())
		}
	}
}

// TestSignalCopiesWithinGrace: `timeout -s INT` signals tcpscope and then
// its process group, two SIGINTs microseconds apart: the copy must not
// turn the clean stop into an exit without flushing. A signal after the
// grace period still exits.
func TestSignalCopiesWithinGrace(t *testing.T) {
	ignoreSignal(t, syscall.SIGINT)
	var errb bytes.Buffer
	a := &app{stderr: &errb}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var mu sync.Mutex
	clock := time.Unix(1000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	go handleSignals(a, cancel, func(code int) { exited <- code }, time.Second, now)
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		waitBriefly(ctx.Done())
	}
	if ctx.Err() == nil {
		t.Fatal("first signal did not cancel")
	}
	// The copy, at the same (fake) time: ignored.
	for i := 0; i < 5; i++ {
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		if code, ok := waitBrieflyCode(exited); ok {
			t.Fatalf("a signal within the grace period exited with %d", code)
		}
	}
	mu.Lock()
	clock = clock.Add(time.Second)
	mu.Unlock()
	var code int
	for i := 0; i < 1000; i++ {
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		if c, ok := waitBrieflyCode(exited); ok {
			code = c
			break
		}
	}
	if code != 130 {
		t.Errorf("second signal after the grace period: exit status %d, want 130", code)
	}
}

// ignoreSignal sets sig to be ignored, as a shell does for a background
// job; handleSignals must take it over.
func ignoreSignal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	signal.Ignore(sig)
	if !signal.Ignored(sig) {
		t.Fatalf("%s not ignored", sig)
	}
}

// waitBriefly waits for done, at most 10 ms.
func waitBriefly(done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(10 * time.Millisecond):
	}
}

// waitBrieflyCode waits for an exit status, at most 10 ms.
func waitBrieflyCode(c <-chan int) (int, bool) {
	select {
	case code := <-c:
		return code, true
	case <-time.After(10 * time.Millisecond):
		return 0, false
	}
}
