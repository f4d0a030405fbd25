package tracer

import "time"

// Connections whose closing records were lost. When records are lost (a
// full ring buffer or queue in a storm), a connection whose last records
// were among them shows no end: the analysis would keep its full state
// until --idle-timeout (10 minutes by default), and a long storm with
// losses would grow memory by that much. So, after records were lost, the
// tracer asks the kernel which full TCP sockets still exist (sock_diag, in
// every namespace it traces; not the TIME_WAIT mini-sockets, which outlive
// the connection's own life), at most once every
// deadSocketsEvery while losses go on, in a goroutine of its own (a
// storm's sockets take tens of milliseconds to list). Once the records
// have caught up with the moment of the listing, the stages that are
// DeadSocketsEnders end the connections that lost records, were quiet
// since before the listing, and whose sockets are all gone from it (or in
// TIME_WAIT: the analysis summarizes a connection whose sockets are closed
// or in TIME_WAIT alike).

// Dead socket sweep timing.
const (
	// deadSocketsEvery: at most one listing this often while records
	// are lost.
	deadSocketsEvery = 10 * time.Second
	// deadSocketsSettle: a listing is applied once records stamped this
	// long after it ended were read (or the ring was drained after that):
	// the records of what happened before it have come.
	deadSocketsSettle = time.Second
)

// LiveSockets is what the kernel listed at one moment: the full TCP
// sockets (not in TIME_WAIT), by cookie, of the namespaces it could list.
type LiveSockets struct {
	// At is when the listing began: a connection quiet since before it
	// whose sockets it does not list has ended. End is when it ended:
	// records stamped before End may tell of sockets closed while it
	// went on.
	At, End   time.Time
	netns     map[uint32]struct{}
	cookies   map[uint64]struct{}
	listeners map[uint64]struct{}
}

// NewLiveSockets returns a listing taken from at to end of the namespaces
// netns (inodes) with the full sockets cookies, of which listeners listen.
func NewLiveSockets(at, end time.Time, netns []uint32, cookies, listeners []uint64) *LiveSockets {
	l := &LiveSockets{At: at, End: end, netns: make(map[uint32]struct{}, len(netns)), cookies: make(map[uint64]struct{}, len(cookies)),
		listeners: make(map[uint64]struct{}, len(listeners))}
	for _, n := range netns {
		l.netns[n] = struct{}{}
	}
	for _, c := range cookies {
		l.cookies[c] = struct{}{}
	}
	for _, c := range listeners {
		l.listeners[c] = struct{}{}
	}
	return l
}

// Listed reports whether the sockets of namespace netns (inode) were
// listed.
func (l *LiveSockets) Listed(netns uint32) bool {
	_, ok := l.netns[netns]
	return ok
}

// Live reports whether the socket with cookie was listed: a full socket,
// not closed nor in TIME_WAIT.
func (l *LiveSockets) Live(cookie uint64) bool {
	_, ok := l.cookies[cookie]
	return ok
}

// Listener reports whether the socket with cookie was listed listening:
// a connection's record with a listener's cookie (a reset the listener
// sent for it) tells nothing of the connection's own socket.
func (l *LiveSockets) Listener(cookie uint64) bool {
	_, ok := l.listeners[cookie]
	return ok
}

// DeadSocketsEnder is a stage that ends the connections whose sockets are
// gone (see LiveSockets), after records were lost; it returns how many it
// ended.
type DeadSocketsEnder interface {
	EndDeadSockets(live *LiveSockets) (int, error)
}

// EndDeadSockets calls EndDeadSockets on the stages that are
// DeadSocketsEnders, in data order (DeadSocketsEnder).
func (p *Pipeline) EndDeadSockets(live *LiveSockets) (int, error) {
	total := 0
	for _, s := range p.stages {
		if e, ok := s.(DeadSocketsEnder); ok {
			n, err := e.EndDeadSockets(live)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}
