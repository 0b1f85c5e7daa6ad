package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// brokerConf writes a config with a syslog TCP input and the given output
// section (YAML list items) and returns its path.
func brokerConf(t *testing.T, p ports, inputs, outputs string) string {
	t.Helper()
	if inputs == "" {
		inputs = fmt.Sprintf("  - {name: syslog, type: syslog, listen: tcp://127.0.0.1:%d}\n", p.syslog)
	}
	file := filepath.Join(t.TempDir(), "relay.yaml")
	conf := fmt.Sprintf("inputs:\n%sstream: {from: app-name, default: unknown}\noutputs:\n%shttp:\n  listen: 127.0.0.1:%d\nlog: {format: json}\ndrain_timeout: 2s\n", inputs, outputs, p.http)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// sendSeqs writes events seq:first… to the relay's syslog TCP input.
func sendSeqs(t *testing.T, p ports, app string, first, n int) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.syslog))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < n; i += 1000 {
		if _, err := c.Write(seqMsgs(app, first+i, min(1000, n-i))); err != nil {
			t.Fatal(err)
		}
	}
}

// readStream counts seq:N over every message of a stream.
func readStream(t *testing.T, url, name string) map[int]int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	total := int(st.CachedInfo().State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for got := 0; got < total; {
		b, err := cons.Fetch(min(total-got, 4096), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			got++
			counts[testpeer.SeqOf(string(m.Data()))]++
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
	}
	return counts
}

func createStreamR(t *testing.T, url, name string, window time.Duration, subjects ...string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Duplicates: window, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
}

// waitDurable waits until what the output's spool took so far is in its
// segment files: a plain syslog input hands nothing off, and its events
// survive a kill -9 only once the committer wrote them (the page cache
// keeps what was written). Then the spool's bytes (files plus what is
// queued to be written) equal the files' sizes.
func waitDurable(t *testing.T, p ports, output, dir string) {
	t.Helper()
	series := fmt.Sprintf(`relay_spool_bytes{output=%q}`, output)
	files := func() float64 {
		var sum int64
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if n, ok := strings.CutSuffix(e.Name(), ".seg"); ok && len(n) == 20 && strings.Trim(n, "0123456789") == "" {
				if fi, err := e.Info(); err == nil {
					sum += fi.Size()
				}
			}
		}
		return float64(sum)
	}
	testpeer.Eventually(t, 60*time.Second, func() string { return fmt.Sprintf("spool bytes %v, files %v", metric(t, p, series), files()) }, func() bool {
		b := metric(t, p, series)
		return b > 0 && files() == b && metric(t, p, series) == b
	})
}

