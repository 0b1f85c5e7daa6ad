package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

func newJS(t testing.TB, dir string, sp spool.Spool, servers []string, mod func(*JetStreamConfig)) *JetStream {
	t.Helper()
	id, err := SpoolID(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := JetStreamConfig{Name: "to-nats", Servers: servers, Subject: "events.{stream}", SpoolID: id, Sent: sp.Sent, Logger: testLogger(t),
		AckTimeout: 2 * time.Second, RetryMax: 500 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewJetStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJetStreamExactlyOnce: a spool drained into a stream arrives once per
// event, in the subject of its stream, with the event's metadata in the
// headers, and the spool is emptied by the PubAcks.
func TestJetStreamExactlyOnce(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "EVENTS", 1, 10*time.Minute, "events.>")
	dir := t.TempDir()
	id, _ := SpoolID(dir)
	sp := openSpool(t, dir)
	defer sp.Close()
	const n = 20000
	appendN(t, sp, 0, n)
	s := newJS(t, dir, sp, []string{srv.URL()}, nil)
	d := startDrain(sp, s)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("spool %+v js %+v", sp.Stats(), s.Stats()) },
		func() bool { return sp.Stats().Records == 0 })
	d.stop()
	s.Close(context.Background())
	counts, hdrs := streamCount(t, srv.URL(), "EVENTS")
	if missing, dups, strays := tally(counts, 0, n); missing+dups+strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
	}
	h := hdrs[7]
	if h.Get(HeaderStream) != "view" || h.Get(HeaderInput) != "in" || h.Get(HeaderPeer) != "127.0.0.1:5" || h.Get(HeaderReceived) == "" ||
		!strings.HasPrefix(h.Get(nats.MsgIdHdr), id+"-") {
		t.Fatalf("headers %v", h)
	}
	st := s.Stats()
	if st.Confirmed != n || st.Duplicates != 0 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The subject carries the stream.
	nc, _ := nats.Connect(srv.URL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stm, _ := js.Stream(context.Background(), "EVENTS")
	m, err := stm.GetLastMsgForSubject(context.Background(), "events.view")
	if err != nil || testpeer.SeqOf(string(m.Data)) != n-1 {
		t.Fatalf("last on events.view: %v %v", m, err)
	}
}

// TestJetStreamResendIsDuplicate: records sent again (as after a crash
// that lost the acks) carry the same ids: the stream keeps one copy and the
// PubAcks, counted as duplicates, still empty the spool.
func TestJetStreamResendIsDuplicate(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "EVENTS", 1, 10*time.Minute, "events.>")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	const n = 3000
	appendN(t, sp, 0, n)
	recs, err := sp.Read(context.Background(), n)
	if err != nil || len(recs) != n {
		t.Fatal(len(recs), err)
	}
	s := newJS(t, dir, sp, []string{srv.URL()}, nil)
	// First pass: published, acks dropped (a crash before the spool heard).
	s.Send(context.Background(), recs, func(first, last uint64) {})
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return s.Stats().Confirmed == n })
	s.Close(context.Background())
	sp.Close()
	sp = openSpool(t, dir) // the records come back: never acknowledged
	defer sp.Close()
	if sp.Stats().Records != n || sp.Stats().Redelivered != 0 {
		t.Fatalf("reopened %+v", sp.Stats())
	}
	s = newJS(t, dir, sp, []string{srv.URL()}, nil)
	d := startDrain(sp, s)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	s.Close(context.Background())
	if st := s.Stats(); st.Duplicates != n {
		t.Fatalf("duplicates %d, want %d", st.Duplicates, n)
	}
	if sp.Stats().Redelivered != n {
		t.Fatalf("spool redelivered %d, want %d (Sent marks)", sp.Stats().Redelivered, n)
	}
	counts, _ := streamCount(t, srv.URL(), "EVENTS")
	if missing, dups, strays := tally(counts, 0, n); missing+dups+strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
	}
}

// TestJetStreamNoStream: no stream takes the subjects and no
// create_stream: the start fails saying what to create; with
// create_stream the stream is made, with its duplicate window.
func TestJetStreamNoStream(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	id, _ := SpoolID(dir)
	_, err := NewJetStream(JetStreamConfig{Name: "x", Servers: []string{srv.URL()}, Subject: "events.{stream}", SpoolID: id})
	if !errors.Is(err, ErrNoStream) || !strings.Contains(err.Error(), "nats stream add EVENTS --subjects 'events.>'") {
		t.Fatalf("err %v", err)
	}
	s := newJS(t, dir, sp, []string{srv.URL()}, func(c *JetStreamConfig) {
		c.Create = &StreamSpec{Name: "EVENTS", Replicas: 1, Duplicates: time.Hour}
	})
	appendN(t, sp, 0, 100)
	d := startDrain(sp, s)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	s.Close(context.Background())
	nc, _ := nats.Connect(srv.URL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.Duplicates != time.Hour || len(c.Subjects) != 1 || c.Subjects[0] != "events.>" {
		t.Fatalf("created %+v", c)
	}
}

// TestJetStreamShortWindowWarns: a duplicate window shorter than what the
// spool may resend is warned about at start.
func TestJetStreamShortWindowWarns(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "SHORT", 1, 5*time.Second, "events.>")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	s := newJS(t, dir, sp, []string{srv.URL()}, nil)
	defer s.Close(context.Background())
	if !s.WindowWarned() {
		t.Fatal("no warning for a 5s duplicate window")
	}
	createStream(t, srv.URL(), "LONG", 1, time.Hour, "other.>")
	s2 := newJS(t, dir+"2", sp, []string{srv.URL()}, func(c *JetStreamConfig) { c.Subject = "other.{stream}" })
	defer s2.Close(context.Background())
	if s2.WindowWarned() {
		t.Fatal("warned about a 1h window")
	}
	// The spool holds events from two hours ago: 1h is short for them.
	s3 := newJS(t, dir+"3", sp, []string{srv.URL()}, func(c *JetStreamConfig) {
		c.Subject = "other.{stream}"
		c.OldestUnacked = time.Now().Add(-2 * time.Hour)
	})
	defer s3.Close(context.Background())
	if !s3.WindowWarned() {
		t.Fatal("no warning for events older than the window")
	}
}

