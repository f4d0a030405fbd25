package main

import (
	"strings"
	"testing"
)

// TestParseGoBench: benchmark lines are read with their metrics and
// without the GOMAXPROCS suffix; other lines are skipped; the report gives
// each metric's median and range.
func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/tcpscope/tcpscope/tracer
BenchmarkPipeline 	  100000	       512.0 ns/op	   1953125 records/s	       0 B/op	       0 allocs/op
BenchmarkPipeline 	  100000	       480 ns/op	   2083333 records/s	       0 B/op	       0 allocs/op
BenchmarkPipeline 	  100000	       530.5 ns/op	   1884990 records/s	       0 B/op	       0 allocs/op
BenchmarkStorm-2 	  100000	  9000 ns/op	 700.1 ns/record	 414.0 B/closed-conn	 0 B/op	 0 allocs/op
BenchmarkBroken 	  x	 1 ns/op
PASS
ok  	github.com/tcpscope/tcpscope/tracer	1.2s
`
	res := parseGoBench([]byte(out))
	if len(res) != 4 {
		t.Fatalf("%d entries, want 4: %+v", len(res), res)
	}
	if res[3].Name != "BenchmarkStorm" || res[3].N != 100000 || res[3].Metrics["B/closed-conn"] != 414 || res[3].Metrics["ns/record"] != 700.1 {
		t.Errorf("storm entry %+v", res[3])
	}
	md := (&goBenchReport{Command: "go test", Results: res}).markdown()
	for _, want := range []string{
		"| BenchmarkPipeline | ns/op | 512 [480–530] |",
		"| BenchmarkPipeline | records/s | 1953125 [1884990–2083333] |",
		"| BenchmarkPipeline | allocs/op | 0 [0–0] |",
		"| BenchmarkStorm | B/closed-conn | 414 [414–414] |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
