package zmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotWritten is returned (wrapping the reason) by Push.SendWritten when
// the message was queued but not yet written when ctx ended or the socket
// closed: the socket owns it, and Flush waits for it.
var ErrNotWritten = errors.New("zmq: message queued, not yet written")

// flushSignal wakes Flush callers when a socket's in-flight count reaches
// zero, so they wait on a channel instead of polling.
type flushSignal struct {
	waiters atomic.Int32
	mu      sync.Mutex
	ch      chan struct{} // closed at the next wake-up; nil until someone waits
}

// wait registers a waiter and returns the channel of the next wake-up;
// call done after.
func (f *flushSignal) wait() <-chan struct{} {
	f.waiters.Add(1)
	f.mu.Lock()
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	ch := f.ch
	f.mu.Unlock()
	return ch
}

func (f *flushSignal) done() { f.waiters.Add(-1) }

func (f *flushSignal) wake() {
	f.mu.Lock()
	if f.ch != nil {
		close(f.ch)
		f.ch = nil
	}
	f.mu.Unlock()
}

// settle takes n messages off the in-flight count (written or lost) and
// wakes Flush callers if that emptied it; one atomic load when nobody
// waits.
func (s *socket) settle(n int64) {
	if s.inflight.Add(-n) == 0 && s.flushed.waiters.Load() > 0 {
		s.flushed.wake()
	}
}

// SendWritten sends m and returns once it is written to a peer's
// connection (in the kernel), for senders that wait for each message, like
// the omprog bridge confirming line by line.
//
// When the next peer in turn has nothing queued and its writer is idle, m
// is encoded and written on the caller's goroutine, which saves the
// hand-off to the writer and back. If that write fails, m is counted in
// lost_in_flight drops, the peer is closed, and the error is returned: m
// may have partly reached the peer, but it is not re-sent. Otherwise m is
// queued as by Send (blocking while no queue has room, bounded by ctx;
// an error then means m was not taken), and SendWritten waits, bounded by
// ctx, until the socket has nothing in flight: m and whatever other
// senders queued before it. If ctx ends or the socket closes during that
// wait, the error wraps ErrNotWritten: m is owned by the socket.
//
// Per-peer order is kept: the direct write happens only when everything
// queued to that peer before it is written. Send and SendBatch are not
// affected.
func (p *Push) SendWritten(ctx context.Context, m Msg) error {
	if done, err := p.writeDirect(m); done {
		return err
	}
	if err := p.Send(ctx, m); err != nil {
		return err
	}
	if err := p.Flush(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrNotWritten, err)
	}
	return nil
}

// writeDirect writes m to the next peer in turn if that peer's queue is
// empty and its writer idle; done reports whether it tried.
func (p *Push) writeDirect(m Msg) (done bool, err error) {
	peers := *p.list.Load()
	n := uint32(len(peers))
	if n == 0 {
		return false, nil
	}
	pe := peers[p.rr.Add(1)%n]
	// The writer holds wmu from taking its queue until its write returns,
	// so holding it here with the queue empty means nothing queued to this
	// peer is still unwritten, and anything queued from now on is written
	// after m.
	if !pe.wmu.TryLock() {
		return false, nil
	}
	defer pe.wmu.Unlock()
	if pe.closed() || !pe.q.idle() {
		return false, nil
	}
	if d := p.corkFor.Load(); d > 0 {
		pe.cork(time.Duration(d))
	}
	p.inflight.Add(1)
	pe.dbuf = pe.appendMsg(pe.dbuf[:0], m)
	var one []Msg
	var end []int
	if h := p.hooks.Load(); h != nil { // no allocation without hooks
		one, end = []Msg{m}, []int{len(pe.dbuf)}
		if h.Before != nil {
			h.Before(one)
		}
	}
	if err := p.write(pe.conn, pe.dbuf, one, end); err != nil {
		if one != nil {
			p.afterWrite(one, err)
		}
		p.stat.dropLost.Add(1)
		p.settle(1)
		pe.close(err)
		return true, fmt.Errorf("write to PUSH peer %s (%s): %w", pe.remote, pe.endpoint, err)
	}
	if one != nil {
		p.afterWrite(one, nil)
	}
	pe.msgsOut.Add(1)
	pe.bytesOut.Add(uint64(msgWireSize(m)))
	p.direct.Add(1)
	p.settle(1)
	if cap(pe.dbuf) > writeBufSize {
		pe.dbuf = nil // don't keep a huge message's buffer
	}
	return true, nil
}

