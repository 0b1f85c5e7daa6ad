package input

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// collector is a Handler that keeps every event it is given.
type collector struct {
	mu      sync.Mutex
	events  []*event.Event
	gate    chan struct{} // when not nil, Handler waits for it to be closed
	entered int           // Handler calls that have started
	held    int           // events in them (blocked ones included)
}

func (c *collector) handle(batch []*event.Event) {
	c.mu.Lock()
	gate := c.gate
	c.entered++
	c.held += len(batch)
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	c.mu.Lock()
	c.events = append(c.events, batch...)
	c.mu.Unlock()
}

// block makes the Handler wait until the returned channel is closed.
func (c *collector) block() chan struct{} {
	g := make(chan struct{})
	c.mu.Lock()
	c.gate = g
	c.mu.Unlock()
	return g
}

// calls returns how many Handler calls have started (blocked ones included).
func (c *collector) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entered
}

// heldEvents returns how many events Handler calls have taken (blocked
// ones included).
func (c *collector) heldEvents() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

func (c *collector) raws() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.events))
	for i, e := range c.events {
		out[i] = string(e.Raw)
	}
	return out
}

func (c *collector) snapshot() []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*event.Event(nil), c.events...)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startSyslog starts a syslog input on cfg (Name defaults to "test") and
// stops it when the test ends.
func startSyslog(t testing.TB, cfg SyslogConfig) (*Syslog, *collector) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	s, err := NewSyslog(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	if err := s.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s, c
}

func addrOf(t testing.TB, s Input, network string) net.Addr {
	t.Helper()
	for _, a := range s.Addrs() {
		if a.Network() == network {
			return a
		}
	}
	t.Fatalf("no %s address among %v", network, s.Addrs())
	return nil
}

func dialTCP(t testing.TB, s Input) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addrOf(t, s, "tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustWrite(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func contains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// isStopping reports whether Stop has begun.
func (s *Syslog) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}
