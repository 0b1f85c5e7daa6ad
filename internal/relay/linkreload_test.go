package relay

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// linkReloadPair starts a receiving relay (link input secured by inSec,
// PUSH to a libzmq PULL) and a sending relay (syslog input, link output
// secured by outSec) and returns them, the sender's YAML and the PULL.
func linkReloadPair(t *testing.T, dir, inSec, outSec string) (recv, send *Relay, senderYAML string, pull *testpeer.Pull) {
	t.Helper()
	pull = testpeer.StartPull(t, "tcp://127.0.0.1:0")
	port := testpeer.FreePort(t)
	recv = startRelay(t, fmt.Sprintf(`
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
http:
  listen: ""
`, port, dir, inSec, pull.Endpoint))
	senderYAML = fmt.Sprintf(`
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
	send = startRelay(t, senderYAML)
	return recv, send, senderYAML, pull
}

// reloadSame reloads r with its unchanged YAML, as SIGHUP does: the link
// output keeps running and only the secret files are read again.
func reloadSame(t *testing.T, r *Relay, yaml, dir string) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "relay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func linkEvents(n int) []string {
	var ms []string
	for i := 0; i < n; i++ {
		ms = append(ms, fmt.Sprintf("<134>1 2026-12-07T08:00:00Z web1 impression 42 ID47 - served %s", testpeer.Seq(i)))
	}
	return ms
}

// TestLinkOutputReloadsTLS: a link output's CA, certificate and key are
// re-read by a reload (SIGHUP) for its next connections, as a link
// input's are. The sending relay starts with another CA's files: first
// its CA does not sign the receiver's certificate (the sender refuses,
// unknown_ca), then, reloaded with the right CA, its own certificate is
// another CA's (the receiver refuses, unknown_ca); reloaded with the right
// certificate the link comes up and the events spooled meanwhile arrive,
// once each. The output is never rebuilt: the config did not change.
func TestLinkOutputReloadsTLS(t *testing.T) {
	const n = 2000
	dir, good, bad := t.TempDir(), t.TempDir(), t.TempDir()
	writeLinkCerts(t, good)
	writeLinkCerts(t, bad) // the same names, another CA
	for _, f := range []string{"ca.pem", "dc1.pem", "dc1.key"} {
		copyFile(t, filepath.Join(bad, f), filepath.Join(dir, f))
	}
	recv, send, yaml, pull := linkReloadPair(t, dir,
		fmt.Sprintf("tls: {cert: %s/dc2.pem, key: %s/dc2.key, client_ca: %s/ca.pem}", good, good, good),
		fmt.Sprintf("tls: {ca: %s/ca.pem, cert: %s/dc1.pem, key: %s/dc1.key, server_name: relay.dc2}", dir, dir, dir))
	sendTCP(t, inputAddr(t, send, "rsyslog-tcp", "tcp"), true, linkEvents(n))
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the sender refusing the receiver's certificate (unknown_ca)"), func() bool {
		return metric(t, send, "relay_link_refused_total", "output=to-dc2", "reason=unknown_ca") >= 1
	})

	copyFile(t, filepath.Join(good, "ca.pem"), filepath.Join(dir, "ca.pem"))
	reloadSame(t, send, yaml, dir)
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the receiver refusing the sender's certificate (unknown_ca)"), func() bool {
		return metric(t, recv, "relay_link_input_refused_total", "input=from-dc1", "reason=unknown_ca") >= 1 &&
			metric(t, send, "relay_link_refused_total", "output=to-dc2", "reason=refused_by_peer") >= 1
	})
	if pull.Count() != 0 {
		t.Fatalf("%d events crossed a link with the wrong certificate", pull.Count())
	}

	copyFile(t, filepath.Join(good, "dc1.pem"), filepath.Join(dir, "dc1.pem"))
	copyFile(t, filepath.Join(good, "dc1.key"), filepath.Join(dir, "dc1.key"))
	reloadSame(t, send, yaml, dir)
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%d of %d arrived", pull.Count(), n) },
		func() bool { return pull.Count() >= n })
	time.Sleep(200 * time.Millisecond)
	pullExactlyOnce(t, pull, n)
	// The receiver writes to the PULL before its ACK reaches the sender.
	testpeer.Eventually(t, 10*time.Second, func() string {
		return fmt.Sprintf("relay_link_acked_total = %v, want %d", metric(t, send, "relay_link_acked_total", "output=to-dc2"), n)
	}, func() bool { return metric(t, send, "relay_link_acked_total", "output=to-dc2") == n })
}

// TestLinkOutputReloadsCurve: the same for CURVE. The sending relay's
// key_file first holds a key the receiver's allow_dir does not list: the
// receiver counts curve_unknown_key, the sender curve_refused, and nothing
// crosses. After the file is replaced with the listed key and the config
// reloaded unchanged, the link comes up with the new key and the events
// arrive once each. Then a sender naming another server key is refused on
// both ends (curve_bad_box, curve_no_welcome).
func TestLinkOutputReloadsCurve(t *testing.T) {
	const n = 2000
	dir := t.TempDir()
	_, dc1 := writeLinkCurveKeys(t, dir)
	stranger, _ := zmq.NewCurveKeyPair()
	key := filepath.Join(dir, "sender.key")
	if err := zmq.WriteCurveCerts(key, stranger, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	recv, send, yaml, pull := linkReloadPair(t, dir,
		fmt.Sprintf("curve: {key_file: %s/dc2.key, allow_dir: %s/senders}", dir, dir),
		fmt.Sprintf("curve: {key_file: %s, server_key_file: %s/dc2.key}", key, dir))
	sendTCP(t, inputAddr(t, send, "rsyslog-tcp", "tcp"), true, linkEvents(n))
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the unlisted sender key refused and counted on both ends"), func() bool {
		return metric(t, recv, "relay_link_input_refused_total", "input=from-dc1", "reason=curve_unknown_key") >= 1 &&
			metric(t, send, "relay_link_refused_total", "output=to-dc2", "reason=curve_refused") >= 1
	})
	if pull.Count() != 0 {
		t.Fatalf("%d events crossed with an unlisted key", pull.Count())
	}

	os.Remove(key)
	os.Remove(key + "_secret")
	if err := zmq.WriteCurveCerts(key, dc1, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	reloadSame(t, send, yaml, dir)
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%d of %d arrived", pull.Count(), n) },
		func() bool { return pull.Count() >= n })
	time.Sleep(200 * time.Millisecond)
	pullExactlyOnce(t, pull, n)

	// A second sending relay that names another server key.
	other, _ := zmq.NewCurveKeyPair()
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "other.key"), other, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	wrong := startRelay(t, fmt.Sprintf(`
inputs:
  - name: rsyslog-tcp
    type: syslog
    listen: [tcp://127.0.0.1:0]
outputs:
  - name: to-dc2
    type: link
    connect: [%s]
    spool: {dir: %s/spool}
    curve: {key_file: %s, server_key_file: %s/other.key}
http:
  listen: ""
`, "tcp://"+recv.Inputs()["from-dc1"].Addrs()[0].String(), dir2, key, dir))
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the wrong server key refused and counted on both ends"), func() bool {
		return metric(t, recv, "relay_link_input_refused_total", "input=from-dc1", "reason=curve_bad_box") >= 1 &&
			metric(t, wrong, "relay_link_refused_total", "output=to-dc2", "reason=curve_no_welcome") >= 1
	})
}

// pullExactlyOnce checks that pull got every sequence number in [0, n)
// exactly once.
func pullExactlyOnce(t *testing.T, pull *testpeer.Pull, n int) {
	t.Helper()
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
}
