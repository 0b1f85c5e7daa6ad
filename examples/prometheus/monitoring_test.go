// Package rules holds the tests of the operator's monitoring examples:
// examples/prometheus/relay-rules.yml (with relay-rules.test.yml) and
// examples/grafana/relay.json.
package rules

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.yaml.in/yaml/v3"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/relay"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

const (
	rulesFile     = "relay-rules.yml"
	rulesTestFile = "relay-rules.test.yml"
	dashboardFile = "../grafana/relay.json"
	readmeFile    = "../../README.md"
)

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin := testpeer.Need(t, "promtool", "prometheus")
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRulesPromtool: the rules pass promtool check rules, and promtool
// test rules fires every alert on its synthetic series.
func TestRulesPromtool(t *testing.T) {
	promtool(t, "check", "rules", rulesFile)
	promtool(t, "test", "rules", rulesTestFile)
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alerts(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			m[r.Alert] = r.Expr
		}
	}
	return m
}

// TestEveryAlertFiresAndHasARunbook: each alert has a promtool case where
// it fires, and a runbook entry in the README.
func TestEveryAlertFiresAndHasARunbook(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	_, runbook, ok := strings.Cut(string(readme), "### Alerts and runbook")
	if !ok {
		t.Fatal(`README.md has no "### Alerts and runbook" section`)
	}
	runbook, _, _ = strings.Cut(runbook, "\n## ")
	for name := range alerts(t) {
		if !fires[name] {
			t.Errorf("%s: no case in %s where it fires", name, rulesTestFile)
		}
		if !strings.Contains(runbook, "`"+name+"`") {
			t.Errorf("%s: no runbook entry in README.md's \"Alerts and runbook\"", name)
		}
	}
	if len(alerts(t)) == 0 {
		t.Fatal("no alerts found")
	}
}

type panel struct {
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs returns every query of the dashboard, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	m := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					m[p.Title] = append(m[p.Title], tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(m) < 10 || d.UID == "" {
		t.Fatalf("%s: %d panels with queries, uid %q", dashboardFile, len(m), d.UID)
	}
	return m
}

// grafanaVars replaces the dashboard's variables with what Grafana would
// put there, so promtool can parse the queries.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$instance", ".*")

// TestDashboardQueriesParse: promtool parses every dashboard query (as a
// recording rule), so a typo shows here, not as an empty panel.
func TestDashboardQueriesParse(t *testing.T) {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			q, _ := json.Marshal(grafanaVars.Replace(e))
			fmt.Fprintf(&b, "      - record: dashboard:q%d  # %s\n        expr: %s\n", n, title, q)
			n++
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", f)
}

var metricRE = regexp.MustCompile(`\b(?:relay|process|go)_[a-zA-Z0-9_]+`)

// TestOnlyExportedMetrics scrapes a running relay (a syslog and a RELP
// input, a PUSH, a PUB, an acknowledged PUSH and a spooled PUSH output, a
// stalled subscriber so PUB drops are counted, events through it) and
// checks that the dashboard and the rules name only metrics it exports.
// Prometheus's own "up" is the only other name.
func TestOnlyExportedMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a relay")
	}
	exported := scrapeRunningRelay(t)
	check := func(where, expr string) {
		for _, name := range metricRE.FindAllString(expr, -1) {
			if !exported[name] {
				t.Errorf("%s: %s is not a metric the relay exports (query %s)", where, name, expr)
			}
		}
	}
	used := map[string]bool{}
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			check(dashboardFile+" panel "+title, e)
			for _, n := range metricRE.FindAllString(e, -1) {
				used[n] = true
			}
		}
	}
	for name, expr := range alerts(t) {
		check(rulesFile+" alert "+name, expr)
		for _, n := range metricRE.FindAllString(expr, -1) {
			used[n] = true
		}
	}
	// What the relay exports that neither shows: a hint, not a failure
	// (new metrics get their panels with the work that adds them).
	var unused []string
	for n := range exported {
		if strings.HasPrefix(n, "relay_") && !used[n] {
			unused = append(unused, n)
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Logf("relay metrics on no panel and in no alert: %v", unused)
	}
}

// curveKey writes a CURVE key pair for the relay's CURVE output (whose
// refusal counters the dashboard shows) and returns its key_file.
func curveKey(t *testing.T) string {
	t.Helper()
	kp, err := zmq.NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "relay.key")
	if err := zmq.WriteCurveCerts(f, kp, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return f
}

