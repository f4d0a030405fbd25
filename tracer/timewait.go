package tracer

import (
	"time"

	"github.com/tcpscope/tcpscope/tracer/deadline"

	"github.com/tcpscope/tcpscope/tracer/analysis/result"
)

// TIME_WAIT lifecycle. The mini-socket that replaces the active closer in
// TIME_WAIT fires no state event; the kernel side reports its timer
// instead (tcpscope.c, on_tw_timer). The tracker turns those raw events
// into two state records of the TIME_WAIT socket, flagged TimeWait:
//
//	FIN_WAIT2 -> TIME_WAIT (or CLOSING -> TIME_WAIT)  when the timer is armed
//	TIME_WAIT -> CLOSE, TimeWaitEnd "expired"|"killed" when it expires or is cancelled
//
// A re-arm (a segment arrived in TIME_WAIT) shows as cancel then arm: a
// cancel is held for one tick, and dropped when an arm of the same socket
// follows. The start record is held until the replaced socket's
// FIN_WAIT2/CLOSING -> CLOSE record (which follows at once) names the old
// state and the owner, which both TIME_WAIT records carry; it is written
// just before that CLOSE, which the kernel stamps after arming the timer.

// twEvent values of Record.twEvent (enum tw_event).
const (
	twArmed     = uint8(tcpscopeTwEventTW_ARMED)
	twExpired   = uint8(tcpscopeTwEventTW_EXPIRED)
	twCancelled = uint8(tcpscopeTwEventTW_CANCELLED)
)

// twSocket is a socket in TIME_WAIT: kept for the 60 s of TIME_WAIT, so
// compact (8 bytes, by value in the map): the start is the low 32 bits
// of its Unix µs (twStartOf), the owner is interned, the records held for
// a moment are apart (twHeldRecs).
type twSocket struct {
	startUs uint32 // zero when TIME_WAIT began before tracing
	owner   uint32 // of the socket it replaced, in owners; 0 none yet
}

// twStartOf is twSocket.startUs of a TIME_WAIT that began at t (never
// zero: one µs later then).
func twStartOf(t time.Time) uint32 {
	if us := uint32(t.UnixMicro()); us != 0 {
		return us
	}
	return 1
}

// twDuration is how long a TIME_WAIT that began at startUs (twStartOf)
// lasted when it ended at end: exact to the µs for a TIME_WAIT shorter
// than 35 minutes (2^31 µs; Linux's lasts 60 s, longer only when
// re-armed by the peer's retransmissions); 0, not a negative duration,
// when the clock stepped back past its start.
func twDuration(startUs uint32, end time.Time) time.Duration {
	d := int32(uint32(end.UnixMicro()) - startUs)
	if d <= 0 {
		return 0
	}
	return time.Duration(d) * time.Microsecond
}

// twHeldRecs are the records held back for a socket in TIME_WAIT.
type twHeldRecs struct {
	start  *Record // held until the old state is known
	cancel *Record // held: killed, unless an arm follows
}

type twTracker struct {
	socks map[uint64]twSocket // by cookie
	// holding: the sockets with a held record, by cookie: those whose
	// TIME_WAIT began or was cancelled within twHold, a few in a storm.
	holding map[uint64]twHeldRecs
	// held: the held start and cancel records by time, so that a tick
	// touches only those due, not every socket in TIME_WAIT. An entry
	// whose record is no longer held is skipped when it comes out.
	held   deadline.Heap[twHeld]
	endRec Record // the TIME_WAIT -> CLOSE record being emitted
	// free: held records' storage for reuse (a Record is 480 B).
	free   []*Record
	owners owners
	peak   int // of socks (ShrinkMap)
	// holdingPeak: of holding (ShrinkMap).
	holdingPeak int
}

func newTWTracker() *twTracker {
	return &twTracker{socks: map[uint64]twSocket{}, holding: map[uint64]twHeldRecs{}}
}

