package tracer

import "time"

// ReplayPath is Run's consumer without its goroutines, on record time:
// raw ring records (a record dump) are copied into a batch, decoded and
// put through the stages into a sink; every 100 ms of record time it
// ticks as Run does (held records, the correlator's upkeep, the sink's
// flush as of that time).
type ReplayPath struct {
	dec   decoder
	st    *stages
	corr  *correlator
	b     *batch
	rec   Record
	tick  time.Time
	flush func(now time.Time) error
	// Records is how many records were decoded; Malformed how many not.
	Records, Malformed int
}

// NewReplayPath feeds sink; flush flushes it as of a time.
func NewReplayPath(sink Sink, flush func(now time.Time) error) *ReplayPath {
	corr := newCorrelator(DefaultMaxConns)
	return &ReplayPath{dec: decoder{clock: &monoClock{}, ifaces: map[uint32]ifaceInfo{}},
		st: newStages(corr, newTWTracker(), sink, reorderWindow), corr: corr, b: newBatch(), flush: flush}
}

// Feed puts one raw record through the path.
func (p *ReplayPath) Feed(raw []byte) error {
	if p.b.full() || !p.b.add(raw) {
		p.b.reset()
		p.b.add(raw)
	}
	if err := p.dec.decode(p.b.record(p.b.len()-1), &p.rec); err != nil {
		p.Malformed++
		return nil
	}
	p.Records++
	now := p.rec.Time
	if err := p.st.record(&p.rec); err != nil {
		return err
	}
	if p.tick.IsZero() {
		p.tick = now
	}
	if now.Sub(p.tick) < 100*time.Millisecond {
		return nil
	}
	p.tick = now
	return recordTimeTick(p.st, p.corr, now, p.flush)
}

// End releases what the stages hold.
func (p *ReplayPath) End() error { return p.st.End() }
