package tracer

import (
	"time"

	"golang.org/x/sys/unix"
)

// monoClock converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall-clock time.
// The offset is re-read by sync so that wall-clock steps (NTP) show up
// within one drain interval. Used by the reader goroutine only.
type monoClock struct {
	offsetNs int64 // wall - monotonic, in ns
}

func newMonoClock() *monoClock {
	c := &monoClock{}
	c.sync()
	return c
}

// sync re-reads the offset between wall clock and CLOCK_MONOTONIC.
func (c *monoClock) sync() {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return
	}
	after := time.Now()
	wall := before.UnixNano() + after.Sub(before).Nanoseconds()/2
	c.offsetNs = wall - ts.Nano()
}

// wall returns the wall-clock time of a monotonic timestamp.
func (c *monoClock) wall(monoNs uint64) time.Time {
	return time.Unix(0, int64(monoNs)+c.offsetNs)
}
