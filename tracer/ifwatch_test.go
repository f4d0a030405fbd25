//go:build linux

package tracer

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ifinfo builds the body of an RTM_NEWLINK/RTM_DELLINK message.
func ifinfo(index int32, flags uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	binary.NativeEndian.PutUint32(b[8:12], flags)
	return b
}

// TestIfWatchLogsOnce: a traced interface that is deleted is reported
// once (a second message for it, or messages about interfaces not traced,
// say nothing); one that goes down is a warning the first time only.
func TestIfWatchLogsOnce(t *testing.T) {
	var logs bytes.Buffer
	w := &ifWatch{
		log:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		traced: map[int32]*watchedIface{3: {name: "veth-a"}, 4: {name: "eth\x1b0"}},
	}
	up := uint32(unix.IFF_UP | unix.IFF_RUNNING)
	w.handle(unix.RTM_NEWLINK, ifinfo(3, up))   // a change that is not news
	w.handle(unix.RTM_DELLINK, ifinfo(9, 0))    // not traced
	w.handle(unix.RTM_NEWLINK, ifinfo(4, 0))    // down: warned
	w.handle(unix.RTM_NEWLINK, ifinfo(4, up))   // up again
	w.handle(unix.RTM_NEWLINK, ifinfo(4, 0))    // down again: debug only
	w.handle(unix.RTM_DELLINK, ifinfo(3, 0))    // deleted: warned
	w.handle(unix.RTM_DELLINK, ifinfo(3, 0))    // said already
	w.handle(unix.RTM_NEWLINK, ifinfo(3, 0))    // a late message about it
	w.handle(unix.RTM_DELLINK, []byte{1, 2, 3}) // too short: ignored

	out := logs.String()
	if n := strings.Count(out, "traced interface deleted"); n != 1 {
		t.Errorf("%d deletion warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "interface=veth-a ifindex=3") {
		t.Errorf("deletion warning does not name veth-a:\n%s", out)
	}
	if n := strings.Count(out, "traced interface is down"); n != 1 {
		t.Errorf("%d down warnings, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("%d log lines, want 2:\n%s", n, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("raw ESC in the log:\n%q", out)
	}
}

// fakeSettings stands for the BPF map of interface settings.
type fakeSettings struct {
	mu  sync.Mutex
	set map[uint32]tcpscopeIfaceCfg
}

func (m *fakeSettings) put(ifc iface) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set[uint32(ifc.index)] = tcpscopeIfaceCfg{L2Len: ifc.l2Len}
	return nil
}

func (m *fakeSettings) remove(index int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.set, uint32(index))
	return nil
}

// fakeLink records that it was closed.
type fakeLink struct{ closed chan string }

func (l fakeLink) Close() error { l.closed <- "closed"; return nil }

// rtattr appends one route attribute.
func rtattr(b []byte, typ uint16, val []byte) []byte {
	l := unix.SizeofRtAttr + len(val)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// TestIfWatchFollows: with the default interface set, an interface that
// comes up is registered with the decoder first and attached after (so
// no packet of it lacks its name), with its L2 header length; when it is
// deleted its links are closed and its settings removed; detach closes
// what is still attached and nothing is attached afterwards.
func TestIfWatchFollows(t *testing.T) {
	settings := &fakeSettings{set: map[uint32]tcpscopeIfaceCfg{}}
	attached := make(chan iface, 4)
	closed := make(chan string, 4)
	dec := map[uint32]ifaceInfo{}
	var decAtAttach []string
	f := newIfFollow(&Netns{}, settings, slog.New(slog.DiscardHandler), func(_ *netlink.Handle, ifc iface) ([]io.Closer, error) {
		if _, ok := dec[uint32(ifc.index)]; !ok {
			decAtAttach = append(decAtAttach, ifc.name)
		}
		attached <- ifc
		return []io.Closer{fakeLink{closed}}, nil
	})
	go f.run()
	var logs bytes.Buffer
	w := &ifWatch{log: slog.New(slog.NewTextHandler(&logs, nil)), follow: f, traced: map[int32]*watchedIface{1: {name: "lo"}}}

	up := uint32(unix.IFF_UP)
	vethC := rtattr(rtattr(ifinfo(7, up), unix.IFLA_IFNAME, []byte("veth-c\x00")), unix.IFLA_ADDRESS, []byte{2, 0, 0, 0, 0, 1})
	wg := rtattr(ifinfo(8, up|unix.IFF_POINTOPOINT), unix.IFLA_IFNAME, []byte("wg0\x00"))
	w.handle(unix.RTM_NEWLINK, rtattr(ifinfo(6, 0), unix.IFLA_IFNAME, []byte("down0\x00"))) // down: not traced
	w.handle(unix.RTM_NEWLINK, vethC)
	w.handle(unix.RTM_NEWLINK, vethC) // known already
	w.handle(unix.RTM_NEWLINK, wg)
	w.register(dec, 99)
	got := map[string]iface{}
	for range 2 {
		select {
		case ifc := <-attached:
			got[ifc.name] = ifc
		case <-time.After(10 * time.Second):
			t.Fatalf("not attached; got %v", got)
		}
	}
	if got["veth-c"].index != 7 || got["veth-c"].l2Len != 14 || got["wg0"].index != 8 || got["wg0"].l2Len != 0 || len(got) != 2 {
		t.Errorf("attached %+v, want veth-c (7, L2 14) and wg0 (8, no L2)", got)
	}
	if len(decAtAttach) > 0 {
		t.Errorf("attached before the decoder knew them: %v", decAtAttach)
	}
	if dec[7] != (ifaceInfo{name: "veth-c", netns: 99}) || dec[8].name != "wg0" {
		t.Errorf("decoder interfaces %v", dec)
	}
	f.mu.Lock() // the attacher is done with them once it releases mu
	if settings.set[7].L2Len != 14 || len(settings.set) != 2 {
		t.Errorf("settings %v", settings.set)
	}
	f.mu.Unlock()

	w.handle(unix.RTM_DELLINK, ifinfo(7, 0))
	if len(closed) != 1 {
		t.Errorf("%d links closed after veth-c was deleted, want 1", len(closed))
	}
	if _, ok := settings.set[7]; ok {
		t.Errorf("settings of deleted veth-c kept")
	}
	if !strings.Contains(logs.String(), "level=INFO") || strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("following the default set, a deletion is news, not a warning:\n%s", logs.String())
	}

	if err := w.detachFollowed(); err != nil {
		t.Fatal(err)
	}
	if len(closed) != 2 {
		t.Errorf("%d links closed after detach, want 2", len(closed))
	}
	w.handle(unix.RTM_NEWLINK, rtattr(ifinfo(9, up), unix.IFLA_IFNAME, []byte("late0\x00")))
	w.register(dec, 99)
	f.stop()
	if len(attached) != 0 || dec[9].name != "" {
		t.Errorf("attached after detach: %d, decoder %v", len(attached), dec)
	}
}
