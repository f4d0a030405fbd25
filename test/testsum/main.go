// Command testsum reads `go test -json` on stdin and prints it for a
// reader: the packages' result lines, the whole output of every test that
// failed or skipped (and whatever a package printed outside its tests, such
// as build errors), then one line with the counts:
//
//	tests: 412 passed, 0 failed, 7 skipped
//
// Subtests count as tests. It exits 1 when a test or a package failed, or
// when the input is not test2json output; `make test` also keeps the
// status of `go test` itself (pipefail).
//
//	go test -json ./... | go run ./test/testsum
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
}

// summary holds the counts and the output of tests still running.
type summary struct {
	out                     *bufio.Writer
	passed, failed, skipped int
	failedPkgs              int // packages that failed with no failed test (build, TestMain)
	pkgFailedTests          map[string]int
	running                 map[string]*strings.Builder // output by package + test, until it ends
}

func main() {
	ok, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// run copies the readable part of the events on in to out and ends with
// the counts; ok is false when a test or a package failed.
func run(in io.Reader, out io.Writer) (ok bool, err error) {
	s := &summary{out: bufio.NewWriter(out), pkgFailedTests: map[string]int{}, running: map[string]*strings.Builder{}}
	err = s.read(in)
	// Output of tests that never ended (a panic or timeout ended the
	// package first): show it, it says why.
	keys := make([]string, 0, len(s.running))
	for k := range s.running {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.out.WriteString(s.running[k].String())
	}
	s.out.WriteString(s.line())
	if ferr := s.out.Flush(); err == nil {
		err = ferr
	}
	return s.failed == 0 && s.failedPkgs == 0, err
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			// Not an event (go test printed it itself): show it as is.
			s.out.Write(line)
			s.out.WriteByte('\n')
			continue
		}
		s.handle(&ev)
		if ev.Test == "" {
			s.out.Flush() // a package ended: show progress
		}
	}
	return sc.Err()
}

func (s *summary) handle(ev *event) {
	key := ev.Package + "\x00" + ev.Test
	switch {
	case ev.Action == "build-output":
		s.out.WriteString(ev.Output)
	case ev.Test == "" && ev.Action == "output":
		// Package lines: "ok  pkg 1.2s", "FAIL pkg", "? pkg [no test
		// files]", and anything printed outside a test, shown together
		// when the package ends. The bare PASS/FAIL before the result
		// line is noise.
		if ev.Output != "PASS\n" && ev.Output != "FAIL\n" {
			b := s.running[key]
			if b == nil {
				b = &strings.Builder{}
				s.running[key] = b
			}
			b.WriteString(ev.Output)
		}
	case ev.Test == "":
		if ev.Action == "fail" && s.pkgFailedTests[ev.Package] == 0 {
			s.failedPkgs++
		}
		if b := s.running[key]; b != nil && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip") {
			s.out.WriteString(b.String())
			delete(s.running, key)
		}
	case ev.Action == "run":
		s.running[key] = &strings.Builder{}
	case ev.Action == "output":
		if b := s.running[key]; b != nil {
			b.WriteString(ev.Output)
		}
	case ev.Action == "pass", ev.Action == "fail", ev.Action == "skip":
		switch ev.Action {
		case "pass":
			s.passed++
		case "fail":
			s.failed++
			s.pkgFailedTests[ev.Package]++
		case "skip":
			s.skipped++
		}
		if b := s.running[key]; b != nil && ev.Action != "pass" {
			s.out.WriteString(b.String())
		}
		delete(s.running, key)
	}
}

func (s *summary) line() string {
	l := fmt.Sprintf("tests: %d passed, %d failed, %d skipped", s.passed, s.failed, s.skipped)
	if s.failedPkgs > 0 {
		l += fmt.Sprintf("; %d package(s) failed outside any test (build or TestMain: output above)", s.failedPkgs)
	}
	return l + "\n"
}
