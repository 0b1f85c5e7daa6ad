package relay

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/output"
)

// errOutputGone is given to events whose output was removed by a reload or
// could not be recreated.
var errOutputGone = errors.New("output removed by reload")

// gate stands in for an output while a reload replaces it. Writes wait for
// the gate to open (backpressure, as with a full PUSH), then go to the
// replacement, or fail if there is none.
type gate struct {
	name    string
	opened  chan struct{}
	next    output.Output
	dropped *atomic.Uint64 // events failed here: relay_reload_dropped_total
	held    atomic.Int32   // writes waiting for the gate to open now
}

func newGate(name string, dropped *atomic.Uint64) *gate {
	return &gate{name: name, opened: make(chan struct{}), dropped: dropped}
}

// open lets held writes through to next (nil: the output is gone).
func (g *gate) open(next output.Output) {
	g.next = next
	close(g.opened)
}

func (g *gate) Name() string { return g.name }

func (g *gate) Write(ctx context.Context, batch []*event.Event) error {
	g.held.Add(1)
	select {
	case <-g.opened:
		g.held.Add(-1)
	case <-ctx.Done():
		g.held.Add(-1)
		g.dropped.Add(uint64(len(batch)))
		return releaseAll(batch, ctx.Err())
	}
	if g.next == nil {
		g.dropped.Add(uint64(len(batch)))
		return releaseAll(batch, fmt.Errorf("output %q: %w", g.name, errOutputGone))
	}
	return g.next.Write(ctx, batch)
}

func (g *gate) Close(context.Context) error { return nil }

func (g *gate) Stats() output.Stats { return output.Stats{} }

// releaseAll tells the inputs of batch that its events were not handed off.
func releaseAll(batch []*event.Event, err error) error {
	for _, e := range batch {
		e.Hold()
		e.Release(err)
	}
	return err
}
