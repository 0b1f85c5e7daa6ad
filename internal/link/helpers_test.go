package link

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// testCA issues certificates for TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
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

var serial int64 = 100

// issue makes a leaf for names (DNS or IP), valid now unless expired.
func (ca *testCA) issue(t testing.TB, cn string, names []string, client, expired bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsPair returns a receiver's and a sender's TLS configs from one CA.
func tlsPair(t testing.TB) (server, client *tls.Config, ca *testCA) {
	ca = newCA(t, "link test CA")
	server = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "receiver", []string{"relay.dc2", "127.0.0.1"}, false, false)}, ClientCAs: ca.pool}
	client = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "sender", nil, true, false)}, RootCAs: ca.pool, ServerName: "relay.dc2"}
	return server, client, ca
}

// collector is a receiver's Handler standing in for the router: it keeps
// every event and releases its hand-off, at once or after delay.
type collector struct {
	mu     sync.Mutex
	seqs   map[uint64]int
	n      int
	delay  time.Duration
	fail   func(seq uint64) bool
	hold   chan struct{} // if set, hand-offs wait for it
	events []*event.Event
}

func newCollector() *collector { return &collector{seqs: map[uint64]int{}} }

func (c *collector) handle(evs []*event.Event) {
	c.mu.Lock()
	// An output that refuses one event of the batch takes none of it.
	var failed bool
	for _, e := range evs {
		_, seq, ok := ParseMeta(e.Meta)
		if !ok {
			panic("event without link meta")
		}
		if c.fail != nil && c.fail(seq) {
			failed = true
		}
	}
	for _, e := range evs {
		if !failed {
			c.seqs[seqOf(e)]++
			c.n++
		}
	}
	d, hold := c.delay, c.hold
	c.mu.Unlock()
	release := func() {
		for _, e := range evs {
			if failed {
				e.Release(fmt.Errorf("test output refused it"))
			} else {
				e.Release(nil)
			}
		}
	}
	for _, e := range evs {
		e.Hold()
	}
	switch {
	case hold != nil:
		go func() { <-hold; release() }()
	case d > 0:
		time.AfterFunc(d, release)
	default:
		release()
	}
}

// seqOf reads the test sequence number in an event's raw bytes.
func seqOf(e *event.Event) uint64 {
	var n uint64
	fmt.Sscanf(string(e.Raw[len(e.Raw)-12:]), "seq:%08d", &n)
	return n
}

func (c *collector) tally(n int) (missing, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 1; i <= n; i++ {
		switch k := c.seqs[uint64(i)]; {
		case k == 0:
			missing++
		case k > 1:
			dups += k - 1
		}
	}
	return
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// rec makes the i-th test record: an RFC 5424 line with structured data.
func rec(i int) spool.Record {
	raw := fmt.Sprintf("<134>1 2026-12-07T08:00:00.%06dZ web%d.dc1 impression 4242 ID47 [ad@32473 user=\"u%d\" ad=\"%d\" campaign=\"c%d\"] served impression seq:%08d",
		i%1000000, i%7, i%5000, i%300, i%20, i)
	return spool.Record{Raw: []byte(raw), Stream: "impression", Input: "rsyslog-relp", Peer: "10.0.0.5:51234", Received: time.Unix(1765094400, int64(i)*1000)}
}

// appendN appends records from..to to sp.
func appendN(t testing.TB, sp spool.Spool, from, to int) {
	t.Helper()
	for i := from; i <= to; i += 500 {
		var recs []spool.Record
		for j := i; j <= min(to, i+499); j++ {
			recs = append(recs, rec(j))
		}
		if err := sp.Append(context.Background(), recs, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func eventually(t testing.TB, d time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", d, what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("LINK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startReceiver starts a receiver on addr with state in dir.
func startReceiver(t testing.TB, dir, addr string, tc *tls.Config, h Handler) *Receiver {
	t.Helper()
	return startReceiverSec(t, dir, addr, linkSec{tls: tc}, h)
}

// linkSec is how a test secures a link: TLS or a ZMTP mechanism (CURVE).
type linkSec struct {
	tls *tls.Config
	zmq zmq.Security
}

// startReceiverSec starts a receiver on addr secured by sec.
func startReceiverSec(t testing.TB, dir, addr string, sec linkSec, h Handler) *Receiver {
	t.Helper()
	r, err := NewReceiver(ReceiverConfig{Name: "from-dc1", Listen: []string{"tcp://" + addr}, TLS: sec.tls, Security: sec.zmq, StateDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(h); err != nil {
		t.Fatal(err)
	}
	return r
}

func stopReceiver(t testing.TB, r *Receiver) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Errorf("stop receiver: %v", err)
	}
}

// startSender starts a sender draining sp to endpoints.
func startSender(t testing.TB, sp spool.Spool, id SenderID, tc *tls.Config, eps ...string) (*Sender, func()) {
	t.Helper()
	return startSenderSec(t, sp, id, linkSec{tls: tc}, eps...)
}

// startSenderSec starts a sender draining sp to endpoints, secured by sec.
func startSenderSec(t testing.TB, sp spool.Spool, id SenderID, sec linkSec, eps ...string) (*Sender, func()) {
	t.Helper()
	return startSenderTuned(t, sp, id, sec, nil, eps...)
}

// startSenderTuned is startSenderSec with tune applied to the config.
func startSenderTuned(t testing.TB, sp spool.Spool, id SenderID, sec linkSec, tune func(*SenderConfig), eps ...string) (*Sender, func()) {
	t.Helper()
	for i := range eps {
		eps[i] = "tcp://" + eps[i]
	}
	cfg := SenderConfig{Name: "to-dc2", Connect: eps, TLS: sec.tls, Security: sec.zmq, ID: id, Compression: CompressZstd,
		Heartbeat: 100 * time.Millisecond, HeartbeatTimeout: time.Second, ReconnectMax: 200 * time.Millisecond,
		Failback: 300 * time.Millisecond, DialTimeout: time.Second, Logger: testLogger(t),
		Sent: func(r spool.Range) error { return sp.Sent(r) }}
	if tune != nil {
		tune(&cfg)
	}
	s, err := NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Drain(ctx, sp, s, 1000); close(done) }()
	return s, func() {
		cancel()
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		s.Close(cctx)
		ccancel()
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
