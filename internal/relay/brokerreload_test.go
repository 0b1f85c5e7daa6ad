package relay

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

func brokerEvents(app string, first, n int) []string {
	var ms []string
	for i := first; i < first+n; i++ {
		ms = append(ms, fmt.Sprintf("<134>1 2026-12-07T08:00:00Z web1 %s 42 ID47 - served %s", app, testpeer.Seq(i)))
	}
	return ms
}

// TestBrokerCountersSurviveReload: a reload (SIGHUP) that rebuilds a
// jetstream or kafka output (its ack_timeout or compression changed)
// neither resets its relay_broker_* and relay_spool_* counters nor counts
// them twice: they go on from where they were; a reload that changes
// nothing keeps the output and its counters as they are.
func TestBrokerCountersSurviveReload(t *testing.T) {
	for _, kind := range []string{"jetstream", "kafka"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			var out func(variant string) string
			switch kind {
			case "jetstream":
				srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
				nc, err := nats.Connect(srv.URL())
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				js, _ := jetstream.New(nc)
				// The stream takes clicks only: views fail as no_stream,
				// counted, and stay in the spool.
				if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "CLICKS", Subjects: []string{"events.click"}, Duplicates: time.Hour}); err != nil {
					t.Fatal(err)
				}
				out = func(ackTimeout string) string {
					return fmt.Sprintf("  - {name: out, type: jetstream, servers: [%s], subject: 'events.{stream}', ack_timeout: %s, spool: {dir: %s/spool}}\n",
						srv.URL(), ackTimeout, dir)
				}
			case "kafka":
				c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "ev-click"))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				out = func(compression string) string {
					return fmt.Sprintf("  - {name: out, type: kafka, brokers: [%s], topic: 'ev-{stream}', compression: %s, spool: {dir: %s/spool}}\n",
						c.ListenAddrs()[0], compression, dir)
				}
			}
			variants := map[string][2]string{"jetstream": {"2s", "3s"}, "kafka": {"zstd", "lz4"}}[kind]
			yaml := func(v string) string {
				return "drain_timeout: 2s\ninputs:\n  - {name: in, type: syslog, listen: [tcp://127.0.0.1:0]}\noutputs:\n" + out(v)
			}
			r := startRelay(t, yaml(variants[0]))
			addr := inputAddr(t, r, "in", "tcp")
			m := func(name string, labels ...string) float64 {
				return metric(t, r, name, append([]string{"output=out"}, labels...)...)
			}
			cause := map[string]string{"jetstream": "no_stream", "kafka": "unknown_topic"}[kind]
			snapshot := func() string {
				return fmt.Sprintf("published %v confirmed %v resent %v failed %v redelivered %v appended %v acked %v",
					m("relay_broker_published_total"), m("relay_broker_confirmed_total"), m("relay_broker_resent_total"),
					m("relay_broker_failed_total", "cause="+cause), m("relay_broker_redelivered_total"),
					m("relay_spool_appended_total"), m("relay_spool_acked_total"))
			}

			sendTCP(t, addr, true, append(brokerEvents("click", 0, 200), brokerEvents("view", 200, 1)...))
			testpeer.Eventually(t, 30*time.Second, snapshot, func() bool {
				return m("relay_broker_confirmed_total") == 200 && m("relay_broker_failed_total", "cause="+cause) > 0
			})
			before := map[string]float64{}
			for _, n := range []string{"relay_broker_published_total", "relay_broker_confirmed_total", "relay_spool_appended_total", "relay_spool_acked_total"} {
				before[n] = m(n)
			}
			failedBefore := m("relay_broker_failed_total", "cause="+cause)

			reload := func(v string) {
				t.Helper()
				cfg, err := config.Parse([]byte(yaml(v)), filepath.Join(dir, "relay.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Reload(cfg); err != nil {
					t.Fatal(err)
				}
			}
			// Unchanged: the output stays, its counters too.
			reload(variants[0])
			if got := m("relay_broker_confirmed_total"); got != 200 {
				t.Fatalf("after a reload that changed nothing: confirmed %v, want 200 (%s)", got, snapshot())
			}
			// Changed: the output is rebuilt.
			reload(variants[1])
			if got := m("relay_broker_confirmed_total"); got != 200 {
				t.Fatalf("after a reload that rebuilt the output: confirmed %v, want 200, neither reset nor doubled (%s)", got, snapshot())
			}
			for n, v := range before {
				got := m(n)
				if n == "relay_broker_published_total" {
					// Grows with the retries of the view, no more.
					if got < v || got >= 2*v {
						t.Fatalf("after the reload %s is %v, was %v (%s)", n, got, v, snapshot())
					}
				} else if got != v {
					t.Fatalf("after the reload %s is %v, was %v (%s)", n, got, v, snapshot())
				}
			}
			if got := m("relay_broker_failed_total", "cause="+cause); got < failedBefore {
				t.Fatalf("failed{cause=%s} went back from %v to %v", cause, failedBefore, got)
			}
			sendTCP(t, addr, true, brokerEvents("click", 201, 100))
			testpeer.Eventually(t, 30*time.Second, snapshot, func() bool { return m("relay_broker_confirmed_total") == 300 })
			if a := m("relay_spool_appended_total"); a != 301 {
				t.Fatalf("spool appended %v, want 301 (%s)", a, snapshot())
			}
			if p := m("relay_broker_published_total"); p < 301 {
				t.Fatalf("published %v (%s)", p, snapshot())
			}
		})
	}
}
