package zmq

import (
	"github.com/go-zeromq/zmq4"
)

// Pub is a PUB socket: each message goes to every subscriber whose
// subscription prefixes frame 0; a subscriber whose queue is full misses
// it (counted), and nobody else notices.
type Pub struct {
	*socket
}

// NewPub returns a PUB socket; add endpoints with Listen or Dial.
func NewPub(o Options) *Pub {
	p := &Pub{socket: newSocket(zmq4.Pub, o)}
	s := p.socket
	s.handle = func(pe *peer, m Msg) {
		// ZMTP 3.0 subscriptions are messages: \x01topic or \x00topic.
		if len(m) == 1 && len(m[0]) > 0 && m[0][0] <= 1 {
			pe.subscribe(m[0][0] == 1, m[0][1:])
			return
		}
		s.stat.dropUnexpected.Add(1)
	}
	s.onOrphan = func(_ *peer, unsent []Msg) {
		if s.closed.Load() {
			s.stat.dropClosed.Add(uint64(len(unsent)))
			return
		}
		s.stat.dropPeerGone.Add(uint64(len(unsent)))
	}
	return p
}

// Send queues m for every matching subscriber and never blocks. The frames
// are shared read-only between subscribers. A message nobody subscribes to
// is not queued anywhere.
func (p *Pub) Send(m Msg) error {
	if p.closed.Load() {
		return ErrClosed
	}
	var topic []byte
	if len(m) > 0 {
		topic = m[0]
	}
	for _, pe := range *p.list.Load() {
		if !pe.subs.Load().match(topic) {
			continue
		}
		if !pe.q.push(m) {
			pe.drops.Add(1)
			p.stat.dropPubFull.Add(1)
		}
	}
	return nil
}

// Wanted reports whether any connected subscriber's subscription matches
// topic, so a caller can skip building a message nobody would get.
func (p *Pub) Wanted(topic []byte) bool {
	for _, pe := range *p.list.Load() {
		if pe.subs.Load().match(topic) {
			return true
		}
	}
	return false
}

// Stats returns a snapshot of the counters.
func (p *Pub) Stats() Stats { return p.stats(-1) }
