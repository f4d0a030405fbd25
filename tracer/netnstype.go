package tracer

import (
	"os"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace the tracer works in.
type Netns struct {
	// Inode identifies the namespace, as in `ls -i /proc/PID/ns/net`.
	Inode uint32
	// Path is the file it was opened from.
	Path string
	file *os.File // nil for the tracer's own namespace
}

// Close releases the namespace file.
func (n *Netns) Close() error {
	if n == nil || n.file == nil {
		return nil
	}
	return n.file.Close()
}

func netnsInode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}
