package tracer

import (
	"log/slog"
	"time"
)

// lossWarnEvery is the least time between two warnings about lost events
// (and between two about forgotten connections). Under sustained loss the
// reader drains every flush interval and would warn each time: stderr
// gets a reminder, the lost records keep every count exactly.
const lossWarnEvery = 10 * time.Second

// lossWarnings rate-limits the loss warnings: the first is logged at
// once, later ones at most once per lossWarnEvery, with the counts summed
// since the previous warning. Losses in the ring (the kernel found it
// full) and in the queue (the reader had to drop: analysis or output too
// slow) are warned apart: they call for different remedies.
type lossWarnings struct {
	lostAt    time.Time // last "events lost" warning
	ring      [tcpscopeEventKindEVENT_KIND_MAX]uint64
	queue     [tcpscopeEventKindEVENT_KIND_MAX]uint64
	evictedAt time.Time // last "connection table full" warning
	evicted   uint64
}

// Warnings per place, with the remedy that applies there.
const (
	lostInRingMsg  = "ring buffer full, events lost; raise --ring-size or narrow filters (warned at most every 10s; lost records count every loss)"
	lostInQueueMsg = "analysis or output too slow, records dropped after the ring; raise --queue-size for bursts, narrow filters, use --summary-only or --analysis=off, or --on-overflow block (warned at most every 10s; lost records count every loss)"
)

// warn logs what is due at now; final logs whatever is left (at exit).
func (w *lossWarnings) warn(now time.Time, log *slog.Logger, maxConns int, final bool) {
	if total(&w.ring)+total(&w.queue) > 0 && (final || w.lostAt.IsZero() || now.Sub(w.lostAt) >= lossWarnEvery) {
		for _, place := range []struct {
			counts *[tcpscopeEventKindEVENT_KIND_MAX]uint64
			msg    string
		}{{&w.ring, lostInRingMsg}, {&w.queue, lostInQueueMsg}} {
			if total(place.counts) == 0 {
				continue
			}
			attrs := make([]any, 0, 2*len(place.counts)+2)
			for kind, n := range place.counts {
				if n > 0 {
					name := lostKindNames[kind]
					if name == "" {
						name = "malformed"
					}
					attrs = append(attrs, name, n)
				}
			}
			if !w.lostAt.IsZero() {
				attrs = append(attrs, "since", now.Sub(w.lostAt).Round(time.Second).String())
			}
			log.Warn(place.msg, attrs...)
			*place.counts = [tcpscopeEventKindEVENT_KIND_MAX]uint64{}
		}
		w.lostAt = now
	}
	if w.evicted > 0 && (final || w.evictedAt.IsZero() || now.Sub(w.evictedAt) >= lossWarnEvery) {
		log.Warn("connection table full: forgot the least recently seen connections; their later records get new conn ids (raise --max-conns)",
			"forgotten", w.evicted, "max_conns", maxConns)
		w.evicted, w.evictedAt = 0, now
	}
}

func total(counts *[tcpscopeEventKindEVENT_KIND_MAX]uint64) uint64 {
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n
}
