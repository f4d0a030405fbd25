//go:build linux

package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OwnNetns returns the tracer's own network namespace.
func OwnNetns() (*Netns, error) {
	ino, err := netnsInode("/proc/self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("read own network namespace: %w", err)
	}
	return &Netns{Inode: ino, Path: "/proc/self/ns/net"}, nil
}

// OpenNetns resolves a --netns argument: a name from `ip netns`
// (/run/netns/NAME), a path to a namespace file, or an inode number.
func OpenNetns(arg string) (*Netns, error) {
	var path string
	switch {
	case arg == "":
		return nil, fmt.Errorf("empty network namespace")
	case strings.Contains(arg, "/"):
		path = arg
	case isDigits(arg):
		ino, err := strconv.ParseUint(arg, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("network namespace inode %s: not a 32-bit number", QuoteArg(arg))
		}
		p, err := findNetnsByInode(uint32(ino))
		if err != nil {
			return nil, err
		}
		path = p
	default:
		path = filepath.Join("/run/netns", arg)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", QuoteArg(arg), pathErrno(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat network namespace %s: %w", QuoteArg(arg), err)
	}
	// A namespace file lives on nsfs; setns would reject anything else.
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace file", QuoteArg(arg))
	}
	// ... and a network namespace, not another kind (NS_GET_NSTYPE, 4.11+).
	if typ, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err == nil && typ != unix.CLONE_NEWNET {
		f.Close()
		return nil, fmt.Errorf("%s is a namespace file, but not of a network namespace", QuoteArg(arg))
	}
	return &Netns{Inode: uint32(st.Ino), Path: path, file: f}, nil
}

// pathErrno strips the path from an *fs.PathError: the caller quotes the
// argument itself (escaped and shortened).
func pathErrno(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// findNetnsByInode looks for a file of the namespace with this inode among
// named namespaces (ip netns, Docker) and the namespaces of processes.
func findNetnsByInode(ino uint32) (string, error) {
	var candidates []string
	for _, pattern := range []string{"/run/netns/*", "/run/docker/netns/*", "/proc/[0-9]*/ns/net"} {
		found, _ := filepath.Glob(pattern)
		candidates = append(candidates, found...)
	}
	for _, p := range candidates {
		if got, err := netnsInode(p); err == nil && got == ino {
			return p, nil
		}
	}
	return "", fmt.Errorf("no network namespace with inode %d (not in /run/netns or /run/docker/netns, no process in it)", ino)
}

// Do runs fn inside the namespace, on a dedicated, locked OS thread; if
// switching back fails the thread is discarded, never reused in the wrong
// namespace. For the tracer's own namespace fn runs directly.
func (n *Netns) Do(fn func() error) error {
	if n == nil || n.file == nil {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(n.file.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", QuoteArg(n.Path), err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			errc <- fmt.Errorf("leave network namespace %s: %w", QuoteArg(n.Path), err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
