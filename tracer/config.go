package tracer

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults for Config.
const (
	DefaultRingSize      = 8 << 20
	DefaultFlushInterval = 100 * time.Millisecond
	// DefaultMaxSockets sizes the kernel's socket-owner table.
	DefaultMaxSockets = 65536
	// DefaultMaxPacketConns sizes the kernel's per-connection packet
	// count table of --packets control (entries are allocated as used:
	// 128 bytes and the hash overhead each).
	DefaultMaxPacketConns = 65536
	minRingSize           = 4096
	maxRingSize           = 1 << 30
	maxPorts              = 64
	maxHosts              = 64
)

// Ranges of the Config fields that the CLI exposes as flags.
const (
	MinFlushInterval = time.Millisecond
	MaxFlushInterval = 10 * time.Second
	MinMaxConns      = 16
	MaxMaxConns      = 1 << 26
	MinMaxSockets    = 1024
	MaxMaxSockets    = 1 << 24
	MinPacketConns   = 1024
	MaxPacketConns   = 1 << 24
)

// maxQuoted is how many bytes of a user-supplied value an error message
// echoes.
const maxQuoted = 64

// QuoteArg returns a user-supplied value for an error message: quoted,
// with control characters, invalid UTF-8 and non-printable runes escaped
// as strconv.Quote does, and cut after 64 bytes (on a rune boundary)
// with "..." and the full length, so that no argument can break a line of
// stderr, move the terminal's cursor or flood the log.
func QuoteArg(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	n := maxQuoted
	for n > maxQuoted-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// ConfigError is invalid user input, found before anything is loaded or
// attached. The CLI turns it into exit status 2.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// EventSet selects record types; bit (1 << RecordType).
type EventSet uint32

// Has reports whether t is in the set.
func (s EventSet) Has(t RecordType) bool { return s&(1<<t) != 0 }

// String lists the set as --events takes it.
func (s EventSet) String() string {
	var names []string
	for i := range eventKinds {
		if k := &eventKinds[i]; k.selectable && s.Has(k.typ) {
			names = append(names, k.name)
		}
	}
	return strings.Join(names, ",")
}

// ParseEvents parses a comma-separated --events list.
func ParseEvents(list []string) (EventSet, error) {
	var s EventSet
	for _, item := range list {
		for _, name := range strings.Split(item, ",") {
			name = strings.TrimSpace(name)
			if k := kindNamed(name); k != nil {
				s |= 1 << k.typ
				continue
			}
			if name == "all" {
				s |= AllEvents
				continue
			}
			return 0, &ConfigError{Msg: fmt.Sprintf("unknown event type %s (want %s)", QuoteArg(name), eventNamesList())}
		}
	}
	if s == 0 {
		return 0, &ConfigError{Msg: "no event types selected"}
	}
	return s, nil
}

// ParseHost parses a --host value: an IP address or a CIDR. An IPv6 zone
// (fe80::1%eth0) is rejected: the kernel filter compares addresses only,
// so dropping the zone would silently match the address on every link.
func ParseHost(s string) (netip.Prefix, error) {
	if i := strings.IndexByte(s, '%'); i >= 0 {
		return netip.Prefix{}, &ConfigError{Msg: fmt.Sprintf("bad --host %s: IPv6 zones (%s) are not supported, the filter matches addresses only: give the address without it",
			QuoteArg(s), QuoteArg(s[i:]))}
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, &ConfigError{Msg: fmt.Sprintf("bad --host %s: not an IP address or CIDR", QuoteArg(s))}
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, &ConfigError{Msg: fmt.Sprintf("bad --host %s: not an IP address or CIDR", QuoteArg(s))}
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePort parses a --port value.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, &ConfigError{Msg: fmt.Sprintf("bad --port %s: want a number from 1 to 65535", QuoteArg(s))}
	}
	return uint16(n), nil
}

// ParseSize parses a byte size with an optional K, M or G suffix (powers of
// 1024): "8M", "65536".
func ParseSize(s string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := 1
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 || n > maxRingSize/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// TCMode says how packet classifiers are attached.
type TCMode string

// TC attach modes.
const (
	// TCAuto uses TCX when the kernel has it (>= 6.6), else clsact.
	TCAuto TCMode = "auto"
	// TCX uses TCX links: detached by the kernel when tcpscope exits.
	TCX TCMode = "tcx"
	// TCClsact uses a clsact qdisc and cls_bpf filters (kernels < 6.6).
	TCClsact TCMode = "clsact"
)

// ParseTCMode parses a --tc-mode value.
func ParseTCMode(s string) (TCMode, error) {
	switch m := TCMode(s); m {
	case TCAuto, TCX, TCClsact:
		return m, nil
	}
	return "", &ConfigError{Msg: fmt.Sprintf("bad --tc-mode %s: want auto, tcx or clsact", QuoteArg(s))}
}

// PacketMode says which packets the kernel reports (--packets).
type PacketMode string

// Packet modes.
const (
	// PacketsAll reports every TCP packet on the traced interfaces (what
	// tcpdump shows).
	PacketsAll PacketMode = "all"
	// PacketsControl reports SYN, SYN-ACK, FIN, RST and the packets the
	// kernel finds suspicious (retransmission or out of order, duplicate
	// ACK, zero window, SACK blocks, keepalive); every other packet is
	// only counted per connection in the kernel, and the counts arrive in
	// TypeCounts records (and in the connection summaries).
	PacketsControl PacketMode = "control"
	// PacketsNone reports no packets: no classifier is attached anywhere
	// and no interface is needed. Connection summaries keep the kernel's
	// own byte and segment counters (read at each socket's close).
	PacketsNone PacketMode = "none"
)

// PacketModes lists the --packets values, the default first.
func PacketModes() []string {
	return []string{string(PacketsAll), string(PacketsControl), string(PacketsNone)}
}

// ParsePacketMode parses a --packets value.
func ParsePacketMode(s string) (PacketMode, error) {
	switch m := PacketMode(s); m {
	case PacketsAll, PacketsControl, PacketsNone:
		return m, nil
	}
	return "", &ConfigError{Msg: fmt.Sprintf("bad --packets %s: want all, control or none", QuoteArg(s))}
}

// CheckInterfaceName rejects what the kernel never accepts as an interface
// name (dev_valid_name): empty, 16 bytes or longer (IFNAMSIZ with its
// NUL), "." or "..", or containing '/', ':' or white space. Anything
// else, commas and quotes included, is a name some interface may have.
func CheckInterfaceName(name string) error {
	bad := ""
	switch {
	case name == "":
		bad = "empty"
	case len(name) >= 16:
		bad = "longer than 15 bytes"
	case name == "." || name == "..":
		bad = "not a name"
	case strings.ContainsAny(name, "/:"):
		bad = "contains '/' or ':'"
	default:
		for i := 0; i < len(name); i++ {
			switch name[i] {
			case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0: // the kernel's isspace
				bad = "contains white space"
			}
		}
	}
	if bad != "" {
		return &ConfigError{Msg: fmt.Sprintf("bad --interface %s: %s, the kernel allows no such interface name", QuoteArg(name), bad)}
	}
	return nil
}

// CheckFlushInterval checks a --flush-interval value.
func CheckFlushInterval(d time.Duration) error {
	if d < MinFlushInterval || d > MaxFlushInterval {
		return &ConfigError{Msg: fmt.Sprintf("bad --flush-interval %s: want %s to %s", d, MinFlushInterval, MaxFlushInterval)}
	}
	return nil
}

// CheckMaxConns checks a --max-conns value.
func CheckMaxConns(n int) error {
	if n < MinMaxConns || n > MaxMaxConns {
		return &ConfigError{Msg: fmt.Sprintf("bad --max-conns %d: want %d to %d", n, MinMaxConns, MaxMaxConns)}
	}
	return nil
}

// CheckMaxSockets checks a --max-sockets value.
func CheckMaxSockets(n int) error {
	if n < MinMaxSockets || n > MaxMaxSockets {
		return &ConfigError{Msg: fmt.Sprintf("bad --max-sockets %d: want %d to %d", n, MinMaxSockets, MaxMaxSockets)}
	}
	return nil
}

// MinProgressInterval is the shortest --progress-interval: each tick walks
// every open connection (and the kernel's count map).
const MinProgressInterval = time.Second

// CheckProgressInterval checks a --progress-interval value: 0 (off) or at
// least MinProgressInterval.
func CheckProgressInterval(d time.Duration) error {
	if d != 0 && d < MinProgressInterval {
		return &ConfigError{Msg: fmt.Sprintf("bad --progress-interval %s: want 0 (off) or at least %s", d, MinProgressInterval)}
	}
	return nil
}

// CheckMaxPacketConns checks a --max-packet-conns value.
func CheckMaxPacketConns(n int) error {
	if n < MinPacketConns || n > MaxPacketConns {
		return &ConfigError{Msg: fmt.Sprintf("bad --max-packet-conns %d: want %d to %d", n, MinPacketConns, MaxPacketConns)}
	}
	return nil
}

// Config is everything the tracer needs to start.
type Config struct {
	// Interfaces to capture packets on; empty means every interface of
	// the namespace that is up.
	Interfaces []string
	// Netns, when set, narrows socket events to this namespace and takes
	// the interfaces from it. Nil: socket events from every namespace,
	// interfaces from the tracer's own namespace.
	Netns *Netns
	// Ports and Hosts filter in the kernel: a record passes when either
	// endpoint matches one port (if any) and one host (if any).
	Ports []uint16
	Hosts []netip.Prefix
	// Events selects record types; 0 means all (all that Packets gives).
	Events EventSet
	// Packets says which packets are reported; "" means PacketsAll.
	// PacketsNone with packet events selected explicitly (Events neither
	// 0 nor AllEvents) or with Interfaces is a ConfigError.
	Packets PacketMode
	// RingSize is the BPF ring buffer size in bytes: a power of two, at
	// least one page.
	RingSize int
	// FlushInterval is how often the ring buffer is drained and the sink
	// flushed (the kernel does not wake the reader per event).
	FlushInterval time.Duration
	// TCMode chooses TCX or clsact for the packet hooks; "" means auto.
	TCMode TCMode
	// MaxConns caps the correlator's connection table.
	MaxConns int
	// MaxSockets sizes the kernel's table of socket owners (LRU): sockets
	// beyond it lose their pid/comm first when least recently used.
	MaxSockets int
	// MaxPacketConns sizes the kernel's per-connection packet count table
	// (--packets control); 0 means DefaultMaxPacketConns. When it is full
	// a packet that would be counted is reported in full instead, and a
	// warning says how many.
	MaxPacketConns int
	// RecordDump, when set, receives every raw ring record the consumer
	// reads (not those the queue dropped), as a record dump
	// (--record-dump, a debug aid: ReadRecordDump reads it back). Run
	// flushes it when it ends; nothing closes it.
	RecordDump io.Writer
	// IdleTimeout is the analysis' --idle-timeout: the correlator keeps an
	// idle connection's id at least this long (plus its closed linger), so
	// a connection summarized as idle never gets a second id. 0: 30 min.
	IdleTimeout time.Duration
	// ProgressInterval: every this long, a sink that is a Progresser (the
	// analysis) writes a progress record for each connection still open;
	// 0: never. CheckProgressInterval gives the range.
	ProgressInterval time.Duration
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// Debug logs the full verifier log when a program is rejected.
	Debug bool
	// Overflow says what the ring reader does when the queue to the rest
	// of the pipeline is full; "" means OverflowDrop.
	Overflow OverflowMode
	// QueueBatches is the capacity of that queue in batches of up to 256
	// records; 0 means DefaultQueueBatches.
	QueueBatches int
}

// Validate checks the configuration and fills defaults. It loads nothing.
func (c *Config) Validate() error {
	if c.Events == 0 {
		c.Events = AllEvents
	}
	if c.Packets == "" {
		c.Packets = PacketsAll
	}
	if _, err := ParsePacketMode(string(c.Packets)); err != nil {
		return err
	}
	if c.Packets == PacketsNone {
		switch {
		case c.Events.Has(TypePacket) && c.Events != AllEvents:
			return &ConfigError{Msg: "--events packet contradicts --packets none (no packet is captured): drop one of them"}
		case len(c.Interfaces) > 0:
			return &ConfigError{Msg: "--interface contradicts --packets none (no packet is captured, no interface is hooked): drop one of them"}
		}
		// "all" event types are all that this mode gives.
		c.Events &^= 1 << TypePacket
	}
	if c.Packets == PacketsControl && c.Events.Has(TypePacket) {
		c.Events |= 1 << TypeCounts
	}
	if c.MaxPacketConns == 0 {
		c.MaxPacketConns = DefaultMaxPacketConns
	}
	if err := CheckMaxPacketConns(c.MaxPacketConns); err != nil {
		return err
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	pageSize := os.Getpagesize()
	if c.RingSize < pageSize || c.RingSize > maxRingSize || c.RingSize&(c.RingSize-1) != 0 || c.RingSize < minRingSize {
		return &ConfigError{Msg: fmt.Sprintf("bad --ring-size: %d bytes is not a power of two from %dK to %dM", c.RingSize, max(pageSize, minRingSize)>>10, maxRingSize>>20)}
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if err := CheckFlushInterval(c.FlushInterval); err != nil {
		return err
	}
	if err := CheckProgressInterval(c.ProgressInterval); err != nil {
		return err
	}
	for _, name := range c.Interfaces {
		if err := CheckInterfaceName(name); err != nil {
			return err
		}
	}
	if len(c.Ports) > maxPorts {
		return &ConfigError{Msg: fmt.Sprintf("too many --port values: %d, at most %d", len(c.Ports), maxPorts)}
	}
	if len(c.Hosts) > maxHosts {
		return &ConfigError{Msg: fmt.Sprintf("too many --host values: %d, at most %d", len(c.Hosts), maxHosts)}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TCMode == "" {
		c.TCMode = TCAuto
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if err := CheckMaxConns(c.MaxConns); err != nil {
		return err
	}
	if c.MaxSockets == 0 {
		c.MaxSockets = DefaultMaxSockets
	}
	if c.Overflow == "" {
		c.Overflow = OverflowDrop
	}
	if _, err := ParseOverflow(string(c.Overflow)); err != nil {
		return err
	}
	if c.QueueBatches == 0 {
		c.QueueBatches = DefaultQueueBatches
	}
	if c.QueueBatches < 1 || c.QueueBatches > maxQueueBatches {
		return &ConfigError{Msg: fmt.Sprintf("bad queue size: %d batches, want 1 to %d", c.QueueBatches, maxQueueBatches)}
	}
	if err := CheckMaxSockets(c.MaxSockets); err != nil {
		return err
	}
	return nil
}
