package relay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// writeLinkCerts writes a CA, a receiver certificate for relay.dc2 and a
// sender (client) certificate into dir as PEM files.
func writeLinkCerts(t testing.TB, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "link CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for i, c := range []struct {
		name   string
		usage  x509.ExtKeyUsage
		dnsIPs []string
	}{{"dc2", x509.ExtKeyUsageServerAuth, []string{"relay.dc2"}}, {"dc1", x509.ExtKeyUsageClientAuth, nil}} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tm := &x509.Certificate{SerialNumber: big.NewInt(int64(10 + i)), Subject: pkix.Name{CommonName: c.name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{c.usage}, DNSNames: c.dnsIPs}
		der, err := x509.CreateCertificate(rand.Reader, tm, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		write(c.name+".pem", "CERTIFICATE", der)
		write(c.name+".key", "EC PRIVATE KEY", kb)
	}
}

// writeLinkCurveKeys writes the receiving relay's CURVE pair (dc2.key),
// the sending relay's (dc1.key) and the receiver's allow_dir (senders/,
// holding dc1's public certificate) into dir.
func writeLinkCurveKeys(t testing.TB, dir string) (dc2, dc1 zmq.CurveKeyPair) {
	t.Helper()
	dc2, _ = zmq.NewCurveKeyPair()
	dc1, _ = zmq.NewCurveKeyPair()
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "dc2.key"), dc2, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "dc1.key"), dc1, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	allowSender(t, dir, "dc1", dc1)
	return dc2, dc1
}

// allowSender puts kp's public certificate into dir/senders as name.key.
func allowSender(t testing.TB, dir, name string, kp zmq.CurveKeyPair) {
	t.Helper()
	senders := filepath.Join(dir, "senders")
	if err := os.MkdirAll(senders, 0o755); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(senders, name+".key")
	if err := zmq.WriteCurveCerts(pub, kp, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pub + "_secret"); err != nil {
		t.Fatal(err)
	}
}

// TestLinkRelayToRelay: syslog into one relay, its link output over
// mutual TLS to another relay's link input, restarted (SIGTERM) mid-stream,
// out of a PUSH output into libzmq: every event exactly once, routed by the
// stream the first relay derived, and the link's metrics exported.
func TestLinkRelayToRelay(t *testing.T) { linkRelayToRelay(t, "tls") }

// TestLinkRelayToRelayCurve: the same with the link secured by CURVE
// (from the config's curve sections, keys from the relays' secret stores)
// instead of TLS.
func TestLinkRelayToRelayCurve(t *testing.T) { linkRelayToRelay(t, "curve") }

