package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpscope/tcpscope/tracer"
)

// fullFile is a regular file on a disk that fills up after room more
// bytes: like write(2) on a full disk, a write that does not fit writes
// what fits and then fails with ENOSPC.
type fullFile struct {
	*os.File
	room int
}

func (f *fullFile) Write(p []byte) (int, error) {
	if len(p) <= f.room {
		f.room -= len(p)
		return f.File.Write(p)
	}
	n, err := f.File.Write(p[:f.room])
	f.room -= n
	if err == nil {
		err = syscall.ENOSPC
	}
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: err}
}

// writeUntilError writes the sample records round after round until the
// Writer fails (at most 100000 records).
func writeUntilError(w *Writer) error {
	recs := sampleRecords()
	for i := 0; i < 100000; i++ {
		if err := w.Write(&recs[i%len(recs)]); err != nil {
			return err
		}
		if i%97 == 96 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

// checkWholeLines fails unless data is whole JSON lines, each a record.
func checkWholeLines(t *testing.T, data []byte) {
	t.Helper()
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("ends with a partial line: %q", data[max(0, len(data)-80):])
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(data) == 0 {
			break
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d is not a JSON record: %v: %q", i+1, err, line)
		}
	}
}

// TestWriterFullDisk: whatever byte the disk fills at, the file holds
// only whole lines afterwards, as many as fitted, and the error says what
// happened without the file name (the caller names it).
func TestWriterFullDisk(t *testing.T) {
	for _, room := range []int{1, 150, 4095, 65536 - 7, 65536, 200_001} {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter(&fullFile{File: f, room: room}, FormatJSON)
		err = writeUntilError(w)
		f.Close()
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("room %d: error %v, want ENOSPC", room, err)
		}
		if strings.Contains(err.Error(), path) {
			t.Errorf("room %d: error %q names the file", room, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkWholeLines(t, data)
		// No whole line that fitted was lost: less than one line of room
		// was given back.
		if len(data) > room || room-len(data) >= 2000 {
			t.Errorf("room %d: %d bytes kept", room, len(data))
		}
		// The error is sticky: nothing more is written.
		recs := sampleRecords()
		if err := w.Write(&recs[0]); err == nil {
			t.Errorf("room %d: Write after a failed write succeeded", room)
		}
		if err := w.Flush(); err == nil {
			t.Errorf("room %d: Flush after a failed write succeeded", room)
		}
	}
}

// TestWriterFullDiskAppend: the same with the file opened for appending
// after existing content, which is kept.
func TestWriterFullDiskAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	old := []byte(`{"old":1}` + "\n")
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeUntilError(NewWriter(&fullFile{File: f, room: 10_007}, FormatJSON)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %v, want ENOSPC", err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, old) {
		t.Fatalf("old content lost: %q", data[:min(len(data), 40)])
	}
	checkWholeLines(t, data)
}

// TestWriterLongLine: a line longer than the room the Writer keeps at the
// end of its buffer (formatted in place there) still goes out whole, after
// the lines before it, and the records after it follow.
func TestWriterLongLine(t *testing.T) {
	var rec callRecorder
	w := NewWriter(&rec, FormatJSON)
	r := sampleRecords()[0]
	long := r
	long.NetnsName = strings.Repeat("n", 3*lineRoom)
	for i := 0; i < 300; i++ { // most of the buffer
		if err := w.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range []*tracer.Record{&long, &r, &long, &long, &r} {
		if err := w.Write(x); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := bytes.Join(rec.calls, nil)
	checkWholeLines(t, out)
	lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	if len(lines) != 305 {
		t.Fatalf("%d lines, want 305", len(lines))
	}
	for i, want := range []bool{true, false, true, true, false} {
		if got := bytes.Contains(lines[300+i], []byte(long.NetnsName)); got != want {
			t.Errorf("line %d: long %v, want %v", 300+i, got, want)
		}
	}
	for i, c := range rec.calls {
		if c[len(c)-1] != '\n' {
			t.Errorf("write %d ends inside a line", i+1)
		}
	}
}

// callRecorder is a pipe-like writer: it records every Write call.
type callRecorder struct {
	calls [][]byte
}

func (c *callRecorder) Write(p []byte) (int, error) {
	c.calls = append(c.calls, bytes.Clone(p))
	return len(p), nil
}

// TestWriterWritesWholeLines: every write(2) to a pipe carries whole
// lines, so a reader that goes away between two writes never has half a
// line, and no write exceeds the buffer.
func TestWriterWritesWholeLines(t *testing.T) {
	var rec callRecorder
	w := NewWriter(&rec, FormatText)
	recs := sampleRecords()
	for i := 0; i < 5000; i++ {
		if err := w.Write(&recs[i%len(recs)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) < 2 {
		t.Fatalf("%d write calls: the test needs output larger than the buffer", len(rec.calls))
	}
	total := 0
	for i, c := range rec.calls {
		total += len(c)
		if len(c) == 0 || c[len(c)-1] != '\n' {
			t.Errorf("write %d of %d (%d bytes) ends inside a line: %q", i+1, len(rec.calls), len(c), c[max(0, len(c)-60):])
		}
		if len(c) > 64<<10 {
			t.Errorf("write %d is %d bytes, more than the buffer", i+1, len(c))
		}
	}
	if lines := bytes.Count(bytes.Join(rec.calls, nil), []byte("\n")); lines != 5000 {
		t.Errorf("%d lines written, want 5000 (%d bytes)", lines, total)
	}
}

// brokenPipe accepts room bytes, then fails with EPIPE.
type brokenPipe struct {
	callRecorder
	room int
}

func (b *brokenPipe) Write(p []byte) (int, error) {
	if len(p) > b.room {
		return 0, syscall.EPIPE
	}
	b.room -= len(p)
	return b.callRecorder.Write(p)
}

// TestWriterBrokenPipe: a reader that goes away ends the Writer with
// EPIPE (which the CLI treats as a normal stop) and what it got was whole
// lines.
func TestWriterBrokenPipe(t *testing.T) {
	p := &brokenPipe{room: 100_000}
	err := writeUntilError(NewWriter(p, FormatJSON))
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("error %v, want EPIPE", err)
	}
	checkWholeLines(t, bytes.Join(p.calls, nil))
	var we *WriteError
	if !errors.As(err, &we) {
		t.Errorf("error %T is not a *WriteError", err)
	}
}

var _ tracer.Sink = (*Writer)(nil)

// BenchmarkWriterJSON: format and buffer one record, written out in
// whole-line chunks; the records name their namespace, as they do when
// /run/netns names it.
func BenchmarkWriterJSON(b *testing.B) {
	w := NewWriter(io.Discard, FormatJSON)
	recs := sampleRecords()
	for i := range recs {
		recs[i].NetnsName = "tcpscope-bench-1234-a"
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := w.Write(&recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// TestWriterFieldCache: the Writer's JSON, with the namespace and
// interface fields formatted once and reused, is byte for byte
// AppendJSON's, as namespaces and interfaces come and go (three of each
// for two cache entries; a name that needs escaping; none).
func TestWriterFieldCache(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, FormatJSON)
	var want []byte
	recs := sampleRecords()
	names := []string{"a", "b\x1b[31m\"", ""}
	ifnames := []string{"veth0", "eth\\1", "lo"}
	for i := 0; i < 60; i++ {
		r := recs[i%len(recs)]
		r.Netns = uint32(4026531840 + i%3)
		r.NetnsName = names[(i/2)%3]
		r.Ifname = ifnames[(i/5)%3]
		if err := w.Write(&r); err != nil {
			t.Fatal(err)
		}
		want = append(AppendJSON(want, &r), '\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		got, exp := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(got), len(exp)) {
			if got[i] != exp[i] {
				t.Fatalf("line %d:\n got %s\nwant %s", i+1, got[i], exp[i])
			}
		}
		t.Fatalf("%d lines, want %d", len(got), len(exp))
	}
}
