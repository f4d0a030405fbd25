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
// since the previous warning.
type lossWarnings struct {
	lostAt    time.Time // last "events lost" warning
	lost      [tcpscopeEventKindEVENT_KIND_MAX]uint64
	evictedAt time.Time // last "connection table full" warning
	evicted   uint64
}

// warn logs what is due at now.
func (w *lossWarnings) warn(now time.Time, log *slog.Logger, maxConns int) {
	var total uint64
	for _, n := range w.lost {
		total += n
	}
	if total > 0 && (w.lostAt.IsZero() || now.Sub(w.lostAt) >= lossWarnEvery) {
		attrs := make([]any, 0, 2*len(w.lost)+2)
		for kind, n := range w.lost {
			if n > 0 {
				attrs = append(attrs, lostKindNames[kind], n)
			}
		}
		if !w.lostAt.IsZero() {
			attrs = append(attrs, "since", now.Sub(w.lostAt).Round(time.Second).String())
		}
		log.Warn("ring buffer full, events lost; raise --ring-size or narrow filters (warned at most every 10s; lost records count every loss)", attrs...)
		w.lost, w.lostAt = [tcpscopeEventKindEVENT_KIND_MAX]uint64{}, now
	}
	if w.evicted > 0 && (w.evictedAt.IsZero() || now.Sub(w.evictedAt) >= lossWarnEvery) {
		log.Warn("connection table full: forgot the least recently seen connections; their later records get new conn ids (raise --max-conns)",
			"forgotten", w.evicted, "max_conns", maxConns)
		w.evicted, w.evictedAt = 0, now
	}
}
