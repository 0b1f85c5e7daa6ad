package config

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
)

// handshake runs a TLS handshake over a pipe between srv and a client
// trusting relay.pem, presenting it as client certificate when withCert.
func handshake(t *testing.T, srv *tls.Config, withCert bool) error {
	t.Helper()
	pem, err := os.ReadFile("testdata/certs/relay.pem")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cli := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if withCert {
		pair, err := tls.LoadX509KeyPair("testdata/certs/relay.pem", "testdata/certs/relay.key")
		if err != nil {
			t.Fatal(err)
		}
		cli.Certificates = []tls.Certificate{pair}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srvErr := make(chan error, 1)
	go func() {
		s := tls.Server(a, srv)
		err := s.Handshake()
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			_, err = s.Write([]byte("x"))
		}
		srvErr <- err
		a.Close()
	}()
	c := tls.Client(b, cli)
	err = c.Handshake()
	if err == nil {
		buf := make([]byte, 1)
		_, err = c.Read(buf)
	}
	if serr := <-srvErr; serr != nil {
		return serr
	}
	return err
}

func TestTLSServerConfig(t *testing.T) {
	base := TLS{Cert: "testdata/certs/relay.pem", Key: "testdata/certs/relay.key"}
	for _, tc := range []struct {
		auth, ca string
		withCert bool
		ok       bool
	}{
		{ClientAuthNone, "", false, true},
		{ClientAuthRequest, "testdata/certs/relay.pem", false, true},
		{ClientAuthRequest, "testdata/certs/relay.pem", true, true},
		{ClientAuthRequire, "testdata/certs/relay.pem", true, true},
		{ClientAuthRequire, "testdata/certs/relay.pem", false, false},
	} {
		cfg := base
		cfg.ClientAuth, cfg.ClientCA = tc.auth, tc.ca
		srv, err := cfg.ServerConfig()
		if err != nil {
			t.Fatalf("ServerConfig(%+v): %v", cfg, err)
		}
		if srv.MinVersion < tls.VersionTLS12 {
			t.Errorf("MinVersion = %x, want TLS 1.2 or later", srv.MinVersion)
		}
		err = handshake(t, srv, tc.withCert)
		if (err == nil) != tc.ok {
			t.Errorf("client_auth %s, client cert %v: handshake err = %v, want ok=%v", tc.auth, tc.withCert, err, tc.ok)
		}
	}
}

func TestTLSServerConfigErrors(t *testing.T) {
	for _, tc := range []TLS{
		{Cert: "testdata/certs/junk.pem", Key: "testdata/certs/relay.key"},
		{Cert: "testdata/certs/relay.pem", Key: "testdata/certs/other.key"},
		{Cert: "testdata/certs/relay.pem", Key: "testdata/certs/relay.key", ClientCA: "testdata/certs/junk.pem"},
		{Cert: "testdata/certs/none.pem", Key: "testdata/certs/relay.key"},
	} {
		if _, err := tc.ServerConfig(); err == nil {
			t.Errorf("ServerConfig(%+v) succeeded", tc)
		}
	}
}
