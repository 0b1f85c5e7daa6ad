package relay

import (
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// pushRelay is a relay with one syslog input (listen) and one PUSH output
// bound on a free port.
func pushRelay(t testing.TB, listen string) *Relay {
	return startRelay(t, fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: %s
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
`, listen))
}

// startWorkers connects n libzmq PULL workers to output and waits until
// the relay sees them all, so the first events are spread over all.
func startWorkers(t testing.TB, r *Relay, output string, n int) []*testpeer.Peer {
	t.Helper()
	ep := outputEndpoint(t, r, output)
	ws := make([]*testpeer.Peer, n)
	for i := range ws {
		ws[i] = testpeer.StartPeer(t, "pull", ">"+ep)
	}
	testpeer.Eventually(t, 20*time.Second, testpeer.Text(fmt.Sprintf("%d peers on output %s", n, output)), func() bool {
		return metric(t, r, "relay_output_peers", "output="+output) == float64(n)
	})
	return ws
}

// jsonRelay is a relay with a syslog TCP input and one PUSH output,
// "json", in format json, with one libzmq worker connected to it.
func jsonRelay(t testing.TB) (*Relay, *testpeer.Peer) {
	t.Helper()
	r := startRelay(t, `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
outputs:
  - name: json
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    format: json
http:
  listen: ""
`)
	return r, startWorkers(t, r, "json", 1)[0]
}

// forwardConf is an rsyslogd config with an imtcp input on a free port
// (the test feeds it) whose ruleset forwards with action.
func forwardConf(action string) string { return forwardConfWith("", action) }

// forwardConfWith is forwardConf with module loads before the ruleset.
func forwardConfWith(preamble, action string) string {
	return `
global(workDirectory="DIR" maxMessageSize="64k")
module(load="imtcp")
` + preamble + `
input(type="imtcp" port="0" listenPortFileName="PORTFILE" ruleset="fwd")
ruleset(name="fwd") {
  ` + action + `
}
`
}

// feedRsyslog sends n numbered RFC 5424 messages from app to rsyslogd's
// imtcp, in a few connections.
func feedRsyslog(t testing.TB, rs *testpeer.Rsyslogd, app string, n int) {
	t.Helper()
	const chunk = 10000
	addr := fmt.Sprintf("127.0.0.1:%d", rs.Port)
	for i := 0; i < n; i += chunk {
		msgs := make([]string, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			msgs = append(msgs, fmt.Sprintf("<14>1 2026-11-22T05:00:00.000000Z e2ehost %s 42 ID7 - %s", app, testpeer.Seq(j)))
		}
		sendTCP(t, addr, true, msgs)
	}
}

// TestRsyslogForwardToWorkers: rsyslogd's omfwd → relay → 3 libzmq PULL
// workers, 100,000 events, each exactly once across the workers and each
// worker with a share.
func TestRsyslogForwardToWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	const n = 100_000
	for _, tc := range []struct {
		name   string
		action string
		check  func(t *testing.T, payload string)
	}{
		{
			name: "octet_rfc5424",
			action: `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="tcp" TCP_Framing="octet-counted"
    template="RSYSLOG_SyslogProtocol23Format" action.resumeRetryCount="-1" action.resumeInterval="1")`,
			check: func(t *testing.T, p string) {
				if !strings.HasPrefix(p, "<14>1 2026-11-22T05:00:00") || !strings.Contains(p, " e2ehost fwdapp 42 ID7 - seq:") {
					t.Errorf("payload is not the RFC 5424 message as rsyslog sent it: %q", p)
				}
			},
		},
		{
			name: "lf_forwardformat",
			action: `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="tcp" template="RSYSLOG_ForwardFormat"
    action.resumeRetryCount="-1" action.resumeInterval="1")`,
			check: func(t *testing.T, p string) {
				// RSYSLOG_ForwardFormat: <PRI>RFC3339 HOST TAG MSG
				if !strings.HasPrefix(p, "<14>2026-11-22T05:00:00") || !strings.Contains(p, " e2ehost fwdapp[42] seq:") || strings.HasSuffix(p, "\n") {
					t.Errorf("payload is not the forward-format message as rsyslog sent it: %q", p)
				}
			},
		},
		{
			// omfwd's own default template, RSYSLOG_TraditionalForwardFormat.
			name: "lf_default_template",
			action: `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="tcp"
    action.resumeRetryCount="-1" action.resumeInterval="1")`,
			check: func(t *testing.T, p string) {
				if !strings.HasPrefix(p, "<14>Nov 22 05:00:00 e2ehost fwdapp[42] seq:") || strings.HasSuffix(p, "\n") {
					t.Errorf("payload is not the traditional-format message as rsyslog sent it: %q", p)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := pushRelay(t, "tcp://127.0.0.1:0")
			ws := startWorkers(t, r, "workers", 3)
			_, port, _ := net.SplitHostPort(inputAddr(t, r, "syslog", "tcp"))
			rs := startRsyslogd(t, forwardConf(strings.ReplaceAll(tc.action, "PORT", port)))
			feedRsyslog(t, rs, "fwdapp", n)
			total := func() int { return ws[0].Count() + ws[1].Count() + ws[2].Count() }
			testpeer.Eventually(t, 180*time.Second, func() string {
				return fmt.Sprintf("%d events at the workers, have %d (relay received %v)", n, total(),
					metric(t, r, "relay_input_received_total", "input=syslog"))
			}, func() bool { return total() >= n })
			counts := checkExactlyOnce(t, n, ws...)
			for i, c := range counts {
				if c < n/20 {
					t.Errorf("worker %d got %d of %d events; want a share (counts %v)", i, c, n, counts)
				}
			}
			tc.check(t, ws[0].Messages()[0][0])
			if got := metric(t, r, "relay_input_malformed_total", "input=syslog"); got != 0 {
				t.Errorf("malformed = %v", got)
			}
			if got := metric(t, r, "relay_stream_events_total", "stream=fwdapp"); got != n {
				t.Errorf("stream fwdapp events = %v, want %d", got, n)
			}
			if got := metric(t, r, "relay_output_sent_total", "output=workers"); got != n {
				t.Errorf("workers sent = %v, want %d", got, n)
			}
			t.Logf("worker shares: %v", counts)
		})
	}
}

// TestRsyslogForwardUDP is a smoke test of omfwd over UDP.
func TestRsyslogForwardUDP(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	const n = 200
	r := pushRelay(t, "udp://127.0.0.1:0")
	ws := startWorkers(t, r, "workers", 1)
	_, port, _ := net.SplitHostPort(inputAddr(t, r, "syslog", "udp"))
	rs := startRsyslogd(t, forwardConf(`action(type="omfwd" target="127.0.0.1" port="`+port+`" protocol="udp"
    template="RSYSLOG_SyslogProtocol23Format")`))
	// 200 short datagrams fit the socket buffers many times over: this is a
	// smoke test of the path, not of UDP's reliability.
	var msgs []string
	for i := range n {
		msgs = append(msgs, fmt.Sprintf("<14>1 2026-11-22T05:00:00Z e2ehost udpapp - - - %s", testpeer.Seq(i)))
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", rs.Port), true, msgs)
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%d UDP events, have %d", n, ws[0].Count()) }, func() bool { return ws[0].Count() >= n })
	checkExactlyOnce(t, n, ws...)
	if p := ws[0].Messages()[0][0]; !strings.Contains(p, " e2ehost udpapp - - - seq:") {
		t.Errorf("payload %q", p)
	}
}

// TestRsyslogOmczmqToPub: rsyslog's omczmq PUSH connects to the relay's
// PULL input; the relay's PUB sends [stream, payload] to a libzmq SUB
// subscribed to one stream, which gets exactly that stream's events.
func TestRsyslogOmczmqToPub(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	r := startRelay(t, `
inputs:
  - name: from-czmq
    type: zmq
    socket: pull
    bind: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: taps
    type: zmq
    socket: pub
    bind: tcp://127.0.0.1:0
