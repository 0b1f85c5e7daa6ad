package zmq

import (
	"context"

	"github.com/go-zeromq/zmq4"
)

// Pull is a PULL socket: messages from all peers, fair-queued into one
// bounded receive queue.
type Pull struct {
	*socket
	rq *recvq
}

// NewPull returns a PULL socket; add endpoints with Listen or Dial.
func NewPull(o Options) *Pull {
	p := &Pull{socket: newSocket(zmq4.Pull, o)}
	p.rq = newRecvq(p.opts.RecvHWM, p.ctx.Done())
	p.deliver = func(_ *peer, batch []Msg) bool { return p.put(p.rq, batch) }
	return p
}

// Recv returns the next message, waiting until one arrives, ctx is done
// or the socket closes (ErrClosed).
func (p *Pull) Recv(ctx context.Context) (Msg, error) {
	var one [1]Msg
	if _, err := p.rq.get(ctx, one[:]); err != nil {
		return nil, err
	}
	return one[0], nil
}

// RecvBatch fills buf with the messages already queued (at least one,
// waiting like Recv) and returns how many it filled.
func (p *Pull) RecvBatch(ctx context.Context, buf []Msg) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	return p.rq.get(ctx, buf)
}

// Stats returns a snapshot of the counters.
func (p *Pull) Stats() Stats { return p.stats(p.rq.len()) }
