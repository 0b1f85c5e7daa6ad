package stats

import (
	"cmp"
	"slices"
)

// Count is a value and its estimated frequency.
type Count struct {
	Value string
	Count uint64
	Error uint64 // the estimate exceeds the true count by at most Error
}

// TopK finds frequent values with the Space-Saving algorithm (Metwally et
// al.): a fixed number of counters; a new value replaces the smallest
// counter and inherits its count as the error bound. Any value more
// frequent than n/capacity is guaranteed to be kept.
type TopK struct {
	capacity int
	index    map[string]int // value -> position in heap
	heap     []Count        // min-heap by Count
}

// NewTopK returns a TopK with capacity counters.
func NewTopK(capacity int) *TopK {
	capacity = max(capacity, 1)
	return &TopK{capacity: capacity, index: make(map[string]int, capacity)}
}

// Add counts one occurrence of v.
func (t *TopK) Add(v string) {
	if i, ok := t.index[v]; ok {
		t.heap[i].Count++
		t.down(i)
		return
	}
	if len(t.heap) < t.capacity {
		t.heap = append(t.heap, Count{Value: v, Count: 1})
		t.index[v] = len(t.heap) - 1
		t.up(len(t.heap) - 1)
		return
	}
	min := &t.heap[0]
	delete(t.index, min.Value)
	*min = Count{Value: v, Count: min.Count + 1, Error: min.Count}
	t.index[v] = 0
	t.down(0)
}

// Top returns the k most frequent values, most frequent first.
func (t *TopK) Top(k int) []Count {
	out := slices.Clone(t.heap)
	slices.SortFunc(out, func(a, b Count) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}

func (t *TopK) less(i, j int) bool { return t.heap[i].Count < t.heap[j].Count }

func (t *TopK) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.index[t.heap[i].Value] = i
	t.index[t.heap[j].Value] = j
}

func (t *TopK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *TopK) down(i int) {
	n := len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.less(r, l) {
			m = r
		}
		if !t.less(m, i) {
			return
		}
		t.swap(i, m)
		i = m
	}
}