// SetWrittenCork makes SendWritten's direct writes to TCP peers go into a
// corked socket (TCP_CORK, Linux) that is uncorked at most d after the
// first write into it: a message is then in the kernel when SendWritten
// returns (and a killed process still sends it), but a lock-step sender's
// messages leave in segments of many instead of waking the peer once per
// message. It delays delivery by up to d. 0 (the default) turns it off.
func (p *Push) SetWrittenCork(d time.Duration) { p.corkFor.Store(int64(max(d, 0))) }

// cork sets TCP_CORK if it is not set and arms the uncork d from now if it
// is not armed; under wmu.
func (pe *peer) cork(d time.Duration) {
	if !pe.corked {
		if !setCork(pe.conn, true) {
			return
		}
		pe.corked = true
	}
	if pe.corkArmed {
		return
	}
	pe.corkArmed = true
	if pe.corkTimer == nil {
		pe.corkTimer = time.AfterFunc(d, pe.uncork)
	} else {
		pe.corkTimer.Reset(d)
	}
}

// uncork clears TCP_CORK, which sends what it held.
func (pe *peer) uncork() {
	pe.wmu.Lock()
	if pe.corked {
		setCork(pe.conn, false)
		pe.corked = false
	}
	pe.corkArmed = false
	pe.wmu.Unlock()
}

// ErrLostInFlight is what SendBatchTracked reports when some of the
// batch's messages were in a write that failed as their peer's connection
// broke: they may or may not have reached the peer, and are not re-sent
// (counted as lost_in_flight drops).
var ErrLostInFlight = errors.New("zmq: message lost in a failed write to its peer")

// tracker counts a batch's messages until each is written to a peer's
// connection or lost; it travels with them through reroutes.
type tracker struct {
	pending atomic.Int64
	err     atomic.Pointer[error]
	queued  int // set before the caller's guard is released
	done    func(queued int, err error)
}

// settle takes n messages (or the caller's guard) off the count; the last
// one calls done with the first error reported.
func (t *tracker) settle(n int64, err error) {
	if err != nil {
		t.err.CompareAndSwap(nil, &err)
	}
	if t.pending.Add(-n) == 0 {
		var first error
		if p := t.err.Load(); p != nil {
			first = *p
		}
		t.done(t.queued, first)
	}
}

// settleTracked settles the trackers of ms with err (nil: written), one
// call per run of messages of the same batch.
func settleTracked(ms []qmsg, err error) {
	var cur *tracker
	var n int64
	for _, m := range ms {
		if m.t == cur {
			n++
			continue
		}
		if cur != nil {
			cur.settle(n, err)
		}
		cur, n = m.t, 1
	}
	if cur != nil {
		cur.settle(n, err)
	}
}

// SendBatchTracked queues ms like SendBatch and calls done once every
// queued message is written to a peer's connection (in the kernel), or
// lost: queued is how many of ms were queued (the return value); err is
// nil only when all of ms were queued and written, else the first
// problem: SendBatch's error for those not queued, ErrLostInFlight when
// some were in a write that failed with their peer's connection,
// ErrClosed when the socket closed with some unwritten. Messages whose peer goes away before
// they are written are re-routed and stay tracked. done runs exactly
// once, on any goroutine (a peer's writer, or the caller's before
// SendBatchTracked returns); it must not block.
//
// The cost is one allocation per batch, not per message: it is how the
// relay holds an acknowledging input's answer (RELP) until its events
// are written.
func (p *Push) SendBatchTracked(ctx context.Context, ms []Msg, done func(queued int, err error)) (int, error) {
	t := &tracker{done: done}
	t.pending.Store(int64(len(ms)) + 1) // +1: our guard, so done waits for queued
	n, err := p.sendBatch(ctx, ms, t)
	t.queued = n
	t.settle(int64(len(ms)-n)+1, err)
	return n, err
}
