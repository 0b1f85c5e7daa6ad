package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestKafkaTLSAndPlain runs the Kafka output against a kfake cluster that
// listens with TLS, verifies client certificates and takes SASL PLAIN,
// with the output's tls (ca, cert, key) and sasl settings as the man page
// documents them. The right settings deliver every event once; a wrong
// password, a client certificate the brokers do not trust, and a CA that
// did not sign the brokers are refused: the spool keeps the events, the
// failures are counted (kfake closes the connection instead of answering
// SASL_AUTHENTICATION_FAILED, so the count is under brokers or auth) and
// logged once while the refusals go on.
func TestKafkaTLSAndPlain(t *testing.T) {
	dir := t.TempDir()
	ca := testpeer.NewCA(t, dir)
	srvCert, srvKey := ca.Issue(t, "kafka")
	cliCert, cliKey := ca.Issue(t, "relay")
	otherDir := filepath.Join(dir, "other")
	os.Mkdir(otherDir, 0o700)
	other := testpeer.NewCA(t, otherDir)
	badCert, badKey := other.Issue(t, "relay")

	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(caPEM)
	c := startKfake(t, kfake.SeedTopics(3, "events"), kfake.EnableSASL(), kfake.Superuser("PLAIN", "relay", "right"),
		kfake.Superuser("SCRAM-SHA-512", "scram", "pw"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}))
	brokers := c.ListenAddrs()
	goodTLS := &config.ClientTLS{CA: ca.File, Cert: cliCert, Key: cliKey, ServerName: "kafka"}
	clientTLS := func(ct *config.ClientTLS) *tls.Config {
		tc, err := ct.Config()
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}

	for _, bad := range []struct {
		name string
		tls  *config.ClientTLS
		pass string
		says string
	}{
		{"wrong password", goodTLS, "wrong", "sasl credentials"},
		{"untrusted client certificate", &config.ClientTLS{CA: ca.File, Cert: badCert, Key: badKey, ServerName: "kafka"}, "right", "tls"},
		{"wrong ca", &config.ClientTLS{CA: other.File, Cert: cliCert, Key: cliKey, ServerName: "kafka"}, "right", "tls"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			dir := t.TempDir()
			sp := openSpool(t, dir)
			defer sp.Close()
			appendN(t, sp, 0, 100)
			log, logs := captureLogger(t)
			k := newKafka(t, dir, true, brokers, func(cfg *KafkaConfig) {
				cfg.Sent, cfg.Logger, cfg.TLS = sp.Sent, log, clientTLS(bad.tls)
				cfg.SASL = &KafkaSASL{Mechanism: "PLAIN", User: "relay", Password: bad.pass}
			})
			d := startDrain(sp, k)
			failed := func() uint64 { f := k.Stats().Failed; return f[CauseAuth] + f[CauseBrokers] }
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool { return failed() >= 2 })
			d.stop()
			// Close waits within its context for acknowledgements that
			// will not come: what is not acknowledged stays in the spool.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			k.Close(ctx)
			cancel()
			if r := sp.Stats().Records; r != 100 {
				t.Fatalf("the spool holds %d, want 100", r)
			}
			l := logs.String()
			if n := strings.Count(l, "broker refused or lost a publish"); n != 1 || !strings.Contains(l, bad.says) {
				t.Fatalf("%d failures logged %d times (want once, saying %q):\n%s", failed(), n, bad.says, l)
			}
		})
	}

	first := 0
	for _, good := range []KafkaSASL{{Mechanism: "PLAIN", User: "relay", Password: "right"}, {Mechanism: "SCRAM-SHA-512", User: "scram", Password: "pw"}} {
		t.Run("right settings "+good.Mechanism, func(t *testing.T) { kafkaDeliverOnce(t, brokers, clientTLS(goodTLS), good, first) })
		first += 2000
	}
}

// kafkaDeliverOnce drains 2000 events seq:first… into topic events with
// tc and s, and reads them back once each.
func kafkaDeliverOnce(t *testing.T, brokers []string, tc *tls.Config, s KafkaSASL, first int) {
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	const n = 2000
	appendN(t, sp, first, n)
	k := newKafka(t, dir, true, brokers, func(cfg *KafkaConfig) {
		cfg.Sent, cfg.TLS = sp.Sent, tc
		cfg.SASL = &s
	})
	d := startDrain(sp, k)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	k.Close(context.Background())
	counts, _ := topicCountWith(t, brokers, []kgo.Opt{kgo.DialTLSConfig(tc), kgo.SASL(plain.Auth{User: "relay", Pass: "right"}.AsMechanism())}, first+n, "events")
	if missing, dups, strays := tally(counts, 0, first+n); missing+dups+strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
	}
	if st := k.Stats(); st.Confirmed != n || st.Resent != 0 || len(st.Failed) != 0 {
		t.Fatalf("stats %+v", st)
	}
}
