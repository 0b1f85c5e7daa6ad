package output

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// waitSubscribed waits until a subscription reached the PUB output.
func waitSubscribed(t *testing.T, out *ZMQ) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the subscription at the PUB"), func() bool {
		for _, p := range out.Socket().PeerStats {
			if p.Subscriptions > 0 {
				return true
			}
		}
		return false
	})
}

// NewZMQ refuses what it cannot set up, says what to change, and leaves
// nothing bound behind.
func TestNewZMQErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := testpeer.FreePort(t)
	first := fmt.Sprintf("tcp://127.0.0.1:%d", free)
	for _, tc := range []struct {
		name string
		cfg  ZMQConfig
		want string
		is   error
	}{
		{"socket type", ZMQConfig{Name: "o", Socket: "dealer", Bind: []string{"tcp://127.0.0.1:0"}}, `socket "dealer" is not supported`, nil},
		{"no endpoint", ZMQConfig{Name: "o", Socket: "push"}, "no endpoint", nil},
		{"busy bind", ZMQConfig{Name: "o", Socket: "push", Bind: []string{first, "tcp://" + busy.Addr().String()}}, "bind", syscall.EADDRINUSE},
		{"bad connect", ZMQConfig{Name: "o", Socket: "pub", Bind: []string{first}, Connect: []string{"tcp://:5"}}, "connect", zmq.ErrEndpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := NewZMQ(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `output "o"`) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("NewZMQ = %v, %v; want an error with %q", out, err, tc.want)
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", free))
			if err != nil {
				t.Fatalf("the endpoint bound before the failure is still open: %v", err)
			}
			l.Close()
		})
	}
}

// Close of a PUSH whose worker never takes what was queued fails with the
// flush error, and the messages it drops are counted as dropped.
func TestPushCloseFlushFails(t *testing.T) {
	out, err := NewZMQ(ZMQConfig{Name: "w", Socket: "push", Connect: []string{fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Name() != "w" {
		t.Errorf("Name = %q", out.Name())
	}
	if err := out.Write(context.Background(), events("click", 7)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := out.Close(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `output "w": flush`) {
		t.Fatalf("Close = %v, want the flush's deadline", err)
	}
	if s := out.Stats(); s.Sent != 7 || s.Dropped != 7 || out.Socket().Drops[zmq.DropSocketClosed] != 7 {
		t.Fatalf("stats %+v, socket drops %v: want 7 sent to the socket and 7 dropped at close", s, out.Socket().Drops)
	}
}
