//go:build linux

package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
)

// TestCleanupOutput: stdout carries one line per leftover (hostile names
// escaped), nothing else; the options reach the cleanup; its error is
// returned after what was removed is printed.
func TestCleanupOutput(t *testing.T) {
	found := []tracer.Leftover{
		{Kind: "filter", Netns: 4026532581, Ifindex: 3, Ifname: "veth-a", Dir: "ingress", Name: "tcpscope-123-4026531836-ingress-qdisc", PID: 123},
		{Kind: "filter", Netns: 4026532581, Ifindex: 3, Ifname: "veth-a", Dir: "egress", Name: "tcpscope-123-4026531836-egress-qdisc", PID: 123},
		{Kind: "qdisc", Netns: 4026532581, Ifindex: 3, Ifname: "veth-a", PID: 123},
		{Kind: "filter", Netns: 7, Ifname: "e\x1b[2J\n", Dir: "egress", Name: "tcpscope-9-ingress\xff", PID: 9},
	}
	want := "filter netns=4026532581 interface=veth-a dir=ingress name=tcpscope-123-4026531836-ingress-qdisc pid=123\n" +
		"filter netns=4026532581 interface=veth-a dir=egress name=tcpscope-123-4026531836-egress-qdisc pid=123\n" +
		"qdisc netns=4026532581 interface=veth-a kind=clsact pid=123\n" +
		`filter netns=7 interface=e\x1b[2J\x0a dir=egress name=tcpscope-9-ingress\xff pid=9` + "\n"
	for _, dry := range []bool{false, true} {
		var got tracer.CleanupOptions
		o := &cleanupOptions{dryRun: dry, cleanup: func(opts tracer.CleanupOptions) ([]tracer.Leftover, error) {
			got = opts
			return found, nil
		}}
		var stdout, logs bytes.Buffer
		if err := runCleanup(o, &stdout, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != want {
			t.Errorf("dry run %v: stdout\n%s\nwant\n%s", dry, stdout.String(), want)
		}
		if got.DryRun != dry || got.Logger == nil {
			t.Errorf("cleanup called with %+v, want DryRun %v and a logger", got, dry)
		}
	}

	// Nothing found: nothing on stdout, a log line on stderr.
	var stdout, logs bytes.Buffer
	o := &cleanupOptions{cleanup: func(tracer.CleanupOptions) ([]tracer.Leftover, error) { return nil, nil }}
	if err := runCleanup(o, &stdout, slog.New(slog.NewTextHandler(&logs, nil))); err != nil || stdout.Len() != 0 {
		t.Errorf("nothing found: err %v, stdout %q", err, stdout.String())
	}
	if !strings.Contains(logs.String(), "no tcpscope leftovers") {
		t.Errorf("nothing found: log %q", logs.String())
	}

	// A failure: what was removed is still printed, and the error returned.
	stdout.Reset()
	boom := errors.New("insufficient privileges")
	o = &cleanupOptions{cleanup: func(tracer.CleanupOptions) ([]tracer.Leftover, error) { return found[:1], boom }}
	if err := runCleanup(o, &stdout, slog.New(slog.NewTextHandler(&logs, nil))); !errors.Is(err, boom) || exitCode(err) != exitError {
		t.Errorf("failure: err %v (exit %d), want %v (exit %d)", err, exitCode(err), boom, exitError)
	}
	if !strings.HasPrefix(want, stdout.String()) || stdout.Len() == 0 {
		t.Errorf("failure: stdout %q, want the first line", stdout.String())
	}
}
