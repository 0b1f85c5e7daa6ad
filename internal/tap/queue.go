package tap

import (
	"sync"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// evQueue is a client's bounded queue. Unlike a channel it hands the
// writer everything pending at once and wakes it only when the queue goes
// from empty to non-empty, so a busy tap costs the router a lock and an
// append per event rather than a goroutine wake-up.
type evQueue struct {
	mu   sync.Mutex
	buf  []*event.Event
	max  int
	wake chan struct{} // capacity 1: "the queue is not empty"
}

func newEvQueue(max int) *evQueue {
	return &evQueue{buf: make([]*event.Event, 0, max), max: max, wake: make(chan struct{}, 1)}
}

// pushMany queues the prefix of evs that fits and returns its length.
func (q *evQueue) pushMany(evs []*event.Event) int {
	q.mu.Lock()
	n := min(q.max-len(q.buf), len(evs))
	if n <= 0 {
		q.mu.Unlock()
		return 0
	}
	first := len(q.buf) == 0
	q.buf = append(q.buf, evs[:n]...)
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return n
}

// take swaps the pending events for spare (emptied), so the two buffers
// alternate and nothing is allocated. spare must be what take returned
// last (or empty): its length covers every slot that holds an event.
func (q *evQueue) take(spare []*event.Event) []*event.Event {
	clear(spare) // drop the references, so the GC can free the events
	q.mu.Lock()
	out := q.buf
	q.buf = spare[:0]
	q.mu.Unlock()
	return out
}

// len is the number of queued events.
func (q *evQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf)
}
