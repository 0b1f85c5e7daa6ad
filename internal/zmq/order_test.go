package zmq

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"
)

// TestPushOrderAcrossConnect: messages Send queued in a Dial endpoint's
// pipe before its connection came up arrive in order, followed by the
// rest.
func TestPushOrderAcrossConnect(t *testing.T) {
	for round := 0; round < 10; round++ {
		push := NewPush(Options{HWM: 50, ReconnectMin: time.Millisecond, ReconnectMax: 2 * time.Millisecond})
		pull := NewPull(Options{})
		ep := "ipc://" + filepath.Join(t.TempDir(), "s.sock")
		if err := push.Dial(ep); err != nil { // nobody listens yet
			t.Fatal(err)
		}
		ctx := testCtx(t, 20*time.Second)
		const n = 1000
		errc := make(chan error, 1)
		go func() {
			for i := 0; i < n; i++ {
				if err := push.Send(ctx, msgOf(i)); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		// Let Send fill the pipe before the endpoint connects.
		waitFor(t, 5*time.Second, "a full pipe", func() bool { return push.Stats().QueueDepth == 50 })
		if err := pull.Listen(ep); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			m, err := pull.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := msgOf(i); !bytes.Equal(m[0], want[0]) {
				t.Fatalf("round %d, message %d: got %q want %q", round, i, m[0], want[0])
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		push.Close()
		pull.Close()
	}
}

// TestPushMigrateAfterReconnect: a pipe's migration goroutine that runs
// only after its endpoint reconnected (scheduled late, or woken by room
// rather than by the reconnection) must leave the pipe alone: the pipe is
// then the connected peer's own queue, and moving its oldest messages to
// a connected peer once put them on its own tail (seen as a reorder in
// TestPushPullTCP under load).
func TestPushMigrateAfterReconnect(t *testing.T) {
	const hwm, n = 8, 300 // n × 64 KiB: more than loopback's socket buffers hold
	push := NewPush(Options{HWM: hwm})
	pull := NewPull(Options{RecvHWM: 1})
	closeAll(t, push, pull)
	ep := bound(t, pull)
	if err := push.Dial(ep); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			b := make([]byte, 64<<10)
			copy(b, msgOf(i)[0])
			if err := push.Send(ctx, Msg{b}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	// Nobody receives yet: the kernel buffers fill, the writer blocks
	// and the peer's queue (the Dial pipe) fills up to its HWM.
	var q *outq
	waitFor(t, 20*time.Second, "a connected peer with a full queue", func() bool {
		l := *push.list.Load()
		if len(l) != 1 || l[0].q.len() < hwm {
			return false
		}
		q = l[0].q
		return true
	})
	unparked := make(chan struct{})
	close(unparked)
	done := make(chan struct{})
	push.wg.Add(1)
	go func() {
		push.migrate(q, unparked)
		close(done)
	}()
	waitFor(t, 10*time.Second, "the late migration to return", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	for i := 0; i < n; i++ {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := msgOf(i)[0]; !bytes.Equal(m[0][:len(want)], want) {
			t.Fatalf("message %d: got %q want %q", i, m[0][:len(want)], want)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
