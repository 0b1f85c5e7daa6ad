package broker

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"

	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// The "bad input" cases, each against a real nats-server (or a
// kfake cluster): a clear log line, a counter, backpressure (the spool
// keeps what the broker did not confirm), and nothing lost once the cause
// is fixed. The stream deleted while running and a subject no stream
// takes are in jetstream_test.go; refused credentials at start too.

// TestJetStreamStreamFull: a stream at its limits that discards new
// messages (max_msgs, then max_bytes) refuses publishes: they are counted
// as stream_full and logged once with what to change, the spool keeps
// every refused event, at most max_pending wait on the broker; once the
// limit is raised, every event is in the stream exactly once.
func TestJetStreamStreamFull(t *testing.T) {
	for _, limit := range []string{"max_msgs", "max_bytes"} {
		t.Run(limit, func(t *testing.T) {
			srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
			nc, err := nats.Connect(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			sc := jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage,
				Discard: jetstream.DiscardNew, Duplicates: time.Hour, MaxMsgs: -1, MaxBytes: -1}
			if limit == "max_msgs" {
				sc.MaxMsgs = 300
			} else {
				sc.MaxBytes = 300 * 200 // a little under 300 of our messages with their headers
			}
			if _, err := js.CreateStream(context.Background(), sc); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			sp := openSpool(t, dir)
			defer sp.Close()
			log, logs := captureLogger(t)
			s := newJS(t, dir, sp, []string{srv.URL()}, func(c *JetStreamConfig) { c.Logger = log; c.MaxPending = 256 })
			const n = 1000
			appendN(t, sp, 0, n)
			d := startDrain(sp, s)
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool {
				return s.Stats().Failed[CauseStreamFull] >= 100
			})
			time.Sleep(time.Second) // retries run meanwhile
			st := s.Stats()
			stored := int(streamInfo(t, js, "EVENTS").State.Msgs)
			if stored == 0 || stored > 300 {
				t.Fatalf("the stream holds %d", stored)
			}
			if r := sp.Stats().Records; r != int64(n-stored) {
				t.Fatalf("the spool holds %d, want the %d the full stream refused (stats %+v)", r, n-stored, st)
			}
			if st.Pending > 256 || st.Confirmed != uint64(stored) {
				t.Fatalf("pending %d (window 256), confirmed %d, stored %d", st.Pending, st.Confirmed, stored)
			}
			if l := logs.String(); !strings.Contains(l, "cause=stream_full") || !strings.Contains(l, "raise its limits") {
				t.Fatalf("no log line that says the stream is full and what to do:\n%s", l)
			}
			if c := strings.Count(logs.String(), "cause=stream_full"); c != 1 {
				t.Fatalf("stream_full logged %d times, want once per episode", c)
			}
			sc.MaxMsgs, sc.MaxBytes = -1, -1
			if _, err := js.UpdateStream(context.Background(), sc); err != nil {
				t.Fatal(err)
			}
			eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
			d.stop()
			s.Close(context.Background())
			counts, _ := streamCount(t, srv.URL(), "EVENTS")
			if missing, dups, strays := tally(counts, 0, n); missing+dups+strays > 0 {
				t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
			}
			if !strings.Contains(logs.String(), "broker confirms publishes again") {
				t.Fatalf("the end of the episode was not logged:\n%s", logs.String())
			}
		})
	}
}