func tallySeqs(counts map[int]int, n int) (missing, dups int) {
	for i := 0; i < n; i++ {
		switch c := counts[i]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	return
}

// TestJetStreamRelayKill9: the relay binary is killed with SIGKILL while
// its spooled jetstream output drains; the restarted relay sends the rest
// (and what was on the wire, with the same message ids): every event is in
// the stream exactly once.
func TestJetStreamRelayKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and nats-server")
	}
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStreamR(t, srv.URL(), "EVENTS", 10*time.Minute, "events.>")
	const n = 200_000
	p := freePorts(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	// A small window slows the drain, so that the kill finds it mid-way.
	conf := brokerConf(t, p, "", fmt.Sprintf("  - name: nats\n    type: jetstream\n    servers: [%s]\n    subject: \"events.{stream}\"\n    max_pending: 32\n    spool: {dir: %s, fsync: always}\n", srv.URL(), spoolDir))
	pr := startRelay(t, conf, p)
	sendSeqs(t, p, "click", 0, n)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("relay received every event"), func() bool {
		return metric(t, p, `relay_input_received_total{input="syslog"}`) == n
	})
	waitDurable(t, p, "nats", spoolDir)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("drain under way"), func() bool {
		return metric(t, p, `relay_broker_confirmed_total{output="nats"}`) >= n/5
	})
	before := metric(t, p, `relay_broker_confirmed_total{output="nats"}`)
	pr.cmd.Process.Kill()
	<-pr.done
	t.Logf("killed with %v of %d confirmed", before, n)
	if before >= n {
		t.Fatal("the drain had finished before the kill")
	}
	pr = startRelay(t, conf, p)
	testpeer.Eventually(t, 120*time.Second, func() string {
		return fmt.Sprintf("spool not empty: queue %v", metric(t, p, `relay_output_queue_depth{output="nats"}`))
	}, func() bool { return metric(t, p, `relay_output_queue_depth{output="nats"}`) == 0 })
	dupsSuppressed := metric(t, p, `relay_broker_duplicates_total{output="nats"}`)
	redelivered := metric(t, p, `relay_broker_redelivered_total{output="nats"}`)
	pr.signal(t, os.Interrupt)
	pr.wait(t, 20*time.Second)
	counts := readStream(t, srv.URL(), "EVENTS")
	missing, dups := tallySeqs(counts, n)
	t.Logf("after the restart: %v sent again (spool's count), %v of them dropped by the stream as duplicates; stream: missing %d, duplicates %d",
		redelivered, dupsSuppressed, missing, dups)
	if missing+dups > 0 || len(counts) != n {
		t.Fatalf("missing %d, duplicates %d, distinct %d of %d", missing, dups, len(counts), n)
	}
}

// TestKafkaRelayKill9: the same against a three-broker kfake cluster on
// TCP: nothing lost, and the duplicates in the topic are at most the
// records the restarted relay counted as redelivered (at least once).
func TestKafkaRelayKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	kp := testpeer.FreePorts(t, 3)
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.Ports(kp...), kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Each produce request waits 10 ms in the cluster: with max_pending
	// 256 the drain takes at least 8 s, so that the kill lands mid-drain
	// however fast the relay produces. The sleep blocks kfake's loop
	// itself: its SleepControl has a data race of its own (kfake's
	// bsleep.waitQueue, reported by -race in a CI-like run).
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		time.Sleep(10 * time.Millisecond)
		return nil, nil, false
	})
	const n = 200_000
	p := freePorts(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	conf := brokerConf(t, p, "", fmt.Sprintf("  - name: k\n    type: kafka\n    brokers: [%s]\n    topic: events\n    max_pending: 256\n    spool: {dir: %s, fsync: always}\n", strings.Join(c.ListenAddrs(), ", "), spoolDir))
	pr := startRelay(t, conf, p)
	sendSeqs(t, p, "click", 0, n)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("relay received every event"), func() bool {
		return metric(t, p, `relay_input_received_total{input="syslog"}`) == n
	})
	waitDurable(t, p, "k", spoolDir)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("drain under way"), func() bool {
		return metric(t, p, `relay_broker_confirmed_total{output="k"}`) >= n/5
	})
	before := metric(t, p, `relay_broker_confirmed_total{output="k"}`)
	pr.cmd.Process.Kill()
	<-pr.done
	if before >= n {
		t.Fatal("the drain had finished before the kill")
	}
	pr = startRelay(t, conf, p)
	testpeer.Eventually(t, 120*time.Second, testpeer.Text("spool emptied"), func() bool {
		return metric(t, p, `relay_output_queue_depth{output="k"}`) == 0
	})
	redelivered := metric(t, p, `relay_broker_redelivered_total{output="k"}`)
	resent := metric(t, p, `relay_broker_resent_total{output="k"}`)
	pr.signal(t, os.Interrupt)
	pr.wait(t, 20*time.Second)
	counts := readTopic(t, c.ListenAddrs(), n, "events")
	missing, dups := tallySeqs(counts, n)
	t.Logf("killed with %v of %d confirmed; after the restart %v redelivered, %v resent; topic: missing %d, duplicates %d", before, n, redelivered, resent, missing, dups)
	if missing > 0 || float64(dups) > redelivered+resent {
		t.Fatalf("missing %d, duplicates %d > counted redeliveries %v + resent %v", missing, dups, redelivered, resent)
	}
}

