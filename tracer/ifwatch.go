package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ifWatch follows the links of the traced interfaces in the traced
// namespace and says in the log when one goes away (deleted, or moved to
// another namespace) or down: packets then stop with no error from the
// kernel. It runs in its own goroutine on its own netlink socket and
// never touches the ring reader.
type ifWatch struct {
	f    *os.File        // the netlink socket, subscribed to RTMGRP_LINK
	h    *netlink.Handle // queries in the namespace, after a lost message
	log  *slog.Logger
	done chan struct{} // closed when run has returned
	// traced is owned by the run goroutine once it started.
	traced map[int32]*watchedIface
}

// watchedIface is what the watch remembers of one traced interface.
type watchedIface struct {
	name       string
	gone       bool // deleted or moved away: said once
	down       bool
	warnedDown bool // the first time it went down was a warning; later ones are debug
}

// startIfWatch subscribes to link changes in ns and starts following
// ifaces. An interface already gone when the watch starts is reported.
func startIfWatch(ns *Netns, ifaces []iface, log *slog.Logger) (*ifWatch, error) {
	w := &ifWatch{log: log, done: make(chan struct{}), traced: map[int32]*watchedIface{}}
	for _, ifc := range ifaces {
		w.traced[int32(ifc.index)] = &watchedIface{name: ifc.name}
	}
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("subscribe to link changes: %w", err)
		}
		if w.h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			unix.Close(fd)
			return fmt.Errorf("open netlink: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("watch interfaces: %w", err)
	}
	w.f = os.NewFile(uintptr(fd), "netlink link watch")
	// Subscribed: whatever changes from now on is seen; what changed
	// between choosing the interfaces and now is found by asking.
	w.recheck()
	go w.run()
	return w, nil
}

// stop ends the watch and waits for its goroutine.
func (w *ifWatch) stop() {
	if w == nil {
		return
	}
	w.f.Close() // wakes the blocked read
	<-w.done
	w.h.Close()
}

func (w *ifWatch) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if errors.Is(err, unix.ENOBUFS) {
			// The socket overflowed: messages were lost. Ask instead.
			w.recheck()
			continue
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.log.Warn("watch interfaces: stopped", "err", err)
			}
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			w.log.Debug("watch interfaces: malformed netlink message", "err", err)
			continue
		}
		for _, m := range msgs {
			w.handle(m.Header.Type, m.Data)
		}
	}
}

// handle takes one RTM_NEWLINK or RTM_DELLINK message.
func (w *ifWatch) handle(typ uint16, data []byte) {
	if len(data) < unix.SizeofIfInfomsg {
		return
	}
	index := int32(binary.NativeEndian.Uint32(data[4:8]))
	flags := binary.NativeEndian.Uint32(data[8:12])
	wi := w.traced[index]
	if wi == nil || wi.gone {
		return
	}
	switch typ {
	case unix.RTM_DELLINK:
		w.gone(wi, index)
	case unix.RTM_NEWLINK:
		w.setUp(wi, index, flags&unix.IFF_UP != 0)
	}
}

func (w *ifWatch) gone(wi *watchedIface, index int32) {
	wi.gone = true
	w.log.Warn("traced interface deleted or moved to another network namespace: no more packets from it",
		"interface", wi.name, "ifindex", index)
}

func (w *ifWatch) setUp(wi *watchedIface, index int32, up bool) {
	switch {
	case !up && !wi.down:
		wi.down = true
		if !wi.warnedDown {
			wi.warnedDown = true
			w.log.Warn("traced interface is down: no packets from it until it is up again", "interface", wi.name, "ifindex", index)
		} else {
			w.log.Debug("traced interface is down", "interface", wi.name, "ifindex", index)
		}
	case up && wi.down:
		wi.down = false
		w.log.Debug("traced interface is up again", "interface", wi.name, "ifindex", index)
	}
}

// recheck asks the kernel about every traced interface (at start, and
// after the socket lost messages).
func (w *ifWatch) recheck() {
	for index, wi := range w.traced {
		if wi.gone {
			continue
		}
		l, err := w.h.LinkByIndex(int(index))
		var nf netlink.LinkNotFoundError
		switch {
		case errors.As(err, &nf) || errors.Is(err, unix.ENODEV):
			w.gone(wi, index)
		case err != nil:
			w.log.Debug("watch interfaces: query", "interface", wi.name, "err", err)
		default:
			w.setUp(wi, index, l.Attrs().RawFlags&unix.IFF_UP != 0)
		}
	}
}
