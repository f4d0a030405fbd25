//go:build linux

package tracer

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// fakeProc builds a /proc tree: each process has a comm, maybe a cgroup
// file, and fds linking where the map says.
func fakeProc(t *testing.T, root string, procs map[string]struct {
	comm, cgroup string
	fds          []string
}) {
	t.Helper()
	for pid, p := range procs {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(filepath.Join(dir, "comm"), []byte(p.comm+"\n"), 0o644))
		if p.cgroup != "" {
			must(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte(p.cgroup), 0o644))
		}
		for i, target := range p.fds {
			must(t, os.Symlink(target, filepath.Join(dir, "fd", string(rune('3'+i)))))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(path, &st))
	return st.Ino
}

// TestScanSocketOwners: owners of sockets found at start-up claim no
// thread (NoTID: /proc does not say which one), and their cgroup id is the
// inode of the process's cgroup v2 directory, or NoCgroup when it cannot
// be found; never a made-up tid or a zero cgroup.
func TestScanSocketOwners(t *testing.T) {
	tmp := t.TempDir()
	proc, cg := filepath.Join(tmp, "proc"), filepath.Join(tmp, "cgroup")
	must(t, os.MkdirAll(filepath.Join(cg, "system.slice", "srv.service"), 0o755))
	fakeProc(t, proc, map[string]struct {
		comm, cgroup string
		fds          []string
	}{
		// Hybrid host: v1 lines before the v2 one.
		"100": {"srv", "12:memory:/x\n1:name=systemd:/y\n0::/system.slice/srv.service\n", []string{"socket:[555]", "/dev/null", "socket:[556]"}},
		"200": {"root", "0::/\n", []string{"socket:[600]"}},
		// A cgroup outside this cgroup namespace.
		"300": {"out", "0::/../other\n", []string{"socket:[700]"}},
		// cgroup v1 only.
		"400": {"v1", "4:memory:/z\n", []string{"socket:[800]"}},
		// A cgroup that is gone.
		"500":  {"gone", "0::/gone.scope\n", []string{"socket:[900]"}},
		"self": {"x", "0::/\n", []string{"socket:[1000]"}},
	})
	owners := scanSocketOwners(proc, cg, "/")
	want := map[uint32]struct {
		pid      uint32
		comm     string
		cgroup   uint64
		noCgroup bool
	}{
		555: {100, "srv", inode(t, filepath.Join(cg, "system.slice", "srv.service")), false},
		556: {100, "srv", inode(t, filepath.Join(cg, "system.slice", "srv.service")), false},
		600: {200, "root", inode(t, cg), false},
		700: {300, "out", 0, true},
		800: {400, "v1", 0, true},
		900: {500, "gone", 0, true},
	}
	if len(owners) != len(want) {
		t.Errorf("%d owners, want %d: %+v", len(owners), len(want), owners)
	}
	for ino, w := range want {
		o, ok := owners[ino]
		if !ok {
			t.Errorf("socket %d: no owner", ino)
			continue
		}
		if !o.Known || o.PID != w.pid || string(o.CommBytes()) != w.comm || !o.NoTID || o.TID != 0 ||
			o.NoCgroup != w.noCgroup || o.CgroupID != w.cgroup {
			t.Errorf("socket %d: owner %+v, want pid %d comm %s cgroup %d (unknown %v), no tid", ino, o, w.pid, w.comm, w.cgroup, w.noCgroup)
		}
	}
	// No cgroup v2 hierarchy at all: every cgroup unknown.
	for ino, o := range scanSocketOwners(proc, "", "") {
		if !o.NoCgroup || o.CgroupID != 0 {
			t.Errorf("socket %d without a cgroup v2 mount: %+v", ino, o)
		}
	}
}

