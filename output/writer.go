// Package output formats tracer records as JSON lines or as text that
// reads like tcpdump -S -n.
package output

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	return "", fmt.Errorf("unknown output format %s (want json or text)", tracer.QuoteArg(s))
}

// TimeLayout is the timestamp format of both outputs: RFC 3339, UTC, with
// all nine digits of nanoseconds.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Writer writes records in one format to an io.Writer, one line per
// record, no blank lines. It implements tracer.Sink.
//
// Only whole lines reach the underlying writer: lines are buffered (64
// KiB) and every Write call on it carries whole lines only, so a reader
// that goes away between two writes never sees half a line. When a write
// to a regular file fails part-way (a full disk: the kernel writes what
// fits, then ENOSPC), the partial last line is cut off again: the file is
// truncated back to the end of its last whole line. After a failed write
// the Writer keeps returning that error.
type Writer struct {
	out    io.Writer
	file   rewinder // out, when it is a regular file
	buf    []byte   // whole lines not yet written
	format Format
	times  timeCache
	fields jsonCache
	err    error // sticky, a *WriteError
}

// rewinder is what a regular file needs for the Writer to cut a partial
// line (*os.File has it).
type rewinder interface {
	Seek(offset int64, whence int) (int64, error)
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
}

// bufSize is the Writer's buffer: records are written in chunks of up to
// this many bytes, whole lines each.
const bufSize = 64 << 10

// WriteError is a failed write of output. Err is the system's error
// without the file name (the caller names the output).
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write output: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// NewWriter returns a Writer of format f on w. If w is a regular file
// (an *os.File, or anything that has Stat, Seek and Truncate and says it
// is one), a partial line left by a failed write is removed.
func NewWriter(w io.Writer, f Format) *Writer {
	wr := &Writer{out: w, format: f, buf: make([]byte, 0, bufSize)}
	if rw, ok := w.(rewinder); ok {
		if st, err := rw.Stat(); err == nil && st.Mode().IsRegular() {
			wr.file = rw
		}
	}
	return wr
}

// Write formats one record and buffers it.
func (w *Writer) Write(r *tracer.Record) error {
	if w.err != nil {
		return w.err
	}
	// The line is formatted in place at the end of the buffer, which
	// keeps lineRoom free for it; a longer line grows the buffer.
	if cap(w.buf)-len(w.buf) < lineRoom {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if w.format == FormatText {
		w.buf = appendTextAfterTime(w.times.append(w.buf, r.Time), r)
	} else {
		w.buf = appendJSONAfterTime(w.times.append(append(w.buf, jsonTimeKey...), r.Time), r, &w.fields)
	}
	w.buf = append(w.buf, '\n')
	if len(w.buf) > bufSize {
		return w.Flush()
	}
	return nil
}

// lineRoom is the room the Writer keeps at the end of its buffer for the
// next line: more than any record's line but a pathological one.
const lineRoom = 4 << 10

// Flush writes out buffered records.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	err := w.write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// write writes whole lines p in one call. On failure it removes a partial
// line from a regular file and makes the error sticky.
func (w *Writer) write(p []byte) error {
	n, err := w.out.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if n > 0 && n < len(p) {
		if cerr := w.cutPartialLine(p[:n]); cerr != nil {
			err = fmt.Errorf("%w (and the partial last line could not be removed: %v)", err, cerr)
		}
	}
	w.err = &WriteError{Err: err}
	return w.err
}

// cutPartialLine truncates a regular file back to the end of the last
// whole line after written, the part of a write that reached it.
func (w *Writer) cutPartialLine(written []byte) error {
	tail := int64(len(written) - (bytes.LastIndexByte(written, '\n') + 1))
	if tail == 0 || w.file == nil {
		return nil // ended on a line boundary; or a pipe: nothing to undo
	}
	end, err := w.file.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	// Opened for appending and shared: another writer's data may follow.
	if st, err := w.file.Stat(); err != nil {
		return err
	} else if st.Size() != end {
		return fmt.Errorf("file is %d bytes, not %d: written to by another process too", st.Size(), end)
	}
	if err := w.file.Truncate(end - tail); err != nil {
		return err
	}
	_, err = w.file.Seek(end-tail, io.SeekStart)
	return err
}

// appendTime appends t in TimeLayout; a hand-rolled equivalent of
// t.UTC().AppendFormat(dst, TimeLayout), several times faster.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	var buf [len("2006-01-02T15:04:05.000000000Z")]byte
	putPair(buf[0:], uint(year/100))
	putPair(buf[2:], uint(year%100))
	buf[4] = '-'
	putPair(buf[5:], uint(month))
	buf[7] = '-'
	putPair(buf[8:], uint(day))
	buf[10] = 'T'
	putPair(buf[11:], uint(hour))
	buf[13] = ':'
	putPair(buf[14:], uint(min))
	buf[16] = ':'
	putPair(buf[17:], uint(sec))
	buf[19] = '.'
	putNanos((*[9]byte)(buf[20:29]), uint(t.Nanosecond()))
	buf[29] = 'Z'
	return append(dst, buf[:]...)
}

// timeCache formats timestamps like appendTime, reusing the date and
// clock of the last second it formatted: records come in time order, many
// per second, and the calendar arithmetic is the dear part.
type timeCache struct {
	sec    int64 // Unix second of prefix
	valid  bool
	prefix [len("2006-01-02T15:04:05.")]byte
}

// append appends t in TimeLayout.
func (c *timeCache) append(dst []byte, t time.Time) []byte {
	if sec := t.Unix(); !c.valid || sec != c.sec {
		var full [len(TimeLayout)]byte
		f := appendTime(full[:0], t)
		if len(f) != len("2006-01-02T15:04:05.000000000Z") {
			c.valid = false
			return append(dst, f...) // a year outside 0..9999
		}
		copy(c.prefix[:], f)
		c.sec, c.valid = sec, true
	}
	dst = append(dst, c.prefix[:]...)
	var frac [len("000000000Z")]byte
	putNanos((*[9]byte)(frac[:9]), uint(t.Nanosecond()))
	frac[9] = 'Z'
	return append(dst, frac[:]...)
}

// putPair writes v, 0 to 99, as two digits at b[0] and b[1].
func putPair(b []byte, v uint) {
	b[1], b[0] = decimalPairs[2*v+1], decimalPairs[2*v]
}

// putNanos writes ns, 0 to 999999999, as nine digits, zero-padded.
func putNanos(b *[9]byte, ns uint) {
	b[8] = byte('0' + ns%10)
	ns /= 10
	putPair(b[6:], ns%100)
	ns /= 100
	putPair(b[4:], ns%100)
	ns /= 100
	putPair(b[2:], ns%100)
	putPair(b[0:], ns/100)
}

// appendJSONEscaped appends a kernel string as a JSON string holding its
// AppendEscaped form, without allocating.
func appendJSONEscaped(dst []byte, raw []byte) []byte {
	if isPlainASCII(raw) {
		dst = append(dst, '"')
		dst = append(dst, raw...)
		return append(dst, '"')
	}
	var scratch [128]byte
	return appendJSONString(dst, AppendEscaped(scratch[:0], raw))
}

// isPlainASCII reports whether b is printable ASCII without '\\' or
// '"': text that neither AppendEscaped nor a JSON string changes.
func isPlainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}

// appendTcpdumpEndpoint appends "10.0.0.1.80" or "fd00::1.80" as tcpdump -n does.
func appendTcpdumpEndpoint(dst []byte, ap netip.AddrPort) []byte {
	dst = ap.Addr().AppendTo(dst)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, uint64(ap.Port()), 10)
}
