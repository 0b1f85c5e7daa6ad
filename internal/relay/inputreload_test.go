package relay

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/relp"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestInputCountersSurviveReload: a reload (SIGHUP) that rebuilds an
// input (a syslog input whose max_message_size changed, a jetstream input
// whose ack_wait changed) neither resets relay_input_*_total and
// relay_jetstream_input_*_total nor counts them twice, as for outputs
// (TestBrokerCountersSurviveReload); an input the reload removes keeps
// its last counts.
func TestInputCountersSurviveReload(t *testing.T) {
	dir := t.TempDir()
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	publish := func(first, n int) {
		t.Helper()
		for _, m := range brokerEvents("click", first, n) {
			if _, err := js.Publish(ctx, "events.click", []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
	}
	yaml := func(maxSize, ackWait string, withJS bool) string {
		y := fmt.Sprintf("drain_timeout: 2s\ninputs:\n  - {name: in, type: syslog, listen: [tcp://127.0.0.1:0], max_message_size: %s}\n", maxSize)
		if withJS {
			y += fmt.Sprintf("  - {name: js, type: jetstream, servers: [%s], stream: EVENTS, ack_wait: %s}\n", srv.URL(), ackWait)
		}
		return y + fmt.Sprintf("outputs:\n  - {name: out, type: zmq, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: %s/spool}}\n", dir)
	}
	r := startRelay(t, yaml("64KiB", "1m", true))
	reload := func(y string) {
		t.Helper()
		cfg, err := config.Parse([]byte(y), filepath.Join(dir, "relay.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	m := func(name string, labels ...string) float64 { return metric(t, r, name, labels...) }
	snapshot := func() string {
		return fmt.Sprintf("syslog received %v bytes %v connections %v; jetstream received %v acked %v",
			m("relay_input_received_total", "input=in"), m("relay_input_received_bytes_total", "input=in"),
			m("relay_input_connections_total", "input=in"),
			m("relay_input_received_total", "input=js"), m("relay_jetstream_input_acked_total", "input=js"))
	}
	// Phase sends n events to each input and waits for them in the counters.
	phase := func(first, n int, wantSyslog, wantJS float64) {
		t.Helper()
		sendTCP(t, inputAddr(t, r, "in", "tcp"), true, brokerEvents("view", first, n))
		publish(first, n)
		testpeer.Eventually(t, 30*time.Second, snapshot, func() bool {
			return m("relay_input_received_total", "input=in") == wantSyslog &&
				m("relay_input_received_total", "input=js") == wantJS &&
				m("relay_jetstream_input_acked_total", "input=js") == wantJS
		})
	}
	phase(0, 100, 100, 100)
	bytes := m("relay_input_received_bytes_total", "input=in")
	conns := m("relay_input_connections_total", "input=in")

	// Unchanged: the inputs stay, and so do their counters.
	reload(yaml("64KiB", "1m", true))
	if got := m("relay_jetstream_input_acked_total", "input=js"); got != 100 {
		t.Fatalf("after a reload that changed nothing: acked %v, want 100 (%s)", got, snapshot())
	}
	// Changed: both inputs are rebuilt; the counters go on.
	reload(yaml("128KiB", "2m", true))
	for _, c := range []struct {
		name, input string
		want        float64
	}{
		{"relay_input_received_total", "in", 100},
		{"relay_input_received_bytes_total", "in", bytes},
		{"relay_input_connections_total", "in", conns},
		{"relay_input_received_total", "js", 100},
		{"relay_jetstream_input_acked_total", "js", 100},
		{"relay_jetstream_input_redelivered_total", "js", 0},
	} {
		if got := m(c.name, "input="+c.input); got != c.want {
			t.Errorf("after a reload that rebuilt input %s: %s is %v, want %v, neither reset nor doubled (%s)", c.input, c.name, got, c.want, snapshot())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// The rebuilt inputs add to the totals. The durable consumer goes on
	// where it was: the stream's first 100 are not read again.
	phase(100, 50, 150, 150)
	if got := m("relay_input_connections_total", "input=in"); got != conns+1 {
		t.Fatalf("connections_total %v, want %v (%s)", got, conns+1, snapshot())
	}

	// Removed: the jetstream input's counters stay at their last value.
	reload(yaml("128KiB", "2m", false))
	if got := m("relay_jetstream_input_acked_total", "input=js"); got != 150 {
		t.Fatalf("after a reload that removed the input: acked %v, want 150 (%s)", got, snapshot())
	}
}

// TestRELPAndLinkInputCountersSurviveReload: the same for a RELP input
// (relay_relp_*) and a link input (relay_link_input_*), rebuilt by a
// reload that changes their settings.
func TestRELPAndLinkInputCountersSurviveReload(t *testing.T) {
	dir := t.TempDir()
	linkPort := testpeer.FreePort(t)
	yaml := func(ackTimeout, maxConns string) string {
		return fmt.Sprintf(`drain_timeout: 2s
inputs:
  - {name: relp, type: relp, listen: tcp://127.0.0.1:0, ack_timeout: %s}
  - {name: from-dc1, type: link, bind: [tcp://127.0.0.1:%d], state_dir: %s/state, max_connections: %s}
outputs:
  - {name: out, type: zmq, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: %s/spool}}
http: {listen: ""}
`, ackTimeout, linkPort, dir, maxConns, dir)
	}
	r := startRelay(t, yaml("60s", "100"))
	send := startRelay(t, fmt.Sprintf(`inputs:
  - {name: in, type: syslog, listen: [tcp://127.0.0.1:0]}
outputs:
  - {name: to-dc2, type: link, connect: [tcp://127.0.0.1:%d], spool: {dir: %s/link-spool}, heartbeat: 200ms}
http: {listen: ""}
`, linkPort, dir))
	m := func(name string, labels ...string) float64 { return metric(t, r, name, labels...) }
	snapshot := func() string {
		return fmt.Sprintf("relp acked %v sessions_total %v syslog frames %v latency count %v; link records %v acks %v batches %v",
			m("relay_relp_acked_total", "input=relp"), m("relay_relp_sessions_total", "input=relp"),
			m("relay_relp_frames_total", "input=relp", "command=syslog"), m("relay_relp_ack_latency_seconds", "input=relp"),
			m("relay_link_input_records_total", "input=from-dc1"), m("relay_link_input_acks_total", "input=from-dc1"),
			m("relay_link_input_batches_total", "input=from-dc1"))
	}
	// relpSend sends n syslog frames in one RELP session and reads the
	// n answers.
	relpSend := func(first, n int) {
		t.Helper()
		c, err := net.Dial("tcp", inputAddr(t, r, "relp", "tcp"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b := relp.AppendFrame(nil, 1, relp.CmdOpen, []byte("relp_version=0\nrelp_software=test,1,none\ncommands=syslog"))
		for i, msg := range brokerEvents("click", first, n) {
			b = relp.AppendFrame(b, i+2, relp.CmdSyslog, []byte(msg))
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		rd := relp.NewReader(c, 1<<20)
		for i := 0; i <= n; i++ {
			if f, err := rd.Next(); err != nil || !strings.HasPrefix(string(f.Data), "200") {
				t.Fatalf("answer %d: %+v %v", i, f, err)
			}
		}
	}
	phase := func(first, n int, want float64) {
		t.Helper()
		relpSend(first, n)
		sendTCP(t, inputAddr(t, send, "in", "tcp"), true, brokerEvents("view", first, n))
		testpeer.Eventually(t, 30*time.Second, snapshot, func() bool {
			return m("relay_relp_acked_total", "input=relp") == want && m("relay_link_input_records_total", "input=from-dc1") == want &&
				m("relay_link_input_acks_total", "input=from-dc1") > 0
		})
	}
	phase(0, 100, 100)
	names := []struct{ name, input, label string }{
		{"relay_relp_sessions_total", "relp", ""}, {"relay_relp_frames_total", "relp", "command=syslog"},
		{"relay_relp_ack_latency_seconds", "relp", ""},
		{"relay_link_input_batches_total", "from-dc1", ""}, {"relay_link_input_acks_total", "from-dc1", ""},
		{"relay_link_input_bytes_total", "from-dc1", "stage=raw"},
	}
	get := func(name, input, label string) float64 {
		if label == "" {
			return m(name, "input="+input)
		}
		return m(name, "input="+input, label)
	}
	before := map[string]float64{}
	for _, c := range names {
		before[c.name] = get(c.name, c.input, c.label)
	}
	cfg, err := config.Parse([]byte(yaml("50s", "200")), filepath.Join(dir, "relay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := m("relay_relp_acked_total", "input=relp"); got != 100 {
		t.Errorf("after a reload that rebuilt the RELP input: acked %v, want 100 (%s)", got, snapshot())
	}
	if got := m("relay_link_input_records_total", "input=from-dc1"); got != 100 {
		t.Errorf("after a reload that rebuilt the link input: records %v, want 100 (%s)", got, snapshot())
	}
	for _, c := range names {
		if got := get(c.name, c.input, c.label); got < before[c.name] || before[c.name] == 0 {
			t.Errorf("after the reload %s{%s} is %v, was %v (%s)", c.name, c.label, got, before[c.name], snapshot())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// The rebuilt inputs add to the totals; the sender reconnects.
	phase(100, 50, 150)
	if got := m("relay_relp_sessions_total", "input=relp"); got != before["relay_relp_sessions_total"]+1 {
		t.Errorf("sessions_total %v, want %v (%s)", got, before["relay_relp_sessions_total"]+1, snapshot())
	}
	if got := m("relay_relp_ack_latency_seconds", "input=relp"); got != 150 {
		t.Errorf("ack latency count %v, want 150 (%s)", got, snapshot())
	}
}
