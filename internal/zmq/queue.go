package zmq

import (
	"context"
	"sync"
)

// outq is a peer's bounded send queue. The peer's writer takes everything
// queued in one swap, so a burst costs one lock round and one wake-up.
type outq struct {
	mu     sync.Mutex
	msgs   []qmsg
	ctrl   [2][]byte // the pending PING and PONG (ctrlPing, ctrlPong), encoded, written before msgs
	hwm    int
	closed bool
	wake   chan struct{} // cap 1: the writer has work

	unparked chan struct{} // Dial pipe: closed when it reconnects; socket.mu
}

func newOutq(hwm int) *outq {
	return &outq{hwm: hwm, msgs: make([]qmsg, 0, outqStartCap(hwm)), wake: make(chan struct{}, 1)}
}

// qmsg is a queued message and the tracker waiting for it to be written
// (nil for untracked sends): it travels with the message through reroutes.
type qmsg struct {
	m Msg
	t *tracker
}

// outqStartCap is the capacity a queue's arrays start with: the whole hwm
// when it is small (the default 1000), so they never grow.
func outqStartCap(hwm int) int { return min(hwm, 1024) }

// grow makes room for n more messages (q.mu held). It doubles, capped at
// the hwm, where append grows large slices by 1.25x: a lagging peer's
// queue filling to an hwm of 200000 then copies about its final size
// instead of five times that, under the lock the sender waits on.
func (q *outq) grow(n int) {
	need := len(q.msgs) + n
	if need <= cap(q.msgs) {
		return
	}
	m := make([]qmsg, len(q.msgs), max(min(2*cap(q.msgs), q.hwm), need))
	copy(m, q.msgs)
	q.msgs = m
}

func (q *outq) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues m if the queue has room.
func (q *outq) push(m qmsg) bool {
	q.mu.Lock()
	if q.closed || len(q.msgs) >= q.hwm {
		q.mu.Unlock()
		return false
	}
	q.grow(1)
	q.msgs = append(q.msgs, m)
	first := len(q.msgs) == 1
	q.mu.Unlock()
	if first {
		q.signal()
	}
	return true
}

// pushMany queues a prefix of ms that fits, tracked by t (may be nil),
// and returns its length.
func (q *outq) pushMany(ms []Msg, t *tracker) int {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0
	}
	n := min(q.hwm-len(q.msgs), len(ms))
	if n <= 0 {
		q.mu.Unlock()
		return 0
	}
	first := len(q.msgs) == 0
	q.grow(n)
	for _, m := range ms[:n] {
		q.msgs = append(q.msgs, qmsg{m, t})
	}
	q.mu.Unlock()
	if first {
		q.signal()
	}
	return n
}

// pushForce queues m past the HWM; for protocol messages (SUB's
// subscriptions) that must never be dropped and are few.
func (q *outq) pushForce(m Msg) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.msgs = append(q.msgs, qmsg{m: m})
	q.mu.Unlock()
	q.signal()
	return true
}

// Slots of outq.ctrl. One pending command of each kind is enough (as in
// libzmq): a newer PING or PONG replaces the unsent one, so a peer that
// pings without reading cannot make the queue grow.
const (
	ctrlPing = iota
	ctrlPong
)

// pushCtrl sets the pending command of its kind to a copy of b.
func (q *outq) pushCtrl(kind int, b []byte) {
	q.mu.Lock()
	if !q.closed {
		q.ctrl[kind] = append(q.ctrl[kind][:0], b...)
	}
	q.mu.Unlock()
	q.signal()
}

// take swaps the queued messages out, handing spare back for reuse.
func (q *outq) take(spare []qmsg, ctrl []byte) ([]qmsg, []byte) {
	if cap(spare) == 0 {
		// The writer's first swap: the queue's second array starts
		// sized like the first instead of growing from nothing.
		spare = make([]qmsg, 0, outqStartCap(q.hwm))
	}
	q.mu.Lock()
	msgs := q.msgs
	q.msgs = spare[:0]
	ctrl = append(append(ctrl[:0], q.ctrl[ctrlPing]...), q.ctrl[ctrlPong]...)
	q.ctrl[ctrlPing], q.ctrl[ctrlPong] = q.ctrl[ctrlPing][:0], q.ctrl[ctrlPong][:0]
	q.mu.Unlock()
	return msgs, ctrl
}

// unshift puts ms back in front, past the HWM if need be: they were
// accepted before anything still queued.
// It reports false, taking nothing, once the queue is closed.
func (q *outq) unshift(ms []qmsg) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.ctrl[ctrlPing], q.ctrl[ctrlPong] = q.ctrl[ctrlPing][:0], q.ctrl[ctrlPong][:0] // they belonged to the old connection
	if len(ms) > 0 {
		q.msgs = append(append(make([]qmsg, 0, len(ms)+len(q.msgs)), ms...), q.msgs...)
	}
	return true
}

