//go:build linux

package tracer

import (
	"os"
	"strings"
	"testing"
)

// TestOpenNetnsRejectsOtherFiles: --netns takes only a network namespace:
// a regular file or a namespace of another kind is a clear error, not a
// filter on a meaningless inode.
func TestOpenNetnsRejectsOtherFiles(t *testing.T) {
	ns, err := OpenNetns("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("own network namespace: %v", err)
	}
	if ns.Inode == 0 {
		t.Error("own network namespace: inode 0")
	}
	ns.Close()

	regular := t.TempDir() + "/not-a-namespace"
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/proc/self/ns/mnt": "not of a network namespace",
		"/proc/self/ns/uts": "not of a network namespace",
		regular:             "is not a network namespace file",
	} {
		ns, err := OpenNetns(path)
		if err == nil {
			ns.Close()
			t.Errorf("%s: accepted", path)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q, want it to say %q", path, err, want)
		}
	}
}
