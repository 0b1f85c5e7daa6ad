package relay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// startNATSOn starts nats-server with JetStream on 127.0.0.1:port, the
// port a relay's config already names.
func startNATSOn(t *testing.T, port int) *testpeer.NATS {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:%d\nserver_name: n1\njetstream {\n  store_dir: %q\n}\n", port, filepath.Join(dir, "js"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return testpeer.StartNATSConf(t, conf, port)
}

// TestJetStreamInputWithoutServerAtStart: a relay with a syslog input
// and a jetstream input whose NATS server is not up starts, and its
// syslog events reach their output meanwhile; the input says why it does
// not read (relay_jetstream_input_connected 0, failed_total by cause).
// Once nats-server starts on the configured port with the stream, the
// input's messages arrive too: every event at the worker exactly once,
// each jetstream message acked once.
func TestJetStreamInputWithoutServerAtStart(t *testing.T) {
	port := testpeer.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	r := startRelay(t, fmt.Sprintf(`inputs:
  - {name: in, type: syslog, listen: [tcp://127.0.0.1:0]}
  - {name: js, type: jetstream, servers: [%s], stream: EVENTS}
outputs:
  - {name: w, type: zmq, socket: push, bind: tcp://127.0.0.1:0}
`, url))
	m := func(name string, labels ...string) float64 { return metric(t, r, name, labels...) }
	worker := testpeer.StartPeer(t, "pull", ">"+outputEndpoint(t, r, "w"))
	sendTCP(t, inputAddr(t, r, "in", "tcp"), true, brokerEvents("view", 0, 500))
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%d at the worker", worker.Count()) }, func() bool { return worker.Count() == 500 })
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("failed disconnected %v", m("relay_jetstream_input_failed_total", "input=js", "cause=disconnected"))
	}, func() bool { return m("relay_jetstream_input_failed_total", "input=js", "cause=disconnected") > 0 })
	if c := m("relay_jetstream_input_connected", "input=js"); c != 0 {
		t.Fatalf("relay_jetstream_input_connected %v without a server", c)
	}

	srv := startNATSOn(t, port)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range brokerEvents("click", 500, 500) {
		if _, err := js.Publish(ctx, "events.click", []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d at the worker; acked %v connected %v", worker.Count(), m("relay_jetstream_input_acked_total", "input=js"), m("relay_jetstream_input_connected", "input=js"))
	}, func() bool {
		return worker.Count() == 1000 && m("relay_jetstream_input_acked_total", "input=js") == 500 && m("relay_jetstream_input_connected", "input=js") == 1
	})
	time.Sleep(500 * time.Millisecond) // nothing more comes
	checkExactlyOnce(t, 1000, worker)
	if got := m("relay_input_received_total", "input=js"); got != 500 {
		t.Fatalf("relay_input_received_total{input=js} %v, want 500", got)
	}
	if red := m("relay_jetstream_input_redelivered_total", "input=js"); red != 0 {
		t.Fatalf("%v redelivered without a failure", red)
	}
}

// TestJetStreamInputReloadAndShutdownWhileConnecting: while the jetstream
// input still tries to connect, a reload that rebuilds it and then the
// shutdown return promptly, and the failure counters go on across the
// reload.
func TestJetStreamInputReloadAndShutdownWhileConnecting(t *testing.T) {
	dir := t.TempDir()
	url := fmt.Sprintf("nats://127.0.0.1:%d", testpeer.FreePort(t))
	yaml := func(ackWait string) string {
		return fmt.Sprintf(`inputs:
  - {name: in, type: syslog, listen: [tcp://127.0.0.1:0]}
  - {name: js, type: jetstream, servers: [%s], stream: EVENTS, ack_wait: %s}
outputs:
  - {name: w, type: zmq, socket: push, bind: tcp://127.0.0.1:0}
`, url, ackWait)
	}
	file := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(file, []byte(yaml("1m")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Start took %v", d)
	}
	failed := func() float64 {
		return metric(t, r, "relay_jetstream_input_failed_total", "input=js", "cause=disconnected")
	}
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprint(failed()) }, func() bool { return failed() > 0 })
	before := failed()

	cfg2, err := config.Parse([]byte(yaml("2m")), file)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := r.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the reload took %v while the input was connecting", d)
	}
	if after := failed(); after < before {
		t.Errorf("relay_jetstream_input_failed_total went back from %v to %v across the reload", before, after)
	}
	time.Sleep(time.Second) // the new input tries too
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start = time.Now()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v while the input was connecting", d)
	}
}
