package broker

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// startKfake starts a three-broker kfake cluster on TCP (loopback ports)
// with topics seeded (3 partitions each).
func startKfake(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	ports := testpeer.FreePorts(t, 3)
	opts = append([]kfake.Opt{kfake.NumBrokers(3), kfake.Ports(ports...)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// topicCount reads every record of topics and counts seq:N in the values;
// it stops when want records arrived, or after idle without any.
func topicCount(t testing.TB, brokers []string, want int, topics ...string) (map[int]int, []*kgo.Record) {
	t.Helper()
	return topicCountWith(t, brokers, nil, want, topics...)
}

// topicCountWith is topicCount with more client options (SASL).
func topicCountWith(t testing.TB, brokers []string, opts []kgo.Opt, want int, topics ...string) (map[int]int, []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts := map[int]int{}
	var all []*kgo.Record
	got := 0
	deadline := time.Now().Add(60 * time.Second)
	for got < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			got++
			counts[testpeer.SeqOf(string(r.Value))]++
			all = append(all, r)
		})
	}
	// A little longer: duplicates beyond want.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { counts[testpeer.SeqOf(string(r.Value))]++; all = append(all, r) })
	cancel()
	return counts, all
}

func newKafka(t testing.TB, dir string, sent bool, brokers []string, mod func(*KafkaConfig)) *Kafka {
	t.Helper()
	id, err := SpoolID(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := KafkaConfig{Name: "to-kafka", Brokers: brokers, Topic: "events", SpoolID: id, Logger: testLogger(t), RetryMax: 500 * time.Millisecond, Compression: "zstd"}
	if mod != nil {
		mod(&cfg)
	}
	k, err := NewKafka(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKafkaDelivers: a spool drained into a three-broker cluster arrives
// once per event with its metadata in the headers and the stream as key;
// the spool is emptied by the acknowledgements.
func TestKafkaDelivers(t *testing.T) {
	c := startKfake(t, kfake.SeedTopics(3, "events"))
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	const n = 20000
	appendN(t, sp, 0, n)
	k := newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) { cfg.Sent = sp.Sent })
	d := startDrain(sp, k)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	k.Close(context.Background())
	counts, recs := topicCount(t, c.ListenAddrs(), n, "events")
	if missing, dups, strays := tally(counts, 0, n); missing+dups+strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
	}
	r := recs[0]
	hs := map[string]string{}
	for _, h := range r.Headers {
		hs[h.Key] = string(h.Value)
	}
	if string(r.Key) != hs[KafkaHeaderStream] || hs[KafkaHeaderInput] != "in" || hs[KafkaHeaderID] == "" || hs[KafkaHeaderReceived] == "" {
		t.Fatalf("record key %q headers %v", r.Key, hs)
	}
	if st := k.Stats(); st.Confirmed != n || st.Resent != 0 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestKafkaRedeliveryCounted: records produced, acknowledgements lost (a
// crash): after the restart they are produced again, and the duplicates
// in the topic are exactly the spool's counted redeliveries.
func TestKafkaRedeliveryCounted(t *testing.T) {
	c := startKfake(t, kfake.SeedTopics(3, "events"))
	dir := t.TempDir()
	sp := openSpool(t, dir)
	const n = 3000
	appendN(t, sp, 0, n)
	recs, _ := sp.Read(context.Background(), n)
	k := newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) { cfg.Sent = sp.Sent })
	k.Send(context.Background(), recs, func(first, last uint64) {})
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool { return k.Stats().Confirmed == n })
	k.Close(context.Background())
	sp.Close()
	sp = openSpool(t, dir)
	defer sp.Close()
	k = newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) { cfg.Sent = sp.Sent })
	d := startDrain(sp, k)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	k.Close(context.Background())
	counts, _ := topicCount(t, c.ListenAddrs(), 2*n, "events")
	missing, dups, strays := tally(counts, 0, n)
	red := int(sp.Stats().Redelivered)
	t.Logf("duplicates %d, counted redeliveries %d", dups, red)
	if missing+strays > 0 || dups != red || red != n {
		t.Fatalf("missing %d, duplicates %d (counted %d, want %d), strays %d", missing, dups, red, n, strays)
	}
}

