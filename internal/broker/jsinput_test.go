package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// fillStream publishes events seq:first… into the stream through a
// JetStream output, so they carry the relay's headers.
func fillStream(t testing.TB, url string, first, n int) {
	t.Helper()
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	appendN(t, sp, first, n)
	s := newJS(t, dir, sp, []string{url}, nil)
	d := startDrain(sp, s)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	s.Close(context.Background())
}

func consumerInfo(t testing.TB, url, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	nc, _ := nats.Connect(url)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	c, err := js.Consumer(context.Background(), stream, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestJetStreamInputAcksAfterHandoff: events carry the stream and peer of
// their headers; no message is acked while an output holds its event, all
// are once the holds are released; a failed hand-off hands the messages
// back, and they come again, counted as redelivered.
func TestJetStreamInputAcksAfterHandoff(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, srv.URL(), 0, 1000)
	in, err := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{srv.URL()}, Stream: "EVENTS", AckWait: 30 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []*event.Event
	seen := map[int]int{}
	failOnce := true
	err = in.Start(func(batch []*event.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range batch {
			if e.Stream == "" || e.Peer != "127.0.0.1:5" || e.Input != "js" {
				t.Errorf("event %q stream %q peer %q input %q", e.Raw, e.Stream, e.Peer, e.Input)
			}
			seen[testpeer.SeqOf(string(e.Raw))]++
			e.Hold() // an output that finishes later
			held = append(held, e)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", in.Stats()) }, func() bool { return in.Stats().Received == 1000 })
	if info := consumerInfo(t, srv.URL(), "EVENTS", "relay-js"); info.AckFloor.Stream != 0 || info.NumAckPending != 1000 {
		t.Fatalf("acked before the hand-off: ack floor %d, pending %d", info.AckFloor.Stream, info.NumAckPending)
	}
	mu.Lock()
	for _, e := range held {
		if failOnce && testpeer.SeqOf(string(e.Raw)) < 10 {
			e.Release(errors.New("output refused"))
			continue
		}
		e.Release(nil)
	}
	held = nil
	failOnce = false
	mu.Unlock()
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", in.JetStreamStats()) }, func() bool {
		mu.Lock()
		for _, e := range held {
			e.Release(nil)
		}
		held = nil
		mu.Unlock()
		return in.JetStreamStats().Redelivered > 0 && in.JetStreamStats().Pending == 0 && consumerInfo(t, srv.URL(), "EVENTS", "relay-js").NumAckPending == 0
	})
	st := in.JetStreamStats()
	if err := in.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	extra := 0
	for i := 0; i < 1000; i++ {
		if seen[i] == 0 {
			t.Fatalf("event %d never arrived", i)
		}
		extra += seen[i] - 1
	}
	if st.Naked == 0 || uint64(extra) != st.Redelivered {
		t.Fatalf("stats %+v, events seen again %d", st, extra)
	}
	t.Logf("stats %+v", st)
}

// countingHandler counts each event's sequence number; the hand-off
// fires as the handler returns (no output holds the events).
type countingHandler struct {
	mu   sync.Mutex
	seen map[int]int
}

func (c *countingHandler) handle(batch []*event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range batch {
		c.seen[testpeer.SeqOf(string(e.Raw))]++
	}
}

func (c *countingHandler) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// tally is tally over what the handler counted.
func (c *countingHandler) tally(first, n int) (missing, dups, strays int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tally(c.seen, first, n)
}

// exactlyOnce fails the test unless 0…n-1 each arrived once.
func (c *countingHandler) exactlyOnce(t *testing.T, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		if c.seen[i] != 1 {
			t.Fatalf("event %d arrived %d times", i, c.seen[i])
		}
	}
	if len(c.seen) != n {
		t.Fatalf("%d distinct events, want %d", len(c.seen), n)
	}
}

// TestJetStreamInputStartsWithoutServer: no server answers at start:
// Start returns at once, the input counts and logs (once) that it cannot
// connect; when nats-server starts on the configured port with the
// stream, the input binds and reads every message once, acked.
func TestJetStreamInputStartsWithoutServer(t *testing.T) {
	port := testpeer.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	log, logs := captureLogger(t)
	in, err := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{url}, Stream: "EVENTS", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{seen: map[int]int{}}
	start := time.Now()
	if err := in.Start(h.handle); err != nil {
		t.Fatalf("Start without a server: %v", err)
	}
	defer in.Stop(context.Background())
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Start took %v without a server", d)
	}
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", in.JetStreamStats()) }, func() bool {
		return in.JetStreamStats().Failed[CauseDisconnected] >= 3
	})
	if st := in.JetStreamStats(); st.Connected {
		t.Fatalf("connected without a server: %+v", st)
	}
	if n := strings.Count(logs.String(), "cause=disconnected"); n != 1 || !strings.Contains(logs.String(), "start the NATS server") {
		t.Fatalf("the unreachable server was logged %d times, want once with what to do:\n%s", n, logs.String())
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\nserver_name: n1\njetstream {\n  store_dir: %q\n}\n", port, filepath.Join(dir, "js")), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testpeer.StartNATSConf(t, conf, port)
	createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, srv.URL(), 0, 1000)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d distinct, %+v", h.distinct(), in.JetStreamStats()) }, func() bool {
		st := in.JetStreamStats()
		return h.distinct() == 1000 && st.Acked == 1000 && st.Connected
	})
	if err := in.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.exactlyOnce(t, 1000)
	if info := consumerInfo(t, srv.URL(), "EVENTS", "relay-js"); info.AckFloor.Stream != 1000 {
		t.Fatalf("ack floor %d, want 1000", info.AckFloor.Stream)
	}
	if !strings.Contains(logs.String(), "jetstream input consumes its stream") {
		t.Fatalf("the recovery was not logged:\n%s", logs.String())
	}
	t.Logf("stats %+v", in.JetStreamStats())
}

