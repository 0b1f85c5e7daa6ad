// Package rsyslogconf tests the rsyslog snippets admins paste: each one is
// validated by rsyslogd -N1, and the forwarding ones run end to end with a
// real rsyslogd.
package rsyslogconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// snippet returns file's text with each old→new replacement applied,
// failing when an old value is missing, so tests notice snippet drift.
func snippet(t *testing.T, file string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("%s no longer contains %q", file, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

// onlyTestMessages wraps a snippet's statements in a filter so rsyslog's
// own messages stay out of the counts; module loads stay at the top level.
func onlyTestMessages(conf string) string {
	var mods, rest []string
	open := 0 // unclosed parentheses of a module(...) statement spanning lines
	for _, l := range strings.Split(conf, "\n") {
		if open > 0 || strings.HasPrefix(l, "module(") {
			mods = append(mods, l)
			open += strings.Count(l, "(") - strings.Count(l, ")")
		} else {
			rest = append(rest, l)
		}
	}
	return strings.Join(mods, "\n") + "\nif $msg contains \"msgnum:\" then {\n" + strings.Join(rest, "\n") + "\n}\n"
}

func TestSnippetsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd -N1")
	}
	files, err := filepath.Glob("*.conf")
	if err != nil || len(files) < 6 {
		t.Fatalf("want the six snippets, found %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			abs, _ := filepath.Abs(f)
			dir := t.TempDir()
			b, _ := os.ReadFile(f)
			if !strings.HasPrefix(string(b), "#") {
				t.Errorf("%s must open with a comment saying what it does", f)
			}
			// Files a snippet names under /etc/rsyslog.d/ (certificates):
			// omrelp checks at -N1 that they exist, so point them at
			// placeholders.
			if strings.Contains(string(b), "/etc/rsyslog.d/") {
				abs = placeholders(t, dir, string(b))
			}
			// Snippets are pasted into a config that has a workDirectory.
			harness := filepath.Join(dir, "harness.conf")
			conf := fmt.Sprintf("global(workDirectory=%q)\ninclude(file=%q)\n", dir, abs)
			if err := os.WriteFile(harness, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := testpeer.Validate(t, harness)
			if err != nil || strings.Contains(strings.ToLower(out), "error") {
				t.Fatalf("rsyslogd -N1 rejects %s: %v\n%s", f, err, out)
			}
		})
	}
}

// The validation catches mistakes: a misspelt parameter fails.
func TestValidateCatchesTypos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd -N1")
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	s := snippet(t, "forward-tcp.conf", `TCP_Framing=`, `TCP_Framming=`)
	if err := os.WriteFile(bad, []byte(fmt.Sprintf("global(workDirectory=%q)\n%s", dir, s)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testpeer.Validate(t, bad); err == nil {
		t.Fatalf("rsyslogd -N1 accepted a misspelt parameter:\n%s", out)
	}
}

func numbers(n, from int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = testpeer.Numbered(from + i)
	}
	return out
}

// forward-tcp.conf: octet-counted RFC 5424 to the relay, and nothing lost
// while the relay is down.
func TestForwardTCPEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	recv := testpeer.StartSyslogReceiver(t, 0)
	port := recv.Addr.Port
	conf := snippet(t, "forward-tcp.conf", `port="10514"`, fmt.Sprintf(`port="%d"`, port))
	r := testpeer.StartRsyslogd(t, t.TempDir(), onlyTestMessages(conf))

	const n = 2000
	r.SendNumbered(t, "impression", 0, n)
	texts := waitFrames(t, recv, n, r)
	for _, m := range texts[:1] {
		if !strings.HasPrefix(m, "<14>1 2026-01-01T00:00:00") || !strings.Contains(m, " impression ") {
			t.Fatalf("frame is not RFC 5424 from the template: %q", m)
		}
	}
	missing, dups, strays := testpeer.Tally(texts, n)
	if len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("relay up: missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}

	// The relay goes down for a while; rsyslog keeps what arrives meanwhile.
	recv.Close()
	r.SendNumbered(t, "impression", n, n)
	time.Sleep(3 * time.Second) // the outage
	recv2 := testpeer.StartSyslogReceiver(t, port)
	var missing2 []int
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d messages still missing after the relay came back; rsyslogd:\n%s", len(missing2), r.Output())
	}, func() bool {
		texts2, _ := recv2.Messages()
		missing2, dups, _ = testpeer.Tally(append(texts, texts2...), 2*n)
		return len(missing2) == 0
	})
	t.Logf("relay down 3s with %d messages sent meanwhile: none lost, %d duplicates", n, dups)
}

func waitFrames(t *testing.T, recv *testpeer.SyslogReceiver, n int, r *testpeer.Rsyslogd) []string {
	t.Helper()
	var texts []string
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d of %d frames; rsyslogd:\n%s", len(texts), n, r.Output())
	}, func() bool {
		msgs, bad := recv.Messages()
		if bad > 0 {
			t.Fatalf("%d frames were not octet-counted", bad)
		}
		texts = msgs
		return len(msgs) >= n
	})
	return texts
}

// forward-per-stream.conf: only the chosen streams are forwarded.
func TestForwardPerStreamEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	recv := testpeer.StartSyslogReceiver(t, 0)
	conf := snippet(t, "forward-per-stream.conf", `port="10514"`, fmt.Sprintf(`port="%d"`, recv.Addr.Port))
	r := testpeer.StartRsyslogd(t, t.TempDir(), conf)
	r.Send(t, "other", numbers(100, 1000)...) // not forwarded
	r.Send(t, "impression", numbers(100, 0)...)
	r.Send(t, "click", numbers(100, 100)...)
	r.Send(t, "other", "msgnum:99999999 end marker")
	texts := waitFrames(t, recv, 200, r)
	missing, dups, strays := testpeer.Tally(texts, 200)
	if len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d (other streams leaked?)", len(missing), dups, strays)
	}
	for _, m := range texts {
		if !strings.Contains(m, " impression ") && !strings.Contains(m, " click ") {
			t.Fatalf("unexpected stream forwarded: %q", m)
		}
	}
}

