package event

import "sync/atomic"

// Handoff tells an input when its events are safe: handed off to every
// output that must not lose them. Inputs that ack their senders (RELP, a
// spool) attach one; plain syslog inputs attach none and pay nothing.
//
// One Handoff may be shared by a whole batch of events: it counts holds,
// and fires once, when the last hold is released.
type Handoff struct {
	pending atomic.Int64
	failed  atomic.Pointer[error]
	done    func(err error)
}

// NewHandoff returns a Handoff that calls done once every hold is
// released. done receives the first error any holder reported, or nil.
// The creator holds it once; call Release when the batch is dispatched.
func NewHandoff(done func(err error)) *Handoff {
	h := &Handoff{done: done}
	h.pending.Store(1)
	return h
}

// Hold adds one holder that must Release before the hand-off completes.
func (h *Handoff) Hold() { h.pending.Add(1) }

// Release ends one hold; err, if not nil, marks the hand-off failed.
func (h *Handoff) Release(err error) {
	if err != nil {
		h.failed.CompareAndSwap(nil, &err)
	}
	if h.pending.Add(-1) == 0 {
		var first error
		if p := h.failed.Load(); p != nil {
			first = *p
		}
		h.done(first)
	}
}

// SetHandoff attaches h to the event. Call before the event is routed.
func (e *Event) SetHandoff(h *Handoff) { e.handoff = h }

// Handoff returns the event's hand-off, or nil. Outputs that hold a
// batch use it to hold and release once per run of events sharing one,
// instead of once per event.
func (e *Event) Handoff() *Handoff { return e.handoff }

// Hold marks one more output that must take the event before its input is
// told it is safe. It is a no-op for events without a Handoff.
func (e *Event) Hold() {
	if e.handoff != nil {
		e.handoff.Hold()
	}
}

// Release reports that one holder has taken (err == nil) or failed to take
// the event. It is a no-op for events without a Handoff.
func (e *Event) Release(err error) {
	if e.handoff != nil {
		e.handoff.Release(err)
	}
}
