package output

import (
	"encoding/json"
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
)

// TestOwnerUnknownFieldsAbsent: a known owner whose thread or cgroup is
// not known (a socket listed at start-up) prints pid, uid and comm but no
// tid or cgroup_id at all, never a zero.
func TestOwnerUnknownFieldsAbsent(t *testing.T) {
	for _, c := range []struct {
		name            string
		noTID, noCgroup bool
		wantTID, wantCg bool
	}{
		{"full", false, false, true, true},
		{"no tid", true, false, false, true},
		{"no cgroup", false, true, true, false},
		{"neither", true, true, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := tracer.Record{Time: t0, Type: tracer.TypeSocket, Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.2:4000"),
				HasState: true, State: tracer.StateEstablished, Preexisting: true, Cookie: 9,
				Owner: owner(7, "srv")}
			r.Owner.NoTID, r.Owner.NoCgroup = c.noTID, c.noCgroup
			line := AppendJSON(nil, &r)
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			_, hasTID := m["tid"]
			_, hasCg := m["cgroup_id"]
			if hasTID != c.wantTID || hasCg != c.wantCg || m["pid"] != 7.0 || m["comm"] != "srv" || m["uid"] != 1000.0 {
				t.Errorf("%s", line)
			}
		})
	}
}
