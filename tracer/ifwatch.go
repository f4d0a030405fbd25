//go:build linux

package tracer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ifWatch follows the links of the traced namespace. It says in the log
// when a traced interface goes away (deleted, or moved to another
// namespace) or down: packets then stop with no error from the kernel.
// With the default interface set (no -i) it also follows interfaces as
// they come and go (ifFollow): one that appears or comes up is traced,
// one that goes away is let go. It runs in its own goroutines on its own
// netlink sockets and never blocks the ring reader: the only work done in
// Run is registering new interfaces' names with the decoder (register).
type ifWatch struct {
	f      *os.File        // the netlink socket, subscribed to RTMGRP_LINK
	h      *netlink.Handle // queries in the namespace, from the run goroutine only
	log    *slog.Logger
	done   chan struct{} // closed when run has returned
	follow *ifFollow     // nil with named interfaces
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
// ifaces (and, with follow, the interfaces that appear). An interface
// already gone when the watch starts is reported.
func startIfWatch(ns *Netns, ifaces []iface, follow *ifFollow, log *slog.Logger) (*ifWatch, error) {
	w := &ifWatch{log: log, done: make(chan struct{}), follow: follow, traced: map[int32]*watchedIface{}}
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
		if follow != nil {
			if follow.h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
				unix.Close(fd)
				w.h.Close()
				return fmt.Errorf("open netlink: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("watch interfaces: %w", err)
	}
	w.f = os.NewFile(uintptr(fd), "netlink link watch")
	if follow != nil {
		go follow.run()
	}
	// Subscribed: whatever changes from now on is seen; what changed
	// between choosing the interfaces and now is found by asking.
	w.recheck()
	go w.run()
	return w, nil
}

// stop ends the watch (and the following) and waits for its goroutines.
func (w *ifWatch) stop() {
	if w == nil {
		return
	}
	w.f.Close() // wakes the blocked read
	<-w.done
	w.h.Close()
	w.follow.stop()
}

// register hands the interfaces that appeared to the decoder; Run calls
// it on every tick. They are attached only then, so that none of their
// packets is decoded without its interface's name.
func (w *ifWatch) register(dec map[uint32]ifaceInfo, netnsIno uint32) {
	if w == nil || w.follow == nil {
		return
	}
	w.follow.register(dec, netnsIno)
}

// detachFollowed detaches the interfaces attached since the start.
func (w *ifWatch) detachFollowed() error {
	if w == nil || w.follow == nil {
		return nil
	}
	return w.follow.detach()
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
	if wi == nil {
		if typ == unix.RTM_NEWLINK && flags&unix.IFF_UP != 0 && w.follow != nil {
			w.appeared(linkInfo(index, flags, data[unix.SizeofIfInfomsg:]))
		}
		return
	}
	if wi.gone {
		return
	}
	switch typ {
	case unix.RTM_DELLINK:
		w.gone(wi, index)
	case unix.RTM_NEWLINK:
		w.setUp(wi, index, flags&unix.IFF_UP != 0)
	}
}

// linkInfo reads what attaching needs from a link message's attributes.
func linkInfo(index int32, flags uint32, attrs []byte) iface {
	ifc := iface{index: int(index), loopback: flags&unix.IFF_LOOPBACK != 0}
	hwLen := 0
	for len(attrs) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4])
		if l < unix.SizeofRtAttr || l > len(attrs) {
			break
		}
		val := attrs[unix.SizeofRtAttr:l]
		switch typ {
		case unix.IFLA_IFNAME:
			if i := indexByte(val, 0); i >= 0 {
				val = val[:i]
			}
			ifc.name = string(val)
		case unix.IFLA_ADDRESS:
			hwLen = len(val)
		}
		l = (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if l > len(attrs) {
			break
		}
		attrs = attrs[l:]
	}
	// As ifaceFrom: Ethernet-like devices carry a 14-byte L2 header.
	if ifc.loopback || hwLen == 6 {
		ifc.l2Len = 14
	}
	return ifc
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// appeared starts tracing an interface that appeared or came up.
func (w *ifWatch) appeared(ifc iface) {
	if ifc.name == "" {
		return
	}
	w.traced[int32(ifc.index)] = &watchedIface{name: ifc.name}
	w.follow.add(ifc)
}

func (w *ifWatch) gone(wi *watchedIface, index int32) {
	wi.gone = true
	if w.follow == nil {
		// Named with -i: the user asked for it.
		w.log.Warn("traced interface deleted or moved to another network namespace: no more packets from it",
			"interface", wi.name, "ifindex", index)
		return
	}
	// The default set follows interfaces as they come and go.
	w.log.Info("traced interface deleted or moved to another network namespace: no more packets from it",
		"interface", wi.name, "ifindex", index)
	delete(w.traced, index) // the index may come back, with another interface
	w.follow.remove(int(index))
}

func (w *ifWatch) setUp(wi *watchedIface, index int32, up bool) {
	switch {
	case !up && !wi.down:
		wi.down = true
		if !wi.warnedDown {
			wi.warnedDown = true
			level := slog.LevelWarn
			if w.follow != nil {
				level = slog.LevelInfo // the default set: interfaces come and go
			}
			w.log.Log(context.Background(), level, "traced interface is down: no packets from it until it is up again", "interface", wi.name, "ifindex", index)
		} else {
			w.log.Debug("traced interface is down", "interface", wi.name, "ifindex", index)
		}
	case up && wi.down:
		wi.down = false
		w.log.Debug("traced interface is up again", "interface", wi.name, "ifindex", index)
	}
}

// recheck asks the kernel about every interface (at start, and after the
// socket lost messages).
func (w *ifWatch) recheck() {
	links, err := w.h.LinkList()
	if err != nil {
		w.log.Debug("watch interfaces: list", "err", err)
		return
	}
	present := map[int32]netlink.Link{}
	for _, l := range links {
		present[int32(l.Attrs().Index)] = l
	}
	for index, wi := range w.traced {
		if wi.gone {
			continue
		}
		if l, ok := present[index]; ok {
			w.setUp(wi, index, l.Attrs().RawFlags&unix.IFF_UP != 0)
		} else {
			w.gone(wi, index)
		}
	}
	if w.follow == nil {
		return
	}
	for index, l := range present {
		a := l.Attrs()
		if w.traced[index] == nil && a.RawFlags&unix.IFF_UP != 0 {
			ifc := iface{index: a.Index, name: a.Name, loopback: a.RawFlags&unix.IFF_LOOPBACK != 0}
			if ifc.loopback || len(a.HardwareAddr) == 6 {
				ifc.l2Len = 14
			}
			w.appeared(ifc)
		}
	}
}

// ifaceSettings holds the classifiers' per-interface parse settings
// (bpfIfaces).
type ifaceSettings interface {
	put(ifc iface) error
	remove(index int) error
}

// bpfIfaces is the classifiers' settings in the kernel: the ifaces map,
// and the raw_ip_ifaces flag without which they do not look it up.
type bpfIfaces struct {
	m     *ebpf.Map
	rawIP *ebpf.Variable
}

var _ ifaceSettings = bpfIfaces{}

// put writes ifc's settings. For an interface without a link-layer
// header it sets raw_ip_ifaces first: from then on the classifiers look
// every packet's interface up.
func (b bpfIfaces) put(ifc iface) error {
	if ifc.l2Len == 0 {
		if b.rawIP == nil {
			return errors.New("set raw_ip_ifaces: not in the BPF object")
		}
		if err := b.rawIP.Set(uint8(1)); err != nil {
			return fmt.Errorf("set raw_ip_ifaces: %w", err)
		}
	}
	return b.m.Put(uint32(ifc.index), tcpscopeIfaceCfg{L2Len: ifc.l2Len})
}

func (b bpfIfaces) remove(index int) error { return b.m.Delete(uint32(index)) }

// ifFollow attaches the classifiers to interfaces that appear while
// tracing with the default interface set, and detaches those that go
// away. The watch finds them (add), Run registers their names with the
// decoder (register), then the attacher goroutine attaches them.
type ifFollow struct {
	ns *Netns
	// attach attaches the classifiers to one interface, with a netlink
	// handle in the namespace; it runs inside ns.
	attach func(h *netlink.Handle, ifc iface) ([]io.Closer, error)
	ifaces ifaceSettings // the BPF per-interface parse settings
	log    *slog.Logger
	wake   chan struct{} // cap 1: there are registered interfaces to attach
	done   chan struct{} // closed when run has returned

	mu     sync.Mutex
	h      *netlink.Handle // used under mu only
	found  []iface         // found by the watch, not yet registered
	ready  []iface         // registered with the decoder, not yet attached
	links  map[int][]io.Closer
	closed bool // detached: attach nothing more
	full   bool // the settings map was full once (said once)
}

func newIfFollow(ns *Netns, ifaces ifaceSettings, log *slog.Logger, attach func(*netlink.Handle, iface) ([]io.Closer, error)) *ifFollow {
	return &ifFollow{ns: ns, attach: attach, ifaces: ifaces, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}), links: map[int][]io.Closer{}}
}

