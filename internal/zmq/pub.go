package zmq

import (
	"bytes"

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
	s.onOrphan = func(_ *peer, unsent []qmsg) {
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
		if !pe.q.push(qmsg{m: m}) {
			pe.drops.Add(1)
			p.stat.dropPubFull.Add(1)
		}
	}
	return nil
}

// SendBatch is Send for each of ms, in order, taking each subscriber's
// queue lock once per run of messages it wants rather than once per
// message: on a busy relay with several taps the per-message lock was the
// PUB fan-out's main cost. A subscriber whose queue fills takes the
// prefix that fits and misses the rest (counted), as with Send.
func (p *Pub) SendBatch(ms []Msg) error {
	if p.closed.Load() {
		return ErrClosed
	}
	for _, pe := range *p.list.Load() {
		subs := pe.subs.Load()
		if subs.all {
			p.pushRun(pe, ms)
			continue
		}
		// Runs of consecutive wanted messages: a batch of one stream is a
		// single run, matched once.
		var last []byte
		lastOK, start := false, -1
		for i, m := range ms {
			topic := topicOf(m)
			if i == 0 || !bytes.Equal(topic, last) {
				last, lastOK = topic, subs.match(topic)
			}
			switch {
			case lastOK && start < 0:
				start = i
			case !lastOK && start >= 0:
				p.pushRun(pe, ms[start:i])
				start = -1
			}
		}
		if start >= 0 {
			p.pushRun(pe, ms[start:])
		}
	}
	return nil
}

// pushRun queues what fits of ms for pe and counts the rest as dropped.
func (p *Pub) pushRun(pe *peer, ms []Msg) {
	if n := pe.q.pushMany(ms, nil); n < len(ms) {
		pe.drops.Add(uint64(len(ms) - n))
		p.stat.dropPubFull.Add(uint64(len(ms) - n))
	}
}

func topicOf(m Msg) []byte {
	if len(m) > 0 {
		return m[0]
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
