package zmq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// Peers that go away, and sockets closed under their senders: every
// message a socket took must end written to a peer, counted as lost in
// flight, or counted as dropped at close; every message it did not take
// is returned to the caller with an error.

// faultListener is a TCP listener that injects faults: its first refuse
// Accepts fail with EMFILE (out of file descriptors), and once armed, the
// connections it accepted fail their writes after limit more bytes.
type faultListener struct {
	net.Listener
	refuse   atomic.Int32
	refused  atomic.Int32
	writeBuf int // > 0: the accepted connections' send buffer (SO_SNDBUF)
	mu       sync.Mutex
	conns    []*faultConn
}

func (l *faultListener) Accept() (net.Conn, error) {
	if l.refuse.Add(-1) >= 0 {
		l.refused.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.writeBuf > 0 {
		c.(*net.TCPConn).SetWriteBuffer(l.writeBuf)
	}
	fc := &faultConn{Conn: c, limit: -1}
	l.mu.Lock()
	l.conns = append(l.conns, fc)
	l.mu.Unlock()
	return fc, nil
}

// arm makes every accepted connection fail its writes after n more bytes.
func (l *faultListener) arm(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.arm(n)
	}
}

// faultConn writes normally until armed, then lets limit more bytes
// through and fails every write after that, as a connection reset in the
// middle of a write does.
type faultConn struct {
	net.Conn
	mu    sync.Mutex
	limit int64 // -1: no limit
}

var errInjectedReset = errors.New("injected: connection reset")

func (c *faultConn) arm(n int64) {
	c.mu.Lock()
	c.limit = n
	c.mu.Unlock()
}

func (c *faultConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	limit := c.limit
	if limit >= 0 {
		c.limit = max(limit-int64(len(p)), 0)
	}
	c.mu.Unlock()
	if limit < 0 || int64(len(p)) <= limit {
		return c.Conn.Write(p)
	}
	n, _ := c.Conn.Write(p[:limit])
	return n, errInjectedReset
}

// listenFault binds a faultListener for s on loopback, as Listen does;
// writeBuf > 0 sets its connections' send buffer, and its first refuse
// Accepts fail.
func listenFault(t *testing.T, s *socket, writeBuf int, refuse int32) (*faultListener, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &faultListener{Listener: l, writeBuf: writeBuf}
	fl.refuse.Store(refuse) // before the accept loop starts
	ep := tcpEndpoint(l.Addr())
	s.mu.Lock()
	s.listeners = append(s.listeners, fl)
	s.wg.Add(1)
	s.mu.Unlock()
	go s.acceptLoop(fl, endpoint{raw: ep, network: "tcp", addr: l.Addr().String()})
	return fl, ep
}

// recvAll receives from p in the background; seen returns how often each
// message arrived so far.
func recvAll(t *testing.T, p *Pull) func() map[string]int {
	var mu sync.Mutex
	seen := map[string]int{}
	go func() {
		for {
			m, err := p.Recv(context.Background())
			if err != nil {
				return
			}
			mu.Lock()
			seen[string(m[0])]++
			mu.Unlock()
		}
	}()
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		c := make(map[string]int, len(seen))
		for k, v := range seen {
			c[k] = v
		}
		return c
	}
}

