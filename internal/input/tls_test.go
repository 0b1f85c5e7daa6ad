package input

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// testPKI is a CA with a server certificate (relay.test, localhost,
// 127.0.0.1) and a client certificate (client.test), as PEM files.
type testPKI struct {
	dir                   string
	ca                    string
	serverCert, serverKey string
	clientCert, clientKey string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP, dns ...string) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: dns[0]},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     dns,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, "relay.test", "localhost")
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth, nil, "client.test")
	return p
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testServerTLS(t testing.TB) *tls.Config {
	p := newTestPKI(t)
	cfg, err := LoadTLS(p.serverCert, p.serverKey, "", "none")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (p *testPKI) clientConfig(t testing.TB, withCert bool) *tls.Config {
	pool := x509.NewCertPool()
	b, err := os.ReadFile(p.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(b)
	cfg := &tls.Config{RootCAs: pool, ServerName: "relay.test"}
	if withCert {
		pair, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

func TestLoadHandshakeErrors(t *testing.T) {
	p := newTestPKI(t)
	for _, tc := range []struct{ cert, key, ca, auth string }{
		{"", p.serverKey, "", ""},
		{p.serverCert, filepath.Join(p.dir, "missing.pem"), "", ""},
		{p.serverKey, p.serverCert, "", ""},
		{p.serverCert, p.serverKey, "", "require"},
		{p.serverCert, p.serverKey, p.ca, "sometimes"},
		{p.serverCert, p.serverKey, p.serverKey, "require"},
	} {
		if _, err := LoadTLS(tc.cert, tc.key, tc.ca, tc.auth); !errors.Is(err, ErrTLS) {
			t.Errorf("LoadTLS(%q, %q, %q, %q) = %v, want ErrTLS", tc.cert, tc.key, tc.ca, tc.auth, err)
		}
	}
}

func TestTLSGoClient(t *testing.T) {
	p := newTestPKI(t)
	srv, err := LoadTLS(p.serverCert, p.serverKey, p.ca, "require")
	if err != nil {
		t.Fatal(err)
	}
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"tls://127.0.0.1:0"}, TLS: srv})
	addr := addrOf(t, s, "tcp").String()

	conn, err := tls.Dial("tcp", addr, p.clientConfig(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(octet(msg5424("tls-a")) + msg5424("tls-b") + "\n")); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("two events over TLS"), func() bool { return c.len() == 2 })

	// Without a client certificate the handshake fails and is counted.
	bad, err := tls.Dial("tcp", addr, p.clientConfig(t, false))
	if err == nil {
		// TLS 1.3: the server's verdict arrives with the first read.
		bad.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = bad.Read(make([]byte, 1))
		bad.Close()
	}
	if err == nil {
		t.Fatal("client without a certificate was accepted")
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("handshake failure counted"), func() bool { return s.Stats().HandshakeErrors == 1 })
}
