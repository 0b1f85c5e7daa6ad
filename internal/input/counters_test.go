package input

import (
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// A Handler that is still blocked must already show in HandlerBlocked, so
// /metrics reveals a stall while it lasts.
func TestHandlerBlockedCountsStallInProgress(t *testing.T) {
	var c counters
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		deliver(func([]*event.Event) { <-release }, "in", &c, []*event.Event{event.New([]byte("<13>x"))})
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.snapshot().HandlerBlocked < 50*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatal("HandlerBlocked stayed below 50ms during a stall")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mid := c.snapshot().HandlerBlocked
	close(release)
	<-done
	end := c.snapshot()
	if end.HandlerBlocked < mid || end.Received != 1 {
		t.Fatalf("after the stall: blocked %v (was %v mid-stall), received %d", end.HandlerBlocked, mid, end.Received)
	}
}
