package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// TestSIGHUPRotatesClientCA (#21): SIGHUP re-reads a TLS input's
// client_ca, not only its certificate and key. A syslog-over-TLS input
// trusts CA A: a client whose certificate B signed is refused (counted as
// handshake_error), A's client gets through. The admin rewrites client_ca
// with B's certificate and sends SIGHUP: the same B client is now admitted
// and A's refused, while a connection A made before the reload keeps
// working (secrets apply to new connections).
func TestSIGHUPRotatesClientCA(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	mk := func(name string) *testpeer.CA {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return testpeer.NewCA(t, d)
	}
	server, caA, caB := mk("server"), mk("a"), mk("b")
	srvCert, srvKey := server.Issue(t, "relay.example.net")
	aCert, aKey := caA.Issue(t, "client-a")
	bCert, bKey := caB.Issue(t, "client-b")
	caPEM := func(ca *testpeer.CA) string {
		b, err := os.ReadFile(ca.File)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	clientCA := filepath.Join(dir, "clients-ca.pem")
	writeFile(t, clientCA, caPEM(caA))

	pp := testpeer.FreePorts(t, 3)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", pp[0])
	conf := filepath.Join(dir, "relay.yaml")
	writeFile(t, conf, fmt.Sprintf(`
inputs:
  - name: tls
    type: syslog
    listen: tls://%s
    tls: {cert: %s, key: %s, client_ca: %s}
outputs:
  - {name: out, socket: push, bind: "tcp://127.0.0.1:%d", hwm: 10000}
http: {listen: "127.0.0.1:%d"}
log: {format: json}
`, tlsAddr, srvCert, srvKey, clientCA, pp[1], pp[2]))
	p := ports{http: pp[2]}
	pr := startRelay(t, conf, p)
	pull := zmq.NewPull(zmq.Options{})
	defer pull.Close()
	pull.Dial(fmt.Sprintf("tcp://127.0.0.1:%d", pp[1]))
	// Events arrive in order on the one worker; received reads until msg.
	received := func(msg string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			m, err := pull.Recv(ctx)
			if err != nil {
				return false
			}
			if strings.HasSuffix(string(m[len(m)-1]), msg) {
				return true
			}
		}
	}
	refusals := func() float64 {
		return metric(t, p, `relay_input_connections_closed_total{input="tls",reason="handshake_error"}`)
	}
	dial := func(certFile, keyFile string) (*tls.Conn, error) {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr,
			&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	}
	line := func(msg string) string { return fmt.Sprintf("<14>1 2026-12-07T12:00:00Z h carot - - - %s\n", msg) }
	// admitted: the client's event reaches the worker.
	admitted := func(stage, who, certFile, keyFile string) {
		t.Helper()
		c, err := dial(certFile, keyFile)
		if err != nil {
			t.Fatalf("%s: %s's TLS handshake: %v", stage, who, err)
		}
		defer c.Close()
		msg := stage + " " + who
		if _, err := c.Write([]byte(line(msg))); err != nil {
			t.Fatalf("%s: %s writes: %v", stage, who, err)
		}
		if !received(msg) {
			t.Fatalf("%s: %s's event did not arrive; the relay's log:\n%s", stage, who, pr.stderr.String())
		}
	}
	// refused: the relay fails the handshake (under TLS 1.3 the client
	// learns it on its first read), counts it, and the event goes nowhere.
	refused := func(stage, who, certFile, keyFile string) {
		t.Helper()
		before := refusals()
		c, err := dial(certFile, keyFile)
		if err == nil {
			_, _ = c.Write([]byte(line(stage + " " + who)))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%s: %s was not refused for its certificate: %v", stage, who, err)
		}
		testpeer.Eventually(t, 5*time.Second, testpeer.Text(stage+": the refusal counted as handshake_error"), func() bool {
			return refusals() == before+1
		})
	}

	refused("before", "client-b", bCert, bKey)
	admitted("before", "client-a", aCert, aKey)
	held, err := dial(aCert, aKey)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := held.Write([]byte(line("held before"))); err != nil || !received("held before") {
		t.Fatalf("the held connection: %v", err)
	}

	// Rotate the client CA to B, then SIGHUP.
	writeFile(t, clientCA, caPEM(caB))
	stamp := metric(t, p, "relay_config_last_reload_success_timestamp_seconds")
	pr.signal(t, syscall.SIGHUP)
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the reload"), func() bool {
		return metric(t, p, "relay_config_last_reload_success_timestamp_seconds") != stamp
	})
	if v := metric(t, p, "relay_config_last_reload_successful"); v != 1 {
		t.Fatalf("relay_config_last_reload_successful = %v after rotating client_ca", v)
	}
	admitted("after", "client-b", bCert, bKey)
	refused("after", "client-a", aCert, aKey)
	if _, err := held.Write([]byte(line("held after"))); err != nil || !received("held after") {
		t.Errorf("the connection client-a made before the reload was cut: %v", err)
	}
}
