package zmq

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// TestSession runs a DEALER-to-DEALER session pair over TCP with NULL and
// with CURVE: messages and commands both ways, and the server learns the
// client's key.
func TestSession(t *testing.T) {
	ss, cs, _, ck := curvePair(t)
	for _, c := range []struct {
		name           string
		server, client Security
	}{{"null", nil, nil}, {"curve", ss, cs}} {
		t.Run(c.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			type res struct {
				s   *Session
				err error
			}
			accepted := make(chan res, 1)
			go func() {
				conn, err := l.Accept()
				if err != nil {
					accepted <- res{nil, err}
					return
				}
				s, err := NewSession(conn, SessionOptions{Type: "DEALER", Security: c.server})
				accepted <- res{s, err}
			}()
			conn, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			cli, err := NewSession(conn, SessionOptions{Type: "DEALER", Security: c.client})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			r := <-accepted
			if r.err != nil {
				t.Fatal(r.err)
			}
			srv := r.s
			defer srv.Close()
			if k, ok := srv.PeerKey(); ok != (c.name == "curve") || (ok && k != ck.Public) {
				t.Fatalf("PeerKey = %v, %v", k, ok)
			}
			big := bytes.Repeat([]byte("x"), 70000)
			if err := cli.Send(Msg{[]byte("a"), big}); err != nil {
				t.Fatal(err)
			}
			if err := cli.SendCmd(zmq4.CmdPing, []byte{0, 1}); err != nil {
				t.Fatal(err)
			}
			m, cmd, err := srv.Recv()
			if err != nil || cmd || len(m) != 2 || string(m[0]) != "a" || !bytes.Equal(m[1], big) {
				t.Fatalf("message: %v %v %d frames", err, cmd, len(m))
			}
			m, cmd, err = srv.Recv()
			if name, data, ok := ParseCommand(m[0]); err != nil || !cmd || !ok || name != zmq4.CmdPing || !bytes.Equal(data, []byte{0, 1}) {
				t.Fatalf("command: %v %v %q", err, cmd, m)
			}
			if err := srv.Send(Msg{[]byte("back")}); err != nil {
				t.Fatal(err)
			}
			if m, _, err := cli.Recv(); err != nil || string(m[0]) != "back" {
				t.Fatalf("reply: %q %v", m, err)
			}
		})
	}
}

// TestSessionWithSockets: a Session interoperates with the sockets, and a
// refused CURVE session reports why.
func TestSessionWithSockets(t *testing.T) {
	ss, cs, sk, _ := curvePair(t)
	pull := NewPull(Options{Security: ss})
	closeAll(t, pull)
	ep := bound(t, pull)
	conn, err := net.Dial("tcp", ep[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(conn, SessionOptions{Type: "PUSH", Security: cs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(Msg{[]byte("from a session")}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 5*time.Second)
	if m, err := pull.Recv(ctx); err != nil || string(m[0]) != "from a session" {
		t.Fatalf("%q %v", m, err)
	}
	stranger, _ := NewCurveKeyPair()
	conn, err = net.Dial("tcp", ep[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSession(conn, SessionOptions{Type: "PUSH", Security: CurveClient(stranger, sk.Public), HandshakeTimeout: 2 * time.Second})
	var ce *CurveError
	if !errors.As(err, &ce) || ce.Reason != CurveRefused || !errors.Is(err, ErrAuth) {
		t.Fatalf("stranger: %v", err)
	}
}
