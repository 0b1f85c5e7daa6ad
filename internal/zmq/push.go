package zmq

import (
	"context"
	"sync/atomic"

	"github.com/go-zeromq/zmq4"
)

// Push is a PUSH socket: round-robin over connected peers that have room,
// blocking (never dropping) when none has.
type Push struct {
	*socket
	rr      atomic.Uint32
	corkFor atomic.Int64  // SendWritten's TCP_CORK hold, ns; 0: off
	direct  atomic.Uint64 // SendWritten's direct writes (the tests check both paths run)
}

// NewPush returns a PUSH socket; add endpoints with Listen or Dial.
func NewPush(o Options) *Push {
	p := &Push{socket: newSocket(zmq4.Push, o)}
	s := p.socket
	s.handle = func(pe *peer, m Msg) { s.stat.dropUnexpected.Add(1) }
	s.onOrphan = func(_ *peer, unsent []qmsg) {
		// Re-route what the gone peer never wrote, with its trackers. This
		// may block until another peer has room, so it runs on its own;
		// once the socket is closed, send fails and settles them.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i, m := range unsent {
				if err := p.send(s.ctx, m); err != nil {
					s.stat.dropClosed.Add(uint64(len(unsent) - i))
					s.settle(int64(len(unsent) - i))
					settleTracked(unsent[i:], ErrClosed)
					return
				}
			}
		}()
	}
	s.persist = true
	s.onPark = func(q *outq, unparked <-chan struct{}) { go p.migrate(q, unparked) }
	return p
}

// migrate moves messages out of a disconnected Dial pipe to connected
// peers as they get room, until the pipe reconnects.
func (p *Push) migrate(q *outq, unparked <-chan struct{}) {
	defer p.wg.Done()
	for {
		ch := p.roomWait()
		for p.migrateOne(q, unparked) {
		}
		select {
		case <-ch:
			p.roomDone()
		case <-unparked:
			p.roomDone()
			return
		case <-p.ctx.Done():
			p.roomDone()
			return
		}
	}
}

// migrateOne moves the pipe's oldest message to a connected peer with
// room and reports whether it did. It holds socket.mu, under which a
// reconnection unparks the pipe: once unparked, the pipe is a connected
// peer's queue, and moving its messages would reorder them (onto its own
// tail, or behind what its writer already took).
func (p *Push) migrateOne(q *outq, unparked <-chan struct{}) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-unparked:
		return false
	default:
	}
	if len(*p.list.Load()) == 0 {
		return false
	}
	m, ok := q.popFront()
	if !ok {
		return false
	}
	if p.tryConnected(m) {
		return true
	}
	if !q.unshift([]qmsg{m}) { // closing
		p.stat.dropClosed.Add(1)
		p.settle(1)
		settleTracked([]qmsg{m}, ErrClosed)
	}
	return false
}

// Send queues m to the next connected peer in turn that has room, else to
// a Dial endpoint's queue waiting for its reconnection. It blocks while
// no queue has room, until ctx is done or the socket closes.
func (p *Push) Send(ctx context.Context, m Msg) error {
	p.inflight.Add(1) // before queueing: the writer may be done first
	if err := p.send(ctx, qmsg{m: m}); err != nil {
		p.settle(1)
		return err
	}
	return nil
}

func (p *Push) send(ctx context.Context, m qmsg) error {
	if p.tryPush(m) {
		return nil
	}
	return p.waitRoom(ctx, func() bool { return p.tryPush(m) })
}

// waitRoom calls try until it queues, waiting for room between attempts,
// until ctx is done or the socket closes.
func (p *Push) waitRoom(ctx context.Context, try func() bool) error {
	for {
		if try() {
			return nil
		}
		if p.closed.Load() {
			return ErrClosed
		}
		ch := p.roomWait()
		if try() { // room may have come before we registered
			p.roomDone()
			return nil
		}
		select {
		case <-ch:
			p.roomDone()
		case <-ctx.Done():
			p.roomDone()
			return ctx.Err()
		case <-p.ctx.Done():
			p.roomDone()
			return ErrClosed
		}
	}
}

// tryPush prefers connected peers; a disconnected Dial pipe with room
// takes the message for its next connection.
func (p *Push) tryPush(m qmsg) bool {
	if p.tryConnected(m) {
		return true
	}
	for _, q := range *p.parked.Load() {
		if q.push(m) {
			return true
		}
	}
	return false
}

func (p *Push) tryConnected(m qmsg) bool {
	peers := *p.list.Load()
	n := uint32(len(peers))
	if n == 0 {
		return false
	}
	start := p.rr.Add(1)
	for i := uint32(0); i < n; i++ {
		if peers[(start+i)%n].q.push(m) {
			return true
		}
	}
	return false
}

// SendBatch queues every message of ms, in order per peer, spreading
// consecutive runs over peers with room. It returns how many were queued
// before ctx ended or the socket closed; those are owned by the socket.
func (p *Push) SendBatch(ctx context.Context, ms []Msg) (int, error) {
	return p.sendBatch(ctx, ms, nil)
}

// sendBatch is SendBatch with every queued message tracked by t.
func (p *Push) sendBatch(ctx context.Context, ms []Msg, t *tracker) (int, error) {
	done := 0
	p.inflight.Add(int64(len(ms))) // before queueing: the writer may be done first
	defer func() {
		if done < len(ms) {
			p.settle(int64(len(ms) - done))
		}
	}()
	for done < len(ms) {
		peers := *p.list.Load()
		progressed := false
		if n := uint32(len(peers)); n > 0 {
			chunk := min(max((len(ms)-done+int(n)-1)/int(n), 1), 64)
			start := p.rr.Add(1)
			for i := uint32(0); i < n && done < len(ms); i++ {
				end := min(done+chunk, len(ms))
				if k := peers[(start+i)%n].q.pushMany(ms[done:end], t); k > 0 {
					done += k
					progressed = true
				}
			}
		}
		if progressed {
			continue
		}
		if err := p.send(ctx, qmsg{ms[done], t}); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}

// Flush waits until every message Send accepted has been written to a
// peer's connection (or lost with it), ctx ends or the socket closes.
// With nothing in flight it returns nil at once, even if ctx is done.
func (p *Push) Flush(ctx context.Context) error {
	for p.inflight.Load() > 0 {
		ch := p.flushed.wait()
		if p.inflight.Load() == 0 { // settled before we registered
			p.flushed.done()
			return nil
		}
		select {
		case <-ch:
			p.flushed.done()
		case <-ctx.Done():
			p.flushed.done()
			return ctx.Err()
		case <-p.ctx.Done():
			p.flushed.done()
			return ErrClosed
		}
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (p *Push) Stats() Stats { return p.stats(-1) }
