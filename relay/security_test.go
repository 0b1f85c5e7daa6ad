package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// writeCert writes a fresh self-signed certificate and key for 127.0.0.1
// to certFile and keyFile (mode 0600) and returns the certificate's
// SHA-256 fingerprint.
func writeCert(t *testing.T, certFile, keyFile, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// writeFile replaces file's content atomically, mode 0600, as an operator
// rotating a secret would (or a configuration tool).
func writeFile(t *testing.T, file, data string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// servedCert is the fingerprint of the certificate a TLS server at addr
// presents to a new connection.
func servedCert(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer c.Close()
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// tapStatus is the HTTP status of a websocket upgrade of /v1/tap with the
// bearer token tok.
func tapStatus(t *testing.T, addr, tok string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /v1/tap HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", addr, tok)
	var code int
	if _, err := fmt.Fscanf(c, "HTTP/1.1 %d", &code); err != nil {
		t.Fatalf("tap upgrade: %v", err)
	}
	return code
}

// plainSend connects to a PLAIN-protected PULL at ep as user and reports
// whether msg was handed over within a few seconds.
func plainSend(ep, user, pass, msg string) bool {
	push := zmq.NewPush(zmq.Options{Security: zmq.PlainClient(user, pass), HandshakeTimeout: time.Second})
	defer push.Close()
	push.Dial(ep)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := push.Send(ctx, zmq.Msg{[]byte(msg)}); err != nil {
		return false
	}
	return push.Flush(ctx) == nil
}

// The review's seventh hole: after removing a user, replacing the TLS
// certificate and key and rewriting the tap token, SIGHUP logged
// "configuration reloaded" and relay_config_last_reload_successful was 1,
// yet the removed user still connected, the old certificate was served and
// the old token worked (the new one got 401). Now SIGHUP re-reads them for
// new connections; a file that does not load fails the reload, naming it,
// with the metric at 0 and the old secrets still in use.
func TestSIGHUPReloadsSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key")
	users, token := filepath.Join(dir, "users.txt"), filepath.Join(dir, "tap.token")
	oldCert := writeCert(t, certFile, keyFile, "old")
	writeFile(t, users, "alice:pw-a\nbob:pw-b\n")
	writeFile(t, token, "token-old\n")
	pp := testpeer.FreePorts(t, 5)
	tlsAddr, zmqEP, httpAddr := fmt.Sprintf("127.0.0.1:%d", pp[0]), fmt.Sprintf("tcp://127.0.0.1:%d", pp[1]), fmt.Sprintf("127.0.0.1:%d", pp[3])
	relpAddr := fmt.Sprintf("127.0.0.1:%d", pp[4])
	conf := filepath.Join(dir, "relay.yaml")
	writeFile(t, conf, fmt.Sprintf(`
inputs:
  - name: tls
    type: syslog
    listen: tls://%s
    tls: {cert: relay.pem, key: relay.key}
  - name: relp
    type: relp
    listen: tls://%s
    tls: {cert: relay.pem, key: relay.key}
  - name: z
    type: zmq
    bind: %s
    plain: {users_file: users.txt}
outputs:
  - {name: out, socket: push, bind: "tcp://127.0.0.1:%d", hwm: 10000}
http: {listen: "%s", tap_token_file: tap.token}
log: {format: json}
`, tlsAddr, relpAddr, zmqEP, pp[2], httpAddr))
	p := ports{http: pp[3]}
	pr := startRelay(t, conf, p)
	pull := zmq.NewPull(zmq.Options{})
	defer pull.Close()
	pull.Dial(fmt.Sprintf("tcp://127.0.0.1:%d", pp[2]))
	received := func(msg string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			m, err := pull.Recv(ctx)
			if err != nil {
				return false
			}
			if string(m[len(m)-1]) == msg {
				return true
			}
		}
	}
	check := func(stage, wantCert string, bobOK bool, goodTok, badTok string) {
		t.Helper()
		if got := servedCert(t, tlsAddr); got != wantCert {
			t.Errorf("%s: TLS serves certificate %.16s…, want %.16s…", stage, got, wantCert)
		}
		if got := servedCert(t, relpAddr); got != wantCert {
			t.Errorf("%s: RELP over TLS serves certificate %.16s…, want %.16s…", stage, got, wantCert)
		}
		if !plainSend(zmqEP, "alice", "pw-a", stage+" alice") || !received(stage+" alice") {
			t.Errorf("%s: alice's message did not arrive", stage)
		}
		if got := plainSend(zmqEP, "bob", "pw-b", stage+" bob") && received(stage+" bob"); got != bobOK {
			t.Errorf("%s: bob's message arrived: %v, want %v", stage, got, bobOK)
		}
		if code := tapStatus(t, httpAddr, goodTok); code != http.StatusSwitchingProtocols {
			t.Errorf("%s: tap with %s: %d, want 101", stage, goodTok, code)
		}
		if code := tapStatus(t, httpAddr, badTok); code != http.StatusUnauthorized {
			t.Errorf("%s: tap with %s: %d, want 401", stage, badTok, code)
		}
	}
	check("before", oldCert, true, "token-old", "token-new")
	// A connection made before the reload is not cut.
	held, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	// Rotate everything, then SIGHUP.
	newCert := writeCert(t, certFile, keyFile, "new")
	writeFile(t, users, "alice:pw-a\n")
	writeFile(t, token, "token-new\n")
	stamp := metric(t, p, "relay_config_last_reload_success_timestamp_seconds")
	pr.signal(t, syscall.SIGHUP)
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the reload"), func() bool {
		return metric(t, p, "relay_config_last_reload_success_timestamp_seconds") != stamp
	})
	if v := metric(t, p, "relay_config_last_reload_successful"); v != 1 {
		t.Errorf("relay_config_last_reload_successful = %v after a good reload", v)
	}
	check("after rotation", newCert, false, "token-new", "token-old")
	if _, err := fmt.Fprintf(held, "<14>1 - h app - - - held\n"); err != nil {
		t.Errorf("the connection made before the reload was cut: %v", err)
	}
	t.Logf("measured: after SIGHUP, new connections get certificate %.16s… (was %.16s…), bob is refused, token-new opens the tap and token-old gets 401", newCert, oldCert)

	// A certificate that does not load fails the whole reload, naming the
	// file; the metric says so and the rotated secrets stay in use.
	failed := func(l string) bool {
		return strings.Contains(l, `"msg":"reload failed"`) || strings.Contains(l, `"msg":"reload refused; the old config keeps running"`)
	}
	writeFile(t, certFile, "not a certificate\n")
	writeFile(t, token, "token-third\n")
	pr.signal(t, syscall.SIGHUP)
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the failed reload in the log"), func() bool {
		return failed(pr.stderr.String())
	})
	var line string
	for _, l := range strings.Split(pr.stderr.String(), "\n") {
		if failed(l) {
			line = l
		}
	}
	if !strings.Contains(line, certFile) {
		t.Errorf("the failed reload does not name %s:\n%s", certFile, line)
	}
	if v := metric(t, p, "relay_config_last_reload_successful"); v != 0 {
		t.Errorf("relay_config_last_reload_successful = %v after a failed reload, want 0", v)
	}
	check("after a failed reload", newCert, false, "token-new", "token-third")
	t.Logf("measured: a reload with a broken certificate: %.300s", line)
	pr.signal(t, syscall.SIGTERM)
	pr.wait(t, 20*time.Second)
}

