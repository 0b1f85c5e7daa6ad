package output

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// heldSpool is a disk spool whose durable callbacks are held until
// release: it stands for an fsync that has not finished.
type heldSpool struct {
	spool.Spool
	mu   sync.Mutex
	held []func()
}

func (h *heldSpool) Append(ctx context.Context, recs []spool.Record, durable func(error)) error {
	var inner error
	done := make(chan struct{})
	err := h.Spool.Append(ctx, recs, func(err error) { inner = err; close(done) })
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.held = append(h.held, func() { <-done; durable(inner) })
	h.mu.Unlock()
	return nil
}

func (h *heldSpool) release() {
	h.mu.Lock()
	fs := h.held
	h.held = nil
	h.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// nopSender takes records and never acknowledges them.
type nopSender struct{}

func (nopSender) Send(context.Context, []spool.Record, func(first, last uint64)) error { return nil }
func (nopSender) Close(context.Context) error                                          { return nil }

func newHeld(t *testing.T) (*heldSpool, *Spooled) {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	hs := &heldSpool{Spool: sp}
	o, err := NewSpooled(SpooledConfig{Name: "w", Spool: hs, Sender: nopSender{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hs.release()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		o.Close(ctx)
	})
	return hs, o
}

// TestSpooledWriteWaitsDurable: events without a hand-off (plain syslog)
// are not reported written before their records are durable, so a kill -9
// cannot take what Write already returned for; events with one return at
// once (their input waits for the hand-off and pipelines); a mixed batch
// waits; a ctx that ends stops the wait with an error.
func TestSpooledWriteWaitsDurable(t *testing.T) {
	hs, o := newHeld(t)
	write := func(ctx context.Context, evs ...*event.Event) chan error {
		ch := make(chan error, 1)
		go func() { ch <- o.Write(ctx, evs) }()
		return ch
	}
	returned := func(ch chan error) bool {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Write: %v", err)
			}
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	}

	plain := write(context.Background(), event.New([]byte("a")), event.New([]byte("b")))
	if returned(plain) {
		t.Fatal("Write of events without a hand-off returned before they were durable")
	}
	hs.release()
	if !returned(plain) {
		t.Fatal("Write did not return once the records were durable")
	}

	fired := make(chan error, 1)
	h := event.NewHandoff(func(err error) { fired <- err })
	e1 := event.New([]byte("c"))
	e1.SetHandoff(h)
	if !returned(write(context.Background(), e1)) {
		t.Fatal("Write of events with a hand-off waited for the fsync")
	}
	h.Release(nil)
	select {
	case <-fired:
		t.Fatal("hand-off fired before the records were durable")
	case <-time.After(50 * time.Millisecond):
	}
	hs.release()
	if err := <-fired; err != nil {
		t.Fatalf("hand-off: %v", err)
	}

	e2 := event.New([]byte("d"))
	e2.SetHandoff(event.NewHandoff(func(error) {}))
	mixed := write(context.Background(), e2, event.New([]byte("e")))
	if returned(mixed) {
		t.Fatal("Write of a batch with an event without a hand-off returned before it was durable")
	}
	hs.release()
	if !returned(mixed) {
		t.Fatal("mixed batch: Write did not return once durable")
	}

	ctx, cancel := context.WithCancel(context.Background())
	stuck := write(ctx, event.New([]byte("f")))
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-stuck:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Write with an ended ctx: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write kept waiting after its ctx ended")
	}
	if st := o.Stats(); st.Dropped != 0 {
		t.Errorf("Dropped %d: records in the spool are not dropped", st.Dropped)
	}
}
