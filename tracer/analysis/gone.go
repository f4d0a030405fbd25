package analysis

import (
	"math/bits"

	"github.com/tcpscope/tcpscope/tracer/deadline"
)

// goneSet holds the ids of summarized connections, so that a late record
// of one (a TIME_WAIT's ACK or end) starts no second summary. The
// correlator gives ids in order, so the ids summarized in a storm fill
// runs of consecutive ids: they are kept as one bit each, in blocks of
// goneBlockIDs ids. A block goes when the latest expiry of its ids
// passes, so an id may be remembered longer than its own linger, never
// shorter; ids are never given twice, so remembering one longer costs
// only its block's memory. A storm's closed connections so take a bit
// each instead of a map entry (~60 bytes) and a queue entry (16).
type goneSet struct {
	blocks map[uint64]*goneBlock // by id / goneBlockIDs
	// expiry: block numbers by the expiry they had when queued; a block
	// whose expiry moved since is queued again when it comes out.
	expiry deadline.Heap[uint64]
	free   []*goneBlock
	ids    int // ids held, for tests and the memory figures
	peak   int // of blocks (tracer.ShrinkMap)
}

// goneBlockIDs: the ids of one block (256 bytes of bits).
const goneBlockIDs = 1024

// goneBlock holds the ids of one run: bit i of summarized for the id
// block*goneBlockIDs+i, and the same bit of idle when it was summarized
// as idle, not ended (a late record then keeps it the idle linger).
type goneBlock struct {
	summarized [goneBlockIDs / 64]uint64
	idle       [goneBlockIDs / 64]uint64
	until      int64 // Unix ns: the latest expiry of its ids
}

func newGoneSet() goneSet { return goneSet{blocks: map[uint64]*goneBlock{}} }

// bit returns id's block number, word and mask.
func goneBit(id uint64) (block uint64, word int, mask uint64) {
	i := id % goneBlockIDs
	return id / goneBlockIDs, int(i / 64), 1 << (i % 64)
}

// add remembers id until at least until (Unix ns); idle: summarized while
// not ended.
func (g *goneSet) add(id uint64, until int64, idle bool) {
	n, w, m := goneBit(id)
	b := g.blocks[n]
	if b == nil {
		if k := len(g.free); k > 0 {
			b, g.free = g.free[k-1], g.free[:k-1]
		} else {
			b = new(goneBlock)
		}
		g.blocks[n] = b
		g.peak = max(g.peak, len(g.blocks))
		g.expiry.Push(until, n)
	}
	if b.summarized[w]&m == 0 {
		g.ids++
	}
	b.summarized[w] |= m
	if idle {
		b.idle[w] |= m
	} else {
		b.idle[w] &^= m
	}
	b.until = max(b.until, until)
}

// has reports whether id is held; idle whether it was summarized as idle.
func (g *goneSet) has(id uint64) (ok, idle bool) {
	n, w, m := goneBit(id)
	b := g.blocks[n]
	if b == nil || b.summarized[w]&m == 0 {
		return false, false
	}
	return true, b.idle[w]&m != 0
}

// extend keeps id, held, at least until until.
func (g *goneSet) extend(id uint64, until int64) {
	n, _, _ := goneBit(id)
	if b := g.blocks[n]; b != nil {
		b.until = max(b.until, until)
	}
}

// sweep forgets the blocks whose ids all expired at now (Unix ns).
func (g *goneSet) sweep(now int64) {
	for {
		n, _, ok := g.expiry.Due(now)
		if !ok {
			break
		}
		b := g.blocks[n]
		switch {
		case b == nil:
		case b.until > now:
			g.expiry.Push(b.until, n) // a later id or record moved it
		default:
			for _, w := range b.summarized {
				g.ids -= bits.OnesCount64(w)
			}
			delete(g.blocks, n)
			if len(g.free) < maxFreeGoneBlocks {
				*b = goneBlock{}
				g.free = append(g.free, b)
			}
		}
	}
}

// maxFreeGoneBlocks bounds the blocks kept for reuse.
const maxFreeGoneBlocks = 64
