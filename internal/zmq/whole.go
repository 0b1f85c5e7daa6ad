package zmq

import "context"

// SendWhole queues every message of ms to one peer: the next connected
// peer in turn whose queue has room for all of them, else a disconnected
// Dial endpoint's queue that has (as Send prefers them). It blocks while none has, until ctx is
// done or the socket closes, and returns how many it queued (all or none).
//
// A consumer thus reads a run of messages whole, as the acknowledged PUSH
// output needs for a batch: a worker can acknowledge a batch it saw
// entirely, and a worker that dies takes only its own batches with it.
// Messages a gone peer never wrote are re-routed one by one as Send's are,
// so a run can still be split then. A run longer than the HWM can never
// fit one queue: it is spread over peers as SendBatch does.
func (p *Push) SendWhole(ctx context.Context, ms []Msg) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	if len(ms) > p.opts.HWM {
		return p.SendBatch(ctx, ms)
	}
	p.inflight.Add(int64(len(ms))) // before queueing: the writer may be done first
	if err := p.waitRoom(ctx, func() bool { return p.tryWhole(ms) }); err != nil {
		p.settle(int64(len(ms)))
		return 0, err
	}
	return len(ms), nil
}

func (p *Push) tryWhole(ms []Msg) bool {
	peers := *p.list.Load()
	if n := uint32(len(peers)); n > 0 {
		start := p.rr.Add(1)
		for i := uint32(0); i < n; i++ {
			if peers[(start+i)%n].q.pushAll(ms) {
				return true
			}
		}
	}
	for _, q := range *p.parked.Load() {
		if q.pushAll(ms) {
			return true
		}
	}
	return false
}

// pushAll queues all of ms if the queue has room for all, else none.
func (q *outq) pushAll(ms []Msg) bool {
	q.mu.Lock()
	if q.closed || q.hwm-len(q.msgs) < len(ms) {
		q.mu.Unlock()
		return false
	}
	first := len(q.msgs) == 0
	q.grow(len(ms))
	for _, m := range ms {
		q.msgs = append(q.msgs, qmsg{m: m})
	}
	q.mu.Unlock()
	if first {
		q.signal()
	}
	return true
}

// TakeOrphans hands the messages a gone peer never wrote to f instead of
// re-routing them one by one to the other peers, which would spread a run
// sent with SendWhole over several of them. It is for senders that resend
// on their own (the acknowledged PUSH output resends those runs whole).
// f runs on the socket's goroutine and must not block; the socket no
// longer owns the messages and does not count them as dropped. A Dial
// endpoint's queue still waits for its reconnection, as without f.
// Call it before the first Listen or Dial.
func (p *Push) TakeOrphans(f func(unsent []Msg)) {
	s := p.socket
	reroute := s.onOrphan
	s.onOrphan = func(pe *peer, unsent []qmsg) {
		if s.closed.Load() {
			reroute(pe, unsent) // settled and counted as dropped on close
			return
		}
		s.settle(int64(len(unsent)))
		// Tracked batches (SendBatchTracked) learn their messages were
		// handed back unwritten.
		settleTracked(unsent, ErrNotWritten)
		ms := make([]Msg, len(unsent))
		for i, m := range unsent {
			ms[i] = m.m
		}
		f(ms)
	}
}