// TestKafkaUnknownTopic: a topic that does not exist and is not created:
// the failures are counted as unknown_topic, the spool keeps every event
// (backpressure), and once the topic exists they are all delivered.
func TestKafkaUnknownTopic(t *testing.T) {
	c := startKfake(t) // no topics, no auto-creation
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	appendN(t, sp, 0, 500)
	k := newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) { cfg.Topic = "ev-{stream}"; cfg.Sent = sp.Sent })
	d := startDrain(sp, k)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool { return k.Stats().Failed[CauseUnknownTopic] >= 500 })
	if r := sp.Stats().Records; r != 500 {
		t.Fatalf("spool holds %d", r)
	}
	adm, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	defer adm.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"ev-click", "ev-view"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 3, 3
		req.Topics = append(req.Topics, rt)
	}
	if _, err := req.RequestWith(context.Background(), adm); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	k.Close(context.Background())
	counts, _ := topicCount(t, c.ListenAddrs(), 500, "ev-click", "ev-view")
	missing, dups, strays := tally(counts, 0, 500)
	if missing+strays > 0 || dups > int(k.Stats().Resent) {
		t.Fatalf("missing %d, duplicates %d (resent %d), strays %d", missing, dups, k.Stats().Resent, strays)
	}
}

// TestKafkaCreateTopics: with create_topics and brokers that allow it,
// one topic per stream is made on first use.
func TestKafkaCreateTopics(t *testing.T) {
	c := startKfake(t, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	appendN(t, sp, 0, 1000)
	k := newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) { cfg.Topic = "ev-{stream}"; cfg.CreateTopics = true; cfg.Sent = sp.Sent })
	d := startDrain(sp, k)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	k.Close(context.Background())
	clicks, _ := topicCount(t, c.ListenAddrs(), 500, "ev-click")
	if len(clicks) != 500 {
		t.Fatalf("ev-click holds %d distinct events", len(clicks))
	}
}

// TestKafkaWindow: with a small window, Send never has more than
// MaxPending records unacknowledged, waits for room (never deadlocks, a
// window of one included), and every event arrives once.
func TestKafkaWindow(t *testing.T) {
	for _, tc := range []struct{ window, n int }{{1, 200}, {16, 3000}} {
		t.Run(fmt.Sprint(tc.window), func(t *testing.T) {
			c := startKfake(t, kfake.SeedTopics(3, "events"))
			dir := t.TempDir()
			sp := openSpool(t, dir)
			defer sp.Close()
			appendN(t, sp, 0, tc.n)
			k := newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) { cfg.Sent = sp.Sent; cfg.MaxPending = tc.window })
			var most atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					if p := int64(k.Stats().Pending); p > most.Load() {
						most.Store(p)
					}
					select {
					case <-stop:
						return
					default:
						runtime.Gosched()
					}
				}
			}()
			d := startDrain(sp, k)
			eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
			close(stop)
			<-sampled
			d.stop()
			k.Close(context.Background())
			if m := most.Load(); m > int64(tc.window) || m == 0 {
				t.Fatalf("at most %d records were pending, window %d", m, tc.window)
			}
			counts, _ := topicCount(t, c.ListenAddrs(), tc.n, "events")
			if missing, dups, strays := tally(counts, 0, tc.n); missing+dups+strays > 0 {
				t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
			}
			if st := k.Stats(); st.Confirmed != uint64(tc.n) || st.Pending != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestKafkaAppendReceived: the record's received header is
// time.RFC3339Nano in UTC, whatever the fraction, zone and second.
func TestKafkaAppendReceived(t *testing.T) {
	k := &Kafka{}
	zone := time.FixedZone("X", -7*3600-30*60)
	base := time.Date(2026, 12, 7, 23, 59, 58, 0, zone)
	var ts []time.Time
	for _, ns := range []int{0, 1, 10, 100000, 120000000, 123456789, 999999999, 500000000} {
		for s := 0; s < 3; s++ {
			ts = append(ts, base.Add(time.Duration(s)*time.Second+time.Duration(ns)))
		}
	}
	ts = append(ts, time.Unix(0, 0), time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Now(), time.Now().Add(time.Hour))
	for _, tm := range ts {
		want := tm.UTC().Format(time.RFC3339Nano)
		if got := string(k.appendReceived([]byte("x"), tm)); got != "x"+want {
			t.Errorf("%v: got %q, want %q", tm, got, "x"+want)
		}
	}
}
