// Package output sends routed events to their destinations and applies each
// destination's policy when it cannot keep up:
//
//   - block: a ZeroMQ PUSH output waits for a peer with room. The wait
//     reaches back through the router to the input, which stops reading, so
//     TCP flow control pushes back on rsyslog, whose queues take over.
//   - drop: a ZeroMQ PUB output never waits; a subscriber whose queue is full
//     loses the message, and the loss is counted.
//
// Outputs are synchronous: when Write returns, every event it took is queued
// to a peer (or dropped by policy). Hand-offs (event.Handoff, attached by
// acknowledging inputs such as RELP) are held by the outputs that must not
// lose the event until they have it safely:
//
//   - PUSH holds them until the socket has written the events to a peer's
//     connection (in the kernel): Push.SendBatchTracked, one tracker per
//     batch. Events in a peer's kernel buffers are lost if that peer dies:
//     the documented gap of a plain PUSH (the acknowledged PUSH closes it).
//   - PUB never holds: taps are best effort, so events routed only to PUB
//     outputs (or to no output) are handed off once routed.
//
// An output that finishes later (a spool, an acknowledged link) holds the
// event the same way and releases it when it is safe.
package output

import (
	"context"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// Output is one destination of routed events.
type Output interface {
	// Name identifies the output in logs and metrics.
	Name() string
	// Write hands the batch to the destination, blocking or dropping
	// according to the output's policy. The batch slice may be reused once
	// Write returns; the events may not be modified.
	Write(ctx context.Context, batch []*event.Event) error
	// Close flushes what is queued within ctx's time, then stops. No Write
	// may follow or overlap Close.
	Close(ctx context.Context) error
	// Stats returns a snapshot of the output's counters.
	Stats() Stats
}

// Stats are an output's counters, cumulative since it started.
type Stats struct {
	Sent    uint64        // events handed to the socket
	Dropped uint64        // events lost by policy (PUB subscriber queue full) or failure
	Blocked time.Duration // time spent waiting for room (PUSH)
	Queued  int           // messages queued for peers now
	Peers   int           // peers connected now
}

// Format is how an event is encoded on the wire.
type Format int

const (
	// Raw is the syslog message exactly as received: no octet count, no
	// trailing LF.
	Raw Format = iota
	// JSON is one object per event; see event.AppendJSON for the schema.
	JSON
)

// ParseFormat parses "raw" or "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "raw":
		return Raw, nil
	case "json":
		return JSON, nil
	}
	return 0, &FormatError{Value: s}
}

// FormatError reports an unknown format name.
type FormatError struct{ Value string }

func (e *FormatError) Error() string {
	return "format " + quote(e.Value) + " is not known; use raw or json"
}

func quote(s string) string { return "\"" + s + "\"" }

// encoder turns events into payloads. JSON payloads are carved out of one
// slab per batch, so a batch costs one allocation, not one per event; the
// sockets take ownership of the payloads, so slabs are never reused. A
// slab is sized for what is left of the batch (at most 64 KiB): batches of
// one event are common at low rates, and every queued payload pins its slab.
type encoder struct {
	format Format
	slab   []byte
	left   int // estimated JSON bytes of the events not yet encoded
}

func newEncoder(format Format, batch []*event.Event) encoder {
	enc := encoder{format: format}
	if format == JSON {
		for _, e := range batch {
			enc.left += jsonEstimate(e)
		}
	}
	return enc
}

// jsonEstimate bounds an event's JSON size for slab sizing: escaping at
// most doubles the raw bytes, plus the field names.
func jsonEstimate(e *event.Event) int { return 2*len(e.Raw) + 512 }

func (enc *encoder) payload(e *event.Event) []byte {
	if enc.format == Raw {
		return e.Raw
	}
	need := jsonEstimate(e)
	if cap(enc.slab)-len(enc.slab) < need {
		enc.slab = make([]byte, 0, max(need, min(enc.left, 64<<10)))
	}
	enc.left -= need
	start := len(enc.slab)
	enc.slab = e.AppendJSON(enc.slab)
	// Cap the capacity so a later append can never write into this payload.
	return enc.slab[start:len(enc.slab):len(enc.slab)]
}
