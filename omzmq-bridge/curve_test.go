package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// TestBridgeCurveClient: with --curve-key and --curve-server-key the bridge
// is a CURVE client of a relay-style PULL (a CURVE server admitting its
// key); every line arrives. A wrong combination of flags is a usage error.
func TestBridgeCurveClient(t *testing.T) {
	dir := t.TempDir()
	server, err := zmq.NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	client, err := zmq.NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "relay.key"), server, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "bridge.key"), client, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	pull := zmq.NewPull(zmq.Options{Security: zmq.CurveServer(server, zmq.CurveKeySet{client.Public: {}})})
	defer pull.Close()
	if err := pull.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ep := "tcp://" + pull.Addrs()[0].String()
	for _, serverKey := range []string{filepath.Join(dir, "relay.key"), server.Public.Z85()} {
		b := startBridge(t, "--relay", ep, "--topic-from-field", "--confirm", "on",
			"--curve-key", filepath.Join(dir, "bridge.key"), "--curve-server-key", serverKey)
		if st := b.status(t); st != "OK" {
			t.Fatalf("ready status %q: %s", st, b.stderrString())
		}
		b.send(t, "impression encrypted event")
		if st := b.status(t); st != "OK" {
			t.Fatalf("status %q: %s", st, b.stderrString())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := pull.Recv(ctx)
		cancel()
		if err != nil || len(m) != 2 || string(m[0]) != "impression" || string(m[1]) != "encrypted event" {
			t.Fatalf("got %q, %v", m, err)
		}
		b.stdin.Close()
		b.cmd.Wait()
	}
	if st := pull.Stats(); st.Curve[zmq.CurveUnknownKey] != 0 || st.Connects != 2 {
		t.Fatalf("stats %+v", st)
	}
	for _, bad := range [][]string{
		{"--curve-key", filepath.Join(dir, "bridge.key"), "--curve-server-key", server.Public.Z85(), "--curve-allow-any"},
		{"--curve-key", filepath.Join(dir, "bridge.key")}, // a server admitting nobody
		{"--curve-server-key", filepath.Join(dir, "missing.key")},
	} {
		out, err := exec.Command(bridgeBin, append([]string{"--bind", "tcp://127.0.0.1:0"}, bad...)...).CombinedOutput()
		if exitCode(err) != exitUsage || !strings.Contains(string(out), "--curve") {
			t.Errorf("%q: exit %d, want %d and a --curve message:\n%s", bad, exitCode(err), exitUsage, out)
		}
	}
}
