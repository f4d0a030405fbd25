package tracer

import (
	"errors"
	"strings"
	"testing"
)

// TestValidatePacketsNone: --packets none takes packet events out of the
// "all" selection, and rejects packet events named explicitly and
// interfaces as ConfigErrors; an unknown mode is one too.
func TestValidatePacketsNone(t *testing.T) {
	for name, c := range map[string]Config{"default events": {Packets: PacketsNone}, "all": {Packets: PacketsNone, Events: AllEvents}} {
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Events.Has(TypePacket) || !c.Events.Has(TypeState) || !c.Events.Has(TypeReset) {
			t.Errorf("%s: events %s, want all but packet", name, c.Events)
		}
		// Validate runs again in Open: the same answer.
		if err := c.Validate(); err != nil || c.Events.Has(TypePacket) {
			t.Errorf("%s: second Validate: %v, events %s", name, err, c.Events)
		}
	}
	def := Config{}
	if err := def.Validate(); err != nil || def.Packets != PacketsAll || !def.Events.Has(TypePacket) {
		t.Errorf("default: %v, packets %q events %s", err, def.Packets, def.Events)
	}
	for name, c := range map[string]Config{
		"packet events": {Packets: PacketsNone, Events: 1<<TypePacket | 1<<TypeState},
		"interface":     {Packets: PacketsNone, Interfaces: []string{"lo"}},
		"unknown mode":  {Packets: "some"},
	} {
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "--packets") {
			t.Errorf("%s: %v, want a ConfigError about --packets", name, err)
		}
	}
}

// TestValidatePacketsControl: control mode adds the counts records to the
// packet events (not without packet events), fills the count map's
// default size and rejects a size out of range.
func TestValidatePacketsControl(t *testing.T) {
	c := Config{Packets: PacketsControl}
	if err := c.Validate(); err != nil || !c.Events.Has(TypeCounts) || c.MaxPacketConns != DefaultMaxPacketConns {
		t.Errorf("control: %v, events %b, max packet conns %d", err, c.Events, c.MaxPacketConns)
	}
	c = Config{Packets: PacketsControl, Events: 1 << TypeState}
	if err := c.Validate(); err != nil || c.Events.Has(TypeCounts) {
		t.Errorf("control without packet events: %v, events %b", err, c.Events)
	}
	c = Config{Packets: PacketsAll}
	if err := c.Validate(); err != nil || c.Events.Has(TypeCounts) {
		t.Errorf("all: %v, events %b", err, c.Events)
	}
	for _, n := range []int{-1, MinPacketConns - 1, MaxPacketConns + 1} {
		c = Config{Packets: PacketsControl, MaxPacketConns: n}
		var ce *ConfigError
		if err := c.Validate(); !errors.As(err, &ce) || !strings.Contains(err.Error(), "--max-packet-conns") {
			t.Errorf("max packet conns %d: %v, want a ConfigError about --max-packet-conns", n, err)
		}
	}
}