// TestProcessCgroupIDMountRoot: a cgroup v2 mount that shows a subtree
// (mountinfo root /kubepods) resolves the cgroups under it and nothing
// else.
func TestProcessCgroupIDMountRoot(t *testing.T) {
	tmp := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(tmp, "mnt", "pod1"), 0o755))
	pidDir := filepath.Join(tmp, "1")
	must(t, os.MkdirAll(pidDir, 0o755))
	for _, c := range []struct {
		cgroup  string
		want    uint64
		unknown bool
	}{
		{"0::/kubepods/pod1\n", inode(t, filepath.Join(tmp, "mnt", "pod1")), false},
		{"0::/kubepods\n", inode(t, filepath.Join(tmp, "mnt")), false},
		{"0::/kubepodsX/pod1\n", 0, true},
		{"0::/other\n", 0, true},
	} {
		must(t, os.WriteFile(filepath.Join(pidDir, "cgroup"), []byte(c.cgroup), 0o644))
		id, unknown := processCgroupID(pidDir, filepath.Join(tmp, "mnt"), "/kubepods")
		if id != c.want || unknown != c.unknown {
			t.Errorf("%q: id %d unknown %v, want %d %v", c.cgroup, id, unknown, c.want, c.unknown)
		}
	}
}

// TestCgroup2Mount: the cgroup v2 hierarchy is found at
// /sys/fs/cgroup/unified on a hybrid host and at /sys/fs/cgroup on a pure
// v2 one, and not at all on a v1-only host.
func TestCgroup2Mount(t *testing.T) {
	const hybrid = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const pure = `24 22 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	const v1 = `31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
`
	// A container's view: its own cgroup mounted, plus the host's
	// hierarchy at an escaped path.
	const nested = `50 40 0:22 /kubepods/pod1 /sys/fs/cgroup ro,relatime - cgroup2 cgroup2 rw
51 40 0:22 / /host\040cg rw,relatime - cgroup2 cgroup2 rw
`
	for _, c := range []struct {
		name, mountinfo, mnt, root string
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified", "/"},
		{"pure v2", pure, "/sys/fs/cgroup", "/"},
		{"v1 only", v1, "", ""},
		{"nested", nested, "/host cg", "/"},
	} {
		p := filepath.Join(t.TempDir(), "mountinfo")
		must(t, os.WriteFile(p, []byte(c.mountinfo), 0o644))
		mnt, root := cgroup2Mount(p)
		if mnt != c.mnt || root != c.root {
			t.Errorf("%s: cgroup2 at %q root %q, want %q %q", c.name, mnt, root, c.mnt, c.root)
		}
	}
	if mnt, _ := cgroup2Mount(filepath.Join(t.TempDir(), "missing")); mnt != "" {
		t.Errorf("no mountinfo: %q", mnt)
	}
}

// TestKernelOwner: the owner table entry of a socket found at start-up
// flags the thread and cgroup it does not know, so that the kernel's
// later events of that socket leave them absent instead of zero.
func TestKernelOwner(t *testing.T) {
	o := result.Owner{Known: true, PID: 10, TID: 99, UID: 1000, CgroupID: 77, NoTID: true}
	copy(o.Comm[:], "nginx")
	k := kernelOwner(&o)
	if k.Tgid != 10 || k.Pid != 0 || k.Uid != 1000 || k.CgroupId != 77 || k.Flags != uint32(tcpscopeOwnerFlagOWNER_NO_TID) || k.Comm[0] != 'n' {
		t.Errorf("entry %+v", k)
	}
	o.NoCgroup = true
	if k := kernelOwner(&o); k.CgroupId != 0 || k.Flags != uint32(tcpscopeOwnerFlagOWNER_NO_TID|tcpscopeOwnerFlagOWNER_NO_CGROUP) {
		t.Errorf("entry without cgroup %+v", k)
	}
	// And back: an event carrying that entry decodes to the same unknowns.
	ev := tcpscopeSockEvent{Kind: uint8(tcpscopeEventKindEVENT_STATE), Family: afInet,
		Flags: uint8(tcpscopeSockEventFlagSOCK_HAS_OWNER), Owner: kernelOwner(&o)}
	var r Record
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Owner.Known || r.Owner.PID != 10 || !r.Owner.NoTID || !r.Owner.NoCgroup {
		t.Errorf("decoded owner %+v", r.Owner)
	}
	ev.Owner.Flags = 0
	if err := testDecoder().decode(rawBytes(&ev), &r); err != nil {
		t.Fatal(err)
	}
	if r.Owner.NoTID || r.Owner.NoCgroup {
		t.Errorf("owner recorded by the kernel decoded with unknowns: %+v", r.Owner)
	}
}