// TestPushConnErrorsAfterNBytes: a worker's connection breaks in the
// middle of a write. The messages of that write are counted as lost in
// flight (part may have arrived; none is sent twice), and what was still
// queued for it goes to the other worker. Nothing is duplicated, and
// nothing is missing that is not counted.
func TestPushConnErrorsAfterNBytes(t *testing.T) {
	push := NewPush(Options{HWM: 100000})
	closeAll(t, push)
	fl, faultEP := listenFault(t, push.socket, 0, 0)
	goodEP := bound(t, push)

	w1 := NewPull(Options{RecvHWM: 100000, ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	w2 := NewPull(Options{RecvHWM: 100000})
	closeAll(t, w1, w2)
	seen1, seen2 := recvAll(t, w1), recvAll(t, w2)
	if err := w1.Dial(faultEP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first worker", func() bool { return push.Stats().Peers == 1 })
	fl.arm(20000) // a third of the writer's first 64 KiB write
	const n = 20000
	ctx := testCtx(t, 20*time.Second)
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := push.Send(ctx, msgOf(i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	waitFor(t, 5*time.Second, "the broken worker to be dropped", func() bool { return push.Stats().Disconnects == 1 })
	// What it had not written waits for another worker.
	if err := w2.Dial(goodEP); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := push.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	st := push.Stats()
	lost := int(st.Drops[DropLostInFlight])
	if lost == 0 {
		t.Fatal("the broken write's messages were not counted as lost in flight")
	}
	if int(st.MsgsOut)+lost != n {
		t.Fatalf("written %d + lost %d != %d sent", st.MsgsOut, lost, n)
	}
	waitFor(t, 10*time.Second, "the written messages at the workers", func() bool {
		return len(seen1())+len(seen2()) >= int(st.MsgsOut)
	})
	s1, s2 := seen1(), seen2()
	missing := 0
	for i := range n {
		k := string(msgOf(i)[0])
		switch c := s1[k] + s2[k]; {
		case c > 1:
			t.Fatalf("message %d arrived %d times", i, c)
		case c == 0:
			missing++
		}
	}
	if missing > lost {
		t.Fatalf("%d messages missing, only %d counted as lost in flight", missing, lost)
	}
	if len(s2) == 0 {
		t.Fatal("nothing was re-routed to the second worker")
	}
	t.Logf("worker 1: %d, worker 2 (re-routed): %d, lost in flight: %d (of which %d arrived anyway)", len(s1), len(s2), lost, lost-missing)
}

// TestAcceptRetries: an Accept that fails (out of file descriptors) is
// retried with a backoff; the listener keeps serving.
func TestAcceptRetries(t *testing.T) {
	pull := NewPull(Options{})
	closeAll(t, pull)
	fl, ep := listenFault(t, pull.socket, 0, 3)
	push := NewPush(Options{})
	closeAll(t, push)
	if err := push.Dial(ep); err != nil {
		t.Fatal(err)
	}
	if err := push.Send(testCtx(t, 10*time.Second), Msg{[]byte("after the refusals")}); err != nil {
		t.Fatal(err)
	}
	m, err := pull.Recv(testCtx(t, 10*time.Second))
	if err != nil || string(m[0]) != "after the refusals" {
		t.Fatalf("Recv = %q, %v", m, err)
	}
	if got := fl.refused.Load(); got != 3 {
		t.Fatalf("%d Accepts failed, want 3", got)
	}
}

// TestHandshakeLimitRefuses: past maxPendingHandshakes connections still
// in their handshake, a new connection is closed at once and counted, and
// once they are gone peers connect again.
func TestHandshakeLimitRefuses(t *testing.T) {
	pull := NewPull(Options{HandshakeTimeout: time.Minute})
	closeAll(t, pull)
	ep := bound(t, pull)
	addr := pull.Addrs()[0].String()
	silent := make([]net.Conn, 0, maxPendingHandshakes)
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for range maxPendingHandshakes {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	waitFor(t, 10*time.Second, "every silent connection in its handshake", func() bool {
		return pull.handshakes.Load() == maxPendingHandshakes
	})
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	testpeer.ExpectClosed(t, extra, 5*time.Second, "a connection past the handshake limit")
	if got := pull.Stats().HandshakeFailures; got != 1 {
		t.Fatalf("HandshakeFailures = %d, want 1 (the refused connection)", got)
	}
	for _, c := range silent {
		c.Close()
	}
	silent = silent[:0]
	waitFor(t, 10*time.Second, "the silent connections to go", func() bool { return pull.handshakes.Load() == 0 })
	push := NewPush(Options{})
	closeAll(t, push)
	if err := push.Dial(ep); err != nil {
		t.Fatal(err)
	}
	if err := push.Send(testCtx(t, 10*time.Second), Msg{[]byte("in")}); err != nil {
		t.Fatal(err)
	}
	if _, err := pull.Recv(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("a peer after the refusals: %v", err)
	}
}

// TestPushSendBlockedWhenClosed: a Send waiting for room (no peer) returns
// ErrClosed when the socket closes: the message goes back to its caller,
// and it is not counted as written or dropped by the socket.
func TestPushSendBlockedWhenClosed(t *testing.T) {
	push := NewPush(Options{})
	bound(t, push)
	errc := make(chan error, 1)
	go func() { errc <- push.Send(context.Background(), Msg{[]byte("m")}) }()
	waitFor(t, 5*time.Second, "Send to wait for room", func() bool { return push.roomWaiters.Load() == 1 })
	push.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Send = %v, want ErrClosed", err)
	}
	st := push.Stats()
	if st.MsgsOut != 0 || st.Drops[DropSocketClosed] != 0 || push.inflight.Load() != 0 {
		t.Fatalf("written %d, socket_closed %d, in flight %d; want 0, 0, 0", st.MsgsOut, st.Drops[DropSocketClosed], push.inflight.Load())
	}
	if err := push.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after close with nothing in flight = %v", err)
	}
}

// TestPushFlushDuringClose: a Flush waiting for messages queued to a Dial
// endpoint that never connects returns ErrClosed when the socket closes,
// and the messages are counted as socket_closed.
func TestPushFlushDuringClose(t *testing.T) {
	push := NewPush(Options{})
	if err := push.Dial(fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := push.Send(testCtx(t, 5*time.Second), msgOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- push.Flush(context.Background()) }()
	waitFor(t, 5*time.Second, "Flush to wait", func() bool { return push.flushed.waiters.Load() == 1 })
	push.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush = %v, want ErrClosed", err)
	}
	if got := push.Stats().Drops[DropSocketClosed]; got != 5 {
		t.Fatalf("socket_closed drops = %d, want 5", got)
	}
	if got := push.inflight.Load(); got != 0 {
		t.Fatalf("in flight after close = %d, want 0", got)
	}
}

// stalledPeer connects to ep as a PULL that takes the handshake and then
// reads nothing, with a small receive buffer, so a PUSH's queue for it
// stays put until the test reads.
func stalledPeer(t *testing.T, ep string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", ep[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	testpeer.ZMTPHandshake(t, c, "PULL")
	return c
}

// sendQueued sends n 8 KiB messages to a stalled peer: with small
// socket buffers at both ends, its writer blocks in its first write, and
// the rest wait in the socket.
func sendQueued(t *testing.T, push *Push, n int) {
	t.Helper()
	for range n {
		if err := push.Send(testCtx(t, 5*time.Second), Msg{bytes.Repeat([]byte{'x'}, 8192)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPushRerouteCutByClose: a worker's connection breaks with messages
// still queued for it, there is no other worker to take them, and the
// socket closes while they wait: they are counted as socket_closed, so
// every message Send took is written, lost in flight, or dropped at close.
func TestPushRerouteCutByClose(t *testing.T) {
	push := NewPush(Options{HWM: 1000})
	fl, ep := listenFault(t, push.socket, 4096, 0)
	c := stalledPeer(t, ep)
	waitFor(t, 5*time.Second, "the worker", func() bool { return push.Stats().Peers == 1 })
	const n = 100
	sendQueued(t, push, n)
	fl.arm(0)                 // its next write breaks
	go io.Copy(io.Discard, c) // the write in progress completes
	waitFor(t, 5*time.Second, "the broken worker to be dropped", func() bool { return push.Stats().Disconnects == 1 })
	waitFor(t, 5*time.Second, "its queue to wait for another worker", func() bool { return push.roomWaiters.Load() == 1 })
	push.Close()
	st := push.Stats()
	accounted := st.MsgsOut + st.Drops[DropLostInFlight] + st.Drops[DropSocketClosed]
	if accounted != n || st.Drops[DropSocketClosed] == 0 || st.Drops[DropLostInFlight] == 0 {
		t.Fatalf("sent %d: written %d + lost %d + socket_closed %d = %d; want every message accounted, some lost in the broken write, some at close",
			n, st.MsgsOut, st.Drops[DropLostInFlight], st.Drops[DropSocketClosed], accounted)
	}
	if got := push.inflight.Load(); got != 0 {
		t.Fatalf("in flight after close = %d", got)
	}
}

// TestPushCloseCountsQueued: closing a PUSH whose worker has not taken
// what was queued for it counts the rest as socket_closed (and the write
// the close cuts short as lost in flight).
func TestPushCloseCountsQueued(t *testing.T) {
	push := NewPush(Options{HWM: 1000})
	_, ep := listenFault(t, push.socket, 4096, 0)
	stalledPeer(t, ep)
	waitFor(t, 5*time.Second, "the worker", func() bool { return push.Stats().Peers == 1 })
	const n = 100
	sendQueued(t, push, n)
	push.Close()
	// The write in progress when it closed is lost in flight.
	st := push.Stats()
	if st.MsgsOut+st.Drops[DropLostInFlight]+st.Drops[DropSocketClosed] != n || st.Drops[DropSocketClosed] < n/2 {
		t.Fatalf("sent %d: written %d + lost %d + socket_closed %d; want all accounted, at least %d at close",
			n, st.MsgsOut, st.Drops[DropLostInFlight], st.Drops[DropSocketClosed], n/2)
	}
	if got := push.inflight.Load(); got != 0 {
		t.Fatalf("in flight after close = %d", got)
	}
}

// TestPullDeliversBatchBeforeBadFrame: a peer sends messages and then, in
// the same write, a frame that ends the connection: one over MaxMsgSize
// (counted as oversize), or a malformed one that is already complete in
// the reader's buffer, so the messages before it are still in the
// reader's batch when the error comes. Either way they are delivered.
func TestPullDeliversBatchBeforeBadFrame(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bad      []byte
		oversize uint64
	}{
		{"oversize", binary.BigEndian.AppendUint64([]byte{0x02}, 1<<20), 1},
		{"command marked more", []byte{0x05, 0x01, 'x'}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pull := NewPull(Options{MaxMsgSize: 1000})
			closeAll(t, pull)
			ep := bound(t, pull)
			c, err := net.Dial("tcp", ep[len("tcp://"):])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			testpeer.ZMTPHandshake(t, c, "PUSH")
			var b []byte
			for i := range 3 {
				b = appendMsg(b, msgOf(i))
			}
			if _, err := c.Write(append(b, tc.bad...)); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				m, err := pull.Recv(testCtx(t, 5*time.Second))
				if err != nil || !bytes.Equal(m[0], msgOf(i)[0]) {
					t.Fatalf("message %d: %q, %v", i, m, err)
				}
			}
			waitFor(t, 5*time.Second, "the peer to be dropped", func() bool { return pull.Stats().Disconnects == 1 })
			if st := pull.Stats(); st.Oversize != tc.oversize || st.MsgsIn != 3 {
				t.Fatalf("oversize %d, received %d; want %d and 3", st.Oversize, st.MsgsIn, tc.oversize)
			}
		})
	}
}

// TestPushCountsUnexpectedMessages: a peer that writes messages to a PUSH
// (a misconfigured PUSH on the other side) has them counted as
// unexpected_msg, not silently read away.
func TestPushCountsUnexpectedMessages(t *testing.T) {
	push := NewPush(Options{})
	closeAll(t, push)
	ep := bound(t, push)
	c, err := net.Dial("tcp", ep[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testpeer.ZMTPHandshake(t, c, "PULL")
	var b []byte
	for i := range 4 {
		b = appendMsg(b, msgOf(i))
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "4 unexpected messages counted", func() bool { return push.Stats().Drops[DropUnexpected] == 4 })
}

// TestPingWriteFailureDropsPeer: a heartbeat PING whose write fails
// closes the peer (it is counted as a disconnect), and a message sent
// afterwards waits for and reaches the next peer.
func TestPingWriteFailureDropsPeer(t *testing.T) {
	push := NewPush(Options{HeartbeatIvl: 20 * time.Millisecond, HeartbeatTimeout: time.Minute})
	closeAll(t, push)
	fl, ep := listenFault(t, push.socket, 0, 0)
	w := NewPull(Options{})
	closeAll(t, w)
	if err := w.Dial(ep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the worker", func() bool { return push.Stats().Peers == 1 })
	fl.arm(0)
	waitFor(t, 5*time.Second, "the PING's failed write to drop the peer", func() bool { return push.Stats().Disconnects == 1 })
	// The worker reconnects (through the listener, with a fresh connection).
	if err := push.Send(testCtx(t, 10*time.Second), Msg{[]byte("after")}); err != nil {
		t.Fatal(err)
	}
	m, err := w.Recv(testCtx(t, 10*time.Second))
	if err != nil || string(m[0]) != "after" {
		t.Fatalf("Recv = %q, %v", m, err)
	}
	if st := push.Stats(); st.Drops[DropLostInFlight] != 0 || st.Drops[DropSocketClosed] != 0 || st.HeartbeatTimeouts != 0 {
		t.Fatalf("drops %v, heartbeat timeouts %d: the PING's failed write, and nothing else, should have dropped the peer", st.Drops, st.HeartbeatTimeouts)
	}
}