// procFDs counts the open file descriptors of pid.
func procFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// The review's sixth hole: under a 1,024-fd limit, 1,011 idle keep-alive
// HTTP connections made the syslog listener fail with "too many open
// files" and /metrics unreachable. Here the relay runs under a 256-fd
// limit (prlimit); 1,000 clients each make one request and stay idle,
// while a syslog sender connects and sends 20,000 events: every event
// arrives, /metrics answers, and the relay's descriptors stay under the
// limit, because HTTP is capped at a quarter of it and idle connections
// make room for new ones.
func TestIdleHTTPFloodUnderFDLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	prlimit := testpeer.Need(t, "prlimit", "util-linux")
	const limit, flood, events = 256, 1000, 20000
	p := freePorts(t)
	conf := relayConf(t, "", p, []string{"*"}, nil, "")
	pr := &proc{stderr: &testpeer.SyncBuffer{}, done: make(chan struct{})}
	pr.cmd = exec.Command(prlimit, fmt.Sprintf("--nofile=%d:%d", limit, limit), relayBin, "-c", conf)
	pr.cmd.Stdout, pr.cmd.Stderr = pr.stderr, pr.stderr
	if err := pr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { pr.cmd.Wait(); close(pr.done) }()
	t.Cleanup(func() {
		pr.cmd.Process.Kill()
		<-pr.done
		if t.Failed() {
			t.Logf("relay output:\n%.20000s", pr.stderr.String())
		}
	})
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("/healthz 200"), func() bool {
		code, _ := httpGet(p, "/healthz")
		return code == http.StatusOK
	})
	if !strings.Contains(pr.stderr.String(), `"fd_limit":256`) {
		t.Errorf("the relay did not log its file descriptor budget:\n%s", pr.stderr.String())
	}
	pull := zmq.NewPull(zmq.Options{RecvHWM: 100000})
	defer pull.Close()
	pull.Dial(fmt.Sprintf("tcp://127.0.0.1:%d", p.a))

	var peakFDs int
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			n := procFDs(pr.cmd.Process.Pid)
			mu.Lock()
			peakFDs = max(peakFDs, n)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	// The flood: each client makes one request and keeps its connection.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.http))
		if err != nil {
			continue
		}
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		idle = append(idle, c)
	}
	// Syslog on a new connection while the flood holds on.
	sc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.syslog))
	if err != nil {
		t.Fatalf("syslog connect during the flood: %v", err)
	}
	defer sc.Close()
	go sc.Write(seqMsgs("click", 0, events))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := make([]bool, events)
	got := 0
	for got < events {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatalf("%d of %d events arrived during the flood: %v", got, events, err)
		}
		if i := testpeer.SeqOf(string(m[0])); i >= 0 && i < events && !seen[i] {
			seen[i] = true
			got++
		}
	}
	code, body := httpGet(p, "/metrics")
	close(stop)
	<-sampled
	if code != http.StatusOK {
		t.Fatalf("/metrics during the flood: %d %.200s", code, body)
	}
	evicted := metric(t, p, "relay_http_connections_evicted_total")
	open := metric(t, p, "relay_http_connections")
	t.Logf("measured: fd limit %d, %d idle HTTP clients: %d/%d syslog events arrived, /metrics 200, relay fds peaked at %d, HTTP connections %v (capped at %d), %v evicted",
		limit, len(idle), got, events, peakFDs, open, limit/4+1, evicted)
	if strings.Contains(pr.stderr.String(), "too many open files") {
		t.Errorf("the relay ran out of file descriptors:\n%.3000s", pr.stderr.String())
	}
	if peakFDs >= limit {
		t.Errorf("the relay's descriptors peaked at %d, the limit is %d", peakFDs, limit)
	}
	if open > limit/4+1 { // a quarter, or tap_max_clients+1 (65) if more
		t.Errorf("%v HTTP connections open, want at most %d", open, limit/4+1)
	}
	_ = io.Discard
}

