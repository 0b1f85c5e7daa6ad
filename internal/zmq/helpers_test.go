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
