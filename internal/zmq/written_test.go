package zmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// onePeer waits until push has exactly one connected peer and returns it.
func onePeer(t *testing.T, push *Push) *peer {
	t.Helper()
	var pe *peer
	waitFor(t, 5*time.Second, "one connected peer", func() bool {
		l := *push.list.Load()
		if len(l) != 1 {
			return false
		}
		pe = l[0]
		return true
	})
	return pe
}

func recvN(t *testing.T, ctx context.Context, pull *Pull, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		out = append(out, string(m[0]))
	}
	return out
}

// TestSendWrittenDirect: with the peer's writer idle and its queue empty,
// SendWritten writes on the caller's goroutine and counts it like the
// writer does.
func TestSendWrittenDirect(t *testing.T) {
	push, pull := NewPush(Options{}), NewPull(Options{})
	closeAll(t, push, pull)
	if err := push.Dial(bound(t, pull)); err != nil {
		t.Fatal(err)
	}
	pe := onePeer(t, push)
	ctx := testCtx(t, 10*time.Second)
	for i := range 100 {
		if err := push.SendWritten(ctx, msgOf(i)); err != nil {
			t.Fatal(err)
		}
		if got := push.inflight.Load(); got != 0 {
			t.Fatalf("message %d: %d in flight after SendWritten returned", i, got)
		}
	}
	pe.wmu.Lock()
	direct := pe.dbuf != nil // only the direct path encodes into dbuf
	pe.wmu.Unlock()
	if !direct {
		t.Fatal("no message took the direct path")
	}
	st := push.Stats()
	if st.MsgsOut != 100 || st.BytesOut != 100*uint64(len(msgOf(0)[0])) {
		t.Fatalf("stats: %d msgs, %d bytes out; want 100, %d", st.MsgsOut, st.BytesOut, 100*len(msgOf(0)[0]))
	}
	got := recvN(t, ctx, pull, 100)
	for i, g := range got {
		if g != string(msgOf(i)[0]) {
			t.Fatalf("message %d: got %q", i, g)
		}
	}
}

// TestSendWrittenWaitsForWriter: while the writer is busy SendWritten
// queues and returns only once the writer has written the message; ctx
// ending first reports ErrNotWritten and leaves the message to the socket.
func TestSendWrittenWaitsForWriter(t *testing.T) {
	push, pull := NewPush(Options{}), NewPull(Options{})
	closeAll(t, push, pull)
	if err := push.Dial(bound(t, pull)); err != nil {
		t.Fatal(err)
	}
	pe := onePeer(t, push)
	ctx := testCtx(t, 10*time.Second)

	pe.wmu.Lock() // the writer is "busy": neither it nor a direct write can go
	done := make(chan error, 1)
	go func() { done <- push.SendWritten(ctx, msgOf(0)) }()
	waitFor(t, 5*time.Second, "the message queued", func() bool { return pe.q.len() == 1 })
	// It waits in Flush for the writer: it has not returned, and cannot
	// before the writer runs.
	waitFor(t, 5*time.Second, "SendWritten to wait for the write", func() bool { return push.flushed.waiters.Load() == 1 })
	select {
	case err := <-done:
		t.Fatalf("SendWritten returned %v before the message was written", err)
	default:
	}
	pe.wmu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SendWritten did not return once written")
	}
	if st := push.Stats(); st.MsgsOut != 1 {
		t.Fatalf("MsgsOut = %d, want 1", st.MsgsOut)
	}

	// The same, but ctx ends while the message is queued.
	pe.wmu.Lock()
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	err := push.SendWritten(short, msgOf(1))
	cancel()
	if !errors.Is(err, ErrNotWritten) || !errors.Is(err, context.DeadlineExceeded) {
		pe.wmu.Unlock()
		t.Fatalf("err = %v, want ErrNotWritten wrapping DeadlineExceeded", err)
	}
	pe.wmu.Unlock()
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := recvN(t, ctx, pull, 2); got[0] != "m000000" || got[1] != "m000001" {
		t.Fatalf("got %q", got)
	}
}

// TestSendWrittenNotQueued: with no peer and no Dial pipe, ctx ends
// before the message is taken: a plain ctx error, nothing in flight.
func TestSendWrittenNotQueued(t *testing.T) {
	push := NewPush(Options{})
	closeAll(t, push)
	bound(t, push) // nobody connects
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := push.SendWritten(ctx, msgOf(0))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotWritten) {
		t.Fatalf("err = %v, want DeadlineExceeded without ErrNotWritten", err)
	}
	if n := push.inflight.Load(); n != 0 {
		t.Fatalf("%d in flight", n)
	}
}

// failConn is a connection whose reads block until Close and whose writes
// fail, like a peer that vanished.
type failConn struct {
	once   sync.Once
	closed chan struct{}
	writes int
	mu     sync.Mutex
}

