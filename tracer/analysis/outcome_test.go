package analysis

import (
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
)

// TestTimeoutNeedsResetEvidence: SYN_SENT -> CLOSE with no SYN-ACK reads
// "timeout" only when a refusal would have shown (reset events traced, or
// packets captured). From state events alone a refused connect and a
// timed-out one look the same: the outcome is unknown, not "timeout".
func TestTimeoutNeedsResetEvidence(t *testing.T) {
	quick := []tracer.Record{
		sockEvent(0, tracer.TypeState, cli, srv, tracer.StateClose, tracer.StateSynSent, 9),
		sockEvent(49, tracer.TypeState, cli, srv, tracer.StateSynSent, tracer.StateClose, 9),
	}
	for _, c := range []struct {
		name          string
		cfg           Config
		outcome, kind string
	}{
		{"state events only", Config{Events: 1 << tracer.TypeState}, "", ""},
		{"state and reset events", Config{Events: 1<<tracer.TypeState | 1<<tracer.TypeReset, ResetEvents: true}, "timeout", "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := run(t, c.cfg, quick).summary(t)
			if s.Outcome != c.outcome || s.CloseKind != c.kind {
				t.Errorf("outcome %q close %q, want %q %q", s.Outcome, s.CloseKind, c.outcome, c.kind)
			}
		})
	}
}
