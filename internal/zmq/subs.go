package zmq

import "slices"

// maxSubscriptions bounds distinct subscriptions per PUB peer, so a
// hostile subscriber cannot grow memory or the per-message match cost.
const maxSubscriptions = 4096

// subSet is an immutable multiset of subscription prefixes; changes make
// a new one (copy-on-write) so Send matches without locks.
type subSet struct {
	counts map[string]int
	lens   []int // distinct prefix lengths, ascending
	all    bool  // "" is subscribed: every topic matches
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

// with returns the set after adding (delta 1) or removing (delta -1) one
// instance of topic, and whether the distinct set changed.
func (s *subSet) with(topic string, delta int) (*subSet, bool) {
	c := s.counts[topic]
	if delta < 0 && c == 0 {
		return s, false
	}
	if delta > 0 && c == 0 && len(s.counts) >= maxSubscriptions {
		return s, false
	}
	n := &subSet{counts: make(map[string]int, len(s.counts)+1)}
	for k, v := range s.counts {
		n.counts[k] = v
	}
	c += delta
	if c == 0 {
		delete(n.counts, topic)
	} else {
		n.counts[topic] = c
	}
	for k := range n.counts {
		if !slices.Contains(n.lens, len(k)) {
			n.lens = append(n.lens, len(k))
		}
	}
	slices.Sort(n.lens)
	_, n.all = n.counts[""]
	changed := (c == 0) || (c == 1 && delta > 0)
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

// subscribe applies a SUBSCRIBE/CANCEL from a peer of this PUB.
func (p *peer) subscribe(on bool, topic []byte) {
	delta := 1
	if !on {
		delta = -1
	}
	n, _ := p.subs.Load().with(string(topic), delta)
	p.subs.Store(n)
}
