package tracer

import (
	"net/netip"
	"time"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// StormPath feeds a storm of short connections through the stages
// (TIME_WAIT tracker, correlator, reorder) into a sink, as Run does after
// decoding, on simulated time: a benchmark of what each connection costs
// in the user-space path, and of what stays of it once closed.
type StormPath struct {
	st      *stages
	corr    *correlator
	rec     Record
	now     time.Time
	tick    time.Time
	Records int // records fed so far (timer events included)
	flush   func(now time.Time) error
}

// Storm timing: a connection every stormGap of record time; TIME_WAIT
// lasts 60 s.
const (
	stormGap  = 200 * time.Microsecond
	stormStep = 10 * time.Microsecond
)

// NewStormPath feeds sink; flush, called on every simulated tick (100 ms
// of record time), flushes the sink as of that time.
func NewStormPath(sink Sink, flush func(now time.Time) error) *StormPath {
	corr := newCorrelator(DefaultMaxConns)
	start := time.Unix(1_700_000_000, 0)
	return &StormPath{st: newStages(corr, newTWTracker(), sink, reorderWindow), corr: corr, now: start,
		tick: start, flush: flush}
}

// Conn feeds the records of the i-th connection of the storm, as traced
// in the server's namespace when the server closes first: the server
// socket's state changes, the packets at its interface, its TIME_WAIT
// start (the timer armed). The TIME_WAIT of connection i-300000 (60 s of
// record time earlier) expires first.
func (p *StormPath) Conn(i int) error {
	if j := i - int(60*time.Second/stormGap); j >= 0 {
		cli, srv, cookie := stormEnds(j)
		at := p.now
		if err := p.feed(Record{Type: TypeState, Time: at, Local: srv, Remote: cli, Cookie: cookie,
			HasState: true, twEvent: twExpired}); err != nil {
			return err
		}
	}
	cli, srv, cookie := stormEnds(i)
	t := p.now
	step := func() time.Time { t = t.Add(stormStep); return t }
	owner := result.Owner{Known: true, PID: 4242, TID: 4242, Comm: [16]byte{'s', 'e', 'r', 'v', 'e', 'r'}}
	st := func(old, new TCPState) Record {
		return Record{Type: TypeState, Time: step(), Netns: 1, Local: srv, Remote: cli, OldState: old, State: new,
			HasState: true, Cookie: cookie, Owner: owner}
	}
	pk := func(out bool, flags uint8, seq, ack, n uint32) Record {
		r := Record{Type: TypePacket, Time: step(), Netns: 1, Ifindex: 2, Ifname: "veth0", Flags: flags,
			Seq: seq, Ack: ack, Len: n, Win: 65535}
		if out {
			r.Dir, r.Src, r.Dst = DirOut, srv, cli
		} else {
			r.Dir, r.Src, r.Dst = DirIn, cli, srv
		}
		return r
	}
	c, s := uint32(i)*7919, uint32(i)*104729
	recs := [...]Record{
		pk(false, FlagSYN, c, 0, 0),
		pk(true, FlagSYN|FlagACK, s, c+1, 0),
		st(StateListen, StateSynRecv),
		pk(false, FlagACK, c+1, s+1, 0),
		st(StateSynRecv, StateEstablished),
		pk(false, FlagACK|FlagPSH, c+1, s+1, 100),
		pk(true, FlagACK, s+1, c+101, 0),
		pk(true, FlagACK|FlagPSH, s+1, c+101, 200),
		st(StateEstablished, StateFinWait1),
		pk(true, FlagACK|FlagFIN, s+201, c+101, 0),
		pk(false, FlagACK, c+101, s+202, 0),
		st(StateFinWait1, StateFinWait2),
		pk(false, FlagACK|FlagFIN, c+101, s+202, 0),
		{Type: TypeState, Time: step(), Local: srv, Remote: cli, Cookie: cookie, HasState: true, twEvent: twArmed},
		st(StateFinWait2, StateClose),
		pk(true, FlagACK, s+202, c+102, 0),
	}
	for k := range recs {
		if err := p.feed(recs[k]); err != nil {
			return err
		}
	}
	p.now = p.now.Add(stormGap)
	if p.now.Sub(p.tick) >= 100*time.Millisecond {
		p.tick = p.now
		return recordTimeTick(p.st, p.corr, p.now, p.flush)
	}
	return nil
}

// recordTimeTick is Run's tick on record time, for the benchmark paths:
// held records, the correlator's upkeep, the sink's flush as of now.
func recordTimeTick(st *stages, corr *correlator, now time.Time, flush func(time.Time) error) error {
	if err := st.tick(now, true); err != nil {
		return err
	}
	corr.upkeep(now, now)
	return flush(now)
}

func (p *StormPath) feed(r Record) error {
	p.rec = r
	p.Records++
	return p.st.record(&p.rec)
}

// End releases what the stages hold.
func (p *StormPath) End() error { return p.st.End() }

// stormEnds are connection i's client and server ends and the server
// socket's cookie: no 4-tuple repeats within 250 x 60000 connections.
func stormEnds(i int) (cli, srv netip.AddrPort, cookie uint64) {
	cli = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 60000 % 250), 1}), uint16(1024+i%60000))
	srv = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 2}), 80)
	return cli, srv, uint64(i)*2 + 1
}

// Idle lets 200 ms of record time pass without records, with its ticks.
func (p *StormPath) Idle() error {
	for range 2 {
		p.now = p.now.Add(100 * time.Millisecond)
		p.tick = p.now
		if err := p.st.tick(p.now, true); err != nil {
			return err
		}
		if err := p.flush(p.now); err != nil {
			return err
		}
	}
	return nil
}

// Quiet lets d of record time pass without records, with its ticks and
// the correlator's upkeep, and settles and sweeps it at the end.
func (p *StormPath) Quiet(d time.Duration) error {
	for end := p.now.Add(d); p.now.Before(end); {
		if err := p.Idle(); err != nil {
			return err
		}
		p.corr.upkeep(p.now, p.now)
	}
	p.corr.settle(p.now)
	p.corr.sweep(p.now)
	return nil
}