func streamInfo(t testing.TB, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

const (
	natsUsers = `authorization { users: [ {user: relay, password: right}, {user: admin, password: admin} ] }`
	// The relay's password changed on the server (revoked).
	natsUsersRevoked = `authorization { users: [ {user: relay, password: changed}, {user: admin, password: admin} ] }`
	// The relay may still connect, but not publish to events.>.
	natsUsersNoPublish = `authorization { users: [ {user: relay, password: right, permissions: {publish: {deny: ["events.>"]}}}, {user: admin, password: admin} ] }`
)

// TestJetStreamCredentialsRevoked: while events flow, the server is
// reloaded (SIGHUP) with the relay's password changed, or with its
// permission to publish taken away. The output keeps trying (nats.go
// would give up after the second refusal and close the connection for
// good), counts the refusals as auth, logs them with what to check, and
// the spool keeps every event; when the credentials are given back, every
// event reaches the stream exactly once, without a restart of the relay.
func TestJetStreamCredentialsRevoked(t *testing.T) {
	for _, how := range []struct {
		name, conf, says string
		connected        bool
	}{
		{"password changed", natsUsersRevoked, "check the output's credentials", false},
		{"publish denied", natsUsersNoPublish, "check the output's permission to publish", true},
	} {
		t.Run(how.name, func(t *testing.T) {
			srv := testpeer.StartNATS(t, testpeer.NATSOptions{Extra: natsUsers})
			admin := strings.Replace(srv.URL(), "nats://", "nats://admin:admin@", 1)
			createStream(t, admin, "EVENTS", 1, time.Hour, "events.>")
			dir := t.TempDir()
			sp := openSpool(t, dir)
			defer sp.Close()
			log, logs := captureLogger(t)
			s := newJS(t, dir, sp, []string{srv.URL()}, func(c *JetStreamConfig) {
				c.Logger = log
				c.Auth = NATSAuth{User: "relay", Password: "right"}
				c.AckTimeout = time.Second
			})
			appendN(t, sp, 0, 500)
			d := startDrain(sp, s)
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })

			srv.Reconfigure(how.conf)
			appendN(t, sp, 500, 500)
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return s.Stats().Failed[CauseAuth] > 0 })
			time.Sleep(3 * time.Second) // nats.go's reconnects and the output's retries run meanwhile
			if r := sp.Stats().Records; r != 500 {
				t.Fatalf("the spool holds %d, want the 500 events sent with revoked credentials (stats %+v)", r, s.Stats())
			}
			if l := logs.String(); !strings.Contains(l, "cause=auth") || !strings.Contains(l, how.says) {
				t.Fatalf("no log line that says %q:\n%s", how.says, l)
			}
			if s.Stats().Connected != how.connected {
				t.Fatalf("connected %v", s.Stats().Connected)
			}

			srv.Reconfigure(natsUsers)
			eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
			d.stop()
			s.Close(context.Background())
			counts, _ := streamCount(t, admin, "EVENTS")
			if missing, dups, strays := tally(counts, 0, 1000); missing+dups+strays > 0 {
				t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
			}
			t.Logf("stats %+v", s.Stats())
		})
	}
}