// setHeld notes what is held for the socket with cookie.
func (t *twTracker) setHeld(cookie uint64, h twHeldRecs) {
	if h.start == nil && h.cancel == nil {
		delete(t.holding, cookie)
	} else {
		t.holding[cookie] = h
	}
}

// twHeld is a held record of the socket with cookie.
type twHeld struct {
	cookie uint64
	rec    *Record
}

// hold returns a copy of r in reused storage.
func (t *twTracker) hold(r *Record) *Record {
	var h *Record
	if n := len(t.free); n > 0 {
		h, t.free = t.free[n-1], t.free[:n-1]
	} else {
		h = new(Record)
	}
	*h = *r
	return h
}

// unhold gives a held record's storage back, when it leaves the heap.
func (t *twTracker) unhold(h *Record) {
	if h != nil && len(t.free) < maxFreeRecords {
		*h = Record{}
		t.free = append(t.free, h)
	}
}

// maxFreeRecords bounds the reused storage of held records: more than a
// storm holds at once within twHold.
const maxFreeRecords = 1024

// handle takes a raw TIME_WAIT timer record.
func (t *twTracker) handle(r *Record, emit func(*Record) error) error {
	st, ok := t.socks[r.Cookie]
	switch r.twEvent {
	case twArmed:
		if ok {
			// cancel + arm: a re-arm, TIME_WAIT goes on. The held cancel
			// is skipped when it comes out of the heap.
			if h, held := t.holding[r.Cookie]; held {
				h.cancel = nil
				t.setHeld(r.Cookie, h)
			}
			return nil
		}
		start := t.hold(r)
		start.twEvent = 0
		start.TimeWait = true
		start.OldState, start.State = StateFinWait2, StateTimeWait
		t.socks[r.Cookie] = twSocket{startUs: twStartOf(r.Time)}
		t.peak = max(t.peak, len(t.socks))
		t.holding[r.Cookie] = twHeldRecs{start: start}
		t.holdingPeak = max(t.holdingPeak, len(t.holding))
		t.held.Push(r.Time.UnixNano(), twHeld{cookie: r.Cookie, rec: start})
	case twCancelled:
		held := t.hold(r)
		if !ok {
			t.socks[r.Cookie] = st // began before tracing
			t.peak = max(t.peak, len(t.socks))
		}
		h := t.holding[r.Cookie]
		h.cancel = held
		t.holding[r.Cookie] = h
		t.held.Push(r.Time.UnixNano(), twHeld{cookie: r.Cookie, rec: held})
	case twExpired:
		return t.end(r, st, ok, "expired", emit)
	}
	return nil
}

// before sees every other record just before it is emitted: the replaced
// socket's FIN_WAIT2/CLOSING -> CLOSE releases the held start, with its
// old state, ahead of itself (timestamp order: the timer is armed first).
func (t *twTracker) before(r *Record, emit func(*Record) error) error {
	// Only a socket in FIN_WAIT2 or CLOSING goes into TIME_WAIT
	// (tcp_time_wait): other CLOSEs are spared the lookup.
	if r.Type != TypeState || r.State != StateClose || r.OldState != StateFinWait2 && r.OldState != StateClosing ||
		len(t.holding) == 0 {
		return nil
	}
	h, ok := t.holding[r.Cookie]
	if !ok || h.start == nil {
		return nil
	}
	start := h.start
	h.start = nil
	t.setHeld(r.Cookie, h)
	st := t.socks[r.Cookie]
	if r.OldState == StateClosing {
		start.OldState = r.OldState
	}
	// The TIME_WAIT socket belongs to no process: it carries the owner of
	// the socket it replaced.
	t.owners.release(st.owner)
	st.owner, start.Owner = t.owners.intern(&r.Owner), r.Owner
	t.socks[r.Cookie] = st
	return emit(start)
}

