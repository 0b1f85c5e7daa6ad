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

// TestReplayNATSWindow: the replay's start options choose exactly the
// messages they name. Messages older than the --since window exist in the
// stream (published, then 3 s pass), so a --since that replayed from the
// start would show them; --from-seq and --last must give exactly the
// stream sequences they name, in order.
func TestReplayNATSWindow(t *testing.T) {
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
	// Published one by one, acks awaited: event i is stream sequence i+1.
	publish := func(first, n int) {
		for i := first; i < first+n; i++ {
			m := &nats.Msg{Subject: "events.click", Header: nats.Header{broker.HeaderStream: {"click"}},
				Data: fmt.Appendf(nil, "<14>1 2026-01-01T00:00:00Z web %s - - - %s", "click", testpeer.Seq(i))}
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 40)
	time.Sleep(3 * time.Second)
	publish(40, 20)

	run := func(args ...string) []int {
		t.Helper()
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if code := Main(ctx, append([]string{srv.URL() + "/EVENTS", "--format", "raw"}, args...), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		var seqs []int
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l != "" {
				seqs = append(seqs, testpeer.SeqOf(l))
			}
		}
		return seqs
	}
	want := func(args []string, first, n int) {
		t.Helper()
		got := run(args...)
		ok := len(got) == n
		for i := 0; ok && i < n; i++ {
			ok = got[i] == first+i
		}
		if !ok {
			t.Fatalf("%v gave %d events %v, want seq %d … %d", args, len(got), got, first, first+n-1)
		}
	}
	// The 20 newer events were published well inside the last 2 s, the 40
	// older ones 3 s or more before.
	want([]string{"--since", "2s"}, 40, 20)
	want([]string{"--since", "1h"}, 0, 60)
	want([]string{"--from-seq", "38"}, 37, 23)
	want([]string{"--from-seq", "60"}, 59, 1)
	want([]string{"--last", "7"}, 53, 7)
	want([]string{"--last", "100"}, 0, 60)
}