func (c *failConn) Read([]byte) (int, error) { <-c.closed; return 0, net.ErrClosed }
func (c *failConn) Write([]byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return 0, errors.New("connection reset by peer")
}
func (c *failConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *failConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *failConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 9} }
func (c *failConn) SetDeadline(time.Time) error      { return nil }
func (c *failConn) SetReadDeadline(time.Time) error  { return nil }
func (c *failConn) SetWriteDeadline(time.Time) error { return nil }

// TestSendWrittenPeerFails: a direct write that fails returns the error,
// counts the message lost in flight, closes the peer and never re-sends
// the message elsewhere (the caller was told it failed).
func TestSendWrittenPeerFails(t *testing.T) {
	push, pull := NewPush(Options{}), NewPull(Options{})
	closeAll(t, push, pull)
	fc := &failConn{closed: make(chan struct{})}
	if !push.attach(newPeer(push.socket, fc, "test", nil)) {
		t.Fatal("attach failed")
	}
	onePeer(t, push)
	ctx := testCtx(t, 10*time.Second)
	err := push.SendWritten(ctx, msgOf(0))
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("err = %v, want the write error", err)
	}
	st := push.Stats()
	if st.Drops[DropLostInFlight] != 1 || st.MsgsOut != 0 {
		t.Fatalf("lost_in_flight = %d, MsgsOut = %d; want 1, 0", st.Drops[DropLostInFlight], st.MsgsOut)
	}
	if err := push.Flush(testCtx(t, time.Second)); err != nil {
		t.Fatalf("Flush after the failure: %v (inflight %d)", err, push.inflight.Load())
	}
	waitFor(t, 5*time.Second, "the failed peer gone", func() bool { return push.Stats().Peers == 0 })

	// A good peer now gets the next message, and only that one.
	if err := push.Dial(bound(t, pull)); err != nil {
		t.Fatal(err)
	}
	if err := push.SendWritten(ctx, msgOf(1)); err != nil {
		t.Fatal(err)
	}
	// A re-sent m000000 would have been queued before m000001, and kept
	// Flush waiting above: the next message to arrive is m000001, and
	// it is the only one written.
	if got := recvN(t, ctx, pull, 1); got[0] != "m000001" {
		t.Fatalf("got %q, want only m000001", got)
	}
	if st := push.Stats(); st.MsgsOut != 1 || push.inflight.Load() != 0 {
		t.Fatalf("written %d, in flight %d; want 1 and 0: the failed message was re-sent", st.MsgsOut, push.inflight.Load())
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.writes != 1 {
		t.Fatalf("%d writes to the failed peer, want 1", fc.writes)
	}
}

// TestSendWrittenConcurrentOrder: several goroutines mixing Send,
// SendWritten and SendBatch on one socket with a slow receiver (so both
// paths are taken): every message arrives once, each sender's in order.
func TestSendWrittenConcurrentOrder(t *testing.T) {
	push, pull := NewPush(Options{HWM: 16}), NewPull(Options{RecvHWM: 8})
	closeAll(t, push, pull)
	if err := push.Dial(bound(t, pull)); err != nil {
		t.Fatal(err)
	}
	onePeer(t, push)
	ctx := testCtx(t, 60*time.Second)
	const senders, per = 4, 2000
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; {
				var err error
				switch i % 7 {
				case 0, 1, 2:
					err = push.SendWritten(ctx, Msg{[]byte(fmt.Sprintf("%d %d", s, i))})
					i++
				case 3:
					err = push.Send(ctx, Msg{[]byte(fmt.Sprintf("%d %d", s, i))})
					i++
				default:
					var batch []Msg
					for ; i%7 != 0 && i < per; i++ {
						batch = append(batch, Msg{[]byte(fmt.Sprintf("%d %d", s, i))})
					}
					_, err = push.SendBatch(ctx, batch)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for n := 0; n < senders*per; n++ {
		if n%500 == 0 {
			time.Sleep(time.Millisecond) // let queues fill: the fallback path runs too
		}
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", n, err)
		}
		f := strings.Fields(string(m[0]))
		s, _ := strconv.Atoi(f[0])
		i, _ := strconv.Atoi(f[1])
		if i != next[s] {
			t.Fatalf("sender %d: got message %d, want %d", s, i, next[s])
		}
		next[s]++
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := push.Stats(); st.MsgsOut != senders*per {
		t.Fatalf("MsgsOut = %d, want %d", st.MsgsOut, senders*per)
	}
	// SendWritten was called for 3 of every 7 messages; both of its paths
	// must have run, or the test proved less than it claims.
	calls := uint64(senders * (per/7*3 + min(per%7, 3)))
	if d := push.direct.Load(); d == 0 || d >= calls {
		t.Fatalf("%d of %d SendWritten calls wrote directly: want both the direct and the queued path", d, calls)
	}
	t.Logf("SendWritten: %d of %d direct", push.direct.Load(), calls)
}
