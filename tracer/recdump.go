package tracer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// A record dump (--record-dump) is the raw ring records the consumer
// read, in the order it read them: an 8-byte magic, the 4-byte
// fingerprint of the event ABI (recordABIFingerprint), 4 reserved bytes,
// then each record as a little-endian uint32 length and its bytes.
// ReadRecordDump reads one back; BenchmarkReplay (tracer/) puts a real
// storm's records through the whole user-space path, on one core, without
// the storm's noise.
const recordDumpMagic = "TCPSREC\x01"

// maxDumpRecord bounds one record of a dump: no kernel event is larger.
const maxDumpRecord = 1 << 16

// ErrRecordDumpABI: the dump was written by a build whose event ABI
// differs from this one.
var ErrRecordDumpABI = errors.New("record dump written by a build with another event ABI")

// ErrRecordDumpTruncated: the dump ends within a record, as the dump of
// a run that was killed does; every whole record before was read.
var ErrRecordDumpTruncated = errors.New("record dump truncated")

// recordABIFingerprint hashes what the decoder assumes of the raw
// events: each kind's id and sizes.
func recordABIFingerprint() uint32 {
	h := fnv.New32a()
	for _, k := range eventKinds {
		var b [12]byte
		binary.LittleEndian.PutUint32(b[0:], uint32(k.id))
		binary.LittleEndian.PutUint32(b[4:], uint32(k.size))
		binary.LittleEndian.PutUint32(b[8:], uint32(k.minSize))
		h.Write(b[:])
	}
	return h.Sum32()
}

// recordDump writes the records of a dump. A write error stops the dump:
// close reports it.
type recordDump struct {
	w   *bufio.Writer
	err error
}

func newRecordDump(w io.Writer) *recordDump {
	d := &recordDump{w: bufio.NewWriterSize(w, 1<<20)}
	var h [16]byte
	copy(h[:], recordDumpMagic)
	binary.LittleEndian.PutUint32(h[8:], recordABIFingerprint())
	_, d.err = d.w.Write(h[:])
	return d
}

// add appends one raw record.
func (d *recordDump) add(raw []byte) {
	if d.err != nil {
		return
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(raw)))
	if _, d.err = d.w.Write(n[:]); d.err == nil {
		_, d.err = d.w.Write(raw)
	}
}

// close flushes the dump and returns its first error.
func (d *recordDump) close() error {
	if d.err == nil {
		d.err = d.w.Flush()
	}
	return d.err
}

// ReadRecordDump calls fn with each raw record of the dump r, in order
// (raw is valid only during the call). It fails on a file that is not a
// record dump, on one of another event ABI (ErrRecordDumpABI), on a
// truncated record (ErrRecordDumpTruncated, after the whole ones) and on an
// oversized one.
func ReadRecordDump(r io.Reader, fn func(raw []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var h [16]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || string(h[:8]) != recordDumpMagic {
		return errors.New("not a tcpscope record dump")
	}
	if got, want := binary.LittleEndian.Uint32(h[8:]), recordABIFingerprint(); got != want {
		return fmt.Errorf("%w (fingerprint %08x, this build %08x)", ErrRecordDumpABI, got, want)
	}
	buf := make([]byte, maxDumpRecord)
	for i := 0; ; i++ {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("record %d: %w (in its length: %v)", i, ErrRecordDumpTruncated, err)
		}
		size := binary.LittleEndian.Uint32(n[:])
		if size > maxDumpRecord {
			return fmt.Errorf("record %d: %d bytes, more than any event", i, size)
		}
		if _, err := io.ReadFull(br, buf[:size]); err != nil {
			return fmt.Errorf("record %d: %w (%v)", i, ErrRecordDumpTruncated, err)
		}
		if err := fn(buf[:size]); err != nil {
			return err
		}
	}
}
