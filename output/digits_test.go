package output

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestAppendUintMatchesStrconv: appendUint writes what strconv.AppendUint
// does for 0 to 9999, every digit count and its bounds, and the largest
// uint64, after other bytes and into a full buffer (that must grow).
func TestAppendUintMatchesStrconv(t *testing.T) {
	values := []uint64{math.MaxUint64, math.MaxUint32, math.MaxUint16, math.MaxUint32 + 1}
	for v := uint64(0); v < 10000; v++ {
		values = append(values, v)
	}
	for p := uint64(1); p <= 1e19; p *= 10 {
		values = append(values, p-1, p, p+1)
	}
	for _, v := range values {
		want := strconv.AppendUint([]byte("x"), v, 10)
		if got := appendUint([]byte("x"), v); string(got) != string(want) {
			t.Errorf("appendUint(%d) = %q, want %q", v, got, want)
		}
		full := make([]byte, 3)
		if got := appendUint(full, v); string(got[3:]) != string(want[1:]) {
			t.Errorf("appendUint(%d) to a full buffer = %q, want %q", v, got[3:], want[1:])
		}
	}
}

// TestAppendAddrPortMatchesAppendTo: the IPv4 fast path writes what
// netip.AddrPort.AppendTo does, for every octet value and the port
// bounds, and the IPv6 one for every arrangement of zero groups; other
// addresses (IPv4-mapped, zoned, none) go to AppendTo.
func TestAppendAddrPortMatchesAppendTo(t *testing.T) {
	aps := []netip.AddrPort{
		{},
		netip.MustParseAddrPort("0.0.0.0:0"),
		netip.MustParseAddrPort("255.255.255.255:65535"),
		netip.MustParseAddrPort("10.0.0.1:80"),
		netip.MustParseAddrPort("[fd00::1]:80"),
		netip.MustParseAddrPort("[::]:0"),
		netip.MustParseAddrPort("[::ffff:10.0.0.1]:443"),
		netip.MustParseAddrPort("[fe80::1%eth0]:65535"),
		netip.MustParseAddrPort("[2001:db8:0:0:1:0:0:1]:9"),
	}
	for v := 0; v < 256; v++ {
		b := byte(v)
		aps = append(aps,
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{b, 0, 255, b}), uint16(v)),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{1, b, b, 99}), uint16(v*257)))
	}
	for _, p := range []uint16{1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65534} {
		aps = append(aps, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), p))
	}
	// IPv6: every pattern of zero and non-zero groups (runs of zeros of
	// every length and place, ties), group values of every hex length.
	for pattern := 0; pattern < 256; pattern++ {
		var ip [16]byte
		for g := 0; g < 8; g++ {
			if pattern&(1<<g) != 0 {
				v := [...]uint16{0x1, 0xf, 0x10, 0xab, 0x100, 0xfff, 0x1000, 0xffff}[(g+pattern)%8]
				ip[2*g], ip[2*g+1] = byte(v>>8), byte(v)
			}
		}
		aps = append(aps, netip.AddrPortFrom(netip.AddrFrom16(ip), uint16(pattern*255)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var ip [16]byte
		for g := 0; g < 8; g++ {
			if rng.IntN(2) == 0 {
				v := uint16(rng.Uint32() >> (16 + rng.IntN(16)))
				ip[2*g], ip[2*g+1] = byte(v>>8), byte(v)
			}
		}
		aps = append(aps, netip.AddrPortFrom(netip.AddrFrom16(ip), uint16(rng.Uint32())))
	}
	for _, ap := range aps {
		want := ap.AppendTo([]byte("x"))
		if got := appendAddrPort([]byte("x"), ap); string(got) != string(want) {
			t.Errorf("appendAddrPort(%v) = %q, want %q", ap, got, want)
		}
	}
}

// TestAppendJSONEscapedPlain: a string passed through unescaped (printable
// ASCII) gives what escaping it would, for every single byte and a few
// names.
func TestAppendJSONEscapedPlain(t *testing.T) {
	inputs := [][]byte{nil, []byte("curl"), []byte("a b~!"), []byte(`x"y`), []byte(`x\y`), []byte("é"), []byte("tab\t")}
	for c := 0; c < 256; c++ {
		inputs = append(inputs, []byte{byte(c)}, []byte{'a', byte(c), 'z'})
	}
	for _, in := range inputs {
		var scratch [128]byte
		want := appendJSONString([]byte("x"), AppendEscaped(scratch[:0], in))
		if got := appendJSONEscaped([]byte("x"), in); string(got) != string(want) {
			t.Errorf("appendJSONEscaped(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestAppendTimeNanos: every digit count of the nanoseconds is written
// zero-padded to nine digits, by appendTime and the Writer's cache.
func TestAppendTimeNanos(t *testing.T) {
	var c timeCache
	for _, ns := range []int{0, 1, 9, 10, 99, 100, 12345, 100000000, 123456789, 999999999, 900000009} {
		tm := time.Date(2026, 12, 31, 23, 59, 59, ns, time.UTC)
		want := tm.Format(TimeLayout)
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
		if got := string(c.append(nil, tm)); got != want {
			t.Errorf("timeCache.append(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestJSONKeyLiterals: every key written whole in json.go is a comma,
// a quoted name and a colon (`,"seq":`); a malformed one would only show
// in the records that carry its field.
func TestJSONKeyLiterals(t *testing.T) {
	src, err := os.ReadFile("json.go")
	if err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile("`,[^`]*`")
	wellFormed := regexp.MustCompile(`^,"[a-z_]+":$`)
	found := literal.FindAll(src, -1)
	if len(found) < 50 {
		t.Fatalf("found %d key literals in json.go, expected more", len(found))
	}
	for _, l := range found {
		if k := bytes.Trim(l, "`"); !wellFormed.Match(k) {
			t.Errorf("key literal %s is not of the form `,\"name\":`", l)
		}
	}
}
