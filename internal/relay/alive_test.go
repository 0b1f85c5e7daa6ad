package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
)

const aliveConf = `
inputs:
  - {name: in, type: syslog, listen: tcp://127.0.0.1:0}
outputs:
  - {name: out, type: zmq, socket: push, bind: tcp://127.0.0.1:0}
http: {listen: ""}
drain_timeout: 200ms
`

// TestAlive: what the systemd watchdog asks. Not serving before Start and
// after Shutdown; alive while running, also while an output blocks (no
// worker on a PUSH: backpressure is not a failure); not alive while the
// control lock is held past the timeout.
func TestAlive(t *testing.T) {
	cfg, err := config.Parse([]byte(aliveConf), "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Alive(10 * time.Millisecond); !errors.Is(err, ErrNotServing) {
		t.Errorf("before Start: %v, want ErrNotServing", err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.Alive(10 * time.Millisecond); err != nil {
		t.Errorf("running: %v", err)
	}
	// An input blocked writing to the worker-less PUSH output.
	sendTCP(t, inputAddr(t, r, "in", "tcp"), true, []string{"<14>1 2026-11-22T05:00:00Z h app - - - blocked"})
	if err := r.Alive(10 * time.Millisecond); err != nil {
		t.Errorf("with a blocked output: %v", err)
	}
	r.mu.Lock()
	start := time.Now()
	err = r.Alive(50 * time.Millisecond)
	r.mu.Unlock()
	if err == nil || errors.Is(err, ErrNotServing) || time.Since(start) < 50*time.Millisecond {
		t.Errorf("with the control lock held: %v after %v, want a stuck-lock error after the timeout", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.Shutdown(ctx)
	if err := r.Alive(10 * time.Millisecond); !errors.Is(err, ErrNotServing) {
		t.Errorf("after Shutdown: %v, want ErrNotServing", err)
	}
}
