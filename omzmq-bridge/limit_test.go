package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/relay"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// startRelayZMQ runs a relay with its defaults for a ZeroMQ PULL input
// (max_message_size 1 MiB) and a PUSH output, and returns the input's
// endpoint and a PULL reading the output.
func startRelayZMQ(t *testing.T) (*relay.Relay, string, *zmq.Pull) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "relay.yaml")
	os.WriteFile(file, []byte(`
inputs:
  - name: bridge
    type: zmq
    bind: tcp://127.0.0.1:0
outputs:
  - name: out
    socket: push
    bind: tcp://127.0.0.1:0
    hwm: 100000
http: {listen: ""}
`), 0o600)
	cfg, err := config.Load(file)
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
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	pull := zmq.NewPull(zmq.Options{MaxMsgSize: 8 << 20})
	t.Cleanup(func() { pull.Close() })
	if err := pull.Dial("tcp://" + r.OutputAddrs("out")[0].String()); err != nil {
		t.Fatal(err)
	}
	return r, "tcp://" + r.Inputs()["bridge"].Addrs()[0].String(), pull
}

// The review's attack: the bridge took lines up to 16 MiB, the relay's
// ZeroMQ input refuses messages over 1 MiB and resets the connection; a
// 2 MiB line was answered OK to rsyslog and lost, and the next line got
// ERROR. Now --max-line defaults to the relay's limit, counted the way
// the relay counts it (a topic frame costs its bytes and 32 more), and a
// line over it is answered with an error before anything is sent: the
// relay receives every other line, on one connection.
func TestOverLimitLineAnsweredWithError(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		name  string
		args  []string
		exact func(n int) string // a line whose message is exactly n bytes
	}{
		{"one frame", nil, func(n int) string { return strings.Repeat("a", n) }},
		{"topic from field", []string{"--topic-from-field"}, func(n int) string {
			return "click " + strings.Repeat("b", n-len("click")-zmq.FrameOverhead)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ep, pull := startRelayZMQ(t)
			b := startBridge(t, append([]string{"--relay", ep, "--confirm", "on", "--transactions", "off"}, tc.args...)...)
			if st := b.status(t); st != "OK" {
				t.Fatalf("ready status %q", st)
			}
			lines := []struct {
				line string
				ok   bool
			}{
				{"click first", true},
				{"click " + strings.Repeat("x", 2<<20), false}, // the review's 2 MiB line
				{"click second", true},
				{tc.exact(limit), true},        // exactly at the relay's limit
				{tc.exact(limit) + "y", false}, // one byte over
				{"click third", true},
			}
			var want []string
			for i, l := range lines {
				b.send(t, l.line)
				st := b.status(t)
				switch {
				case l.ok && st != "OK":
					t.Fatalf("line %d (%d bytes): status %.200q, want OK", i, len(l.line), st)
				case !l.ok && !strings.HasPrefix(st, "ERROR "):
					t.Fatalf("line %d (%d bytes): status %.200q, want an ERROR line", i, len(l.line), st)
				case !l.ok:
					t.Logf("measured: a %d-byte line is answered %.160q", len(l.line), st)
				}
				if l.ok {
					payload := l.line
					if tc.args != nil {
						payload = l.line[strings.IndexByte(l.line, ' ')+1:]
					}
					want = append(want, payload)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i, w := range want {
				m, err := pull.Recv(ctx)
				if err != nil {
					t.Fatalf("the relay passed on %d of %d lines: %v", i, len(want), err)
				}
				got := string(m[0])
				if got != w && !strings.HasSuffix(w, got) {
					t.Fatalf("message %d: %.60q…(%d bytes), want %.60q…(%d bytes)", i, got, len(got), w, len(w))
				}
			}
			st := r.Inputs()["bridge"].Stats()
			if st.Oversize != 0 || st.ConnectionsTotal != 1 {
				t.Errorf("relay input: oversize %d, connections %d; want 0 and 1 (no reset)", st.Oversize, st.ConnectionsTotal)
			}
			if !strings.Contains(b.stderrString(), "message larger than --max-line") && !strings.Contains(b.stderrString(), "discarding a line longer than the maximum") {
				t.Errorf("the bridge did not log the refusal:\n%s", b.stderrString())
			}
			b.stdin.Close()
			if err := b.cmd.Wait(); err != nil {
				t.Fatalf("exit: %v", err)
			}
			if !strings.Contains(b.stderrString(), "oversize=2") {
				t.Errorf("exit stats do not count 2 oversize lines:\n%s", b.stderrString())
			}
		})
	}
}

// TestFitsAgreesWithMsg: fits refuses exactly the lines whose message, as
// msg frames it, is over --max-line by zmq.MsgSize, in every framing.
func TestFitsAgreesWithMsg(t *testing.T) {
	const limit = 100
	for _, snd := range []*sender{
		{maxMsg: limit},
		{maxMsg: limit, topic: []byte("web")},
		{maxMsg: limit, topicFromField: true},
	} {
		for n := limit - 40; n <= limit+2; n++ {
			for _, line := range []string{strings.Repeat("a", n), "ab " + strings.Repeat("c", max(n-3, 0))} {
				want := zmq.MsgSize(snd.msg([]byte(line))) <= limit
				if got := snd.fits([]byte(line)) == nil; got != want {
					t.Errorf("topic %q fromField %v, line of %d bytes: fits %v, msg is %d bytes (limit %d)",
						snd.topic, snd.topicFromField, len(line), got, zmq.MsgSize(snd.msg([]byte(line))), limit)
				}
			}
		}
	}
}
