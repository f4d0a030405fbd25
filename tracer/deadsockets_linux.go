//go:build linux

package tracer

import "time"

// deadSockets is the Tracer's state for the dead socket sweep.
type deadSockets struct {
	list    func() (*LiveSockets, error) // the kernel's sockets; tests give a fake
	done    chan liveResult              // a listing's result, from its goroutine
	running bool
	pending *LiveSockets // listed, waiting for the records to catch up
	last    time.Time    // when the last listing began
	lostAt  uint64       // records lost (lostTotal) when it began
	ended   uint64       // connections ended, for the exit log
}

type liveResult struct {
	live *LiveSockets
	err  error
}

// deadSocketsTick starts a listing when records were lost since the last
// one (and deadSocketsEvery passed), and applies one that came back once
// the records caught up with its end: newest is the newest record's time
// (Unix ns); drained: every record read so far was consumed, the ring
// empty; idle: so was the last batch, and none came since (the reader
// may still hold up to a flush interval of records then).
func (t *Tracer) deadSocketsTick(now time.Time, newest int64, drained, idle bool, sink Sink) error {
	d := &t.dead
	if d.running {
		select {
		case res := <-d.done:
			d.running = false
			if res.err != nil {
				t.log.Debug("list sockets for the connections whose end was lost", "err", res.err)
			} else {
				d.pending = res.live
			}
		default:
		}
	}
	if d.pending != nil {
		due := d.pending.End.Add(deadSocketsSettle)
		if newest >= due.UnixNano() || drained && !now.Before(due) || idle && !now.Before(due.Add(t.cfg.FlushInterval)) {
			live := d.pending
			d.pending = nil
			if e, ok := sink.(DeadSocketsEnder); ok {
				n, err := e.EndDeadSockets(live)
				d.ended += uint64(n)
				if n > 0 {
					t.log.Debug("connections ended: records lost, sockets gone", "connections", n)
				}
				if err != nil {
					return err
				}
			}
		}
	}
	if d.list == nil || d.running || d.pending != nil || t.lostTotal == d.lostAt ||
		!d.last.IsZero() && now.Sub(d.last) < deadSocketsEvery {
		return nil
	}
	if d.done == nil {
		d.done = make(chan liveResult, 1)
	}
	d.running, d.last, d.lostAt = true, now, t.lostTotal
	list, done := d.list, d.done
	go func() {
		live, err := list()
		done <- liveResult{live, err}
	}()
	return nil
}

// reportDeadSockets logs, at exit, how many connections were ended
// because their sockets were gone after records were lost.
func (t *Tracer) reportDeadSockets() {
	if t.dead.ended > 0 {
		t.log.Info("connections ended early: records were lost, their sockets were gone (sock_diag); their summaries say \"events lost\"",
			"connections", t.dead.ended)
	}
}
