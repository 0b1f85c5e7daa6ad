package zmq

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func TestPlainGoServerLibzmqClient(t *testing.T) {
	needLibzmq(t)
	pull := NewPull(Options{Security: PlainServer(PlainPassword("alice", "s3cret"))})
	closeAll(t, pull)
	ep := bound(t, pull)

	bad := startZpeer(t, "push", "connect", ep, "--plain-client", "alice:wrong")
	waitFor(t, 10*time.Second, "refused handshake", func() bool { return pull.Stats().HandshakeFailures >= 1 })
	if pull.Stats().Peers != 0 {
		t.Fatal("client with a wrong password was admitted")
	}
	bad.stop()

	good := startZpeer(t, "push", "connect", ep, "--plain-client", "alice:s3cret")
	good.do("send 10 ok")
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 10; i++ {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("ok%06d", i); string(m[0]) != want {
			t.Fatalf("got %q want %q", m[0], want)
		}
	}
}

func TestPlainLibzmqServerGoClient(t *testing.T) {
	needLibzmq(t)
	z := startZpeer(t, "pull", "bind", "tcp://127.0.0.1:0", "--plain-server", "bob:pw", "--print")

	wrong := NewPush(Options{Security: PlainClient("bob", "nope"), ReconnectMin: 20 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	closeAll(t, wrong)
	wrong.Dial(z.Endpoint)
	waitFor(t, 10*time.Second, "refusals", func() bool { return wrong.Stats().HandshakeFailures >= 2 })
	if wrong.Stats().Connects != 0 {
		t.Fatal("libzmq admitted a wrong password")
	}
	wrong.Close()

	right := NewPush(Options{Security: PlainClient("bob", "pw")})
	closeAll(t, right)
	right.Dial(z.Endpoint)
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 10; i++ {
		if err := right.Send(ctx, msgOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "10 messages", func() bool { return z.count() == 10 })
}

func TestPlainGoGoReconnects(t *testing.T) {
	pull := NewPull(Options{Security: PlainServer(PlainPassword("u", "p"))})
	closeAll(t, pull)
	ep := bound(t, pull)
	push := NewPush(Options{Security: PlainClient("u", "p"), ReconnectMin: 10 * time.Millisecond})
	closeAll(t, push)
	push.Dial(ep)
	ctx := testCtx(t, 20*time.Second)
	push.Send(ctx, msgOf(1))
	if _, err := pull.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	// Kick the peer: the client must authenticate again with the same
	// Security value (zmq4's PLAIN forgets the password after one use).
	for _, p := range *pull.list.Load() {
		p.close(nil)
	}
	waitFor(t, 10*time.Second, "reconnect", func() bool { return pull.Stats().Connects >= 2 && pull.Stats().Peers == 1 })
	push.Send(ctx, msgOf(2))
	if _, err := pull.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	if f := pull.Stats().HandshakeFailures; f != 0 {
		t.Fatalf("%d handshake failures on reconnect", f)
	}
}

func TestPlainServerSendsError(t *testing.T) {
	pull := NewPull(Options{Security: PlainServer(PlainPassword("u", "p"))})
	closeAll(t, pull)
	ep := bound(t, pull)
	e, _ := parseEndpoint(ep)
	for _, tc := range []struct {
		sec     Security
		wantErr error
	}{
		{PlainClient("u", "wrong"), ErrPeerError},
		{PlainClient("x", "p"), ErrPeerError},
		{PlainClient("u", "p"), nil},
	} {
		push := NewPush(Options{Security: tc.sec})
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		p, err := push.handshake(c, ep, nil)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (p != nil) {
			t.Fatalf("%+v: handshake error %v, want %v", tc.sec, err, tc.wantErr)
		}
		if p != nil {
			p.conn.Close()
		}
		push.Close()
	}
	waitFor(t, 5*time.Second, "2 failures counted", func() bool { return pull.Stats().HandshakeFailures >= 2 })
	if f := pull.Stats().HandshakeFailures; f != 2 {
		t.Fatalf("server counted %d failures, want 2", f)
	}
}