func scrapeRunningRelay(t *testing.T) map[string]bool {
	t.Helper()
	// Port 0 wherever the relay reports what it bound: a port found free
	// and bound later can be taken in between by the tests running beside
	// this one. The link output must know its input's port beforehand.
	linkPort := testpeer.FreePort(t)
	dir := t.TempDir()
	key := curveKey(t)
	// Brokers: a nats-server with the stream the jetstream output and
	// input use, and a kfake cluster for the kafka output.
	nats := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createEventsStream(t, nats.URL())
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	brokers := fmt.Sprintf(`
  - name: from-nats
    type: jetstream
    servers: [%s]
    stream: EVENTS
`, nats.URL())
	brokerOuts := fmt.Sprintf(`
  - name: to-nats
    type: jetstream
    servers: [%s]
    subject: "events.{stream}"
    streams: [nobody]
    spool: {dir: %s/nats-spool}
  - name: to-kafka
    type: kafka
    brokers: [%s]
    topic: events
    streams: [nobody]
    spool: {dir: %s/kafka-spool}
`, nats.URL(), dir, kafka.ListenAddrs()[0], dir)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
inputs:`+brokers+`
  - name: rsyslog
    type: syslog
    listen: [tcp://127.0.0.1:0]
  - name: from-bridge
    type: zmq
    socket: pull
    bind: tcp://127.0.0.1:0
    curve: {key_file: %s, allow_any: true}
  - name: from-dc1
    type: link
    bind: [tcp://127.0.0.1:%d]
    state_dir: %s/link-state
  - name: relp
    type: relp
    listen: tcp://127.0.0.1:0
outputs:`+brokerOuts+`
  - name: to-dc2
    type: link
    connect: [tcp://127.0.0.1:%d]
    streams: [nobody]
    spool: {dir: %s/link-spool}
  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [nobody]
  - name: taps
    type: zmq
    socket: pub
    bind: tcp://127.0.0.1:0
    hwm: 1
  - name: acked
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [nobody]
    ack: {bind: "tcp://127.0.0.1:0"}
  - name: spooled
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [nobody]
    spool: {dir: %s/spool}
  - name: secure
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [nobody]
    curve: {key_file: %s, allow_any: true}
http:
  listen: 127.0.0.1:0
`, key, linkPort, dir, linkPort, dir, dir, key)), "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(t.Context()) })

	// A subscriber that subscribes to everything, then never reads.
	sub, err := net.Dial("tcp", r.OutputAddrs("taps")[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sub.(*net.TCPConn).SetReadBuffer(4096)
	testpeer.ZMTPHandshake(t, sub, "SUB")
	if _, err := sub.Write([]byte{0x00, 0x01, 0x01}); err != nil { // SUBSCRIBE "" (ZMTP 3.0 form)
		t.Fatal(err)
	}
	in, err := net.Dial("tcp", r.Inputs()["rsyslog"].Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	w := bufio.NewWriter(in)
	pad := strings.Repeat("x", 1000)
	scrape := func() string {
		resp, err := http.Get("http://" + r.HTTPAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var body string
	// Every drop reason is exported from the start, at 0: wait for a
	// count, which also means events went through the router.
	const drops = `relay_output_socket_drops_total{output="taps",reason="pub_queue_full"}`
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("PUB drops for the stalled subscriber in /metrics"), func() bool {
		for i := range 2000 {
			m := fmt.Sprintf("<14>1 2026-11-22T05:00:00Z host click - - - %d %s", i, pad)
			fmt.Fprintf(w, "%d %s", len(m), m)
		}
		w.Flush()
		body = scrape()
		return sampleValue(body, drops) > 0
	})
	exported := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
			if f[3] == "summary" || f[3] == "histogram" {
				exported[f[2]+"_sum"], exported[f[2]+"_count"], exported[f[2]+"_bucket"] = true, true, true
			}
		}
	}
	for _, want := range []string{"relay_input_received_total", "relay_output_info", "relay_input_curve_refused_total", "relay_output_curve_refused_total", "relay_stream_events_total", "relay_unrouted_events_total", "process_resident_memory_bytes",
		"relay_spool_bytes", "relay_spool_max_bytes", "relay_spool_fsync_duration_seconds", "relay_relp_sessions", "relay_relp_ack_latency_seconds", "relay_output_ack_batches_total",
		"relay_broker_confirmed_total", "relay_broker_failed_total", "relay_broker_data_loss_total", "relay_broker_resent_beyond_window_total", "relay_jetstream_input_lag_messages"} {
		if !exported[want] {
			t.Errorf("the scrape lacks %s; /metrics:\n%s", want, body)
		}
	}
	return exported
}

// createEventsStream creates the stream EVENTS on events.> (the scraped
// relay's jetstream output checks it at start, its input reads it).
func createEventsStream(t *testing.T, url string) {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// sampleValue is the value of series (name{labels} exactly as exposed) in
// a /metrics body, or -1 when it is not there.
func sampleValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return -1
}
