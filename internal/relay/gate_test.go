package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
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
	// The write is parked in the gate: it must not have returned.
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the write to wait in the gate"), func() bool { return g.held.Load() == 1 })
	select {
	case err := <-done:
		t.Fatalf("Write returned %v before the gate opened", err)
	default:
	}
	if next.n.Load() != 0 {
		t.Fatalf("%d events went through a closed gate", next.n.Load())
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

// A write held by a gate that never opens gives up when its context ends
// (the relay's drain ran out of time): its events are counted and failed
// back to their inputs with the context's error.
func TestGateGivesUpWithContext(t *testing.T) {
	var dropped atomic.Uint64
	g := newGate("stuck", &dropped)
	var got error
	fired := 0
	h := event.NewHandoff(func(err error) { got, fired = err, fired+1 })
	batch := []*event.Event{event.New([]byte("<13>a")), event.New([]byte("<13>b"))}
	for _, e := range batch {
		e.SetHandoff(h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Write(ctx, batch) }()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the write to wait in the gate"), func() bool { return g.held.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v, want context.Canceled", err)
	}
	h.Release(nil) // the input's own hold
	if dropped.Load() != 2 || fired != 1 || !errors.Is(got, context.Canceled) {
		t.Fatalf("dropped %d, hand-off fired %d times with %v; want 2, once, context.Canceled", dropped.Load(), fired, got)
	}
	if g.held.Load() != 0 {
		t.Fatalf("held = %d after the write gave up", g.held.Load())
	}
}
