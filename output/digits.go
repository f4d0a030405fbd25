package output

import (
	"math/bits"
	"net/netip"
	"slices"
)

// decimalPairs holds "00" to "99": two digits of a number per lookup.
const decimalPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// powersOf10 holds 10^0 to 10^19, the smallest number of each digit count.
var powersOf10 = [20]uint64{
	1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// decimalLen returns the number of decimal digits of v (1 for 0).
func decimalLen(v uint64) int {
	// log10(2) ≈ 1233/4096: a lower bound from the bit length, one
	// short when v is at least the next power of 10.
	n := (bits.Len64(v) * 1233) >> 12
	if v >= powersOf10[n] {
		n++
	}
	return n
}

// appendUint appends v in decimal, as strconv.AppendUint(dst, v, 10)
// does, two digits at a time, written into dst rather than copied from a
// scratch buffer; numbers of up to five digits (windows, lengths, ports)
// without counting their digits first.
func appendUint(dst []byte, v uint64) []byte {
	if v < 10 {
		return append(dst, byte('0'+v))
	}
	if v < 100 {
		return append(dst, decimalPairs[2*v], decimalPairs[2*v+1])
	}
	if v < 10000 {
		high, low := v/100, v%100
		if high < 10 {
			return append(dst, byte('0'+high), decimalPairs[2*low], decimalPairs[2*low+1])
		}
		return append(dst, decimalPairs[2*high], decimalPairs[2*high+1], decimalPairs[2*low], decimalPairs[2*low+1])
	}
	if v < 100000 { // ports above 9999
		top, mid, low := v/10000, v/100%100, v%100
		return append(dst, byte('0'+top), decimalPairs[2*mid], decimalPairs[2*mid+1], decimalPairs[2*low], decimalPairs[2*low+1])
	}
	n := decimalLen(v)
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	digits := dst[start:]
	i := n
	for v >= 100 {
		pair := v % 100
		v /= 100
		i -= 2
		digits[i], digits[i+1] = decimalPairs[2*pair], decimalPairs[2*pair+1]
	}
	if v >= 10 {
		digits[0], digits[1] = decimalPairs[2*v], decimalPairs[2*v+1]
	} else {
		digits[0] = byte('0' + v)
	}
	return dst
}

// appendByte appends v in decimal.
func appendByte(dst []byte, v byte) []byte {
	switch {
	case v < 10:
		return append(dst, '0'+v)
	case v < 100:
		return append(dst, decimalPairs[2*v], decimalPairs[2*v+1])
	}
	low := v % 100
	return append(dst, '0'+v/100, decimalPairs[2*low], decimalPairs[2*low+1])
}

// appendAddrPort appends ap as ap.AppendTo does ("10.0.0.1:80",
// "[fd00::1]:80"), IPv4 and plain IPv6 addresses without its general
// code (left to it: IPv4-mapped IPv6, zones, no address).
func appendAddrPort(dst []byte, ap netip.AddrPort) []byte {
	addr := ap.Addr()
	if addr.Is6() && !addr.Is4In6() && addr.Zone() == "" {
		dst = append(dst, '[')
		dst = appendIPv6(dst, addr.As16())
		dst = append(dst, ']', ':')
		return appendUint(dst, uint64(ap.Port()))
	}
	if !addr.Is4() {
		return ap.AppendTo(dst)
	}
	ip := addr.As4()
	dst = appendByte(dst, ip[0])
	dst = append(dst, '.')
	dst = appendByte(dst, ip[1])
	dst = append(dst, '.')
	dst = appendByte(dst, ip[2])
	dst = append(dst, '.')
	dst = appendByte(dst, ip[3])
	dst = append(dst, ':')
	return appendUint(dst, uint64(ap.Port()))
}

// appendIPv6 appends ip as netip.Addr.String does for an IPv6 address
// (RFC 5952): groups in lowercase hex without leading zeros, the first of
// the longest runs of two or more zero groups written "::".
func appendIPv6(dst []byte, ip [16]byte) []byte {
	var groups [8]uint16
	for i := range groups {
		groups[i] = uint16(ip[2*i])<<8 | uint16(ip[2*i+1])
	}
	zerosStart, zerosLen := -1, 1
	for i := 0; i < len(groups); {
		if groups[i] != 0 {
			i++
			continue
		}
		end := i + 1
		for end < len(groups) && groups[end] == 0 {
			end++
		}
		if end-i > zerosLen {
			zerosStart, zerosLen = i, end-i
		}
		i = end
	}
	for i := 0; i < len(groups); i++ {
		if i == zerosStart {
			dst = append(dst, ':', ':')
			i += zerosLen - 1
			continue
		}
		if i > 0 && i != zerosStart+zerosLen {
			dst = append(dst, ':')
		}
		dst = appendHexGroup(dst, groups[i])
	}
	return dst
}

// appendHexGroup appends v in lowercase hex without leading zeros.
func appendHexGroup(dst []byte, v uint16) []byte {
	switch {
	case v >= 0x1000:
		return append(dst, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	case v >= 0x100:
		return append(dst, hexDigits[v>>8], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	case v >= 0x10:
		return append(dst, hexDigits[v>>4], hexDigits[v&0xf])
	}
	return append(dst, hexDigits[v])
}
