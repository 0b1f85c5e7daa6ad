package tap

import (
	"sync"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// eventOverhead is what an event costs a client's queue beyond its raw
// bytes: the Event itself, its header scan and the queue's reference.
const eventOverhead = 256

// batch is one published batch, shared read-only by every client's queue:
// the hub copies the router's batch once, whatever the number of clients.
type batch struct {
	evs  []*event.Event
	cost int64 // raw bytes plus eventOverhead per event
}

func newBatch(evs []*event.Event) *batch {
	b := &batch{evs: make([]*event.Event, len(evs))}
	copy(b.evs, evs)
	for _, ev := range evs {
		b.cost += int64(len(ev.Raw))
	}
	b.cost += int64(len(evs)) * eventOverhead
	return b
}

func evCost(ev *event.Event) int64 { return int64(len(ev.Raw)) + eventOverhead }

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
// batch is queued by reference, in constant time; only a queue too full
// for it walks the events for the prefix that fits, and copies it out, so
// a client that takes a few events does not keep the rest alive.
func (q *evQueue) push(b *batch) int {
	q.mu.Lock()
	n, cost := len(b.evs), b.cost
	if q.n+n > q.max || q.bytes+cost > q.maxBytes {
		n, cost = 0, 0
		for n < len(b.evs) && q.n+n < q.max {
			c := evCost(b.evs[n])
			if q.bytes+cost+c > q.maxBytes {
				break
			}
			n, cost = n+1, cost+c
		}
	}
	if n == 0 {
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
	q.bytes += cost
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return n
}

// full reports whether the queue has no room for another event.
func (q *evQueue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n >= q.max || q.bytes+eventOverhead > q.maxBytes
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
