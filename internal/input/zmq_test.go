package input

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// pushScript is a libzmq PUSH peer: it connects to (or binds and prints)
// an endpoint and sends n one-frame messages, n two-frame [stream,
// payload] messages and one three-frame message.
const pushScript = `
import sys, zmq
mode, ep, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = zmq.Context()
s = ctx.socket(zmq.PUSH)
s.setsockopt(zmq.LINGER, 20000)
if mode == "connect":
    s.connect(ep)
else:
    s.bind(ep)
    print(s.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
for i in range(n):
    s.send(b"<13>one-%d" % i)
for i in range(n):
    s.send_multipart([b"stream-%d" % (i % 3), b"<13>two-%d" % i])
s.send_multipart([b"a", b"b", b"c"])
s.send(b"<13>done")
s.close()
ctx.term()
`

// pythonZMQ skips a short run and fails the test without pyzmq.
func pythonZMQ(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real libzmq peer")
	}
	testpeer.NeedPyzmq(t)
}

func startZMQ(t *testing.T, cfg ZMQConfig) (*ZMQ, *collector) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "ztest"
	}
	z, err := NewZMQ(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	if err := z.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := z.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return z, c
}

func checkPushed(t *testing.T, z *ZMQ, c *collector, n int) {
	t.Helper()
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("every message from libzmq"), func() bool { return contains(c.raws(), "<13>done") })
	evs := c.snapshot()
	if len(evs) != 2*n+1 {
		t.Fatalf("%d events, want %d", len(evs), 2*n+1)
	}
	for i := range n {
		if e := evs[i]; string(e.Raw) != fmt.Sprintf("<13>one-%d", i) || e.Stream != "" {
			t.Fatalf("event %d = %q stream %q", i, e.Raw, e.Stream)
		}
		e := evs[n+i]
		if string(e.Raw) != fmt.Sprintf("<13>two-%d", i) || e.Stream != fmt.Sprintf("stream-%d", i%3) {
			t.Fatalf("event %d = %q stream %q", n+i, e.Raw, e.Stream)
		}
		if e.Input != "ztest" || e.Received.IsZero() {
			t.Fatalf("event not stamped: %+v", e)
		}
	}
	st := z.Stats()
	if st.Malformed != 1 || st.Received != uint64(2*n+1) {
		t.Errorf("stats = %+v", st)
	}
}

func TestZMQPullBind(t *testing.T) {
	pythonZMQ(t)
	z, c := startZMQ(t, ZMQConfig{Bind: []string{"tcp://127.0.0.1:0"}, StreamFrame: true})
	ep := "tcp://" + z.Addrs()[0].String()
	const n = 1000
	out, err := exec.Command(testpeer.Python, "-c", pushScript, "connect", ep, fmt.Sprint(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("libzmq PUSH: %v: %s", err, out)
	}
	checkPushed(t, z, c, n)
	if st := z.Stats(); st.ConnectionsTotal != 1 {
		t.Errorf("connections total = %d, want 1", st.ConnectionsTotal)
	}
}

func TestZMQPullConnect(t *testing.T) {
	pythonZMQ(t)
	cmd := exec.Command(testpeer.Python, "-c", pushScript, "bind", "tcp://127.0.0.1:*", "100")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line := make([]byte, 64)
	k, err := stdout.Read(line)
	if err != nil {
		t.Fatalf("libzmq PUSH did not bind: %v: %s", err, stderr.String())
	}
	ep := strings.TrimSpace(string(line[:k]))
	z, c := startZMQ(t, ZMQConfig{Connect: []string{ep}, StreamFrame: true})
	checkPushed(t, z, c, 100)
}

// Without StreamFrame the first of two frames is ignored.
func TestZMQNoStreamFrame(t *testing.T) {
	pythonZMQ(t)
	z, c := startZMQ(t, ZMQConfig{Bind: []string{"tcp://127.0.0.1:0"}})
	out, err := exec.Command(testpeer.Python, "-c", pushScript, "connect", "tcp://"+z.Addrs()[0].String(), "10").CombinedOutput()
	if err != nil {
		t.Fatalf("libzmq PUSH: %v: %s", err, out)
	}
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("every message"), func() bool { return contains(c.raws(), "<13>done") })
	for _, e := range c.snapshot() {
		if e.Stream != "" {
			t.Fatalf("stream %q set without StreamFrame", e.Stream)
		}
	}
	if got := c.raws()[10]; got != "<13>two-0" {
		t.Errorf("payload of a two-frame message = %q", got)
	}
}

