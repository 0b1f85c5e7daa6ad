package rsyslogconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/relp"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

var etcFile = regexp.MustCompile(`/etc/rsyslog\.d/[A-Za-z0-9._/-]+`)

// placeholders writes a copy of conf to dir whose /etc/rsyslog.d/ files
// point at empty files in dir, and returns its path.
func placeholders(t *testing.T, dir, conf string) string {
	t.Helper()
	conf = etcFile.ReplaceAllStringFunc(conf, func(f string) string {
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	})
	out := filepath.Join(dir, "snippet.conf")
	if err := os.WriteFile(out, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// relpReceiver is the relay's RELP input with a Handler that keeps the
// messages (every frame answered once handed over).
type relpReceiver struct {
	in   *input.RELP
	mu   sync.Mutex
	msgs []string
}

func startRELPReceiver(t *testing.T, tlsCfg *tls.Config) *relpReceiver {
	t.Helper()
	r := &relpReceiver{}
	listen := "tcp://127.0.0.1:0"
	if tlsCfg != nil {
		listen = "tls://127.0.0.1:0"
	}
	in, err := input.NewRELP(input.RELPConfig{Name: "relp", Listen: []string{listen}, TLS: tlsCfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(func(batch []*event.Event) {
		r.mu.Lock()
		for _, e := range batch {
			r.msgs = append(r.msgs, string(e.Raw))
		}
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Stop(ctx)
	})
	r.in = in
	return r
}

func (r *relpReceiver) port() string {
	_, p, _ := net.SplitHostPort(r.in.Addrs()[0].String())
	return p
}

func (r *relpReceiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func waitRELP(t *testing.T, recv *relpReceiver, n int, rs *testpeer.Rsyslogd) []string {
	t.Helper()
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d messages over RELP, have %d; relp %+v\nrsyslogd:\n%s", n, len(recv.messages()), recv.in.RELPStats().BadFrames, rs.Output())
	}, func() bool { return len(recv.messages()) >= n })
	return recv.messages()
}

// forward-relp.conf: 20,000 messages over omrelp, each exactly once and
// answered; then the relay's input stops (answering, then serverclose)
// and a new one starts on the same port 3 s later: the rest arrive.
func TestForwardRELPEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	recv := startRELPReceiver(t, nil)
	port := recv.port()
	conf := snippet(t, "forward-relp.conf", `port="2514"`, `port="`+port+`"`)
	rs := testpeer.StartRsyslogd(t, t.TempDir(), onlyTestMessages(conf))
	const n = 20_000
	rs.SendNumbered(t, "impression", 0, n)
	msgs := waitRELP(t, recv, n, rs)
	if missing, dups, strays := testpeer.Tally(msgs, n); len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("every message answered"), func() bool { return recv.in.RELPStats().Acked == n })

	// The relay goes away for 3 s.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	recv.in.Stop(ctx)
	cancel()
	rs.SendNumbered(t, "impression", n, 1000)
	time.Sleep(3 * time.Second)
	again := &relpReceiver{}
	p, _ := strconv.Atoi(port)
	in, err := input.NewRELP(input.RELPConfig{Name: "relp", Listen: []string{fmt.Sprintf("tcp://127.0.0.1:%d", p)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(func(batch []*event.Event) {
		again.mu.Lock()
		for _, e := range batch {
			again.msgs = append(again.msgs, string(e.Raw))
		}
		again.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer in.Stop(context.Background())
	again.in = in
	later := waitRELP(t, again, 1000, rs)
	all := append(msgs, later...)
	if missing, dups, strays := testpeer.Tally(all, n+1000); len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("after the outage: missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}
}

// forward-relp-tls.conf: omrelp checks the relay's name, the relay checks
// omrelp's certificate against its permitted peers; messages arrive.
func TestForwardRELPTLSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	dir := t.TempDir()
	ca := testpeer.NewCA(t, dir)
	srvCert, srvKey := ca.Issue(t, "relay.example.net")
	cliCert, cliKey := ca.Issue(t, "web1.clients.example.net")
	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	pc, err := relp.NewPeerCheck(pool, []string{"*.clients.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	pc.Apply(cfg)
	recv := startRELPReceiver(t, cfg)
	conf := snippet(t, "forward-relp-tls.conf",
		`target="relay.example.net"`, `target="127.0.0.1"`,
		`port="2515"`, `port="`+recv.port()+`"`,
		"/etc/rsyslog.d/relay-ca.pem", ca.File,
		"/etc/rsyslog.d/client-cert.pem", cliCert,
		"/etc/rsyslog.d/client-key.pem", cliKey)
	rs := testpeer.StartRsyslogd(t, dir, onlyTestMessages(conf))
	const n = 2000
	rs.SendNumbered(t, "impression", 0, n)
	msgs := waitRELP(t, recv, n, rs)
	if missing, dups, strays := testpeer.Tally(msgs, n); len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}
}
