package deadline

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHeapOrder: values come out by due time whatever the push order, Due
// gives only what is due, Pop the rest.
func TestHeapOrder(t *testing.T) {
	var h Heap[int]
	r := rand.New(rand.NewPCG(1, 2))
	var want []int64
	for i := 0; i < 1000; i++ {
		at := r.Int64N(500)
		want = append(want, at)
		h.Push(at, i)
	}
	slices.Sort(want)
	var got []int64
	for {
		_, at, ok := h.Due(249)
		if !ok {
			break
		}
		got = append(got, at)
	}
	if n := len(got); n == 0 || got[n-1] > 249 {
		t.Fatalf("Due(249) gave %d values, last at %v", n, got[len(got)-1])
	}
	for {
		_, at, ok := h.Pop()
		if !ok {
			break
		}
		got = append(got, at)
	}
	if !slices.Equal(got, want) {
		t.Errorf("values not in due order")
	}
	if h.Len() != 0 {
		t.Errorf("Len %d after draining", h.Len())
	}
}

// TestHeapReleases: a drained heap that held a big backlog lets the
// storage go; a popped slot keeps no reference to its value.
func TestHeapReleases(t *testing.T) {
	var h Heap[*int]
	for i := 0; i < 2*shrinkAbove; i++ {
		v := i
		h.Push(int64(i), &v)
	}
	q := h.q[:cap(h.q)]
	h.Pop()
	if q[len(h.q)].v != nil {
		t.Error("a popped slot still references its value")
	}
	for h.Len() > 0 {
		h.Pop()
	}
	if h.q != nil {
		t.Errorf("a drained heap kept %d slots", cap(h.q))
	}
}

func BenchmarkHeapPushDue(b *testing.B) {
	var h Heap[uint64]
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.Push(int64(i), uint64(i))
		if h.Len() > 1024 {
			h.Due(int64(i))
		}
	}
}
