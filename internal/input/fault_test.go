package input

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Failure paths of the inputs, with in-process peers (these run under
// -short): what happens to the events they had read.

// resetAfter writes data on a new connection to s and resets it (RST, not
// FIN), as a sender that crashes does.
func resetAfter(t *testing.T, s Input, data string) {
	t.Helper()
	c := dialTCP(t, s)
	mustWrite(t, c, data)
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestTCPResetMidStream: a connection reset right after frames were sent
// hands over every complete frame the input read; a frame the reset cut
// off is counted as malformed, and the reset as a read error.
func TestTCPResetMidStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tail      string
		malformed uint64
	}{
		{"between frames", "", 0},
		{"inside a frame", "40 <13>cut off", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}})
			var b strings.Builder
			for i := range 20 {
				b.WriteString(octet(fmt.Sprintf("<13>m%02d", i)))
			}
			resetAfter(t, s, b.String()+tc.tail)
			testpeer.Eventually(t, 5*time.Second, testpeer.Text("the connection to end"), func() bool {
				st := s.Stats()
				return st.ConnectionsTotal == 1 && st.Connections == 0
			})
			got := c.raws()
			if len(got) != 20 || got[0] != "<13>m00" || got[19] != "<13>m19" {
				t.Fatalf("delivered %q, want the 20 complete frames", got)
			}
			if st := s.Stats(); st.Received != 20 || st.Malformed != tc.malformed || st.ReadErrors != 1 {
				t.Errorf("received %d, malformed %d, read errors %d; want 20, %d, 1", st.Received, st.Malformed, st.ReadErrors, tc.malformed)
			}
		})
	}
}

// goPush connects an in-process PUSH to the input's first address.
func goPush(t *testing.T, in Input) *zmq.Push {
	t.Helper()
	p := zmq.NewPush(zmq.Options{})
	t.Cleanup(func() { p.Close() })
	if err := p.Dial("tcp://" + in.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	return p
}

func pushN(t *testing.T, p *zmq.Push, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := p.Send(ctx, zmq.Msg{[]byte(fmt.Sprintf("<13>z%04d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestZMQStopDrainsInProcess: Stop hands every message the socket had
// queued to the Handler before it returns.
func TestZMQStopDrainsInProcess(t *testing.T) {
	z, err := NewZMQ(ZMQConfig{Name: "z", Bind: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	gate := c.block()
	if err := z.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	const n = 300
	pushN(t, goPush(t, z), n)
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the socket to receive everything"), func() bool { return z.pull.Stats().MsgsIn == n })
	stopped := make(chan error)
	go func() { stopped <- z.Stop(context.Background()) }()
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got, st := c.len(), z.Stats(); got != n || st.Received != n || st.SocketDrops != 0 {
		t.Errorf("handed over %d, received %d, socket drops %d; want %d, %d, 0", got, st.Received, st.SocketDrops, n, n)
	}
}

// TestZMQStopTimesOut: Stop gives up when its context ends while the
// Handler is blocked, and says so. Nothing the socket read is lost for
// that: once the Handler returns, the input hands over the rest.
func TestZMQStopTimesOut(t *testing.T) {
	z, err := NewZMQ(ZMQConfig{Name: "z", Bind: []string{"tcp://127.0.0.1:0"}, HWM: 50}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	gate := c.block()
	if err := z.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	const n = 300
	p := goPush(t, z)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := p.Send(ctx, zmq.Msg{[]byte(fmt.Sprintf("<13>z%04d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the Handler to block"), func() bool { return c.calls() == 1 })
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if err := z.Stop(short); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `input "z"`) {
		t.Fatalf("Stop = %v, want the input's deadline exceeded", err)
	}
	close(gate)
	z.wg.Wait() // the receive loop ends once it has handed over the rest
	st := z.Stats()
	in := z.pull.Stats().MsgsIn
	if uint64(c.len()) != in || st.Received != in || st.SocketDrops != 0 {
		t.Fatalf("the socket read %d: %d handed over (%d counted), %d socket drops", in, c.len(), st.Received, st.SocketDrops)
	}
}

// TestZMQStartFailureCloses: a Connect endpoint that cannot be dialled
// makes Start fail, and the Bind it had already set up is closed.
func TestZMQStartFailureCloses(t *testing.T) {
	port := testpeer.FreePort(t)
	z, err := NewZMQ(ZMQConfig{Name: "z", Bind: []string{fmt.Sprintf("tcp://127.0.0.1:%d", port)}, Connect: []string{"tcp://:5555"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Start(func([]*event.Event) {}); !errors.Is(err, zmq.ErrEndpoint) || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Start = %v, want a connect error", err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("the bound endpoint is still open after the failed Start: %v", err)
	}
	l.Close()
	if err := z.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start: %v", err)
	}
}

// TestZMQStopKeepsWhatWasRead: a Stop with time to drain hands over every
// message the socket read from its peers, also those its reader held
// while the receive queue was full: they were read off the wire, and
// the peer will not send them again.
func TestZMQStopKeepsWhatWasRead(t *testing.T) {
	z, err := NewZMQ(ZMQConfig{Name: "z", Bind: []string{"tcp://127.0.0.1:0"}, HWM: 50}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	gate := c.block()
	if err := z.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	const n = 300
	p := goPush(t, z)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := p.Send(ctx, zmq.Msg{[]byte(fmt.Sprintf("<13>z%04d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	// The Handler holds one batch, the queue is full, and the reader
	// holds more that it read from the peer.
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the reader to hold messages"), func() bool {
		st := z.pull.Stats()
		return c.calls() == 1 && st.QueueDepth == 50 && st.MsgsIn > uint64(c.heldEvents()+st.QueueDepth)
	})
	stopped := make(chan error)
	go func() { stopped <- z.Stop(ctx) }()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the socket to close"), func() bool { return z.pull.Stats().Peers == 0 })
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	st := z.Stats()
	if in := z.pull.Stats().MsgsIn; uint64(c.len()) != in || st.SocketDrops != 0 {
		t.Fatalf("the socket read %d messages: %d handed over, %d dropped at Stop", in, c.len(), st.SocketDrops)
	}
}

// refusingListener fails its first refuse Accepts as a process out of
// file descriptors does.
type refusingListener struct {
	net.Listener
	refuse  atomic.Int32
	refused atomic.Int32
}

func (l *refusingListener) Accept() (net.Conn, error) {
	if l.refuse.Add(-1) >= 0 {
		l.refused.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestTCPAcceptRetries: Accept failing (out of file descriptors) is
// retried with a backoff; the connection waiting meanwhile is served.
func TestTCPAcceptRetries(t *testing.T) {
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &refusingListener{Listener: l}
	rl.refuse.Store(3)
	s.wg.Add(1)
	go func() { // the connection core's accept loop; Stop closes rl
		defer s.wg.Done()
		s.core.Serve(rl, nil, s.serveConn)
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustWrite(t, conn, "<13>after the refusals\n")
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the event after the refusals"), func() bool { return contains(c.raws(), "<13>after the refusals") })
	if got := rl.refused.Load(); got != 3 {
		t.Fatalf("%d Accepts failed, want 3", got)
	}
}
