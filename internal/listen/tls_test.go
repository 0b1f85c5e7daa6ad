package listen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// selfSigned returns a server config with a fresh ECDSA certificate for
// 127.0.0.1 and a client config that trusts it.
func selfSigned(t testing.TB) (srv, cli *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "listen.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	cli = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return srv, cli
}

// clientHello returns the first flight a Go TLS client sends.
func clientHello(t testing.TB, cli *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		tls.Client(a, cli).Handshake()
		a.Close()
	}()
	buf := make([]byte, 16<<10)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return buf[:n]
}

// Half-open TLS: a client that sends nothing, one that sends half a
// ClientHello and one that sends a ClientHello and never answers the
// server are all reset at the handshake deadline; a real client is served.
// The deadline counts the server's CPU time too (a handshake holds a
// goroutine): under load a real client's handshake can legitimately
// outlast it, so a reset of one that took longer than the deadline sends
// the attempt round again (timely); one reset sooner is a failure.
func TestTLSHandshakeTimeout(t *testing.T) {
	srv, cli := selfSigned(t)
	lim := off()
	lim.HandshakeTimeout = 300 * time.Millisecond
	lim.FirstFrameTimeout = 10 * time.Second // must not be what closes them
	hello := clientHello(t, cli)
	timely(t, func() string {
		h := &lines{}
		l, addr := start(t, lim, srv, h.serve)
		silent := dialFrom(t, "", addr)
		half := dialFrom(t, "", addr)
		send(t, half, string(hello[:len(hello)/2]))
		full := dialFrom(t, "", addr)
		send(t, full, string(hello))
		goodT := time.Now()
		late := func(what string, err error) string {
			d := time.Since(goodT)
			if d < lim.HandshakeTimeout-early(lim) {
				t.Fatalf("real client %s after %v, before the handshake deadline: %v", what, d, err)
			}
			return "the real client's handshake took " + d.String() + " (" + what + ")"
		}
		good, err := tls.Dial("tcp", addr, cli)
		if err != nil {
			return late("failed", err)
		}
		defer good.Close()
		if _, err := good.Write([]byte("<13>over tls\n")); err != nil {
			return late("could not write", err)
		}
		// The server may still reset it while it reads the client's
		// last handshake message: then the client's read fails.
		readErr := make(chan error, 1)
		go func() {
			_, err := good.Read(make([]byte, 1))
			readErr <- err
		}()
		var goodErr error
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("frame over TLS"), func() bool {
			select {
			case goodErr = <-readErr:
				return true
			default:
				return len(h.frames()) == 1
			}
		})
		if len(h.frames()) != 1 {
			return late("was reset", goodErr)
		}
		for name, c := range map[string]net.Conn{"silent": silent, "half": half, "full": full} {
			if err := readEnd(c, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s half-open handshake: %v, want a reset", name, err)
			}
		}
		waitStat(t, l, HandshakeTimeout, 3)
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("3 released"), func() bool { return l.Stats().Open == 1 })
		if s := l.Stats(); s.Closed[HandshakeTimeout] != 3 || s.HandshakeFailures() != 3 || s.Open != 1 {
			t.Errorf("stats %s; want handshake_timeout 3, 1 open", fmtStats(s))
		}
		return ""
	})
}

// Junk instead of a ClientHello fails the handshake, counted.
func TestTLSHandshakeError(t *testing.T) {
	srv, _ := selfSigned(t)
	l, addr := start(t, off(), srv, (&lines{}).serve)
	c := dialFrom(t, "", addr)
	send(t, c, "<13>plain text to a TLS port\n")
	waitStat(t, l, HandshakeError, 1)
}

// Over TLS the idle timeout closes with a bare FIN (no close_notify, which
// rsyslog's connection check would take for data): the client's read
// ends, and what it writes in the grace still arrives.
func TestTLSIdleFIN(t *testing.T) {
	srv, cli := selfSigned(t)
	lim := off()
	lim.IdleTimeout = 200 * time.Millisecond
	lim.CloseGrace = time.Second
	h := &lines{}
	l, addr := start(t, lim, srv, h.serve)
	c, err := tls.Dial("tcp", addr, cli)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("<13>one\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after idle timeout: %v, want EOF (our FIN)", err)
	}
	if _, err := c.Write([]byte("<13>two, in flight\n")); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("frame written after close_notify"), func() bool { return len(h.frames()) == 2 })
	if s := l.Stats(); s.Closed[IdleTimeout] != 1 {
		t.Errorf("stats %s", fmtStats(s))
	}
}