// end emits TIME_WAIT -> CLOSE for st (known: ok) and forgets it.
func (t *twTracker) end(r *Record, st twSocket, ok bool, how string, emit func(*Record) error) error {
	delete(t.socks, r.Cookie)
	h, held := t.holding[r.Cookie]
	delete(t.holding, r.Cookie)
	if held && h.start != nil {
		if err := emit(h.start); err != nil {
			return err
		}
	}
	end := &t.endRec
	*end = *r
	end.twEvent = 0
	end.TimeWait = true
	end.OldState, end.State = StateTimeWait, StateClose
	end.TimeWaitEnd = how
	if ok && st.startUs != 0 {
		end.TimeWaitDur = twDuration(st.startUs, end.Time)
	}
	if ok {
		end.Owner = t.owners.get(st.owner)
		t.owners.release(st.owner)
	}
	return emit(end)
}

// tick releases held starts (old state FIN_WAIT2 when no CLOSE came) and
// turns cancels that no arm followed into kills, once held longer than
// twHold. With now zero (exit) it releases everything held. It touches
// only the held records that are due.
func (t *twTracker) tick(now time.Time, emit func(*Record) error) error {
	var due int64
	if !now.IsZero() {
		due = now.Add(-twHold).UnixNano()
	}
	for {
		var h twHeld
		var ok bool
		if now.IsZero() {
			h, _, ok = t.held.Pop()
		} else {
			h, _, ok = t.held.Due(due - 1) // held longer than twHold
		}
		if !ok {
			break
		}
		hr, ok := t.holding[h.cookie]
		var err error
		switch {
		case ok && hr.start == h.rec:
			hr.start = nil
			t.setHeld(h.cookie, hr)
			err = emit(h.rec)
		case ok && hr.cancel == h.rec:
			st, known := t.socks[h.cookie]
			err = t.end(h.rec, st, known, "killed", emit)
		}
		// The heap owns the held records' storage: emitted (records
		// are copied by the next stages) or no longer held (ended,
		// re-armed), it is reused.
		t.unhold(h.rec)
		if err != nil {
			return err
		}
	}
	if now.IsZero() || t.held.Len() == 0 {
		// A storm's map memory goes back once it is over.
		t.socks = ShrinkMap(t.socks, &t.peak)
		t.holding = ShrinkMap(t.holding, &t.holdingPeak)
	}
	return nil
}

// twHold: a re-arm's arm follows its cancel within microseconds.
const twHold = 50 * time.Millisecond

// owners interns the owners of TIME_WAIT sockets: a storm's sockets
// mostly share a few processes, so each TIME_WAIT socket keeps an index
// (4 bytes) instead of an Owner (~60). Index 0 is no owner.
type owners struct {
	idx  map[result.Owner]uint32
	list []ownerRef // by index - 1
	free []uint32
}

type ownerRef struct {
	o    result.Owner
	refs int
}

// intern returns o's index, counting one more reference.
func (w *owners) intern(o *result.Owner) uint32 {
	if !o.Known {
		return 0
	}
	if i, ok := w.idx[*o]; ok {
		w.list[i-1].refs++
		return i
	}
	if w.idx == nil {
		w.idx = map[result.Owner]uint32{}
	}
	var i uint32
	if n := len(w.free); n > 0 {
		i, w.free = w.free[n-1], w.free[:n-1]
		w.list[i-1] = ownerRef{o: *o, refs: 1}
	} else {
		w.list = append(w.list, ownerRef{o: *o, refs: 1})
		i = uint32(len(w.list))
	}
	w.idx[*o] = i
	return i
}

// get returns the owner of index i (the zero Owner for 0).
func (w *owners) get(i uint32) result.Owner {
	if i == 0 {
		return result.Owner{}
	}
	return w.list[i-1].o
}

// release drops a reference to index i.
func (w *owners) release(i uint32) {
	if i == 0 {
		return
	}
	r := &w.list[i-1]
	if r.refs--; r.refs == 0 {
		delete(w.idx, r.o)
		*r = ownerRef{}
		w.free = append(w.free, i)
	}
}
