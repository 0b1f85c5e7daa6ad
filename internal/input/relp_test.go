package input

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/relp"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

const librelpOpen = "relp_version=0\nrelp_software=http://librelp.adiscon.com,1.11.0,librelp\ncommands=syslog"

// relpSession opens a RELP session on c and sends n syslog frames; it
// returns the frames the server answered, until it closes or within d.
func relpSession(t *testing.T, c net.Conn, n int, d time.Duration) ([]relp.Frame, error) {
	t.Helper()
	w := bufio.NewWriter(c)
	w.Write(relp.AppendFrame(nil, 1, relp.CmdOpen, []byte(librelpOpen)))
	for i := range n {
		w.Write(relp.AppendFrame(nil, i+2, relp.CmdSyslog, fmt.Appendf(nil, "<13>1 2026-01-01T00:00:00Z h app - - - %d", i)))
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	rd := relp.NewReader(c, 1<<20)
	var got []relp.Frame
	for len(got) < n+1 {
		f, err := rd.Next()
		if err != nil {
			return got, err
		}
		got = append(got, f)
	}
	return got, nil
}

func startRELP(t *testing.T, cfg RELPConfig, h Handler) *RELP {
	t.Helper()
	in, err := NewRELP(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Stop(ctx)
	})
	return in
}

// TestRELPInput: events arrive stamped with the input and peer, and every
// frame is answered 200 OK (no output holds them here).
func TestRELPInput(t *testing.T) {
	var c collector
	in := startRELP(t, RELPConfig{Name: "relp", Listen: []string{"tcp://127.0.0.1:0"}}, c.handle)
	conn, err := net.Dial("tcp", in.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := relpSession(t, conn, 50, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range got {
		if f.Txnr != i+1 || !strings.HasPrefix(string(f.Data), "200 OK") {
			t.Fatalf("answer %d: %d %q", i, f.Txnr, f.Data)
		}
	}
	if c.len() != 50 {
		t.Fatalf("%d events", c.len())
	}
	c.mu.Lock()
	e := c.events[0]
	c.mu.Unlock()
	if e.Input != "relp" || e.Peer != conn.LocalAddr().String() || e.Received.IsZero() {
		t.Fatalf("event %+v", e)
	}
	if s := in.Stats(); s.Received != 50 || s.ConnectionsTotal != 1 {
		t.Fatalf("stats %+v", s)
	}
	if s := in.RELPStats(); s.Acked != 50 || s.Frames[relp.CmdSyslog] != 50 {
		t.Fatalf("relp stats %+v", s)
	}
}

// TestRELPTLSPermittedPeers: with permitted peers, a client certificate
// with a permitted name is served; a wrong name, a certificate of another
// CA and no certificate are refused in the handshake and counted by
// reason; nothing of theirs reaches the Handler.
func TestRELPTLSPermittedPeers(t *testing.T) {
	dir := t.TempDir()
	ca, other := testpeer.NewCA(t, dir), testpeer.NewCA(t, t.TempDir())
	srvCert, srvKey := ca.Issue(t, "relay.test", "localhost")
	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(pem)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	var c collector
	in := startRELP(t, RELPConfig{Name: "relp", Listen: []string{"tls://127.0.0.1:0"}, TLS: srvTLS, PermittedPeers: []string{"*.clients.test"},
		Limits: listen.Limits{HandshakeTimeout: 2 * time.Second}}, c.handle)
	addr := in.Addrs()[0].String()
	clientWith := func(ca *testpeer.CA, name string) *tls.Config {
		cfg := &tls.Config{RootCAs: pool, ServerName: "relay.test"}
		if ca != nil {
			cert, key := ca.Issue(t, name)
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return cfg
	}
	for _, tc := range []struct {
		name   string
		cfg    *tls.Config
		reason string // "" when served
	}{
		{"permitted", clientWith(ca, "web1.clients.test"), ""},
		{"wrong name", clientWith(ca, "intruder.test"), relp.TLSName},
		{"other CA", clientWith(other, "web2.clients.test"), relp.TLSUntrusted},
		{"no certificate", clientWith(nil, ""), relp.TLSNoCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.len()
			conn, err := tls.Dial("tcp", addr, tc.cfg)
			if err == nil {
				defer conn.Close()
				var got []relp.Frame
				got, err = relpSession(t, conn, 3, 5*time.Second)
				if err == nil && tc.reason == "" && len(got) == 4 {
					if c.len() != before+3 {
						t.Fatalf("%d events", c.len()-before)
					}
					return
				}
			}
			if tc.reason == "" {
				t.Fatalf("permitted client refused: %v", err)
			}
			if err == nil {
				t.Fatal("refused client was served")
			}
			testpeer.Eventually(t, 5*time.Second, testpeer.Text("the refusal counted"), func() bool {
				return in.RELPStats().TLSRefused[tc.reason] == 1
			})
			if c.len() != before {
				t.Fatalf("%d events from a refused client", c.len()-before)
			}
		})
	}
	// The core counts a failed handshake when Handshake returns, which may
	// be after the refusal's reason was counted in the certificate check.
	testpeer.Eventually(t, 5*time.Second, func() string {
		return fmt.Sprintf("handshake errors %d, want 3", in.Stats().HandshakeErrors)
	}, func() bool { return in.Stats().HandshakeErrors == 3 })
}

// TestRELPTLSConfigPerHandshake: with permitted peers, the input checks
// client certificates against the client CA of the configuration in
// force at each handshake, as the relay hands it out after a reload
// (GetConfigForClient): once the configuration names another CA, a client
// of the old one is refused as untrusted (counted), one of the new one is
// served, and the new server certificate is presented.
func TestRELPTLSConfigPerHandshake(t *testing.T) {
	type side struct {
		ca   *testpeer.CA
		conf *tls.Config
	}
	mk := func() side {
		ca := testpeer.NewCA(t, t.TempDir())
		cert, key := ca.Issue(t, "relay.test")
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(ca.File)
		pool.AppendCertsFromPEM(pem)
		return side{ca, &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}}
	}
	old, cur := mk(), mk()
	var now atomic.Pointer[tls.Config]
	now.Store(old.conf)
	srvTLS := &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return now.Load(), nil }}
	var c collector
	in := startRELP(t, RELPConfig{Name: "relp", Listen: []string{"tls://127.0.0.1:0"}, TLS: srvTLS, PermittedPeers: []string{"*.clients.test"},
		Limits: listen.Limits{HandshakeTimeout: 2 * time.Second}}, c.handle)
	addr := in.Addrs()[0].String()
	// dial opens a session with a client certificate of ca: whether it was
	// served, and whether the server presented s's certificate.
	dial := func(ca *testpeer.CA, s side) (served, presented bool) {
		cert, key := ca.Issue(t, "web1.clients.test")
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pair}})
		if err != nil {
			return false, false
		}
		defer conn.Close()
		presented = bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, s.conf.Certificates[0].Certificate[0])
		got, err := relpSession(t, conn, 1, 5*time.Second)
		return err == nil && len(got) == 2, presented
	}
	if served, presented := dial(old.ca, old); !served || !presented {
		t.Fatalf("before the swap: served %v, the configured certificate presented %v", served, presented)
	}
	now.Store(cur.conf)
	if served, presented := dial(cur.ca, cur); !served || !presented {
		t.Fatalf("after the swap, a client of the new CA: served %v, the new certificate presented %v", served, presented)
	}
	if served, _ := dial(old.ca, cur); served {
		t.Fatal("after the swap, a client of the old CA was served")
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the refusal counted as untrusted"), func() bool {
		return in.RELPStats().TLSRefused[relp.TLSUntrusted] == 1
	})
	if c.len() != 2 {
		t.Fatalf("%d events, want the 2 of the served sessions", c.len())
	}
}