// TestJetStreamInputStreamCreatedLater: the stream does not exist at
// start: Start returns, the input logs once what to create and retries;
// once the stream is made it binds and reads every message once.
func TestJetStreamInputStreamCreatedLater(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	log, logs := captureLogger(t)
	in, err := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{srv.URL()}, Stream: "EVENTS", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{seen: map[int]int{}}
	if err := in.Start(h.handle); err != nil {
		t.Fatalf("Start without the stream: %v", err)
	}
	defer in.Stop(context.Background())
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", in.JetStreamStats()) }, func() bool {
		return in.JetStreamStats().Failed[CauseNoStream] >= 3
	})
	if n := strings.Count(logs.String(), "cause=no_stream"); n != 1 || !strings.Contains(logs.String(), "create the stream EVENTS") {
		t.Fatalf("the missing stream was logged %d times, want once with what to do:\n%s", n, logs.String())
	}
	if st := in.JetStreamStats(); st.Connected {
		t.Fatalf("bound without a stream: %+v", st)
	}
	createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, srv.URL(), 0, 500)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d distinct, %+v", h.distinct(), in.JetStreamStats()) }, func() bool {
		st := in.JetStreamStats()
		return h.distinct() == 500 && st.Acked == 500 && st.Connected
	})
	if err := in.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.exactlyOnce(t, 500)
}

// TestJetStreamInputConsumerConflict: a durable consumer of the input's
// name that it cannot turn into its own (a push consumer) is logged once
// with what to change and retried; once the operator deletes it, the
// input makes its own and reads.
func TestJetStreamInputConsumerConflict(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, srv.URL(), 0, 200)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateConsumer(ctx, "EVENTS", jetstream.ConsumerConfig{Durable: "relay-js", DeliverSubject: "elsewhere", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	log, logs := captureLogger(t)
	in, _ := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{srv.URL()}, Stream: "EVENTS", Logger: log})
	h := &countingHandler{seen: map[int]int{}}
	if err := in.Start(h.handle); err != nil {
		t.Fatal(err)
	}
	defer in.Stop(context.Background())
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", in.JetStreamStats()) }, func() bool {
		return in.JetStreamStats().Failed[CauseConsumerConfig] >= 3
	})
	if n := strings.Count(logs.String(), "cause=consumer_config"); n != 1 || !strings.Contains(logs.String(), "nats consumer rm EVENTS relay-js") {
		t.Fatalf("the conflict was logged %d times, want once with what to do:\n%s", n, logs.String())
	}
	if err := js.DeleteConsumer(ctx, "EVENTS", "relay-js"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d distinct, %+v", h.distinct(), in.JetStreamStats()) }, func() bool {
		return h.distinct() == 200 && in.JetStreamStats().Acked == 200
	})
	in.Stop(context.Background())
	h.exactlyOnce(t, 200)
}

// TestJetStreamInputStopWhileConnecting: Stop returns promptly while the
// input still tries to connect (no server) or to bind (no stream).
func TestJetStreamInputStopWhileConnecting(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	for _, c := range []struct{ name, url string }{
		{"no server", fmt.Sprintf("nats://127.0.0.1:%d", testpeer.FreePort(t))},
		{"no stream", srv.URL()},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, _ := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{c.url}, Stream: "EVENTS", Logger: testLogger(t)})
			if err := in.Start(func([]*event.Event) {}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := in.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("Stop took %v while connecting", d)
			}
		})
	}
}

// TestReplay: --last, --from-seq and --since pick where a replay starts,
// the tap's stream filter applies, and the replay ends at what the stream
// held when it started.
func TestReplay(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, srv.URL(), 0, 1000)
	src := srv.URL() + "/EVENTS"
	run := func(cfg ReplayConfig) []int {
		cfg.Source = src
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := NewReplay(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var got []int
		for {
			m, err := r.Recv(ctx)
			if errors.Is(err, ErrEnd) {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, testpeer.SeqOf(string(m.Event().Raw)))
		}
	}
	// Stream sequences follow the publish order, which retries may change:
	// compare sets.
	if got := run(ReplayConfig{Last: 10}); len(got) != 10 {
		t.Fatalf("--last 10 gave %d", len(got))
	}
	if got := run(ReplayConfig{FromSeq: 991}); len(got) != 10 {
		t.Fatalf("--from-seq 991 gave %d", len(got))
	}
	if got := run(ReplayConfig{Since: time.Hour}); len(got) != 1000 {
		t.Fatalf("--since 1h gave %d", len(got))
	}
	f, err := tapFilter([]string{"view"})
	if err != nil {
		t.Fatal(err)
	}
	got := run(ReplayConfig{Since: time.Hour, Filter: f})
	if len(got) != 500 || got[0]%2 != 1 {
		t.Fatalf("--stream view gave %d (first %v)", len(got), got[:1])
	}
	if got := run(ReplayConfig{FromSeq: 5000}); len(got) != 0 {
		t.Fatalf("past the end gave %d", len(got))
	}
	if _, _, err := ParseReplaySource("nats://host:4222"); err == nil {
		t.Fatal("a source without a stream was accepted")
	}
}
