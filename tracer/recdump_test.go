//go:build linux

package tracer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Run writes every raw record it reads to Config.RecordDump, in the order
// read, malformed ones too; ReadRecordDump gives them back byte for byte.
func TestRunWritesRecordDump(t *testing.T) {
	evs := storm(3000)
	evs = append(evs, []byte{0xff, 1, 2}) // malformed: still dumped
	tr := testTracer(t, newFakeRing(evs), nil, OverflowBlock, 0)
	var dump bytes.Buffer
	tr.cfg.RecordDump = &dump
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	runTracer(t, tr, ctx, &collectSink{})
	var got [][]byte
	if err := ReadRecordDump(&dump, func(raw []byte) error {
		got = append(got, slices.Clone(raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, evs, bytes.Equal) {
		t.Fatalf("dump holds %d records, not the %d read, in order", len(got), len(evs))
	}
}

// A failing dump file is an error of the run, not a silent stop.
func TestRunRecordDumpWriteError(t *testing.T) {
	tr := testTracer(t, newFakeRing(storm(3000)), nil, OverflowBlock, 0)
	tr.cfg.RecordDump = failingWriter{}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := tr.Run(ctx, &collectSink{})
	if err == nil || !strings.Contains(err.Error(), "write record dump: disk full") {
		t.Fatalf("Run: %v, want the dump's write error", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// ReadRecordDump refuses what it cannot replay faithfully.
func TestReadRecordDumpRejects(t *testing.T) {
	var good bytes.Buffer
	d := newRecordDump(&good)
	d.add(packetEvent(1, 1))
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	header := good.Bytes()[:16]
	otherABI := slices.Clone(good.Bytes())
	otherABI[8] ^= 1
	oversized := slices.Clone(header)
	oversized = binary.LittleEndian.AppendUint32(oversized, maxDumpRecord+1)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a tcpscope record dump"},
		{"other file", []byte("{\"type\":\"packet\"}\n{}\n"), "not a tcpscope record dump"},
		{"other ABI", otherABI, "another event ABI"},
		{"truncated length", append(slices.Clone(header), 1, 0), "record 0: record dump truncated (in its length"},
		{"truncated record", good.Bytes()[:good.Len()-1], "record 0: record dump truncated"},
		{"oversized", oversized, "more than any event"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := 0
			err := ReadRecordDump(bytes.NewReader(c.data), func([]byte) error { n++; return nil })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if c.name == "other ABI" && !errors.Is(err, ErrRecordDumpABI) {
				t.Errorf("err %v is not ErrRecordDumpABI", err)
			}
			if strings.HasPrefix(c.name, "truncated") != errors.Is(err, ErrRecordDumpTruncated) {
				t.Errorf("err %v: ErrRecordDumpTruncated %v", err, errors.Is(err, ErrRecordDumpTruncated))
			}
			if n != 0 {
				t.Errorf("%d records passed on before the error", n)
			}
		})
	}
	n := 0
	if err := ReadRecordDump(bytes.NewReader(good.Bytes()), func([]byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("good dump: %d records, err %v", n, err)
	}
}

// A dump cut within a record (its run was killed) gives every whole record
// before the cut, then ErrRecordDumpTruncated.
func TestReadRecordDumpKilledRun(t *testing.T) {
	var buf bytes.Buffer
	d := newRecordDump(&buf)
	d.add(packetEvent(1, 1))
	d.add(packetEvent(2, 2))
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := ReadRecordDump(bytes.NewReader(buf.Bytes()[:buf.Len()-5]), func([]byte) error { n++; return nil })
	if !errors.Is(err, ErrRecordDumpTruncated) || n != 1 {
		t.Fatalf("%d records, err %v; want 1 and ErrRecordDumpTruncated", n, err)
	}
}
