package output

import (
	"unicode"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendEscaped appends b as printable text: printable UTF-8 stays, a
// backslash becomes `\\`, and every other byte (control characters,
// invalid UTF-8, non-printable runes) becomes `\xNN`. Kernel strings such
// as comm go through it so that no process name can break a line or forge
// a record, and the escaped form is the same in text and JSON.
func AppendEscaped(dst, b []byte) []byte {
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\':
				dst = append(dst, '\\', '\\')
			case c >= 0x20 && c < 0x7f:
				dst = append(dst, c)
			default:
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			}
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			for _, c := range b[:size] {
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			}
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// appendJSONString appends s as a JSON string. s is expected to be valid
// UTF-8 (escaped kernel strings and names chosen by the tracer are).
func appendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