func linkRelayToRelay(t *testing.T, security string) {
	const n = 30000
	dir := t.TempDir()
	var inSec, outSec string
	switch security {
	case "tls":
		writeLinkCerts(t, dir)
		inSec = fmt.Sprintf("tls: {cert: %s/dc2.pem, key: %s/dc2.key, client_ca: %s/ca.pem}", dir, dir, dir)
		outSec = fmt.Sprintf("tls: {ca: %s/ca.pem, cert: %s/dc1.pem, key: %s/dc1.key, server_name: relay.dc2}", dir, dir, dir)
	case "curve":
		writeLinkCurveKeys(t, dir)
		inSec = fmt.Sprintf("curve: {key_file: %s/dc2.key, allow_dir: %s/senders}", dir, dir)
		outSec = fmt.Sprintf("curve: {key_file: %s/dc1.key, server_key_file: %s/dc2.key}", dir, dir)
	}
	pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	port := testpeer.FreePort(t)
	receiverYAML := fmt.Sprintf(`
inputs:
  - name: from-dc1
    type: link
    bind: [tcp://127.0.0.1:%d]
    state_dir: %s/state
    %s
outputs:
  - name: workers
    type: zmq
    socket: push
    connect: [%s]
    streams: ["impression"]
http:
  listen: ""
`, port, dir, inSec, pull.Endpoint)
	senderYAML := fmt.Sprintf(`
inputs:
  - name: rsyslog-tcp
    type: syslog
    listen: [tcp://127.0.0.1:0]
outputs:
  - name: to-dc2
    type: link
    connect: [tcp://127.0.0.1:%d]
    spool: {dir: %s/spool}
    %s
    heartbeat: 200ms
http:
  listen: ""
`, port, dir, outSec)
	recv := startRelay(t, receiverYAML)
	send := startRelay(t, senderYAML)
	addr := inputAddr(t, send, "rsyslog-tcp", "tcp")
	msgs := func(from, to int) []string {
		var ms []string
		for i := from; i < to; i++ {
			ms = append(ms, fmt.Sprintf("<134>1 2026-12-07T08:00:00Z web1 impression 42 ID47 [ad@32473 user=\"u%d\"] served %s", i%977, testpeer.Seq(i)))
		}
		return ms
	}
	sendTCP(t, addr, true, msgs(0, n/2))
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%d of %d arrived", pull.Count(), n/3) },
		func() bool { return pull.Count() >= n/3 })
	// SIGTERM the receiving relay mid-stream and start it again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := recv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	sendTCP(t, addr, true, msgs(n/2, n))
	recv = startRelay(t, receiverYAML)
	testpeer.Eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d of %d arrived", pull.Count(), n) },
		func() bool { return pull.Count() >= n })
	time.Sleep(300 * time.Millisecond) // anything extra would show now
	seen := make([]int, n)
	for _, m := range pull.Messages() {
		if s := testpeer.SeqOf(m[len(m)-1]); s >= 0 && s < n {
			seen[s]++
		}
	}
	var missing, dups int
	for _, c := range seen {
		if c == 0 {
			missing++
		}
		if c > 1 {
			dups += c - 1
		}
	}
	if missing != 0 || dups != 0 || pull.Count() != n {
		t.Fatalf("%d missing, %d duplicated, %d messages", missing, dups, pull.Count())
	}
	testpeer.Eventually(t, 10*time.Second, func() string { return "spool not drained" },
		func() bool { return metric(t, send, "relay_link_spool_records", "output=to-dc2") == 0 })
	if v := metric(t, send, "relay_link_acked_total", "output=to-dc2"); v != n {
		t.Errorf("relay_link_acked_total = %v, want %d", v, n)
	}
	if v := metric(t, send, "relay_link_up", "output=to-dc2", "endpoint="+fmt.Sprintf("tcp://127.0.0.1:%d", port)); v != 1 {
		t.Errorf("relay_link_up = %v", v)
	}
	raw, wire := metric(t, send, "relay_link_bytes_total", "output=to-dc2", "stage=raw"), metric(t, send, "relay_link_bytes_total", "output=to-dc2", "stage=wire")
	t.Logf("compression %.1f:1 (%.0f → %.0f bytes), sessions resent %v, skipped %v", raw/wire, raw, wire,
		metric(t, send, "relay_link_resent_total", "output=to-dc2"), metric(t, send, "relay_link_skipped_total", "output=to-dc2"))
	if metric(t, recv, "relay_link_input_sessions", "input=from-dc1") != 1 || metric(t, recv, "relay_input_received_total", "input=from-dc1") == 0 {
		t.Errorf("receiver metrics: sessions %v, received %v", metric(t, recv, "relay_link_input_sessions", "input=from-dc1"),
			metric(t, recv, "relay_input_received_total", "input=from-dc1"))
	}
	for _, reason := range []string{"curve_unknown_key", "curve_bad_box", "zmtp_handshake", "unknown_ca"} {
		if v := metric(t, recv, "relay_link_input_refused_total", "input=from-dc1", "reason="+reason); v != 0 {
			t.Errorf("relay_link_input_refused_total{reason=%q} = %v", reason, v)
		}
	}
}
