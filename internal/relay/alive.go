package relay

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotServing is Alive's answer before Start has finished or once
// Shutdown has begun.
var ErrNotServing = errors.New("relay: not serving (starting or shutting down)")

// Alive reports whether the relay is serving and its control path
// answers: Start has finished, Shutdown has not begun, a routing
// generation is in place, and the lock that reloads, scrapes and shutdown
// take is free within timeout. It never waits on an output, so
// backpressure (a PUSH output with no room, which may last) is not a
// failure. The systemd watchdog pings only while it returns nil; a caller
// running a reload itself knows the lock is legitimately held then.
func (r *Relay) Alive(timeout time.Duration) error {
	if !r.Ready() {
		return ErrNotServing
	}
	deadline := time.Now().Add(timeout)
	for !r.mu.TryLock() {
		if time.Now().After(deadline) {
			if !r.Ready() {
				return ErrNotServing
			}
			return fmt.Errorf("relay: the control lock has been held for over %v (a reload, scrape or shutdown is stuck)", timeout)
		}
		time.Sleep(time.Millisecond)
	}
	gen := r.gen.Load()
	r.mu.Unlock()
	if gen == nil || gen.table == nil {
		return errors.New("relay: no routing table")
	}
	return nil
}