// TestJetStreamRefusedCredentials: a server that refuses the credentials
// stops the start with what to check.
func TestJetStreamRefusedCredentials(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{Extra: "authorization { user: relay, password: right }\n"})
	dir := t.TempDir()
	id, _ := SpoolID(dir)
	_, err := NewJetStream(JetStreamConfig{Name: "x", Servers: []string{srv.URL()}, Subject: "events.{stream}", SpoolID: id,
		Auth: NATSAuth{User: "relay", Password: "wrong"}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "check creds") {
		t.Fatalf("err %v", err)
	}
}

// TestJetStreamServerLate: no server at start: the output starts, events
// wait in the spool; when the server comes, the stream is checked and
// every event is delivered once.
func TestJetStreamServerLate(t *testing.T) {
	testpeer.Need(t, "nats-server", testpeer.NATSInstall)
	port := testpeer.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	s := newJS(t, dir, sp, []string{url}, func(c *JetStreamConfig) {
		c.StartTimeout = 200 * time.Millisecond
		c.Create = &StreamSpec{Name: "EVENTS", Replicas: 1}
	})
	appendN(t, sp, 0, 2000)
	d := startDrain(sp, s)
	time.Sleep(500 * time.Millisecond)
	if sp.Stats().Records != 2000 {
		t.Fatalf("spool %+v", sp.Stats())
	}
	srv := startNATSOnPort(t, port)
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	s.Close(context.Background())
	counts, _ := streamCount(t, srv.URL(), "EVENTS")
	if missing, dups, strays := tally(counts, 0, 2000); missing+dups+strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
	}
}

// startNATSOnPort starts a JetStream server on a given port.
func startNATSOnPort(t *testing.T, port int) *testpeer.NATS {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "n.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\njetstream {store_dir: %q}\n", port, dir)), 0o600)
	return testpeer.StartNATSConf(t, conf, port)
}

// TestJetStreamStreamDeleted: the stream is deleted while events flow:
// publishes fail as no_stream (counted), the spool keeps the events
// (backpressure, nothing acked), and once the stream is back every event
// is delivered; with create_stream the output makes it again itself.
func TestJetStreamStreamDeleted(t *testing.T) {
	for _, recreate := range []bool{false, true} {
		t.Run(fmt.Sprintf("create_stream=%v", recreate), func(t *testing.T) {
			srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
			createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
			dir := t.TempDir()
			sp := openSpool(t, dir)
			defer sp.Close()
			s := newJS(t, dir, sp, []string{srv.URL()}, func(c *JetStreamConfig) {
				if recreate {
					c.Create = &StreamSpec{Name: "EVENTS", Replicas: 1, Duplicates: time.Hour}
				}
			})
			appendN(t, sp, 0, 1000)
			d := startDrain(sp, s)
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", sp.Stats()) }, func() bool { return sp.Stats().Records == 0 })
			nc, _ := nats.Connect(srv.URL())
			defer nc.Close()
			js, _ := jetstream.New(nc)
			if err := js.DeleteStream(context.Background(), "EVENTS"); err != nil {
				t.Fatal(err)
			}
			appendN(t, sp, 1000, 1000)
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return s.Stats().Failed[CauseNoStream] > 0 })
			if !recreate {
				time.Sleep(time.Second)
				if r := sp.Stats().Records; r != 1000 {
					t.Fatalf("spool holds %d, want the 1000 with no stream", r)
				}
				createStream(t, srv.URL(), "EVENTS", 1, time.Hour, "events.>")
			}
			eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
			d.stop()
			s.Close(context.Background())
			counts, _ := streamCount(t, srv.URL(), "EVENTS")
			if missing, dups, strays := tally(counts, 1000, 1000); missing+dups+strays > 0 {
				t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
			}
		})
	}
}

// TestJetStreamSubjectNotTaken: a subject no stream takes (the stream
// takes events.click only): those events are refused as no_stream,
// counted, kept; the others flow.
func TestJetStreamSubjectNotTaken(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	createStream(t, srv.URL(), "CLICKS", 1, time.Hour, "events.click")
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	s := newJS(t, dir, sp, []string{srv.URL()}, nil)
	appendN(t, sp, 0, 200) // 100 click, 100 view
	d := startDrain(sp, s)
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool {
		return s.Stats().Confirmed == 100 && s.Stats().Failed[CauseNoStream] >= 100
	})
	if r := sp.Stats().Records; r != 100 {
		t.Fatalf("spool holds %d, want the 100 views", r)
	}
	createStream(t, srv.URL(), "VIEWS", 1, time.Hour, "events.view")
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
	d.stop()
	s.Close(context.Background())
}
