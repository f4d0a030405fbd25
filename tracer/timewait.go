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

type twSocket struct {
	owner     result.Owner // of the socket it replaced
	start     time.Time    // zero when TIME_WAIT began before tracing
	startRec  *Record      // held until the old state is known
	cancelRec *Record      // held: killed, unless an arm follows
}

type twTracker struct {
	socks map[uint64]*twSocket // by cookie
	// held: the held start and cancel records by time, so that a tick
	// touches only those due, not every socket in TIME_WAIT. An entry
	// whose record is no longer held is skipped when it comes out.
	held deadline.Heap[twHeld]
}

func newTWTracker() *twTracker { return &twTracker{socks: map[uint64]*twSocket{}} }

// twHeld is a held record of the socket with cookie.
type twHeld struct {
	cookie uint64
	rec    *Record
}

// handle takes a raw TIME_WAIT timer record.
func (t *twTracker) handle(r *Record, emit func(*Record) error) error {
	st := t.socks[r.Cookie]
	switch r.twEvent {
	case twArmed:
		if st != nil {
			st.cancelRec = nil // cancel + arm: a re-arm, TIME_WAIT goes on
			return nil
		}
		start := *r
		start.twEvent = 0
		start.TimeWait = true
		start.OldState, start.State = StateFinWait2, StateTimeWait
		t.socks[r.Cookie] = &twSocket{start: r.Time, startRec: &start}
		t.held.Push(r.Time.UnixNano(), twHeld{cookie: r.Cookie, rec: &start})
	case twCancelled:
		if st == nil {
			st = &twSocket{}
			t.socks[r.Cookie] = st
		}
		held := *r
		st.cancelRec = &held
		t.held.Push(r.Time.UnixNano(), twHeld{cookie: r.Cookie, rec: &held})
	case twExpired:
		return t.end(r, st, "expired", emit)
	}
	return nil
}

// before sees every other record just before it is emitted: the replaced
// socket's FIN_WAIT2/CLOSING -> CLOSE releases the held start, with its
// old state, ahead of itself (timestamp order: the timer is armed first).
func (t *twTracker) before(r *Record, emit func(*Record) error) error {
	if r.Type != TypeState || r.State != StateClose || len(t.socks) == 0 {
		return nil
	}
	st := t.socks[r.Cookie]
	if st == nil || st.startRec == nil {
		return nil
	}
	start := st.startRec
	st.startRec = nil
	if r.OldState == 11 /* CLOSING */ {
		start.OldState = r.OldState
	}
	// The TIME_WAIT socket belongs to no process: it carries the owner of
	// the socket it replaced.
	st.owner, start.Owner = r.Owner, r.Owner
	return emit(start)
}

// end emits TIME_WAIT -> CLOSE for st and forgets it.
func (t *twTracker) end(r *Record, st *twSocket, how string, emit func(*Record) error) error {
	delete(t.socks, r.Cookie)
	if st != nil && st.startRec != nil {
		if err := emit(st.startRec); err != nil {
			return err
		}
	}
	end := *r
	end.twEvent = 0
	end.TimeWait = true
	end.OldState, end.State = StateTimeWait, StateClose
	end.TimeWaitEnd = how
	if st != nil && !st.start.IsZero() {
		end.TimeWaitDur = r.Time.Sub(st.start)
	}
	if st != nil {
		end.Owner = st.owner
	}
	return emit(&end)
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
		st := t.socks[h.cookie]
		switch {
		case st == nil: // ended since
		case st.startRec == h.rec:
			st.startRec = nil
			if err := emit(h.rec); err != nil {
				return err
			}
		case st.cancelRec == h.rec:
			if err := t.end(h.rec, st, "killed", emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// twHold: a re-arm's arm follows its cancel within microseconds.
const twHold = 50 * time.Millisecond
