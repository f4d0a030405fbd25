package tracer

import "testing"

func TestFlagString(t *testing.T) {
	cases := []struct {
		flags uint8
		want  string
	}{
		{FlagSYN, "S"},
		{FlagSYN | FlagACK, "S."},
		{FlagACK, "."},
		{FlagPSH | FlagACK, "P."},
		{FlagFIN | FlagACK, "F."},
		{FlagFIN | FlagPSH | FlagACK, "FP."},
		{FlagRST, "R"},
		{FlagRST | FlagACK, "R."},
		{FlagSYN | FlagECE | FlagCWR, "SEW"},
		{FlagURG | FlagACK, ".U"},
		{0, "none"},
		{0xff, "FSRP.UEW"},
	}
	for _, c := range cases {
		if got := FlagString(c.flags); got != c.want {
			t.Errorf("FlagString(%#x) = %q, want %q", c.flags, got, c.want)
		}
	}
}

func TestStateNames(t *testing.T) {
	for s, want := range map[TCPState]string{
		StateEstablished: "ESTABLISHED", StateSynSent: "SYN_SENT", StateSynRecv: "SYN_RECV",
		StateFinWait1: "FIN_WAIT1", StateFinWait2: "FIN_WAIT2", StateTimeWait: "TIME_WAIT",
		StateClose: "CLOSE", StateCloseWait: "CLOSE_WAIT", StateLastAck: "LAST_ACK",
		StateListen: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV", 99: "STATE_99",
	} {
		if got := s.String(); got != want {
			t.Errorf("state %d = %q, want %q", s, got, want)
		}
	}
}

func TestRecordTypeNames(t *testing.T) {
	for typ, want := range map[RecordType]string{TypePacket: "packet", TypeState: "state",
		TypeRetransmit: "retransmit", TypeReset: "reset", TypeLost: "lost"} {
		if typ.String() != want {
			t.Errorf("%d = %q, want %q", typ, typ.String(), want)
		}
	}
}
