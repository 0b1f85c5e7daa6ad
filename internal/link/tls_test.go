package link

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// TestTLSRefusals: each bad certificate is refused, counted on both ends
// by reason, and no session starts; then a good sender gets through.
func TestTLSRefusals(t *testing.T) {
	srvTLS, cliTLS, ca := tlsPair(t)
	other := newCA(t, "someone else's CA")
	expiredSrv := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "receiver", []string{"relay.dc2"}, false, true)}, ClientCAs: ca.pool}
	cases := []struct {
		name      string
		server    *tls.Config
		client    func() *tls.Config
		sender    string // reason counted by the sender
		receiver  string // reason counted by the receiver ("" : only the listener's handshake failures)
		handshake bool   // the receiver's listener counts a failed handshake
	}{
		{"unknown CA (receiver's certificate)", srvTLS, func() *tls.Config {
			c := cliTLS.Clone()
			c.RootCAs = other.pool
			return c
		}, ReasonUnknownCA, "", true},
		{"unknown CA (sender's certificate)", srvTLS, func() *tls.Config {
			c := cliTLS.Clone()
			c.Certificates = []tls.Certificate{other.issue(t, "intruder", nil, true, false)}
			return c
		}, ReasonPeerRefused, ReasonUnknownCA, true},
		{"wrong server name", srvTLS, func() *tls.Config {
			c := cliTLS.Clone()
			c.ServerName = "relay.dc3"
			return c
		}, ReasonServerName, "", true},
		{"no client certificate", srvTLS, func() *tls.Config {
			c := cliTLS.Clone()
			c.Certificates = nil
			return c
		}, ReasonPeerRefused, ReasonNoClientCert, true},
		{"expired client certificate", srvTLS, func() *tls.Config {
			c := cliTLS.Clone()
			c.Certificates = []tls.Certificate{ca.issue(t, "sender", nil, true, true)}
			return c
		}, ReasonPeerRefused, ReasonExpired, true},
		{"expired receiver certificate", expiredSrv, func() *tls.Config { return cliTLS.Clone() }, ReasonExpired, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := newCollector()
			raddr := freeAddr(t)
			rcv := startReceiver(t, t.TempDir(), raddr, c.server, col.handle)
			defer stopReceiver(t, rcv)
			var id SenderID
			id[0] = 1
			s, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://" + raddr}, TLS: c.client(), ID: id,
				ReconnectMin: 50 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			eventually(t, 10*time.Second, func() string {
				return fmt.Sprintf("sender refusals %v, receiver %v, handshake failures %d", s.Stats().Refused, rcv.Stats().Refused, rcv.Stats().Listener.HandshakeFailures())
			}, func() bool {
				rs := rcv.Stats()
				return s.Stats().Refused[c.sender] >= 2 && (c.receiver == "" || rs.Refused[c.receiver] >= 2) &&
					(!c.handshake || rs.Listener.HandshakeFailures() >= 2)
			})
			if st := s.Stats(); st.Sessions != 0 || rcv.Stats().SessionsTotal != 0 {
				t.Fatalf("a session started: sender %d, receiver %d", st.Sessions, rcv.Stats().SessionsTotal)
			}
			if e := s.Stats().Endpoints[0].LastError; e == "" {
				t.Fatal("the endpoint shows no error")
			}
		})
	}
	// The good pair works.
	col := newCollector()
	raddr := freeAddr(t)
	rcv := startReceiver(t, t.TempDir(), raddr, srvTLS, col.handle)
	defer stopReceiver(t, rcv)
	sp := spool.NewMemory(spool.Options{})
	var id SenderID
	id[0] = 2
	_, stop := startSender(t, sp, id, cliTLS, raddr)
	defer stop()
	appendN(t, sp, 1, 100)
	eventually(t, 10*time.Second, func() string { return fmt.Sprint(col.count()) }, func() bool { return col.count() == 100 })
}

// TestVersionMismatch: a HELLO of another protocol version is refused with
// a REFUSE that says both versions; the sender counts and logs it.
func TestVersionMismatch(t *testing.T) {
	col := newCollector()
	raddr := freeAddr(t)
	rcv := startReceiver(t, t.TempDir(), raddr, nil, col.handle)
	defer stopReceiver(t, rcv)
	conn, err := dialTCP(raddr)
	if err != nil {
		t.Fatal(err)
	}
	zs, err := zmq.NewSession(conn, zmq.SessionOptions{Type: "DEALER"})
	if err != nil {
		t.Fatal(err)
	}
	defer zs.Close()
	var id SenderID
	id[3] = 9
	m := appendHello(Hello{Sender: id, Name: "future relay"})
	m[0][1] = Version + 1
	if err := zs.Send(m); err != nil {
		t.Fatal(err)
	}
	ans, _, err := zs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseAnswer(ans)
	re, ok := err.(*RefusedError)
	if !ok || re.Refuse.Code != RefuseVersion || re.Refuse.Version != Version {
		t.Fatalf("answer: %v", err)
	}
	t.Logf("refusal: %v", re)
	if rcv.Stats().Refused["version"] != 1 {
		t.Fatalf("receiver refusals: %v", rcv.Stats().Refused)
	}
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// TestSenderVersionMismatch: a receiver answering in another protocol
// version is refused by the sender, counted and logged.
func TestSenderVersionMismatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				zs, err := zmq.NewSession(c, zmq.SessionOptions{Type: "DEALER"})
				if err != nil {
					return
				}
				defer zs.Close()
				if _, _, err := zs.Recv(); err != nil {
					return
				}
				w := appendWelcome(Welcome{Name: "future receiver"})
				w[0][1] = Version + 1
				zs.Send(w)
				zs.Recv()
			}()
		}
	}()
	var id SenderID
	id[0] = 5
	s, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://" + ln.Addr().String()}, ID: id,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 20 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	eventually(t, 5*time.Second, func() string { return fmt.Sprint(s.Stats().Refused) }, func() bool { return s.Stats().Refused["version"] >= 2 })
	if s.Stats().Sessions != 0 {
		t.Fatal("a session started")
	}
}
