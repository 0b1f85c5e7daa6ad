package tap

import (
	"sort"
	"sync"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// eventOverhead is what an event costs a client's queue beyond its raw
// bytes: the Event itself, its header scan and the queue's reference.
const eventOverhead = 256

// batch is one published batch, shared read-only by every client's queue:
// the hub copies the router's batch once, whatever the number of clients.
type batch struct {
	evs []*event.Event
	cum []int64 // cum[i] is the cost of evs[:i]: raw bytes plus eventOverhead each
}

func newBatch(evs []*event.Event) *batch {
	b := &batch{evs: make([]*event.Event, len(evs)), cum: make([]int64, len(evs)+1)}
	copy(b.evs, evs)
	for i, ev := range evs {
		b.cum[i+1] = b.cum[i] + int64(len(ev.Raw)) + eventOverhead
	}
	return b
}

// span is the part of a batch a queue took.
type span struct {
	b      *batch
	lo, hi int
}

func (s span) events() []*event.Event { return s.b.evs[s.lo:s.hi] }

// evQueue is a client's bounded queue of batches. Queueing a whole batch
// costs a lock and an append, whatever its length and whatever the
// client's filter: the writer goroutine filters and encodes. It is bounded
// in events and in bytes; it wakes the writer only when it goes from empty
// to non-empty.
type evQueue struct {
	mu       sync.Mutex
	items    []span
	n        int   // events queued
	bytes    int64 // their cost
	max      int
	maxBytes int64
	wake     chan struct{} // capacity 1: "the queue is not empty"
}

func newEvQueue(max int, maxBytes int64) *evQueue {
	return &evQueue{max: max, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// push queues the prefix of b that fits and returns its length. A whole
// batch is queued by reference; a prefix is copied out, so a client that
// takes a few events does not keep the rest of the batch alive.
func (q *evQueue) push(b *batch) int {
	q.mu.Lock()
	n := min(q.max-q.n, len(b.evs))
	if room := q.maxBytes - q.bytes; n > 0 && b.cum[n] > room {
		// The longest prefix whose cost fits.
		n = sort.Search(n+1, func(i int) bool { return b.cum[i] > room }) - 1
	}
	if n <= 0 {
		q.mu.Unlock()
		return 0
	}
	first := q.n == 0
	s := span{b: b, lo: 0, hi: n}
	if n < len(b.evs) {
		s = span{b: &batch{evs: append([]*event.Event(nil), b.evs[:n]...)}, lo: 0, hi: n}
	}
	q.items = append(q.items, s)
	q.n += n
	q.bytes += b.cum[n]
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return n
}

// take swaps the queued spans for spare (emptied), so the two slices
// alternate and nothing is allocated.
func (q *evQueue) take(spare []span) []span {
	clear(spare) // drop the references, so the GC can free the events
	q.mu.Lock()
	out := q.items
	q.items = spare[:0]
	q.n, q.bytes = 0, 0
	q.mu.Unlock()
	return out
}

// len is the number of queued events.
func (q *evQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// size is the cost of the queued events in bytes.
func (q *evQueue) size() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}
