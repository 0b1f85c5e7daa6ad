package relp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestPeerPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"relay.example.com", "relay.example.com", true},
		{"relay.example.com", "relay.example.org", false},
		{"*.example.com", "web1.example.com", true},
		{"*.example.com", "a.b.example.com", false}, // one component per '*'
		{"*.example.com", "example.com", false},
		{"web*.example.com", "web12.example.com", true},
		{"web*.example.com", "db1.example.com", false},
		{"*-edge.example.com", "fra-edge.example.com", true},
		{"*-edge.example.com", "fra-core.example.com", false},
		{"*.example.com.", "web1.example.com", true},
		{"*.example.com", "web1.example.com.", true},
	} {
		pp, err := parsePeerPattern(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := pp.match(tc.name); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"", "w*b.example.com", "*w*.example.com"} {
		if err := CheckPeerPattern(bad); !errors.Is(err, ErrPeerPattern) {
			t.Errorf("%q: %v, want ErrPeerPattern", bad, err)
		}
	}
}

// testCA is a throwaway CA that signs client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) leaf(t *testing.T, cn string, dns ...string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestPeerCheckVerify(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	pc, err := NewPeerCheck(ca.pool, []string{"*.clients.example", "legacy-host"})
	if err != nil {
		t.Fatal(err)
	}
	state := func(c *x509.Certificate) tls.ConnectionState {
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	}
	for _, tc := range []struct {
		name string
		cs   tls.ConnectionState
		want error
	}{
		{"SAN matches", state(ca.leaf(t, "x", "web1.clients.example")), nil},
		{"CN matches when no SAN does", state(ca.leaf(t, "legacy-host", "other.example")), nil},
		{"wrong name", state(ca.leaf(t, "intruder", "intruder.example")), ErrPeerNotPermitted},
		{"other CA", state(other.leaf(t, "x", "web1.clients.example")), ErrUntrustedCert},
		{"no certificate", tls.ConnectionState{}, ErrNoClientCert},
	} {
		err := pc.Verify(tc.cs)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if TLSRefusal(ErrNoClientCert) != TLSNoCert || TLSRefusal(errors.New("x")) != TLSOther {
		t.Fatal("TLSRefusal")
	}
}
