package tracer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func fileInode(t *testing.T, path string) uint32 {
	t.Helper()
	ino, err := netnsInode(path)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNetnsNamesLookup(t *testing.T) {
	named, docker := t.TempDir(), t.TempDir()
	touch(t, filepath.Join(named, "blue"))
	touch(t, filepath.Join(docker, "c0ffee"))
	n := newNetnsNames([]netnsNameDir{{named, false}, {docker, true}})
	defer n.Close()

	if got := n.Lookup(fileInode(t, filepath.Join(named, "blue"))); got != "blue" {
		t.Errorf("ip netns name: got %q, want blue", got)
	}
	want := filepath.Join(docker, "c0ffee")
	if got := n.Lookup(fileInode(t, want)); got != want {
		t.Errorf("docker namespace: got %q, want its path %q", got, want)
	}
	if got := n.Lookup(0); got != "" {
		t.Errorf("inode 0: got %q", got)
	}
}

// A namespace named after start-up gets its name once a miss has made the
// background goroutine rescan; until then, and for unnamed ones, "".
func TestNetnsNamesMissRescans(t *testing.T) {
	dir := t.TempDir()
	n := newNetnsNames([]netnsNameDir{{dir, false}})
	n.rescanMin = time.Millisecond
	defer n.Close()

	late := filepath.Join(dir, "late")
	touch(t, late)
	ino := fileInode(t, late)
	deadline := time.Now().Add(5 * time.Second)
	for n.Lookup(ino) != "late" {
		if time.Now().After(deadline) {
			t.Fatal("a namespace named after start was never resolved")
		}
		time.Sleep(time.Millisecond)
	}
	unnamed := fileInode(t, t.TempDir())
	for i := 0; i < 100; i++ {
		if got := n.Lookup(unnamed); got != "" {
			t.Fatalf("unnamed namespace got %q", got)
		}
	}
}

func TestNetnsNamerSetsName(t *testing.T) {
	dir := t.TempDir()
	touch(t, filepath.Join(dir, "red"))
	names := newNetnsNames([]netnsNameDir{{dir, false}})
	defer names.Close()
	var got []string
	s := &NetnsNamer{Next: recordFunc(func(r *Record) error { got = append(got, r.NetnsName); return nil }), Names: names}
	ino := fileInode(t, filepath.Join(dir, "red"))
	for _, r := range []Record{{Type: TypeState, Netns: ino}, {Type: TypeLost}} {
		if err := s.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got[0] != "red" || got[1] != "" {
		t.Errorf("names: %q, want [red \"\"]", got)
	}
}

func BenchmarkNetnsNamesLookup(b *testing.B) {
	n := newNetnsNames(nil)
	defer n.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		n.Lookup(4026531840)
	}
}

// recordFunc is a Sink calling a function per record.
type recordFunc func(*Record) error

func (f recordFunc) Write(r *Record) error { return f(r) }
func (f recordFunc) Flush() error          { return nil }