// add queues an interface that appeared.
func (f *ifFollow) add(ifc iface) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.found = append(f.found, ifc)
	}
}

func (f *ifFollow) register(dec map[uint32]ifaceInfo, netnsIno uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.found) == 0 {
		return
	}
	for _, ifc := range f.found {
		dec[uint32(ifc.index)] = ifaceInfo{name: ifc.name, netns: netnsIno}
	}
	f.ready = append(f.ready, f.found...)
	f.found = nil
	select {
	case f.wake <- struct{}{}:
	default: // already woken
	}
}

// run attaches registered interfaces until stop.
func (f *ifFollow) run() {
	defer close(f.done)
	for range f.wake {
		f.mu.Lock()
		for _, ifc := range f.ready {
			if f.closed {
				break
			}
			f.attachOne(ifc)
		}
		f.ready = nil
		f.mu.Unlock()
	}
}

// attachOne attaches one interface; f.mu is held.
func (f *ifFollow) attachOne(ifc iface) {
	if err := f.ifaces.put(ifc); err != nil {
		if !f.full {
			f.full = true
			f.log.Warn("interface appeared but is not traced: too many interfaces", "interface", ifc.name, "err", err)
		}
		return
	}
	var links []io.Closer
	err := f.ns.Do(func() error {
		var err error
		links, err = f.attach(f.h, ifc)
		return err
	})
	if err != nil {
		f.ifaces.remove(ifc.index)
		// Gone again before it could be attached, most often.
		f.log.Info("interface appeared but could not be traced", "interface", ifc.name, "err", err)
		return
	}
	for _, l := range f.links[ifc.index] {
		l.Close()
	}
	f.links[ifc.index] = links
	f.log.Info("tracing an interface that appeared", "interface", ifc.name, "ifindex", ifc.index)
}