// TestJetStreamMalformedURL: a server URL nats.go cannot parse stops the
// start with an error that names it (relay check refuses it offline too),
// instead of an output that waits for a server it will never dial.
func TestJetStreamMalformedURL(t *testing.T) {
	dir := t.TempDir()
	id, _ := SpoolID(dir)
	for _, u := range []string{"nats://h:42:22", "nats://127.0.0.1:notaport", "nats://[::1"} {
		start := time.Now()
		_, err := NewJetStream(JetStreamConfig{Name: "x", Servers: []string{u}, Subject: "events.{stream}", SpoolID: id, StartTimeout: 2 * time.Second})
		if err == nil || !strings.Contains(err.Error(), u) {
			t.Errorf("%s: err %v", u, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s: took %v to fail", u, time.Since(start))
		}
		in, err := NewJetStreamInput(JetStreamInputConfig{Name: "in", Servers: []string{u}, Stream: "EVENTS", StartTimeout: 2 * time.Second})
		if err == nil {
			err = in.Start(func([]*event.Event) {})
		}
		if err == nil || !strings.Contains(err.Error(), u) {
			t.Errorf("input %s: err %v", u, err)
		}
	}
}

// TestKafkaTopicCannotBeCreated: create_topics is set but the brokers do
// not create topics: the failures are counted as unknown_topic and logged
// with what to do, the spool keeps every event, and once an operator
// creates the topics they are all delivered.
func TestKafkaTopicCannotBeCreated(t *testing.T) {
	c := startKfake(t) // auto-creation not allowed
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	appendN(t, sp, 0, 500)
	log, logs := captureLogger(t)
	k := newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) {
		cfg.Topic = "ev-{stream}"
		cfg.CreateTopics = true
		cfg.Sent = sp.Sent
		cfg.Logger = log
	})
	d := startDrain(sp, k)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool { return k.Stats().Failed[CauseUnknownTopic] >= 500 })
	if r := sp.Stats().Records; r != 500 {
		t.Fatalf("spool holds %d", r)
	}
	if l := logs.String(); !strings.Contains(l, "cause=unknown_topic") || !strings.Contains(l, "kafka-topics.sh --create") {
		t.Fatalf("no log line that says the topic is missing and how to create it:\n%s", l)
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

// TestKafkaMalformedBroker: a broker address that is not host:port stops
// the start with an error that names it.
func TestKafkaMalformedBroker(t *testing.T) {
	dir := t.TempDir()
	id, _ := SpoolID(dir)
	for _, b := range []string{"k1:9092:1", "k1:port"} {
		_, err := NewKafka(KafkaConfig{Name: "k", Brokers: []string{b}, Topic: "events", SpoolID: id})
		if err == nil || !strings.Contains(err.Error(), b) {
			t.Errorf("%s: err %v", b, err)
		}
	}
}

// TestJetStreamInputCredentialsRevoked: the input's password is changed on
// the server while it reads: it logs the refusal with what to check,
// counts it, reads nothing meanwhile, and resumes by itself once the
// credentials are given back: every event arrives, duplicates only as
// counted redeliveries, and the lag comes back to 0.
func TestJetStreamInputCredentialsRevoked(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{Extra: natsUsers})
	admin := strings.Replace(srv.URL(), "nats://", "nats://admin:admin@", 1)
	createStream(t, admin, "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, admin, 0, 500)
	log, logs := captureLogger(t)
	in, err := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{srv.URL()}, Stream: "EVENTS", AckWait: 5 * time.Second,
		Auth: NATSAuth{User: "relay", Password: "right"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{seen: map[int]int{}}
	if err := in.Start(h.handle); err != nil {
		t.Fatal(err)
	}
	defer in.Stop(context.Background())
	count := h.distinct
	eventually(t, 30*time.Second, func() string { return fmt.Sprint(count()) }, func() bool { return count() == 500 })

	srv.Reconfigure(natsUsersRevoked)
	fillStream(t, admin, 500, 500)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", in.JetStreamStats()) }, func() bool { return in.JetStreamStats().Refused >= 2 })
	if c := count(); c != 500 {
		t.Fatalf("read %d events with revoked credentials", c)
	}
	if l := logs.String(); strings.Count(l, "cause=auth") != 1 || !strings.Contains(l, "refuses the input's credentials") {
		t.Fatalf("the refused credentials were not logged once:\n%s", l)
	}
	srv.Reconfigure(natsUsers)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d %+v", count(), in.JetStreamStats()) }, func() bool { return count() == 1000 })
	missing, dups, strays := h.tally(0, 1000)
	st := in.JetStreamStats()
	if missing+strays > 0 || uint64(dups) > st.Redelivered || st.Lag != 0 {
		t.Fatalf("missing %d, duplicates %d (redelivered %d), strays %d, lag %d", missing, dups, st.Redelivered, strays, st.Lag)
	}
}

// TestJetStreamIdleRefusalEpisodeEnds: connections refused while nothing
// was in flight (no retry ran) open an auth episode; the first
// confirmation after the credentials are fixed must end it, or the next
// outage of that cause would never be logged.
func TestJetStreamIdleRefusalEpisodeEnds(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{Extra: natsUsers})
	admin := strings.Replace(srv.URL(), "nats://", "nats://admin:admin@", 1)
	createStream(t, admin, "EVENTS", 1, time.Hour, "events.>")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	log, logs := captureLogger(t)
	s := newJS(t, dir, sp, []string{srv.URL()}, func(c *JetStreamConfig) {
		c.Logger = log
		c.Auth = NATSAuth{User: "relay", Password: "right"}
	})
	d := startDrain(sp, s)
	srv.Reconfigure(natsUsersRevoked)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return s.Stats().Failed[CauseAuth] > 0 })
	if !s.causes.inEpisode(CauseAuth) || !strings.Contains(logs.String(), "cause=auth") {
		t.Fatalf("refusals while idle: episode %v, log:\n%s", s.causes.inEpisode(CauseAuth), logs.String())
	}
	srv.Reconfigure(natsUsers)
	appendN(t, sp, 0, 10)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	s.Close(context.Background())
	if s.causes.inEpisode(CauseAuth) || !strings.Contains(logs.String(), "broker confirms publishes again") {
		t.Fatalf("the auth episode did not end with the confirmations; log:\n%s", logs.String())
	}
}