http:
  listen: 127.0.0.1:0
`)
	sub := testpeer.StartPeer(t, "sub", ">"+outputEndpoint(t, r, "taps"), "click")
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the SUB peer"), func() bool { return metric(t, r, "relay_output_peers", "output=taps") == 1 })
	pullAddr := inputAddr(t, r, "from-czmq", "tcp")
	rs := startRsyslogd(t, forwardConfWith(`module(load="omczmq")`, `action(type="omczmq" endpoints=">tcp://`+pullAddr+`" socktype="PUSH"
    template="RSYSLOG_SyslogProtocol23Format" action.resumeRetryCount="-1" action.resumeInterval="1")`))
	// A SUB's subscription reaches the PUB a moment after it connects;
	// events sent before are (rightly) not for it.
	waitSubscribed(t, r, "taps", 1)
	// omczmq connects with its first message: one probe (a stream the SUB
	// does not take) through rsyslog, counted by the relay's input.
	addr := fmt.Sprintf("127.0.0.1:%d", rs.Port)
	sendTCP(t, addr, true, []string{"<14>1 2026-11-22T05:00:00Z czhost probe - - - probe"})
	testpeer.Eventually(t, 30*time.Second, func() string { return "the probe at the relay's PULL input; rsyslogd:\n" + rs.Output() },
		func() bool { return metric(t, r, "relay_input_received_total", "input=from-czmq") == 1 })
	const n = 1000
	before := sub.Count()
	var msgs []string
	for i := range n {
		app := "click"
		if i%2 == 1 {
			app = "impression"
		}
		msgs = append(msgs, fmt.Sprintf("<14>1 2026-11-22T05:00:00Z czhost %s - - - %s", app, testpeer.Seq(i)))
	}
	sendTCP(t, addr, true, msgs)
	testpeer.Eventually(t, 60*time.Second,
		func() string { return fmt.Sprintf("%d click events at the SUB, have %d", n/2, sub.Count()-before) },
		func() bool { return sub.Count()-before >= n/2 })
	// Let the impressions (sent interleaved) pass the relay, then check none reached the SUB.
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("every event at the relay"), func() bool {
		return metric(t, r, "relay_stream_events_total", "stream=impression") == n/2
	})
	seen := map[int]int{}
	for _, m := range sub.Messages()[before:] {
		if len(m) != 2 || m[0] != "click" {
			t.Fatalf("message %q: want [click, payload]", m)
		}
		if !strings.Contains(m[1], " czhost click - - - seq:") {
			t.Fatalf("payload %q", m[1])
		}
		seen[testpeer.SeqOf(m[1])]++
	}
	for i := 0; i < n; i += 2 {
		if seen[i] != 1 {
			t.Errorf("click seq %d arrived %d times", i, seen[i])
		}
	}
	if len(seen) != n/2 {
		t.Errorf("SUB got %d distinct events, want %d", len(seen), n/2)
	}
}

// TestRsyslogFormatsJSON: what rsyslogd really sends in each of its
// forwarding templates is parsed into the right json fields.
func TestRsyslogFormatsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	for _, tc := range []struct{ template, format, timestamp string }{
		{"RSYSLOG_SyslogProtocol23Format", "rfc5424", "2026-11-22T05:00:00.000000+00:00"},
		{"RSYSLOG_ForwardFormat", "forward", "2026-11-22T05:00:00+00:00"},
		{"RSYSLOG_TraditionalForwardFormat", "rfc3164", "Nov 22 05:00:00"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			r, w := jsonRelay(t)
			_, port, _ := net.SplitHostPort(inputAddr(t, r, "syslog", "tcp"))
			rs := startRsyslogd(t, forwardConf(`action(type="omfwd" target="127.0.0.1" port="`+port+`" protocol="tcp"
    template="`+tc.template+`" action.resumeRetryCount="-1" action.resumeInterval="1")`))
			sendTCP(t, fmt.Sprintf("127.0.0.1:%d", rs.Port), true, []string{
				`<165>1 2026-11-22T05:00:00.000000Z e2ehost fwdapp 42 ID7 [ex@32473 k="v"] ` + testpeer.Seq(0),
			})
			testpeer.Eventually(t, 30*time.Second, testpeer.Text("the event"), func() bool { return w.Count() == 1 })
			var got map[string]any
			if err := json.Unmarshal([]byte(w.Messages()[0][0]), &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"stream": "fwdapp", "format": tc.format, "facility": 20.0, "severity": 5.0,
				"hostname": "e2ehost", "app_name": "fwdapp", "proc_id": "42", "message": testpeer.Seq(0),
			}
			if tc.format == "rfc5424" {
				want["msg_id"] = "ID7"
				want["structured_data"] = map[string]any{"ex@32473": map[string]any{"k": "v"}}
			}
			for k, v := range want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v (event %s)", k, got[k], v, w.Messages()[0][0])
				}
			}
			if ts, _ := got["timestamp"].(string); !strings.HasPrefix(ts, tc.timestamp[:10]) {
				t.Errorf("timestamp = %q, want like %q", ts, tc.timestamp)
			}
		})
	}
}
