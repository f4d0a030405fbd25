package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
)

// Output counts of one tracer run.
type Output struct {
	// Lines (tcpscope, tcpstates) or packets (tcpdump) in the output file.
	Total int64 `json:"total"`
	// Records counts what the load made: tcpscope's records of the two
	// bench namespaces that are not `preexisting`; tcpstates' lines with
	// a bench address; every packet for tcpdump (it captures on veth-a).
	Records int64 `json:"records"`
	// Preexisting: tcpscope records with "preexisting":true (sockets left
	// when it started, and their summaries).
	Preexisting int64 `json:"preexisting,omitempty"`
	// Foreign: tcpscope records of other namespaces, tcpstates lines of
	// other addresses (other workloads on the host).
	Foreign int64 `json:"foreign,omitempty"`
	// Lost: tcpscope, sum of `count` of its `lost` records; tcpstates,
	// events it reported lost on stderr; tcpdump, "packets dropped by
	// kernel".
	Lost       int64            `json:"lost"`
	LostByKind map[string]int64 `json:"lost_by_kind,omitempty"`
	// ByType: tcpscope records (of the bench namespaces, not
	// preexisting) per `type`.
	ByType map[string]int64 `json:"by_type,omitempty"`
	Bytes  int64            `json:"bytes"` // size of the output file
}

var (
	keyType        = []byte(`"type":"`)
	keyNetns       = []byte(`"netns":`)
	keyCount       = []byte(`"count":`)
	keyKind        = []byte(`"kind":"`)
	keyPreexisting = []byte(`"preexisting":true`)
)

// stringAfter returns the JSON string value that follows key (no escapes
// expected: type and kind names are plain words).
func stringAfter(line, key []byte) string {
	i := bytes.Index(line, key)
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// numberAfter returns the unsigned integer that follows key.
func numberAfter(line, key []byte) (uint64, bool) {
	i := bytes.Index(line, key)
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return v, err == nil
}

// countTcpscope counts tcpscope's JSON lines. Records of namespaces other
// than those in ours are foreign; lost records are summed by kind.
func countTcpscope(r io.Reader, ours map[uint64]bool) (Output, error) {
	out := Output{LostByKind: map[string]int64{}, ByType: map[string]int64{}}
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: count it, skip the rest.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			out.Total++
			out.Records++
			continue
		}
		if len(line) > 0 {
			out.Total++
			typ := stringAfter(line, keyType)
			switch {
			case typ == "lost":
				n, _ := numberAfter(line, keyCount)
				out.Lost += int64(n)
				out.LostByKind[stringAfter(line, keyKind)] += int64(n)
			case bytes.Contains(line, keyPreexisting):
				out.Preexisting++
			default:
				if ns, ok := numberAfter(line, keyNetns); ok && !ours[ns] {
					out.Foreign++
					break
				}
				out.Records++
				out.ByType[typ]++
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// countLines counts the lines of tcpstates' output; a first line that is
// its column header is not a record, and lines that name none of ours
// (the bench's address prefixes) are foreign.
func countLines(r io.Reader, ours [][]byte) (Output, error) {
	var out Output
	br := bufio.NewReaderSize(r, 1<<20)
	first := true
	for {
		line, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if len(line) > 0 {
			out.Total++
			switch {
			case first && bytes.HasPrefix(line, []byte("SKADDR")):
			case containsAny(line, ours):
				out.Records++
			default:
				out.Foreign++
			}
			first = false
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func containsAny(line []byte, subs [][]byte) bool {
	for _, s := range subs {
		if bytes.Contains(line, s) {
			return true
		}
	}
	return false
}

// countPcap counts the packets of a pcap file (classic format, either
// byte order, micro- or nanosecond magic).
func countPcap(r io.Reader) (Output, error) {
	var out Output
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [24]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return out, nil // tcpdump wrote nothing
		}
		return out, fmt.Errorf("pcap header: %w", err)
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return out, fmt.Errorf("not a pcap file (magic %x)", hdr[:4])
	}
	var rec [16]byte
	for {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return out, errors.New("pcap: truncated record header")
			}
			return out, err
		}
		incl := order.Uint32(rec[8:12])
		if incl > 1<<18 {
			return out, fmt.Errorf("pcap: record %d claims %d bytes", out.Total+1, incl)
		}
		if _, err := br.Discard(int(incl)); err != nil {
			return out, fmt.Errorf("pcap: truncated record %d: %w", out.Total+1, err)
		}
		out.Total++
		out.Records++
	}
}

var (
	tcpdumpDropped = regexp.MustCompile(`(?m)^(\d+) packets dropped by kernel$`)
	tcpstatesLost  = regexp.MustCompile(`(?m)lost (\d+) events`)
)

// lostFromStderr sums what a tracer said on stderr it lost: tcpdump's
// "N packets dropped by kernel", tcpstates' "lost N events on CPU #c".
func lostFromStderr(kind, stderr string) int64 {
	re := tcpstatesLost
	if kind == kindTcpdump {
		re = tcpdumpDropped
	}
	var sum int64
	for _, m := range re.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		sum += n
	}
	return sum
}

// countOutput counts the output file of a tracer run of the given kind.
// ours are the bench's namespace inodes (tcpscope) and address prefixes
// (tcpstates).
func countOutput(kind, path string, ours map[uint64]bool, addrs [][]byte) (Output, error) {
	f, err := os.Open(path)
	if err != nil {
		return Output{}, fmt.Errorf("open output: %w", err)
	}
	defer f.Close()
	var out Output
	switch kind {
	case kindTcpscope:
		out, err = countTcpscope(f, ours)
	case kindTcpstates:
		out, err = countLines(f, addrs)
	case kindTcpdump:
		out, err = countPcap(f)
	default:
		return out, fmt.Errorf("no output to count for %s", kind)
	}
	if st, serr := f.Stat(); serr == nil {
		out.Bytes = st.Size()
	}
	return out, err
}
