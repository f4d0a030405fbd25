package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// AT_CLKTCK from the auxiliary vector (what sysconf(_SC_CLK_TCK) returns),
// 100 if it cannot be read.
var clockTicks = readClockTicks()

// atClkTck is the auxiliary vector entry of the clock tick rate.
const atClkTck = 17

func readClockTicks() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if v, ok := auxvValue(b, atClkTck); ok && v > 0 {
		return int64(v)
	}
	return 100
}

// auxvValue finds key in a 64-bit auxiliary vector (pairs of native
// words).
func auxvValue(b []byte, key uint64) (uint64, bool) {
	for i := 0; i+16 <= len(b); i += 16 {
		k := binary.NativeEndian.Uint64(b[i:])
		v := binary.NativeEndian.Uint64(b[i+8:])
		if k == key {
			return v, true
		}
		if k == 0 {
			break
		}
	}
	return 0, false
}

// cpuTime is a process's utime + stime so far, all its threads, dead ones
// included, from /proc/PID/stat (resolution 1/clockTicks s).
func cpuTime(pid int) (time.Duration, error) {
	c, err := cpuTimes(pid)
	return c.user + c.sys, err
}

// cpuSplit is a process's CPU time so far, user and system apart.
type cpuSplit struct{ user, sys time.Duration }

// cpuTimes is a process's utime and stime so far, all its threads, dead
// ones included, from /proc/PID/stat.
func cpuTimes(pid int) (cpuSplit, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuSplit{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	return parseStatTimes(string(b))
}

// parseStatCPU extracts utime + stime (fields 14 and 15) from a
// /proc/PID/stat line.
func parseStatCPU(line string) (time.Duration, error) {
	c, err := parseStatTimes(line)
	return c.user + c.sys, err
}

// parseStatTimes extracts utime and stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses: fields are counted after its last ')'.
func parseStatTimes(line string) (cpuSplit, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return cpuSplit{}, fmt.Errorf("bad stat line %q", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return cpuSplit{}, fmt.Errorf("bad stat line %q", line)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuSplit{}, fmt.Errorf("bad stat line %q", line)
	}
	return cpuSplit{user: time.Duration(ut * int64(time.Second) / clockTicks), sys: time.Duration(st * int64(time.Second) / clockTicks)}, nil
}

// statusKiB reads one "Name:   N kB" field of /proc/PID/status (VmHWM,
// VmRSS).
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	return parseStatusKiB(string(b), field)
}

func parseStatusKiB(s, field string) (int64, error) {
	for _, l := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(l, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in status", field)
}

// bpfProgIDs returns the ids of the BPF programs a process holds, from the
// `prog_id:` lines of /proc/PID/fdinfo (program fds and link fds both name
// one). These are exactly the tracer's programs, whatever else loads
// programs meanwhile.
func bpfProgIDs(pid int) ([]uint32, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list fds of %d: %w", pid, err)
	}
	seen := map[uint32]bool{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		for _, id := range parseFdinfoProgIDs(string(b)) {
			seen[id] = true
		}
	}
	ids := make([]uint32, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

func parseFdinfoProgIDs(s string) []uint32 {
	var ids []uint32
	for _, l := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(l, "prog_id:")
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 32); err == nil {
			ids = append(ids, uint32(v))
		}
	}
	return ids
}

// fdKinds counts a process's fds by link target ("anon_inode:bpf_link",
// "anon_inode:[perf_event]", ...).
func fdKinds(pid int) map[string]int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	kinds := map[string]int{}
	for _, e := range ents {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			kinds[t]++
		}
	}
	return kinds
}

// hostTimes is the host's CPU time so far, summed over CPUs, from the
// first line of /proc/stat.
type hostTimes struct {
	busy    time.Duration // user, nice, system, irq, softirq, steal
	softirq time.Duration // part of busy
	total   time.Duration // busy, idle, iowait
}

func hostCPU() (hostTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseHostCPU(string(b))
}

func parseHostCPU(s string) (hostTimes, error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return hostTimes{}, fmt.Errorf("bad /proc/stat line %q", line)
	}
	var v [8]int64
	for i := range v {
		var err error
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return hostTimes{}, fmt.Errorf("bad /proc/stat line %q", line)
		}
	}
	tick := func(n int64) time.Duration { return time.Duration(n * int64(time.Second) / clockTicks) }
	// user nice system idle iowait irq softirq steal
	b := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return hostTimes{busy: tick(b), softirq: tick(v[6]), total: tick(b + v[3] + v[4])}, nil
}

// ksoftirqdPIDs returns the pids of the ksoftirqd kernel threads, which run
// softirq work (much of the load's own packet processing under pressure)
// that no process of the harness is charged for.
func ksoftirqdPIDs() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(comm), "ksoftirqd/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sumCPU is the summed CPU time of pids (those that cannot be read count
// 0).
func sumCPU(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		if d, err := cpuTime(pid); err == nil {
			sum += d
		}
	}
	return sum
}
