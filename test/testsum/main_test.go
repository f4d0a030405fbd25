package main

import (
	"strings"
	"testing"
)

// events is `go test -json` of a package with a passing, a failing and a
// skipped test and two subtests (one failing), then a package that does
// not build and one whose TestMain fails (Time and Elapsed removed).
const events = `
{"Action":"start","Package":"tsdemo"}
{"Action":"run","Package":"tsdemo","Test":"TestPass"}
{"Action":"output","Package":"tsdemo","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"tsdemo","Test":"TestPass","Output":"    a_test.go:3: quiet\n"}
{"Action":"output","Package":"tsdemo","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"tsdemo","Test":"TestPass"}
{"Action":"run","Package":"tsdemo","Test":"TestFail"}
{"Action":"output","Package":"tsdemo","Test":"TestFail","Output":"=== RUN   TestFail\n"}
{"Action":"output","Package":"tsdemo","Test":"TestFail","Output":"    a_test.go:4: some context\n"}
{"Action":"output","Package":"tsdemo","Test":"TestFail","Output":"    a_test.go:4: boom\n"}
{"Action":"output","Package":"tsdemo","Test":"TestFail","Output":"--- FAIL: TestFail (0.00s)\n"}
{"Action":"fail","Package":"tsdemo","Test":"TestFail"}
{"Action":"run","Package":"tsdemo","Test":"TestSkip"}
{"Action":"output","Package":"tsdemo","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Action":"output","Package":"tsdemo","Test":"TestSkip","Output":"    a_test.go:5: no root\n"}
{"Action":"output","Package":"tsdemo","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Action":"skip","Package":"tsdemo","Test":"TestSkip"}
{"Action":"run","Package":"tsdemo","Test":"TestSub"}
{"Action":"output","Package":"tsdemo","Test":"TestSub","Output":"=== RUN   TestSub\n"}
{"Action":"run","Package":"tsdemo","Test":"TestSub/ok"}
{"Action":"output","Package":"tsdemo","Test":"TestSub/ok","Output":"=== RUN   TestSub/ok\n"}
{"Action":"output","Package":"tsdemo","Test":"TestSub/ok","Output":"--- PASS: TestSub/ok (0.00s)\n"}
{"Action":"pass","Package":"tsdemo","Test":"TestSub/ok"}
{"Action":"run","Package":"tsdemo","Test":"TestSub/bad"}
{"Action":"output","Package":"tsdemo","Test":"TestSub/bad","Output":"=== RUN   TestSub/bad\n"}
{"Action":"output","Package":"tsdemo","Test":"TestSub/bad","Output":"    a_test.go:8: sub boom\n"}
{"Action":"output","Package":"tsdemo","Test":"TestSub/bad","Output":"--- FAIL: TestSub/bad (0.00s)\n"}
{"Action":"fail","Package":"tsdemo","Test":"TestSub/bad"}
{"Action":"output","Package":"tsdemo","Test":"TestSub","Output":"--- FAIL: TestSub (0.00s)\n"}
{"Action":"fail","Package":"tsdemo","Test":"TestSub"}
{"Action":"output","Package":"tsdemo","Output":"FAIL\n"}
{"Action":"output","Package":"tsdemo","Output":"FAIL\ttsdemo\t0.011s\n"}
{"Action":"fail","Package":"tsdemo"}
{"ImportPath":"tsdemo/broken [tsdemo/broken.test]","Action":"build-output","Output":"# tsdemo/broken [tsdemo/broken.test]\n"}
{"ImportPath":"tsdemo/broken [tsdemo/broken.test]","Action":"build-output","Output":"broken/b.go:2:12: undefined: undefined\n"}
{"ImportPath":"tsdemo/broken [tsdemo/broken.test]","Action":"build-fail"}
{"Action":"start","Package":"tsdemo/broken"}
{"Action":"output","Package":"tsdemo/broken","Output":"FAIL\ttsdemo/broken [build failed]\n"}
{"Action":"fail","Package":"tsdemo/broken","FailedBuild":"tsdemo/broken [tsdemo/broken.test]"}
{"Action":"start","Package":"tsdemo/mainfail"}
{"Action":"output","Package":"tsdemo/mainfail","Output":"setup failed\n"}
{"Action":"output","Package":"tsdemo/mainfail","Output":"FAIL\ttsdemo/mainfail\t0.008s\n"}
{"Action":"fail","Package":"tsdemo/mainfail"}
not json: printed by go itself
`

// TestSummary: failures and skips are shown whole, passes only counted,
// package results and build errors kept, counts at the end; a failure of
// any kind makes the result not ok.
func TestSummary(t *testing.T) {
	var out strings.Builder
	ok, err := run(strings.NewReader(events), &out)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Error("ok with failed tests")
	}
	got := out.String()
	for _, want := range []string{
		"=== RUN   TestFail\n    a_test.go:4: some context\n    a_test.go:4: boom\n--- FAIL: TestFail",
		"    a_test.go:5: no root\n--- SKIP: TestSkip",
		"    a_test.go:8: sub boom\n--- FAIL: TestSub/bad",
		"FAIL\ttsdemo\t",
		"broken/b.go:2:12: undefined: undefined\n",
		"FAIL\ttsdemo/broken [build failed]\n",
		"setup failed\nFAIL\ttsdemo/mainfail\t",
		"not json: printed by go itself\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"quiet", "TestPass", "--- PASS", "\nPASS\n", "\nFAIL\n"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output has %q (a passing test's output, or noise):\n%s", unwanted, got)
		}
	}
	last := "tests: 2 passed, 3 failed, 1 skipped; 2 package(s) failed outside any test (build or TestMain: output above)\n"
	if !strings.HasSuffix(got, last) {
		t.Errorf("last line is not %q:\n%s", last, got)
	}
}

// TestSummaryPass: all passed: ok, and the count line alone after the
// package lines.
func TestSummaryPass(t *testing.T) {
	in := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"PASS\n"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.01s\n"}
{"Action":"pass","Package":"p"}
{"Action":"start","Package":"q"}
{"Action":"output","Package":"q","Output":"?   \tq\t[no test files]\n"}
{"Action":"skip","Package":"q"}
`
	var out strings.Builder
	ok, err := run(strings.NewReader(in), &out)
	if err != nil || !ok {
		t.Fatalf("ok %v, err %v", ok, err)
	}
	if want := "ok  \tp\t0.01s\n?   \tq\t[no test files]\ntests: 1 passed, 0 failed, 0 skipped\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestSummaryUnfinished: the output of a test that never ended (the
// package died first) is shown.
func TestSummaryUnfinished(t *testing.T) {
	in := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestHang"}
{"Action":"output","Package":"p","Test":"TestHang","Output":"=== RUN   TestHang\n"}
{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out after 1s\n"}
`
	var out strings.Builder
	if _, err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "panic: test timed out after 1s\n") {
		t.Errorf("output lacks the unfinished test's panic:\n%s", out.String())
	}
}