// A peer whose frame header claims 2^49 bytes is disconnected before
// anything is allocated; the oversize shows in Stats and other peers
// carry on.
func TestZMQHugeFrameHeader(t *testing.T) {
	pythonZMQ(t)
	z, c := startZMQ(t, ZMQConfig{Bind: []string{"tcp://127.0.0.1:0"}, MaxMessageSize: 1 << 20})
	addr := z.Addrs()[0].String()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	testpeer.ZMTPHandshake(t, conn, "PUSH")
	hdr := []byte{0x02, 0, 0, 0, 0, 0, 0, 0, 0} // LONG message frame, last
	binary.BigEndian.PutUint64(hdr[1:], 1<<49)
	if _, err := conn.Write(hdr); err != nil {
		t.Fatal(err)
	}
	conn.Write(bytes.Repeat([]byte("x"), 4096))
	testpeer.ExpectClosed(t, conn, 10*time.Second, "peer with a 2^49-byte frame")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("oversize counted"), func() bool { return z.Stats().Oversize == 1 })

	out, err := exec.Command(testpeer.Python, "-c", pushScript, "connect", "tcp://"+addr, "10").CombinedOutput()
	if err != nil {
		t.Fatalf("libzmq PUSH: %v: %s", err, out)
	}
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("messages from a well-behaved peer"), func() bool { return contains(c.raws(), "<13>done") })
}

// Stop hands over what the socket already queued.
func TestZMQStopDrains(t *testing.T) {
	pythonZMQ(t)
	z, err := NewZMQ(ZMQConfig{Name: "ztest", Bind: []string{"tcp://127.0.0.1:0"}, StreamFrame: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	gate := c.block()
	if err := z.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	const n = 100
	out, err := exec.Command(testpeer.Python, "-c", pushScript, "connect", "tcp://"+z.Addrs()[0].String(), fmt.Sprint(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("libzmq PUSH: %v: %s", err, out)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("socket received everything"), func() bool { return z.pull.Stats().MsgsIn == 2*n+2 })
	stopped := make(chan error)
	go func() { stopped <- z.Stop(context.Background()) }()
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got := c.len(); got != 2*n+1 {
		t.Errorf("%d events handed over by Stop, want %d", got, 2*n+1)
	}
}

// plainPushScript is a libzmq PUSH with PLAIN credentials sending n
// messages, then "<13>done".
const plainPushScript = `
import sys, zmq
ep, user, pw, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = zmq.Context()
s = ctx.socket(zmq.PUSH)
s.plain_username = user.encode()
s.plain_password = pw.encode()
s.setsockopt(zmq.LINGER, 3000)
s.connect(ep)
for i in range(n):
    s.send(b"<13>plain-%d" % i)
s.send(b"<13>done")
s.close()
ctx.term()
`

// ZMTP PLAIN from libzmq: the right password gets in, a wrong one is
// refused and counted.
func TestZMQPlain(t *testing.T) {
	pythonZMQ(t)
	z, c := startZMQ(t, ZMQConfig{
		Bind:     []string{"tcp://127.0.0.1:0"},
		Security: zmq.PlainServer(zmq.PlainPassword("relay", "s3cret")),
	})
	ep := "tcp://" + z.Addrs()[0].String()
	// Refused: libzmq keeps retrying, so give it a moment by waiting for
	// the refusal to be counted, then kill it.
	bad := exec.Command(testpeer.Python, "-c", plainPushScript, ep, "relay", "wrong", "5")
	if err := bad.Start(); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("refused handshake counted"), func() bool { return z.Stats().HandshakeErrors >= 1 })
	bad.Process.Kill()
	bad.Wait()

	out, err := exec.Command(testpeer.Python, "-c", plainPushScript, ep, "relay", "s3cret", "100").CombinedOutput()
	if err != nil {
		t.Fatalf("libzmq PUSH: %v: %s", err, out)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("every message"), func() bool { return contains(c.raws(), "<13>done") })
	got := c.raws()
	if len(got) != 101 || got[0] != "<13>plain-0" || got[99] != "<13>plain-99" {
		t.Errorf("got %d events, first %q", len(got), got[0])
	}
}

func TestZMQConfigErrors(t *testing.T) {
	if _, err := NewZMQ(ZMQConfig{Name: "z"}, nil); !errors.Is(err, ErrNoListen) {
		t.Errorf("no endpoints: %v, want ErrNoListen", err)
	}
	z, err := NewZMQ(ZMQConfig{Name: "z", Bind: []string{"127.0.0.1:5555"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Start(func([]*event.Event) {}); !errors.Is(err, zmq.ErrEndpoint) {
		t.Errorf("bad endpoint: %v, want zmq.ErrEndpoint", err)
	}
	if err := z.Stop(context.Background()); err != nil {
		t.Errorf("stop after a failed start: %v", err)
	}
}