// popFront removes the oldest message.
func (q *outq) popFront() (qmsg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 || q.closed {
		return qmsg{}, false
	}
	m := q.msgs[0]
	q.msgs[0] = qmsg{}
	q.msgs = q.msgs[1:]
	return m, true
}

// idle reports whether nothing is queued (messages or commands) and the
// queue is open.
func (q *outq) idle() bool {
	q.mu.Lock()
	ok := !q.closed && len(q.msgs) == 0 && len(q.ctrl[ctrlPing]) == 0 && len(q.ctrl[ctrlPong]) == 0
	q.mu.Unlock()
	return ok
}

func (q *outq) len() int {
	q.mu.Lock()
	n := len(q.msgs)
	q.mu.Unlock()
	return n
}

// close refuses further pushes and returns what was still queued.
func (q *outq) close() []qmsg {
	q.mu.Lock()
	q.closed = true
	msgs := q.msgs
	q.msgs = nil
	q.mu.Unlock()
	return msgs
}

// recvq is the bounded receive queue of PULL and SUB. Peers' readers
// block on it when it is full, which stops them reading their sockets, so
// TCP flow control pushes back on the senders. Wake-ups use one-token
// channels passed on like a baton, so waiters can also watch a context.
type recvq struct {
	mu      sync.Mutex
	ring    []Msg
	head, n int
	// waiters, so a wake-up costs a channel operation only when needed
	getWaiters, putWaiters int
	notEmpty               chan struct{}
	notFull                chan struct{}
	done                   <-chan struct{}
}

func newRecvq(size int, done <-chan struct{}) *recvq {
	return &recvq{
		ring:     make([]Msg, size),
		notEmpty: make(chan struct{}, 1),
		notFull:  make(chan struct{}, 1),
		done:     done,
	}
}

func token(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// put queues all of batch, blocking while the queue is full; it returns
// the number queued, which is short only once the socket closes.
func (q *recvq) put(batch []Msg) int {
	done := 0
	for done < len(batch) {
		q.mu.Lock()
		free := len(q.ring) - q.n
		if free == 0 {
			q.putWaiters++
			q.mu.Unlock()
			select {
			case <-q.notFull:
			case <-q.done:
			}
			q.mu.Lock()
			q.putWaiters--
			q.mu.Unlock()
			select {
			case <-q.done:
				return done
			default:
			}
			continue
		}
		k := min(free, len(batch)-done)
		for i := 0; i < k; i++ {
			q.ring[(q.head+q.n)%len(q.ring)] = batch[done+i]
			q.n++
		}
		done += k
		wakeGet := q.getWaiters > 0
		wakePut := q.putWaiters > 0 && q.n < len(q.ring)
		q.mu.Unlock()
		if wakeGet {
			token(q.notEmpty)
		}
		if wakePut {
			token(q.notFull) // pass the baton to another blocked reader
		}
	}
	return done
}

// get fills dst with up to len(dst) messages, waiting for at least one.
func (q *recvq) get(ctx context.Context, dst []Msg) (int, error) {
	for {
		q.mu.Lock()
		if q.n == 0 {
			q.getWaiters++
			q.mu.Unlock()
			var err error
			select {
			case <-q.notEmpty:
			case <-ctx.Done():
				err = ctx.Err()
			case <-q.done:
				err = ErrClosed
			}
			q.mu.Lock()
			q.getWaiters--
			q.mu.Unlock()
			if err != nil {
				return 0, err
			}
			continue
		}
		k := min(q.n, len(dst))
		for i := 0; i < k; i++ {
			dst[i] = q.ring[q.head]
			q.ring[q.head] = nil
			q.head++
			if q.head == len(q.ring) {
				q.head = 0
			}
		}
		q.n -= k
		wakePut := q.putWaiters > 0
		wakeGet := q.getWaiters > 0 && q.n > 0
		q.mu.Unlock()
		if wakePut {
			token(q.notFull)
		}
		if wakeGet {
			token(q.notEmpty) // another Recv may be waiting
		}
		return k, nil
	}
}

// keep queues batch past the queue's size, for a socket that is closing:
// its readers stop reading, so this happens once per peer at most.
func (q *recvq) keep(batch []Msg) {
	q.mu.Lock()
	ring := make([]Msg, q.n+len(batch))
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	copy(ring[q.n:], batch)
	q.ring, q.head, q.n = ring, 0, len(ring)
	wakeGet := q.getWaiters > 0
	q.mu.Unlock()
	if wakeGet {
		token(q.notEmpty)
	}
}

func (q *recvq) len() int {
	q.mu.Lock()
	n := q.n
	q.mu.Unlock()
	return n
}
