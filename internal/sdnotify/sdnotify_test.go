package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listen opens a datagram socket like systemd's notify socket and returns
// its $NOTIFY_SOCKET name and a function reading the next message.
func listen(t *testing.T, name string) (string, func() string) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	next := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := c.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	return name, next
}

func TestSendPathAndAbstract(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@relay-sdnotify-test-%d-%d", time.Now().UnixNano(), len(t.Name())),
	} {
		sock, next := listen(t, name)
		n, err := NewFor(sock)
		if err != nil || !n.Enabled() {
			t.Fatalf("NewFor(%q): %v, enabled %v", sock, err, n.Enabled())
		}
		if err := n.Ready("relaying: 2 inputs"); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != "READY=1\nSTATUS=relaying: 2 inputs" {
			t.Errorf("%s: Ready sent %q", sock, got)
		}
		before := Monotonic()
		if err := n.Reloading(""); err != nil {
			t.Fatal(err)
		}
		got := next()
		lines := strings.Split(got, "\n")
		if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
			t.Fatalf("%s: Reloading sent %q", sock, got)
		}
		usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
		if err != nil || usec < before.Microseconds() || usec > Monotonic().Microseconds() {
			t.Errorf("MONOTONIC_USEC=%d is not CLOCK_MONOTONIC now (%d): %v", usec, before.Microseconds(), err)
		}
		n.Stopping("draining")
		if got := next(); got != "STOPPING=1\nSTATUS=draining" {
			t.Errorf("Stopping sent %q", got)
		}
		n.Watchdog()
		if got := next(); got != "WATCHDOG=1" {
			t.Errorf("Watchdog sent %q", got)
		}
		// A status cannot smuggle in another assignment.
		n.Status("bad\nREADY=1")
		if got := next(); got != "STATUS=bad READY=1" {
			t.Errorf("Status sent %q", got)
		}
	}
}

func TestNoSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := New()
	if err != nil || n.Enabled() {
		t.Fatalf("New without NOTIFY_SOCKET: %v, enabled %v", err, n.Enabled())
	}
	if err := n.Ready("x"); err != nil {
		t.Error(err)
	}
	var nilN *Notifier
	if err := nilN.Stopping(""); err != nil || nilN.Enabled() {
		t.Error("a nil Notifier must be a no-op")
	}
	if _, err := NewFor("vsock:2:1234"); !errors.Is(err, ErrUnsupportedSocket) {
		t.Errorf("vsock address: %v, want ErrUnsupportedSocket", err)
	}
}

func TestSendToMissingSocketFails(t *testing.T) {
	n, _ := NewFor(filepath.Join(t.TempDir(), "gone"))
	if err := n.Ready(""); err == nil {
		t.Error("sending to a socket nobody listens on succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", "42", 30 * time.Second, true},
		{"30000000", "43", 0, false}, // meant for another process
		{"0", "", 0, false},
		{"x", "", 0, false},
		{"30000000", "x", 0, false},
	} {
		got, ok := watchdogInterval(c.usec, c.pid, 42)
		if got != c.want || ok != c.ok {
			t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, %v", c.usec, c.pid, got, ok, c.want, c.ok)
		}
	}
}

func TestKeepAlivePingsOnlyWhileAlive(t *testing.T) {
	sock, next := listen(t, filepath.Join(t.TempDir(), "notify"))
	n, _ := NewFor(sock)
	var alive atomic.Bool
	alive.Store(true)
	misses := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.KeepAlive(ctx, 40*time.Millisecond, func(time.Duration) error {
			if alive.Load() {
				return nil
			}
			return errors.New("wedged")
		}, func(err error) { misses <- err })
		close(done)
	}()
	for range 3 {
		if got := next(); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	alive.Store(false)
	select {
	case err := <-misses:
		if err.Error() != "wedged" {
			t.Errorf("miss reported %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a failed liveness check was not reported")
	}
	cancel()
	<-done
}