// `relay check` refuses a credentials file every user may write, and
// warns, with the fix, about one every user may read.
func TestCheckSecretFilePermissions(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "tap.token")
	writeFile(t, token, "tok\n")
	conf := filepath.Join(dir, "relay.yaml")
	writeFile(t, conf, "inputs: [{name: in, type: syslog, listen: \"udp://127.0.0.1:0\"}]\nhttp: {listen: \"127.0.0.1:0\", tap_token_file: tap.token}\n")
	os.Chmod(token, 0o666)
	code, out, errOut := runBin(t, "check", "-c", conf)
	if code != 2 || !strings.Contains(errOut, "http.tap_token_file: \""+token+"\" is writable by every user (mode 0666)") {
		t.Errorf("world-writable token: exit %d, %s%s", code, out, errOut)
	}
	os.Chmod(token, 0o644)
	code, out, errOut = runBin(t, "check", "-c", conf)
	if code != 0 || !strings.Contains(out, "warning: "+conf+":2:31: http.tap_token_file: \""+token+"\" holds credentials and every user may read it (mode 0644); run chmod o-r on it") {
		t.Errorf("world-readable token: exit %d, %s%s", code, out, errOut)
	}
	os.Chmod(token, 0o600)
	if code, out, _ = runBin(t, "check", "-c", conf); code != 0 || strings.Contains(out, "warning") {
		t.Errorf("private token: exit %d, %s", code, out)
	}
}
