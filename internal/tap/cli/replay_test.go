package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/broker"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestReplayNATS: `tap nats://HOST/STREAM` replays the last N messages,
// from a sequence or a time, with the tap's filters and formats, and ends
// at what the stream held when it started.
func TestReplayNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nats-server")
	}
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
	for i := 0; i < 100; i++ {
		stream := []string{"click", "view"}[i%2]
		m := &nats.Msg{Subject: "events." + stream, Header: nats.Header{broker.HeaderStream: {stream}},
			Data: fmt.Appendf(nil, "<14>1 2026-01-01T00:00:00Z web%d %s - - - %s", i%3, stream, testpeer.Seq(i))}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, []string, string) {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code := Main(ctx, args, &out, &errb)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if out.Len() == 0 {
			lines = nil
		}
		return code, lines, errb.String()
	}
	src := srv.URL() + "/EVENTS"
	if code, lines, e := run(src, "--last", "10", "--format", "raw"); code != 0 || len(lines) != 10 || testpeer.SeqOf(lines[9]) != 99 {
		t.Fatalf("--last 10: exit %d, %d lines, %s", code, len(lines), e)
	}
	if code, lines, e := run(src, "--from-seq", "51", "--format", "json"); code != 0 || len(lines) != 50 || !strings.Contains(lines[0], `"stream":"click"`) || !strings.Contains(lines[0], "seq:00000050") {
		t.Fatalf("--from-seq 51: exit %d, %d lines %q, %s", code, len(lines), lines[:1], e)
	}
	if code, lines, e := run(src, "--since", "1h", "--stream", "click", "--match", "hostname=web0", "--format", "raw"); code != 0 || len(lines) != 17 {
		t.Fatalf("--since 1h --stream click --match: exit %d, %d lines, %s", code, len(lines), e)
	}
	if code, lines, _ := run(src, "--since", "1h", "--limit", "5"); code != 0 || len(lines) != 5 {
		t.Fatalf("--limit 5: exit %d, %d lines", code, len(lines))
	}
	if code, _, e := run("tcp://127.0.0.1:1", "--since", "1h"); code != ExitUsage || !strings.Contains(e, "need a nats://") {
		t.Fatalf("--since on tcp://: exit %d %s", code, e)
	}
	if code, _, e := run(srv.URL()+"/NOPE", "--last", "1"); code == 0 || !strings.Contains(e, "stream NOPE does not exist") {
		t.Fatalf("missing stream: exit %d %s", code, e)
	}
}
