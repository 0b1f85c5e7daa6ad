package zmq

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, d, testpeer.Text(what), cond)
}

func tcpEndpoint(a net.Addr) string {
	return "tcp://" + a.String()
}

// bound listens on an ephemeral loopback port and returns its endpoint.
func bound(t *testing.T, s interface {
	Listen(string) error
	Addrs() []net.Addr
}) string {
	t.Helper()
	if err := s.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	a := s.Addrs()
	return tcpEndpoint(a[len(a)-1])
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func msgOf(i int) Msg { return Msg{[]byte(fmt.Sprintf("m%06d", i))} }

type closer interface{ Close() error }

func closeAll(t *testing.T, cs ...closer) {
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
}

// fastAndStalledSubs binds a PUB (HWM 100) and connects two SUBs to
// everything: fast, with room to keep up, then slow, which the caller
// leaves unread. It returns the PUB's peers for both, in that order.
func fastAndStalledSubs(t *testing.T) (pub *Pub, fast, slow *Sub, fastPeer, slowPeer *peer) {
	t.Helper()
	pub = NewPub(Options{HWM: 100})
	closeAll(t, pub)
	ep := bound(t, pub)
	fast = NewSub(Options{RecvHWM: 100000})
	slow = NewSub(Options{RecvHWM: 1})
	closeAll(t, fast, slow)
	for i, s := range []*Sub{fast, slow} {
		s.Subscribe("")
		s.Dial(ep)
		waitFor(t, 5*time.Second, fmt.Sprintf("subscriber %d", i+1), func() bool {
			l := *pub.list.Load()
			return len(l) == i+1 && l[i].subs.Load().match(nil)
		})
	}
	l := *pub.list.Load()
	return pub, fast, slow, l[0], l[1]
}

// countRecv receives up to n messages from s in the background; the
// returned func waits for it to finish and says how many arrived.
func countRecv(ctx context.Context, s *Sub, n int) func() int {
	done := make(chan int, 1)
	go func() {
		got := 0
		for got < n {
			if _, err := s.Recv(ctx); err != nil {
				break
			}
			got++
		}
		done <- got
	}()
	return func() int { return <-done }
}
