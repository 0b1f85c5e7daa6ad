package relay

import (
	"maps"
	"slices"
	"time"

	"github.com/rsyslog-zmq/relay/internal/broker"
	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/relp"
)

// inputTotals are an input's counters, summed over the inputs of its name
// that reloads stopped (their settings changed, or they were removed), so
// that relay_input_*_total and relay_jetstream_input_*_total go on across a
// reload that rebuilds the input, as the outputs' counters do (outputTotals),
// instead of falling back to zero; so do relay_relp_* and relay_link_input_*.
type inputTotals struct {
	received, bytes, malformed, oversize                uint64
	connsTotal, refused, hsErrors                       uint64
	readErrors, kernelDrops, socketDrops                uint64
	blocked                                             time.Duration
	closed                                              [listen.NumReasons]uint64
	curve                                               map[string]uint64 // nil without CURVE
	stream                                              bool              // not a ZeroMQ input: internal/listen's close reasons apply
	jetstream                                           bool              // a jetstream input was seen under this name
	jsRedelivered, jsAcked, jsNaked, jsRefused, jsResub uint64
	jsFailed                                            map[string]uint64   // by cause
	relp                                                *relp.Stats         // RELP inputs: their counters summed (gauges unused)
	link                                                *link.ReceiverStats // link inputs: the same
}

func (t *inputTotals) add(ri *runningInput) {
	in := ri.in
	s := in.Stats()
	if ri.cfg.Type != config.InputZMQ {
		t.stream = true
	}
	t.received += s.Received
	t.bytes += s.Bytes
	t.malformed += s.Malformed
	t.oversize += s.Oversize
	t.connsTotal += s.ConnectionsTotal
	t.refused += s.ConnectionsRefused
	t.hsErrors += s.HandshakeErrors
	t.readErrors += s.ReadErrors
	t.kernelDrops += s.KernelDrops
	t.socketDrops += s.SocketDrops
	t.blocked += s.HandlerBlocked
	for i, n := range s.Closed {
		t.closed[i] += n
	}
	for reason, n := range s.CurveRefused {
		if t.curve == nil {
			t.curve = map[string]uint64{}
		}
		t.curve[reason] += n
	}
	if js, ok := in.(*broker.JetStreamInput); ok {
		j := js.JetStreamStats()
		t.jetstream = true
		t.jsRedelivered += j.Redelivered
		t.jsAcked += j.Acked
		t.jsNaked += j.Naked
		t.jsRefused += j.Refused
		t.jsResub += j.Resubscribed
		t.jsFailed = addMap(t.jsFailed, j.Failed)
	}
	if ri, ok := in.(relpInput); ok {
		if t.relp == nil {
			t.relp = &relp.Stats{}
		}
		addRELP(t.relp, ri.RELPStats())
	}
	if li, ok := in.(linkInput); ok {
		if t.link == nil {
			t.link = &link.ReceiverStats{}
		}
		addLinkIn(t.link, li.LinkStats())
	}
}

// linkInput is a relay link input (internal/link's receiver).
type linkInput interface{ LinkStats() link.ReceiverStats }

// addRELP adds the counters of s to t.
func addRELP(t *relp.Stats, s relp.Stats) {
	t.SessionsTotal += s.SessionsTotal
	t.Frames = addMap(t.Frames, s.Frames)
	t.Acked += s.Acked
	t.ResendCloses = addMap(t.ResendCloses, s.ResendCloses)
	t.BadFrames = addMap(t.BadFrames, s.BadFrames)
	t.Refused500 += s.Refused500
	t.WindowFull += s.WindowFull
	t.TLSRefused = addMap(t.TLSRefused, s.TLSRefused)
	h := &t.AckLatency
	if s.AckLatency.Counts != nil {
		if h.Counts == nil {
			h.Bounds = slices.Clone(s.AckLatency.Bounds)
			h.Counts = make([]uint64, len(s.AckLatency.Counts))
		}
		if len(h.Counts) == len(s.AckLatency.Counts) { // the same buckets (relp.AckBuckets)
			for i, n := range s.AckLatency.Counts {
				h.Counts[i] += n
			}
			h.Count += s.AckLatency.Count
			h.Sum += s.AckLatency.Sum
		}
	}
}

// addLinkIn adds the counters of s to t.
func addLinkIn(t *link.ReceiverStats, s link.ReceiverStats) {
	t.SessionsTotal += s.SessionsTotal
	t.Batches += s.Batches
	t.Records += s.Records
	t.Delivered += s.Delivered
	t.Suppressed += s.Suppressed
	t.WireBytes += s.WireBytes
	t.RawBytes += s.RawBytes
	t.Acks += s.Acks
	t.MarkFsyncs += s.MarkFsyncs
	t.HandoffFailures += s.HandoffFailures
	t.Malformed += s.Malformed
	t.Refused = addMap(t.Refused, s.Refused)
}

// addMap adds b's counts to a (made if nil) and returns it.
func addMap[K comparable](a, b map[K]uint64) map[K]uint64 {
	for k, n := range b {
		if a == nil {
			a = map[K]uint64{}
		}
		a[k] += n
	}
	return a
}

func (t inputTotals) clone() inputTotals {
	t.curve = maps.Clone(t.curve)
	t.jsFailed = maps.Clone(t.jsFailed)
	if t.relp != nil {
		r := *t.relp
		r.Frames, r.ResendCloses, r.BadFrames, r.TLSRefused = maps.Clone(r.Frames), maps.Clone(r.ResendCloses), maps.Clone(r.BadFrames), maps.Clone(r.TLSRefused)
		r.AckLatency.Counts = slices.Clone(r.AckLatency.Counts)
		t.relp = &r
	}
	if t.link != nil {
		l := *t.link
		l.Refused = maps.Clone(l.Refused)
		t.link = &l
	}
	return t
}

// keepInputTotals adds the counters of an input a reload stopped to its
// name's totals (r.mu held).
func (r *Relay) keepInputTotals(ri *runningInput) {
	t := r.retiredIn[ri.cfg.Name]
	t.add(ri)
	r.retiredIn[ri.cfg.Name] = t
}

// inputTotalsNow are the retired totals plus the live inputs' counters,
// per input name (r.mu held).
func (r *Relay) inputTotalsNow() map[string]inputTotals {
	totals := make(map[string]inputTotals, len(r.inputs)+len(r.retiredIn))
	for name, t := range r.retiredIn {
		totals[name] = t.clone()
	}
	for name, ri := range r.inputs {
		t := totals[name]
		t.add(ri)
		totals[name] = t
	}
	return totals
}
