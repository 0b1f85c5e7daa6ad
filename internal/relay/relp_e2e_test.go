package relay

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// relpRelay is a relay with one RELP input (listen, plus extra YAML under
// the input) and one PUSH output "workers" bound on a free port.
func relpRelay(t testing.TB, listen, extra string) *Relay {
	return startRelay(t, fmt.Sprintf(`
inputs:
  - name: relp
    type: relp
    listen: %s
%s
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    format: raw
    hwm: 1000
http:
  listen: 127.0.0.1:0
`, listen, extra))
}

// omrelpAction is an omrelp action to the relay's RELP port, with a window
// of window frames and a batch (dequeueBatchSize) no larger (see
// rsyslog-conf/forward-relp.conf), retrying forever.
func omrelpAction(port string, window int, extra string) string {
	return fmt.Sprintf(`action(type="omrelp" target="127.0.0.1" port="%s" windowSize="%d"
    template="RSYSLOG_SyslogProtocol23Format" %s
    queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="%d"
    action.resumeRetryCount="-1" action.resumeInterval="1")`, port, window, extra, window)
}

func relpPort(t testing.TB, r *Relay) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(inputAddr(t, r, "relp", "tcp"))
	return port
}

// relpMetrics is the RELP input's counters that must stay zero in a clean
// run, for failure messages.
func relpTrouble(t testing.TB, r *Relay) string {
	var b strings.Builder
	for _, reason := range []string{"txnr", "command", "datalen", "oversize", "trailer", "truncated", "before_open", "txnr_sequence", "second_open", "offers", "unknown_command", "after_close", "not_reading"} {
		if v := metric(t, r, "relay_relp_bad_frames_total", "input=relp", "reason="+reason); v > 0 {
			fmt.Fprintf(&b, " bad[%s]=%v", reason, v)
		}
	}
	for _, cause := range []string{"ack_timeout", "handoff_failed", "shutdown"} {
		if v := metric(t, r, "relay_relp_resend_closes_total", "input=relp", "cause="+cause); v > 0 {
			fmt.Fprintf(&b, " resend_close[%s]=%v", cause, v)
		}
	}
	return b.String()
}

// TestRELPToWorkers: rsyslogd's omrelp → relay RELP → 3 libzmq PULL
// workers, 100,000 events, each exactly once, every one answered.
func TestRELPToWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	const n = 100_000
	r := relpRelay(t, "tcp://127.0.0.1:0", "")
	ws := startWorkers(t, r, "workers", 3)
	rs := startRsyslogd(t, forwardConfWith(`module(load="omrelp")`, omrelpAction(relpPort(t, r), 1024, "")))
	feedRsyslog(t, rs, "relpapp", n)
	total := func() int { return ws[0].Count() + ws[1].Count() + ws[2].Count() }
	testpeer.Eventually(t, 180*time.Second, func() string {
		return fmt.Sprintf("%d events at the workers, have %d (relay received %v, acked %v)%s", n, total(),
			metric(t, r, "relay_input_received_total", "input=relp"), metric(t, r, "relay_relp_acked_total", "input=relp"), relpTrouble(t, r))
	}, func() bool { return total() >= n })
	counts := checkExactlyOnce(t, n, ws...)
	for i, c := range counts {
		if c < n/20 {
			t.Errorf("worker %d got %d of %d events; want a share (counts %v)", i, c, n, counts)
		}
	}
	if p := ws[0].Messages()[0][0]; !strings.Contains(p, " e2ehost relpapp 42 ID7 - seq:") {
		t.Errorf("payload %q is not the RFC 5424 message rsyslog sent", p)
	}
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("every event answered: acked %v", metric(t, r, "relay_relp_acked_total", "input=relp"))
	}, func() bool { return metric(t, r, "relay_relp_acked_total", "input=relp") == n })
	if s := relpTrouble(t, r); s != "" {
		t.Errorf("trouble in a clean run:%s", s)
	}
	if got := metric(t, r, "relay_relp_frames_total", "input=relp", "command=syslog"); got != n {
		t.Errorf("syslog frames %v, want %d (no resends in a clean run)", got, n)
	}
	t.Logf("worker shares %v; sessions %v", counts, metric(t, r, "relay_relp_sessions_total", "input=relp"))
}

// TestRELPOverTLS: omrelp over TLS with tls.authMode="name" against a
// relay that checks client certificates like imrelp's authMode name: a
// client whose certificate carries a permitted name is served; a wrong
// name and no certificate at all are refused and counted, and nothing of
// theirs arrives.
func TestRELPOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	dir := t.TempDir()
	ca := testpeer.NewCA(t, dir)
	relayCert, relayKey := ca.Issue(t, "relay.example.net")
	for _, tc := range []struct {
		name, client string // client: the certificate's name, "" for none
		reason       string // refusal reason, "" when served
	}{
		{"permitted name", "web1.clients.example.net", ""},
		{"wrong name", "intruder.example.org", "name"},
		// librelp without a certificate of its own offers no suite the
		// relay accepts (it falls back to anonymous TLS): refused as a
		// failed handshake. internal/input's TLS test covers a client that
		// completes a certificate handshake without one (no_cert).
		{"no client certificate", "", "handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := relpRelay(t, "tls://127.0.0.1:0", fmt.Sprintf(`    tls:
      cert: %s
      key: %s
      client_ca: %s
      permitted_peers: ["*.clients.example.net"]`, relayCert, relayKey, ca.File))
			ws := startWorkers(t, r, "workers", 1)
			clientTLS := fmt.Sprintf(`tls="on" tls.caCert=%q tls.authMode="name" tls.permittedPeer=["relay.example.net"]`, ca.File)
			if tc.client != "" {
				cert, key := ca.Issue(t, tc.client)
				clientTLS += fmt.Sprintf(` tls.myCert=%q tls.myPrivKey=%q`, cert, key)
			}
			rs := startRsyslogd(t, forwardConfWith(`module(load="omrelp")`, omrelpAction(relpPort(t, r), 128, clientTLS)))
			const n = 1000
			feedRsyslog(t, rs, "tlsapp", n)
			if tc.reason == "" {
				testpeer.Eventually(t, 60*time.Second, func() string {
					return fmt.Sprintf("%d events, have %d;%s\nrsyslogd:\n%s", n, ws[0].Count(), relpTrouble(t, r), rs.Output())
				}, func() bool { return ws[0].Count() >= n })
				checkExactlyOnce(t, n, ws...)
				return
			}
			testpeer.Eventually(t, 30*time.Second, func() string {
				return fmt.Sprintf("a refusal for %s; relay_relp_tls_refused_total %v; rsyslogd:\n%s", tc.reason,
					metric(t, r, "relay_relp_tls_refused_total", "input=relp", "reason="+tc.reason), rs.Output())
			}, func() bool { return metric(t, r, "relay_relp_tls_refused_total", "input=relp", "reason="+tc.reason) > 0 })
			time.Sleep(500 * time.Millisecond)
			if c := ws[0].Count(); c > 0 {
				t.Fatalf("%d events from a refused client arrived", c)
			}
			if got := metric(t, r, "relay_input_handshake_errors_total", "input=relp"); got == 0 {
				t.Error("refusal not counted in relay_input_handshake_errors_total")
			}
		})
	}
}
