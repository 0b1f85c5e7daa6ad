package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// TestCurvePubSource: tap reads a relay PUB that is a CURVE server, given
// its public certificate (or Z85 key) and our secret certificate; without
// --curve-key it draws a key pair, which only allow_any admits.
func TestCurvePubSource(t *testing.T) {
	dir := t.TempDir()
	server, _ := zmq.NewCurveKeyPair()
	me, _ := zmq.NewCurveKeyPair()
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "relay.key"), server, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "me.key"), me, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		allow zmq.CurveAuthorizer
		args  []string
	}{
		{"certificates", zmq.CurveKeySet{me.Public: {}}, []string{"--curve-server-key", filepath.Join(dir, "relay.key"), "--curve-key", filepath.Join(dir, "me.key_secret")}},
		{"z85 server key", zmq.CurveKeySet{me.Public: {}}, []string{"--curve-server-key", server.Public.Z85(), "--curve-key", filepath.Join(dir, "me.key")}},
		{"drawn key, allow_any", zmq.CurveAllowAny, []string{"--curve-server-key", server.Public.Z85()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pub := zmq.NewPub(zmq.Options{Security: zmq.CurveServer(server, c.allow)})
			defer pub.Close()
			if err := pub.Listen("tcp://127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			src := "tcp://" + pub.Addrs()[0].String()
			var stdout, stderr bytes.Buffer
			done := make(chan int)
			args := append([]string{src, "--limit", "3", "--format", "json", "--stream", "click"}, c.args...)
			go func() { done <- Main(context.Background(), args, &stdout, &stderr) }()
			deadline := time.After(20 * time.Second)
			for i := 0; ; i++ {
				select {
				case code := <-done:
					if code != 0 {
						t.Fatalf("exit %d: %s", code, stderr.String())
					}
					lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
					var ev map[string]any
					if len(lines) != 3 || json.Unmarshal([]byte(lines[0]), &ev) != nil || ev["stream"] != "click" {
						t.Fatalf("stdout %q", stdout.String())
					}
					// Without --curve-key, stderr says why a relay that
					// lists its clients would refuse the tap, and what to pass.
					drawn := !strings.Contains(strings.Join(c.args, " "), "--curve-key")
					if said := strings.Contains(stderr.String(), "no --curve-key: using a key pair drawn for this run"); said != drawn {
						t.Fatalf("drawn key %v, notice on stderr %v: %q", drawn, said, stderr.String())
					}
					return
				case <-deadline:
					t.Fatalf("tap did not finish: %s; server stats %+v", stderr.String(), pub.Stats())
				default:
				}
				pub.Send(zmq.Msg{[]byte("click"), []byte(fmt.Sprintf("<14>1 2026-11-22T05:00:00Z h click - - - n=%d", i))})
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	code := Main(context.Background(), []string{"tcp://127.0.0.1:1", "--curve-key", "x"}, &bytes.Buffer{}, &bytes.Buffer{})
	if code != ExitUsage {
		t.Fatalf("--curve-key alone: exit %d, want %d", code, ExitUsage)
	}
}