// TestJetStreamInputStreamDeleted: the stream an input reads is deleted
// while it runs and made again: the input says so, and reads the new
// stream once it exists (its durable consumer is made again), without a
// restart of the relay.
func TestJetStreamInputStreamDeleted(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, srv.URL(), 0, 100)
	log, logs := captureLogger(t)
	in, err := NewJetStreamInput(JetStreamInputConfig{Name: "js", Servers: []string{srv.URL()}, Stream: "EVENTS", AckWait: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{seen: map[int]int{}}
	if err := in.Start(h.handle); err != nil {
		t.Fatal(err)
	}
	defer in.Stop(context.Background())
	count := h.distinct
	eventually(t, 30*time.Second, func() string { return fmt.Sprint(count()) }, func() bool { return count() == 100 })
	nc, _ := nats.Connect(srv.URL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(context.Background(), "EVENTS"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
	fillStream(t, srv.URL(), 100, 100)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d %+v\n%s", count(), in.JetStreamStats(), logs.String()) }, func() bool { return count() == 200 })
	if st := in.JetStreamStats(); st.Resubscribed == 0 || !strings.Contains(logs.String(), "consumer was deleted") {
		t.Fatalf("resubscribed %d; log:\n%s", st.Resubscribed, logs.String())
	}
	if missing, dups, strays := h.tally(0, 200); missing+dups+strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
	}
}

// TestKafkaCredentialsRefused: the brokers refuse the output's SASL
// credentials: the failures are counted as auth and logged with what to
// check, the spool keeps every event; once the operator sets the
// password the relay uses on the brokers, everything is delivered without
// a restart of the relay.
func TestKafkaCredentialsRefused(t *testing.T) {
	c := startKfake(t, kfake.SeedTopics(3, "events"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin"), kfake.Superuser("SCRAM-SHA-256", "relay", "right"))
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	appendN(t, sp, 0, 300)
	log, logs := captureLogger(t)
	k := newKafka(t, dir, true, c.ListenAddrs(), func(cfg *KafkaConfig) {
		cfg.Sent = sp.Sent
		cfg.Logger = log
		cfg.SASL = &KafkaSASL{Mechanism: "SCRAM-SHA-256", User: "relay", Password: "new"}
	})
	d := startDrain(sp, k)
	// A real broker answers SASL_AUTHENTICATION_FAILED (cause auth);
	// kfake closes the connection instead (cause brokers). Either way the
	// watch counts it and the log names the credentials.
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool {
		return k.Stats().Failed[CauseAuth]+k.Stats().Failed[CauseBrokers] > 0
	})
	if r := sp.Stats().Records; r != 300 {
		t.Fatalf("spool holds %d", r)
	}
	if l := logs.String(); !strings.Contains(l, "sasl credentials") {
		t.Fatalf("the refused credentials were not logged once:\n%s", l)
	}
	// The operator sets the relay's new password on the brokers.
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(scram.Auth{User: "admin", Pass: "admin"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	salt := []byte("relay-test-salt")
	salted, err := pbkdf2.Key(sha256.New, "new", salt, 4096, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "relay", 1, 4096, salt, salted
	req.Upsertions = append(req.Upsertions, up)
	resp, err := req.RequestWith(context.Background(), adm)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.ErrorCode != 0 {
			t.Fatalf("alter scram: %+v", r)
		}
	}
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	k.Close(context.Background())
	if !strings.Contains(logs.String(), "broker confirms publishes again") {
		t.Fatalf("the end of the episode was not logged:\n%s", logs.String())
	}
	counts, _ := topicCountWith(t, c.ListenAddrs(), []kgo.Opt{kgo.SASL(scram.Auth{User: "admin", Pass: "admin"}.AsSha256Mechanism())}, 300, "events")
	missing, dups, strays := tally(counts, 0, 300)
	if missing+strays > 0 || dups > int(k.Stats().Resent) {
		t.Fatalf("missing %d, duplicates %d (resent %d), strays %d", missing, dups, k.Stats().Resent, strays)
	}
}

// TestKafkaBrokersUnreachable: no broker answers at start: franz-go keeps
// the records waiting without a word; the watch counts the failed probes
// as brokers and logs them, the spool keeps every event, and once the
// cluster comes up everything is delivered.
func TestKafkaBrokersUnreachable(t *testing.T) {
	port := testpeer.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	appendN(t, sp, 0, 300)
	log, logs := captureLogger(t)
	k := newKafka(t, dir, true, []string{addr}, func(cfg *KafkaConfig) { cfg.Sent = sp.Sent; cfg.Logger = log })
	d := startDrain(sp, k)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", k.Stats()) }, func() bool { return k.Stats().Failed[CauseBrokers] > 0 })
	if r := sp.Stats().Records; r != 300 {
		t.Fatalf("spool holds %d", r)
	}
	if l := logs.String(); !strings.Contains(l, "cause=brokers") || !strings.Contains(l, "reachable") {
		t.Fatalf("no log line about the unreachable brokers:\n%s", l)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), k.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	k.Close(context.Background())
	counts, _ := topicCount(t, c.ListenAddrs(), 300, "events")
	missing, dups, strays := tally(counts, 0, 300)
	if missing+strays > 0 || dups > int(k.Stats().Resent) {
		t.Fatalf("missing %d, duplicates %d (resent %d), strays %d", missing, dups, k.Stats().Resent, strays)
	}
}
