package zmq

import (
	"maps"
	"slices"
)

// maxSubscriptions bounds distinct subscriptions per PUB peer, so a
// hostile subscriber cannot grow memory or the per-message match cost.
const maxSubscriptions = 4096

// MaxSubscriptionBytes bounds the bytes of one peer's distinct
// subscriptions (and of a SUB socket's own): the count alone let a peer
// hold 4096 prefixes of up to MaxMsgSize each. A subscription past it is
// refused (counted in Stats.SubscriptionsRefused); 64 KiB holds thousands
// of stream names.
const MaxSubscriptionBytes = 64 << 10

// subSet is a multiset of subscription prefixes. A published one is
// immutable (Send matches it without locks); changes are made on a copy.
type subSet struct {
	counts map[string]int
	lens   []int // distinct prefix lengths, ascending
	all    bool  // "" is subscribed: every topic matches
	bytes  int   // total length of the distinct prefixes
}

// match reports whether any subscription is a prefix of topic: one map
// probe per distinct subscription length, none for a subscription to
// everything (what a tap without --stream sends), which PUB checks for
// every message and subscriber.
func (s *subSet) match(topic []byte) bool {
	if s.all {
		return true
	}
	for _, l := range s.lens {
		if l > len(topic) {
			return false
		}
		if _, ok := s.counts[string(topic[:l])]; ok {
			return true
		}
	}
	return false
}

// full reports whether topic, new to the set, would take it past its
// limits in number or bytes.
func (s *subSet) full(topic string) bool {
	return len(s.counts) >= maxSubscriptions || s.bytes+len(topic) > MaxSubscriptionBytes
}

// add changes s in place, which must not be published: one instance of
// topic more (delta 1) or less (delta -1). changed says whether the
// distinct set changed; refused, that a new topic was over the limits.
func (s *subSet) add(topic string, delta int) (changed, refused bool) {
	c := s.counts[topic]
	switch {
	case delta < 0 && c == 0:
		return false, false
	case delta > 0 && c == 0 && s.full(topic):
		return false, true
	}
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	c += delta
	switch {
	case c == 0:
		delete(s.counts, topic)
		s.bytes -= len(topic)
		return true, false
	case c == 1 && delta > 0:
		s.bytes += len(topic)
		s.counts[topic] = c
		return true, false
	}
	s.counts[topic] = c
	return false, false
}

// clone returns a copy of s ready to publish.
func (s *subSet) clone() *subSet {
	n := &subSet{counts: maps.Clone(s.counts), bytes: s.bytes}
	if n.counts == nil {
		n.counts = map[string]int{}
	}
	n.index()
	return n
}

// index recomputes lens and all from counts.
func (s *subSet) index() {
	s.lens = s.lens[:0]
	for k := range s.counts {
		if !slices.Contains(s.lens, len(k)) {
			s.lens = append(s.lens, len(k))
		}
	}
	slices.Sort(s.lens)
	_, s.all = s.counts[""]
}

// with returns the set after adding (delta 1) or removing (delta -1) one
// instance of topic, and whether the distinct set changed. s is left as
// it was; a new topic over the limits leaves the set unchanged.
func (s *subSet) with(topic string, delta int) (*subSet, bool) {
	c := s.counts[topic]
	if (delta < 0 && c == 0) || (delta > 0 && c == 0 && s.full(topic)) {
		return s, false
	}
	n := &subSet{counts: maps.Clone(s.counts), bytes: s.bytes}
	changed, _ := n.add(topic, delta)
	n.index()
	return n, changed
}

// topics lists the distinct subscriptions.
func (s *subSet) topics() []string {
	out := make([]string, 0, len(s.counts))
	for k := range s.counts {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// subscribe applies a SUBSCRIBE/CANCEL from a peer of this PUB to the
// reader's draft; publishSubs makes it visible to Send. The draft is
// changed in place, so a burst of subscriptions costs one copy, not one
// per command (a copy of 4096 prefixes per SUBSCRIBE let a peer burn CPU).
func (p *peer) subscribe(on bool, topic []byte) {
	if p.draft == nil {
		p.draft = &subSet{}
	}
	delta := 1
	if !on {
		delta = -1
	}
	changed, refused := p.draft.add(string(topic), delta)
	if refused {
		p.s.stat.subsRefused.Add(1)
		p.s.log.Debug("subscription refused: the peer is at its limit", "remote", p.remote,
			"subscriptions", len(p.draft.counts), "bytes", p.draft.bytes)
	}
	p.draftDirty = p.draftDirty || changed
}

// publishSubs publishes the draft if it changed; the reader calls it once
// no further complete message is buffered.
func (p *peer) publishSubs() {
	if p.draftDirty {
		p.subs.Store(p.draft.clone())
		p.draftDirty = false
	}
}
