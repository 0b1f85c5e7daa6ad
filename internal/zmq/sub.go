package zmq

import (
	"context"
	"fmt"

	"github.com/go-zeromq/zmq4"
)

// Sub is a SUB socket: it receives what matches its subscriptions from
// every publisher it is connected to.
type Sub struct {
	*socket
	rq   *recvq
	subs *subSet // guarded by socket.mu; filter holds the published copy
}

// NewSub returns a SUB socket with no subscriptions (it receives nothing
// until Subscribe).
func NewSub(o Options) *Sub {
	s := &Sub{socket: newSocket(zmq4.Sub, o), subs: &subSet{}}
	s.rq = newRecvq(s.opts.RecvHWM, s.ctx.Done())
	filter := &s.socket.subFilter
	filter.Store(s.subs)
	s.onAttach = func(p *peer) {
		for _, t := range s.subs.topics() {
			p.q.pushForce(subMsg(true, t))
		}
	}
	s.deliver = func(_ *peer, batch []Msg) bool {
		// Filter here too: a publisher may still send what we just
		// cancelled, and a non-libzmq PUB may not filter at all.
		f := filter.Load()
		keep := batch[:0]
		for _, m := range batch {
			var topic []byte
			if len(m) > 0 {
				topic = m[0]
			}
			if f.match(topic) {
				keep = append(keep, m)
			}
		}
		return s.put(s.rq, keep)
	}
	return s
}

func subMsg(on bool, topic string) Msg {
	b := make([]byte, 1+len(topic))
	if on {
		b[0] = 1
	}
	copy(b[1:], topic)
	return Msg{b}
}

// Subscribe adds a prefix subscription ("" is everything) and sends it to
// every current and future publisher. Subscriptions count: two Subscribes
// of one prefix need two Unsubscribes.
func (s *Sub) Subscribe(prefix string) error { return s.change(prefix, 1) }

// Unsubscribe removes one Subscribe of prefix.
func (s *Sub) Unsubscribe(prefix string) error { return s.change(prefix, -1) }

func (s *Sub) change(prefix string, delta int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if delta > 0 && s.subs.counts[prefix] == 0 && s.subs.full(prefix) {
		return fmt.Errorf("subscribe %q: %w", prefix, ErrTooManySubscriptions)
	}
	n, changed := s.subs.with(prefix, delta)
	s.subs = n
	s.subFilter.Store(n)
	if changed {
		for _, p := range *s.list.Load() {
			p.q.pushForce(subMsg(delta > 0, prefix))
		}
	}
	return nil
}

// Recv returns the next matching message, waiting until one arrives, ctx
// is done or the socket closes (ErrClosed).
func (s *Sub) Recv(ctx context.Context) (Msg, error) {
	var one [1]Msg
	if _, err := s.rq.get(ctx, one[:]); err != nil {
		return nil, err
	}
	return one[0], nil
}

// RecvBatch fills buf with queued messages (at least one, waiting like
// Recv) and returns how many it filled.
func (s *Sub) RecvBatch(ctx context.Context, buf []Msg) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	return s.rq.get(ctx, buf)
}

// Stats returns a snapshot of the counters.
func (s *Sub) Stats() Stats { return s.stats(s.rq.len()) }
