//go:build linux

package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfileFlagsValidated: --cpu-profile, --mem-profile and
// --record-dump reject an empty value and a file that cannot be created, with exit status 2
// before anything is loaded.
func TestProfileFlagsValidated(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string // in the message
	}{
		"empty cpu profile":    {[]string{"--cpu-profile", ""}, `bad --cpu-profile "": empty value`},
		"empty mem profile":    {[]string{"trace", "--mem-profile", ""}, `bad --mem-profile "": empty value`},
		"cpu profile bad path": {[]string{"--cpu-profile", "/nonexistent-tcpscope-dir/cpu.pprof"}, "create --cpu-profile file"},
		"mem profile bad path": {[]string{"--mem-profile", "/nonexistent-tcpscope-dir/mem.pprof"}, "create --mem-profile file"},
		"cpu profile is a dir": {[]string{"trace", "--cpu-profile", t.TempDir()}, "is a directory"},
		"empty record dump":    {[]string{"--record-dump", ""}, `bad --record-dump "": empty value`},
		"record dump bad path": {[]string{"trace", "--record-dump", "/nonexistent-tcpscope-dir/storm.rec"}, "create --record-dump file"},
		"record dump is a dir": {[]string{"--record-dump", t.TempDir()}, "is a directory"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			stdout, _, err := execute(c.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if code := exitCode(err); code != exitUsage {
				t.Errorf("exit status %d, want %d (err: %v)", code, exitUsage, err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
				t.Errorf("message %q is not one line with %q", msg, c.want)
			}
			if stdout != "" {
				t.Errorf("stdout carries data only, got %q", stdout)
			}
		})
	}
}

// TestProfileFlagsAccepted: both flags parse, on trace and on the root
// command, into the options.
func TestProfileFlagsAccepted(t *testing.T) {
	root, _ := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, args := range [][]string{
		{"--cpu-profile", "c.pprof", "--mem-profile", "m.pprof"},
		{"trace", "--cpu-profile", "c.pprof", "--mem-profile", "m.pprof"},
	} {
		cmd, rest, err := root.Find(args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for name, want := range map[string]string{"cpu-profile": "c.pprof", "mem-profile": "m.pprof"} {
			if got := cmd.Flags().Lookup(name).Value.String(); got != want {
				t.Errorf("%v: --%s = %q, want %q", args, name, got, want)
			}
		}
	}
}

// TestProfilesWritten: the profiles started for a run are written when it
// stops, as gzip-compressed pprof protobufs (the e2e TestCPUProfile runs
// go tool pprof on a real run's files).
func TestProfilesWritten(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	p, err := startProfiles(cpu, mem)
	if err != nil {
		t.Fatal(err)
	}
	sink := 0
	for i := range 1_000_000 {
		sink += len(strings.Repeat("x", i%7))
	}
	_ = sink
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{cpu, mem} {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: not gzip: %v", name, err)
		}
		data, err := io.ReadAll(zr)
		f.Close()
		if err != nil || len(data) == 0 {
			t.Errorf("%s: %d bytes, %v", name, len(data), err)
		}
	}
}
