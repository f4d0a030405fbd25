//go:build linux

package tracer

import (
	"errors"
	"strings"
	"testing"
	"time"
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
		"192.168.0.0/0": "0.0.0.0/0",
	} {
		got, err := ParseHost(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseHost(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "", "fd00::/129", "fe80::1%eth0", "fe80::%1/64"} {
		if _, err := ParseHost(bad); err == nil {
			t.Errorf("ParseHost(%q) accepted", bad)
		}
	}
	// A zone is not dropped silently: the filter would match the address
	// on every link.
	if _, err := ParseHost("fe80::1%eth0"); err == nil || !strings.Contains(err.Error(), "zone") {
		t.Errorf("ParseHost(fe80::1%%eth0): %v, want an error about the zone", err)
	}
}

// TestQuotedInputs: every parser that echoes its input escapes control
// bytes and invalid UTF-8 and shortens long values.
func TestQuotedInputs(t *testing.T) {
	hostile := "\x1b[2J\xff\n" + strings.Repeat("9", 100_000)
	parsers := map[string]func(string) error{
		"port":    func(s string) error { _, err := ParsePort(s); return err },
		"host":    func(s string) error { _, err := ParseHost(s); return err },
		"host/":   func(s string) error { _, err := ParseHost("/" + s); return err },
		"events":  func(s string) error { _, err := ParseEvents([]string{s}); return err },
		"tc-mode": func(s string) error { _, err := ParseTCMode(s); return err },
		"iface":   func(s string) error { return CheckInterfaceName(s) },
	}
	for name, parse := range parsers {
		err := parse(hostile)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\x1b\xff\n") || len(msg) > 300 {
			t.Errorf("%s: message not escaped or not shortened (%d bytes): %.200q", name, len(msg), msg)
		}
		if !strings.Contains(msg, `\x1b[2J\xff\n`) {
			t.Errorf("%s: message %.200q does not show the escaped value", name, msg)
		}
	}
}

func TestQuoteArg(t *testing.T) {
	for in, want := range map[string]string{
		"eth0":                         `"eth0"`,
		"\x1b]0;x\x07":                 `"\x1b]0;x\a"`,
		"a\xffb":                       `"a\xffb"`,
		strings.Repeat("a", 64):        `"` + strings.Repeat("a", 64) + `"`,
		strings.Repeat("a", 65):        `"` + strings.Repeat("a", 64) + `"... (65 bytes)`,
		strings.Repeat("a", 63) + "é!": `"` + strings.Repeat("a", 63) + `"... (66 bytes)`, // not inside the rune
	} {
		if got := QuoteArg(in); got != want {
			t.Errorf("QuoteArg(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestCheckInterfaceName follows the kernel's dev_valid_name.
func TestCheckInterfaceName(t *testing.T) {
	for _, good := range []string{"eth0", "lo", `we"ird`, "a,b", "veth-a.100", "x@y", strings.Repeat("n", 15), "é"} {
		if err := CheckInterfaceName(good); err != nil {
			t.Errorf("CheckInterfaceName(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "eth0:1", "a b", "a\tb", "a\nb", "a\xa0b", strings.Repeat("n", 16)} {
		var ce *ConfigError
		if err := CheckInterfaceName(bad); !errors.As(err, &ce) {
			t.Errorf("CheckInterfaceName(%q) = %v, want a ConfigError", bad, err)
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
		"empty interface":       {Interfaces: []string{"lo", ""}},
		"interface with slash":  {Interfaces: []string{"../x"}},
		"flush too slow":        {FlushInterval: time.Minute},
		"max-conns too small":   {MaxConns: 15},
		"max-sockets too small": {MaxSockets: 1},
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

func TestParseOverflow(t *testing.T) {
	for _, s := range []string{"drop", "block"} {
		if m, err := ParseOverflow(s); err != nil || string(m) != s {
			t.Errorf("ParseOverflow(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Drop", "wait"} {
		var ce *ConfigError
		if _, err := ParseOverflow(s); !errors.As(err, &ce) {
			t.Errorf("ParseOverflow(%q): %v, want a ConfigError", s, err)
		}
	}
	c := Config{}
	if err := c.Validate(); err != nil || c.Overflow != OverflowDrop || c.QueueBatches != DefaultQueueBatches {
		t.Errorf("defaults: overflow %q, queue %d, %v", c.Overflow, c.QueueBatches, err)
	}
	c = Config{QueueBatches: -1}
	if err := c.Validate(); err == nil {
		t.Error("a negative queue size was accepted")
	}
}
