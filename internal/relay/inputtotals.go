package relay

import (
	"maps"
	"time"

	"github.com/rsyslog-zmq/relay/internal/broker"
	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/listen"
)

// inputTotals are an input's counters, summed over the inputs of its name
// that reloads stopped (their settings changed, or they were removed), so
// that relay_input_*_total and relay_jetstream_input_*_total go on across a
// reload that rebuilds the input, as the outputs' counters do (outputTotals),
// instead of falling back to zero.
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
	}
}

func (t inputTotals) clone() inputTotals {
	t.curve = maps.Clone(t.curve)
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
