package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/output"
)

// countingOutput records how many events reached it.
type countingOutput struct{ n atomic.Int64 }

func (o *countingOutput) Name() string { return "next" }
func (o *countingOutput) Write(_ context.Context, b []*event.Event) error {
	o.n.Add(int64(len(b)))
	return nil
}
func (o *countingOutput) Close(context.Context) error { return nil }
func (o *countingOutput) Stats() output.Stats         { return output.Stats{} }

func TestGateHoldsThenForwards(t *testing.T) {
	var dropped atomic.Uint64
	g := newGate("w", &dropped)
	next := &countingOutput{}
	done := make(chan error, 1)
	go func() {
		done <- g.Write(context.Background(), []*event.Event{event.New([]byte("<13>a")), event.New([]byte("<13>b"))})
	}()
	select {
	case err := <-done:
		t.Fatalf("Write returned %v before the gate opened", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.open(next)
	if err := <-done; err != nil || next.n.Load() != 2 || dropped.Load() != 0 {
		t.Fatalf("after open: err %v, forwarded %d, dropped %d; want nil, 2, 0", err, next.n.Load(), dropped.Load())
	}
}

func TestGateWithoutReplacementCountsAndReleases(t *testing.T) {
	var dropped atomic.Uint64
	g := newGate("gone", &dropped)
	g.open(nil)
	var got error
	h := event.NewHandoff(func(err error) { got = err })
	batch := []*event.Event{event.New([]byte("<13>a")), event.New([]byte("<13>b")), event.New([]byte("<13>c"))}
	for _, e := range batch {
		e.SetHandoff(h)
	}
	if err := g.Write(context.Background(), batch); !errors.Is(err, errOutputGone) {
		t.Fatalf("Write = %v, want errOutputGone", err)
	}
	h.Release(nil)
	if dropped.Load() != 3 || !errors.Is(got, errOutputGone) {
		t.Fatalf("dropped %d, hand-off error %v; want 3 and errOutputGone", dropped.Load(), got)
	}
}
