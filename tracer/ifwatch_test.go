package tracer

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"strings"
	"testing"

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