// remove lets an interface that went away go.
func (f *ifFollow) remove(index int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range []*[]iface{&f.found, &f.ready} {
		kept := (*q)[:0]
		for _, ifc := range *q {
			if ifc.index != index {
				kept = append(kept, ifc)
			}
		}
		*q = kept
	}
	ls, ok := f.links[index]
	if !ok {
		return
	}
	for _, l := range ls {
		l.Close() // the kernel detached them with the device: nothing to fail
	}
	delete(f.links, index)
	f.ifaces.remove(index)
}

// detach detaches every interface attached since the start; nothing more
// is attached afterwards.
func (f *ifFollow) detach() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.found, f.ready = nil, nil
	var errs []error
	for index, ls := range f.links {
		for _, l := range ls {
			if err := l.Close(); err != nil {
				errs = append(errs, fmt.Errorf("detach: %w", err))
			}
		}
		delete(f.links, index)
	}
	return errors.Join(errs...)
}

// stop detaches and ends the attacher.
func (f *ifFollow) stop() {
	if f == nil {
		return
	}
	f.detach()
	f.mu.Lock()
	close(f.wake) // under mu: register never sends after this
	f.mu.Unlock()
	<-f.done
	if f.h != nil {
		f.h.Close()
	}
}

// follower returns what follows interfaces as they come and go: only with
// the default interface set (no -i) and packet events.
func (t *Tracer) follower() *ifFollow {
	if len(t.cfg.Interfaces) > 0 || !t.cfg.Events.Has(TypePacket) {
		return nil
	}
	progs := tcPrograms{
		ingress:  t.coll.Programs[tcpscopeProgTcIngress],
		egress:   t.coll.Programs[tcpscopeProgTcEgress],
		loEgress: t.coll.Programs[tcpscopeProgTcLoEgress],
	}
	mode, netnsIno, log := t.tcMode, t.netns.Inode, t.log
	return newIfFollow(t.netns, t.ifaceSettings(), log, func(h *netlink.Handle, ifc iface) ([]io.Closer, error) {
		if mode == TCClsact {
			return attachClsact(h, progs, ifc, netnsIno, log)
		}
		return attachTC(h, progs, ifc, netnsIno, log)
	})
}
