//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/tcpscope/tcpscope/tracer"
)

// profiles are the debug profiles of one run: a CPU profile sampled from
// before the programs load until the run ends, and a heap profile
// (allocations since the start, and what is live at the end) written when
// it ends. Both files are created before anything is loaded, so a bad
// path is a usage error.
type profiles struct {
	cpu, mem         *os.File
	cpuName, memName string
}

// startProfiles creates the profile files named by --cpu-profile and
// --mem-profile ("" for none) and starts the CPU profile.
func startProfiles(cpuPath, memPath string) (*profiles, error) {
	p := &profiles{}
	var err error
	if memPath != "" {
		p.memName = "--mem-profile file " + tracer.QuoteArg(memPath)
		if p.mem, err = os.Create(memPath); err != nil {
			return nil, usageError{fmt.Errorf("create %s: %w", p.memName, pathErrno(err))}
		}
	}
	if cpuPath != "" {
		p.cpuName = "--cpu-profile file " + tracer.QuoteArg(cpuPath)
		if p.cpu, err = os.Create(cpuPath); err != nil {
			p.closeMem()
			return nil, usageError{fmt.Errorf("create %s: %w", p.cpuName, pathErrno(err))}
		}
		if err := pprof.StartCPUProfile(p.cpu); err != nil {
			p.cpu.Close()
			p.closeMem()
			return nil, fmt.Errorf("start cpu profile: %w", err)
		}
	}
	return p, nil
}

func (p *profiles) closeMem() {
	if p.mem != nil {
		p.mem.Close()
	}
}

// stop ends the CPU profile and writes the heap profile. It is called
// once, when the run ends (also after SIGINT: the first signal only
// cancels the run).
func (p *profiles) stop() error {
	var errs []error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		if err := p.cpu.Close(); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", p.cpuName, pathErrno(err)))
		}
	}
	if p.mem != nil {
		runtime.GC() // what is live at the end, not at the last GC
		err := pprof.Lookup("heap").WriteTo(p.mem, 0)
		if cerr := p.mem.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", p.memName, pathErrno(err)))
		}
	}
	return errors.Join(errs...)
}
