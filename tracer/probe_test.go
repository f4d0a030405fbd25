package tracer

import (
	"strings"
	"testing"
)

// TestKallsymsFind: the symbol's own line gives its address; a longer name
// ending in it, a module symbol's suffix and a hidden address do not.
func TestKallsymsFind(t *testing.T) {
	listing := strings.Join([]string{
		"ffffffff81000000 T _stext",
		"ffffffff81a0b0c0 t inet_twsk_tw_timer_handler",
		"ffffffff81a0b1d0 t tw_timer_handler",
		"ffffffffc0a00000 t other_handler [nf_conntrack]",
		"0000000000000000 t hidden_symbol",
	}, "\n")
	for _, tc := range []struct {
		name string
		want uint64
	}{
		{"tw_timer_handler", 0xffffffff81a0b1d0},
		{"_stext", 0xffffffff81000000},
		{"timer_handler", 0},
		{"other_handler", 0},
		{"hidden_symbol", 0},
		{"absent", 0},
	} {
		if got := kallsymsFind(strings.NewReader(listing), tc.name); got != tc.want {
			t.Errorf("kallsymsFind(%q) = %#x, want %#x", tc.name, got, tc.want)
		}
	}
}