// omczmq-push.conf: rsyslog's omczmq PUSH to a libzmq PULL (the relay's
// PULL input stand-in), one frame per message.
func TestOmczmqPushEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd and pyzmq")
	}
	pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	conf := snippet(t, "omczmq-push.conf", `">tcp://127.0.0.1:5555"`, strconv.Quote(">"+pull.Endpoint))
	r := testpeer.StartRsyslogd(t, t.TempDir(), onlyTestMessages(conf))
	const n = 2000
	r.SendNumbered(t, "impression", 0, n)
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d of %d messages; rsyslogd:\n%s", pull.Count(), n, r.Output())
	}, func() bool { return pull.Count() >= n })
	var texts []string
	for _, m := range pull.Messages() {
		if len(m) != 1 {
			t.Fatalf("omczmq sent %d frames, want 1: %q", len(m), m)
		}
		texts = append(texts, m[0])
	}
	missing, dups, strays := testpeer.Tally(texts, n)
	if len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}
}

// imczmq-sub.conf: rsyslog subscribes to a PUB (omzmq-bridge standing in
// for the relay's PUB output) and writes the chosen streams to a file; the
// topic frames are dropped.
func TestImczmqSubEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	dir := t.TempDir()
	bridge := filepath.Join(dir, "omzmq-bridge")
	if out, err := exec.Command("go", "build", "-o", bridge, "../omzmq-bridge").CombinedOutput(); err != nil {
		t.Fatalf("build omzmq-bridge: %v\n%s", err, out)
	}
	ep := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	pub := exec.Command(bridge, "--socket", "pub", "--bind", ep, "--topic-from-field", "--confirm", "off")
	stdin, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = pub.Wait() }()

	tap := filepath.Join(dir, "tap.log")
	conf := snippet(t, "imczmq-sub.conf", `">tcp://127.0.0.1:5556"`, strconv.Quote(">"+ep), "/var/log/relay-tap.log", tap)
	r := testpeer.StartRsyslogd(t, dir, conf)
	i := 0
	testpeer.Eventually(t, 30*time.Second, func() string { return "events in the tap file; rsyslogd:\n" + r.Output() }, func() bool {
		// PUB drops until the subscription arrives, so keep publishing.
		fmt.Fprintf(stdin, "impression <14>1 2026-01-01T00:00:00Z h impression - - - msgnum:%08d\nother <14>1 2026-01-01T00:00:00Z h other - - - msgnum:99999999\n", i)
		i++
		b, _ := os.ReadFile(tap)
		return strings.Count(string(b), "\n") >= 3
	})
	b, _ := os.ReadFile(tap)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.Contains(l, "impression") || !strings.Contains(l, "msgnum:") || strings.Contains(l, "99999999") {
			t.Fatalf("tap file line %q: want only impression events, no topic frames", l)
		}
	}
}

// testCA returns a CA PEM file and a server certificate for
// relay.example.net signed by it.
func testCA(t *testing.T, dir string) (caFile string, cert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "relay.example.net"},
		DNSNames:  []string{"relay.example.net"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// forward-tls.conf: the certificate is checked against the CA and the
// name, and the messages arrive over TLS.
func TestForwardTLSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	dir := t.TempDir()
	caFile, cert := testCA(t, dir)
	recv := testpeer.StartTLSSyslogReceiver(t, 0, &tls.Config{Certificates: []tls.Certificate{cert}})
	conf := snippet(t, "forward-tls.conf",
		`target="relay.example.net"`, `target="127.0.0.1"`,
		`port="6514"`, fmt.Sprintf(`port="%d"`, recv.Addr.Port),
		"/etc/rsyslog.d/relay-ca.pem", caFile)
	r := testpeer.StartRsyslogd(t, dir, onlyTestMessages(conf))
	const n = 1000
	r.SendNumbered(t, "impression", 0, n)
	texts := waitFrames(t, recv, n, r)
	missing, dups, strays := testpeer.Tally(texts, n)
	if len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}
}

// A relay whose certificate does not carry the permitted name is refused.
func TestForwardTLSRejectsWrongName(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	dir := t.TempDir()
	caFile, cert := testCA(t, dir)
	recv := testpeer.StartTLSSyslogReceiver(t, 0, &tls.Config{Certificates: []tls.Certificate{cert}})
	conf := snippet(t, "forward-tls.conf",
		`target="relay.example.net"`, `target="127.0.0.1"`,
		`port="6514"`, fmt.Sprintf(`port="%d"`, recv.Addr.Port),
		`StreamDriverPermittedPeers="relay.example.net"`, `StreamDriverPermittedPeers="other.example.net"`,
		"/etc/rsyslog.d/relay-ca.pem", caFile)
	r := testpeer.StartRsyslogd(t, dir, onlyTestMessages(conf))
	r.SendNumbered(t, "impression", 0, 10)
	// The refusal must be for the name: any other handshake failure (a CA
	// mismatch, a broken snippet) would also keep messages from arriving.
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("rsyslog to refuse the relay's name (%d handshakes failed at the relay); rsyslogd:\n%s", recv.HandshakeFailures(), r.Output())
	}, func() bool {
		out := r.Output()
		return strings.Contains(out, "peer name not authorized") && strings.Contains(out, "DNSname: relay.example.net")
	})
	if msgs, _ := recv.Messages(); len(msgs) > 0 {
		t.Fatalf("%d messages sent to a relay with the wrong name", len(msgs))
	}
}