func readTopic(t *testing.T, brokers []string, want int, topic string) map[int]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts := map[int]int{}
	got := 0
	idle := 0
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && (got < want || idle < 2); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		k := 0
		fs.EachRecord(func(r *kgo.Record) {
			k++
			counts[testpeer.SeqOf(string(r.Value))]++
		})
		got += k
		if k == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return counts
}

// TestBrokerBadInput: relay check finds a malformed server URL offline; a
// stream that does not exist and refused credentials stop the start with
// what to change.
func TestBrokerBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and nats-server")
	}
	p := freePorts(t)
	dir := t.TempDir()
	bad := brokerConf(t, p, "", fmt.Sprintf("  - {name: nats, type: jetstream, servers: ['nats://h:42:22'], subject: 'events.{stream}', spool: {dir: %s/s}}\n", dir))
	code, out, errOut := runBin(t, "check", "-c", bad)
	if code != 2 || !strings.Contains(errOut, "outputs[0].servers[0]") || !strings.Contains(errOut, "too many colons") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{Extra: "authorization { user: relay, password: right }\n"})
	url := strings.Replace(srv.URL(), "nats://", "nats://relay:right@", 1)
	noStream := brokerConf(t, p, "", fmt.Sprintf("  - {name: nats, type: jetstream, servers: ['%s'], subject: 'events.{stream}', spool: {dir: %s/s1}}\n", url, dir))
	pr := startBin(t, "-c", noStream)
	if code := pr.wait(t, 30*time.Second); code == 0 || !strings.Contains(pr.stderr.String(), "nats stream add EVENTS --subjects 'events.>'") {
		t.Fatalf("missing stream: exit %d\n%s", code, pr.stderr.String())
	}
	wrong := brokerConf(t, p, "", fmt.Sprintf("  - {name: nats, type: jetstream, servers: ['%s'], user: relay, password: wrong, subject: 'events.{stream}', spool: {dir: %s/s2}}\n", srv.URL(), dir))
	pr = startBin(t, "-c", wrong)
	if code := pr.wait(t, 30*time.Second); code == 0 || !strings.Contains(pr.stderr.String(), "refused the connection") {
		t.Fatalf("refused credentials: exit %d\n%s", code, pr.stderr.String())
	}
}

// TestJetStreamInputRelayKill9: a relay reads a stream through a
// jetstream input into a PUSH output (which releases the hand-off once
// an event is written to a worker's connection); it is killed with SIGKILL
// mid-way and started again: every event reaches the libzmq collector,
// and the duplicates there are at most the redeliveries the restarted
// relay counted.
func TestJetStreamInputRelayKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary, nats-server and libzmq")
	}
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStreamR(t, srv.URL(), "EVENTS", time.Minute, "events.>")
	const n = 100_000
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	for i := 0; i < n; i++ {
		m := &nats.Msg{Subject: "events.click", Header: nats.Header{"Relay-Stream": {"click"}},
			Data: fmt.Appendf(nil, "<14>1 2026-01-01T00:00:00Z h click - - - %s", testpeer.Seq(i))}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatal("filling the stream timed out")
	}
	nc.Close()
	p := freePorts(t)
	conf := brokerConf(t, p,
		fmt.Sprintf("  - {name: js, type: jetstream, servers: [%s], stream: EVENTS, ack_wait: 5s, max_ack_pending: 2048}\n", srv.URL()),
		fmt.Sprintf("  - {name: w, type: zmq, socket: push, bind: 'tcp://127.0.0.1:%d', hwm: 1000}\n", p.a))
	col := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", p.a))
	pr := startRelay(t, conf, p)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("a quarter delivered"), func() bool { return col.Count() >= n/4 })
	pr.cmd.Process.Kill()
	<-pr.done
	at := col.Count()
	pr = startRelay(t, conf, p)
	seen := func() int {
		s := map[int]bool{}
		for _, m := range col.Messages() {
			s[testpeer.SeqOf(m[len(m)-1])] = true
		}
		return len(s)
	}
	testpeer.Eventually(t, 120*time.Second, func() string { return fmt.Sprintf("%d distinct of %d at the collector", seen(), n) }, func() bool { return seen() == n })
	time.Sleep(500 * time.Millisecond)
	redelivered := metric(t, p, `relay_jetstream_input_redelivered_total{input="js"}`)
	acked := metric(t, p, `relay_jetstream_input_acked_total{input="js"}`)
	pr.signal(t, os.Interrupt)
	pr.wait(t, 20*time.Second)
	counts := map[int]int{}
	for _, m := range col.Messages() {
		counts[testpeer.SeqOf(m[len(m)-1])]++
	}
	missing, dups := tallySeqs(counts, n)
	t.Logf("killed at %d delivered; after the restart %v redelivered (counted), %v acked; collector: missing %d, duplicates %d", at, redelivered, acked, missing, dups)
	if missing > 0 || float64(dups) > redelivered {
		t.Fatalf("missing %d, duplicates %d > counted redeliveries %v", missing, dups, redelivered)
	}
}

