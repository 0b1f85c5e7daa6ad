package broker

import (
	"context"
	"errors"
	"fmt"
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

// TestJetStreamInputNoStream: a stream that does not exist stops Start
// with what to do.
func TestJetStreamInputNoStream(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	in, _ := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{srv.URL()}, Stream: "NOPE"})
	err := in.Start(func([]*event.Event) {})
	if err == nil || !strings.Contains(err.Error(), "stream NOPE does not exist") {
		t.Fatalf("err %v", err)
	}
}

// TestJetStreamInputNoServer: no server answers at start: Start fails
// saying what to change, not only nats' "no servers available".
func TestJetStreamInputNoServer(t *testing.T) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", testpeer.FreePort(t))
	in, err := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{url}, Stream: "EVENTS"})
	if err != nil {
		t.Fatal(err)
	}
	err = in.Start(func([]*event.Event) {})
	if err == nil || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "start the NATS server or correct servers") {
		t.Fatalf("err %v", err)
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
