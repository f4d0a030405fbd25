package tracer

import (
	"errors"
	"testing"
)

func TestParsePort(t *testing.T) {
	for in, want := range map[string]uint16{"80": 80, "1": 1, "65535": 65535} {
		if got, err := ParsePort(in); err != nil || got != want {
			t.Errorf("ParsePort(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"0", "70000", "-1", "http", "", "80x", "1e3"} {
		var ce *ConfigError
		if _, err := ParsePort(bad); !errors.As(err, &ce) {
			t.Errorf("ParsePort(%q) = %v, want a ConfigError", bad, err)
		}
	}
}

func TestParseHost(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":      "10.0.0.1/32",
		"10.1.2.3/8":    "10.0.0.0/8",
		"fd00::1":       "fd00::1/128",
		"fd00::/64":     "fd00::/64",
		"fe80::1%eth0":  "fe80::1/128",
		"192.168.0.0/0": "0.0.0.0/0",
	} {
		got, err := ParseHost(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseHost(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "", "fd00::/129"} {
		if _, err := ParseHost(bad); err == nil {
			t.Errorf("ParseHost(%q) accepted", bad)
		}
	}
}

func TestParseEvents(t *testing.T) {
	s, err := ParseEvents([]string{"packet,state", "reset"})
	if err != nil || !s.Has(TypePacket) || !s.Has(TypeState) || !s.Has(TypeReset) || s.Has(TypeRetransmit) {
		t.Errorf("ParseEvents = %v, %v", s, err)
	}
	if s.String() != "packet,state,reset" {
		t.Errorf("String() = %q", s.String())
	}
	for _, bad := range [][]string{{"packets,bogus"}, {""}, nil} {
		if _, err := ParseEvents(bad); err == nil {
			t.Errorf("ParseEvents(%q) accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"8M": 8 << 20, "64k": 64 << 10, "1G": 1 << 30, "4096": 4096, "16MiB": 16 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "M", "-1", "8X", "99999999G"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Config{}
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if good.RingSize != DefaultRingSize || good.Events != AllEvents || good.FlushInterval != DefaultFlushInterval {
		t.Errorf("defaults not filled: %+v", good)
	}
	for name, c := range map[string]Config{
		"ring not power of two": {RingSize: 3 << 20},
		"ring too small":        {RingSize: 1024},
		"too many ports":        {Ports: make([]uint16, maxPorts+1)},
	} {
		var ce *ConfigError
		if err := c.Validate(); !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a ConfigError", name, err)
		}
	}
}

func TestFailedProgram(t *testing.T) {
	for msg, want := range map[string]string{
		"program tc_ingress: load program: permission denied: invalid zero-sized read": "tc_ingress",
		"map drops: map create: operation not permitted":                               "",
	} {
		if got := failedProgram(errors.New(msg)); got != want {
			t.Errorf("failedProgram(%q) = %q, want %q", msg, got, want)
		}
	}
	tr := &Tracer{}
	if drop, _ := tr.optionalProgram(tcpscopeProgOnSetState); drop != nil {
		t.Error("on_set_state is required, not optional")
	}
	if drop, _ := tr.optionalProgram(tcpscopeProgTcEgress); len(drop) != 3 {
		t.Errorf("a rejected classifier drops all three: %v", drop)
	}
	if drop, _ := tr.optionalProgram(tcpscopeProgOnRetransmit); len(drop) != 1 {
		t.Errorf("a rejected retransmit program drops only itself: %v", drop)
	}
}
