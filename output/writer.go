// Package output formats tracer records as JSON lines or as text that
// reads like tcpdump -S -n.
package output

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/tcpscope/tcpscope/tracer"
)

// Format is an output format.
type Format string

// Output formats.
const (
	FormatJSON Format = "json"
	FormatText Format = "text"
)

// ParseFormat parses an --output value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatJSON, FormatText:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown output format %q (want json or text)", s)
}

// TimeLayout is the timestamp format of both outputs: RFC 3339, UTC, with
// all nine digits of nanoseconds.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Writer writes records in one format to a buffered io.Writer. It
// implements tracer.Sink. One line per record, no blank lines.
type Writer struct {
	w      *bufio.Writer
	format Format
	line   []byte
}

// NewWriter returns a Writer of format f on w.
func NewWriter(w io.Writer, f Format) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10), format: f, line: make([]byte, 0, 512)}
}

// Write formats one record and buffers it.
func (w *Writer) Write(r *tracer.Record) error {
	if w.format == FormatText {
		w.line = AppendText(w.line[:0], r)
	} else {
		w.line = AppendJSON(w.line[:0], r)
	}
	w.line = append(w.line, '\n')
	_, err := w.w.Write(w.line)
	return err
}

// Flush writes out buffered records.
func (w *Writer) Flush() error { return w.w.Flush() }

// appendTime appends t in TimeLayout; a hand-rolled equivalent of
// t.UTC().AppendFormat(dst, TimeLayout), three times faster on the hot path.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, min, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond(), 9)
	return append(dst, 'Z')
}

// appendDigits appends v zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// appendJSONEscaped appends a kernel string as a JSON string holding its
// AppendEscaped form, without allocating.
func appendJSONEscaped(dst []byte, raw []byte) []byte {
	var scratch [128]byte
	return appendJSONString(dst, AppendEscaped(scratch[:0], raw))
}

// appendTcpdumpEndpoint appends "10.0.0.1.80" or "fd00::1.80" as tcpdump -n does.
func appendTcpdumpEndpoint(dst []byte, ap netip.AddrPort) []byte {
	dst = ap.Addr().AppendTo(dst)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, uint64(ap.Port()), 10)
}