// TestRELPStopAnswersThenServerclose: Stop answers what is handed off in
// time, then sends serverclose; what was read was handed over first.
func TestRELPStopAnswersThenServerclose(t *testing.T) {
	held := make(chan *event.Event, 10)
	in := startRELP(t, RELPConfig{Name: "relp", Listen: []string{"tcp://127.0.0.1:0"}}, func(batch []*event.Event) {
		for _, e := range batch {
			e.Hold()
			held <- e
		}
	})
	conn, err := net.Dial("tcp", in.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var frames []byte
	frames = relp.AppendFrame(frames, 1, relp.CmdOpen, []byte(librelpOpen))
	frames = relp.AppendFrame(frames, 2, relp.CmdSyslog, []byte("one"))
	frames = relp.AppendFrame(frames, 3, relp.CmdSyslog, []byte("two"))
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	e1, e2 := <-held, <-held
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		stopped <- in.Stop(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	e1.Release(nil)
	e2.Release(nil)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := relp.NewReader(conn, 1<<20)
	var got []string
	for {
		f, err := rd.Next()
		if err != nil {
			break
		}
		got = append(got, fmt.Sprintf("%d %s", f.Txnr, f.Command))
	}
	want := []string{"1 rsp", "2 rsp", "3 rsp", "0 serverclose"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("frames %v, want %v", got, want)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// TestRELPOnConnectionCore: sessions run on the shared connection core,
// whose limits apply: with max_connections 1 the per-source limit is 1 as
// well, so a second session from the same address is refused and counted,
// and the first is untouched.
func TestRELPOnConnectionCore(t *testing.T) {
	var c collector
	in := startRELP(t, RELPConfig{Name: "relp", Listen: []string{"tcp://127.0.0.1:0"}, Limits: listen.Limits{MaxConnections: 1}}, c.handle)
	first, err := net.Dial("tcp", in.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := relpSession(t, first, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Refused with a reset, which can beat the end of connect on loopback.
	second, err := net.Dial("tcp", in.Addrs()[0].String())
	switch {
	case err == nil:
		defer second.Close()
		testpeer.ExpectClosed(t, second, 5*time.Second, "the session over the per-source limit")
	case !errors.Is(err, syscall.ECONNRESET):
		t.Fatal(err)
	}
	if s := in.Stats(); s.ConnectionsRefused != 1 || s.ConnectionsTotal != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, err := first.Write(relp.AppendFrame(nil, 3, relp.CmdSyslog, []byte("still here"))); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the first session's next event"), func() bool { return c.len() == 2 })
	if _, err := NewRELP(RELPConfig{Name: "x", Listen: []string{"udp://127.0.0.1:0"}}, nil); !errors.Is(err, ErrListenURL) {
		t.Fatalf("udp listen: %v", err)
	}
}