// TestBrokerCountersSurviveSIGHUP: SIGHUP with a jetstream output's
// settings changed rebuilds the output on the same spool: its
// relay_broker_* and relay_spool_* counters go on from where they were
// (not reset, not doubled), and every event is in the stream once.
func TestBrokerCountersSurviveSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and nats-server")
	}
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStreamR(t, srv.URL(), "EVENTS", 10*time.Minute, "events.>")
	p := freePorts(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	out := func(maxPending int) string {
		return fmt.Sprintf("  - name: nats\n    type: jetstream\n    servers: [%s]\n    subject: \"events.{stream}\"\n    max_pending: %d\n    spool: {dir: %s}\n", srv.URL(), maxPending, spoolDir)
	}
	conf := brokerConf(t, p, "", out(64))
	pr := startRelay(t, conf, p)
	const n = 5000
	confirmed := func() float64 { return metric(t, p, `relay_broker_confirmed_total{output="nats"}`) }
	sendSeqs(t, p, "click", 0, n)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("the first events confirmed"), func() bool { return confirmed() == n })
	published := metric(t, p, `relay_broker_published_total{output="nats"}`)
	appended := metric(t, p, `relay_spool_appended_total{output="nats"}`)

	// The same file, another max_pending: the output is rebuilt.
	next := brokerConf(t, p, "", out(128))
	b, err := os.ReadFile(next)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pr.signal(t, syscall.SIGHUP)
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the reload applied"), func() bool {
		return strings.Contains(pr.stderr.String(), "configuration reloaded")
	})
	if c, pb, a := confirmed(), metric(t, p, `relay_broker_published_total{output="nats"}`), metric(t, p, `relay_spool_appended_total{output="nats"}`); c != n || pb != published || a != appended {
		t.Fatalf("after SIGHUP: confirmed %v (want %d), published %v (was %v), appended %v (was %v)", c, n, pb, published, a, appended)
	}
	sendSeqs(t, p, "click", n, n)
	testpeer.Eventually(t, 60*time.Second, func() string { return fmt.Sprintf("confirmed %v of %d", confirmed(), 2*n) }, func() bool { return confirmed() == 2*n })
	if a := metric(t, p, `relay_spool_appended_total{output="nats"}`); a != 2*n {
		t.Fatalf("appended %v, want %d", a, 2*n)
	}
	pr.signal(t, os.Interrupt)
	pr.wait(t, 20*time.Second)
	counts := readStream(t, srv.URL(), "EVENTS")
	if missing, dups := tallySeqs(counts, 2*n); missing+dups > 0 {
		t.Fatalf("missing %d, duplicates %d", missing, dups)
	}
}
