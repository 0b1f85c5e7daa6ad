package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// buildRelay builds the relay binary for the relay-mode tests.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relay")
	if out, err := exec.Command("go", "build", "-o", bin, "../../relay").CombinedOutput(); err != nil {
		t.Fatalf("go build relay: %v\n%s", err, out)
	}
	return bin
}

// TestRelayModeThroughRsyslog: rsyslogd → relay (acknowledged PUSH) →
// ackworker.py workers → sink → acks back to the relay, every event once;
// then the same with Go workers and the plain PUSH baseline.
func TestRelayModeThroughRsyslog(t *testing.T) {
	testpeer.NeedPyzmq(t)
	rsyslogd := testpeer.NeedRsyslogd(t, "apt-get install rsyslog")
	relay := buildRelay(t)
	script, _ := filepath.Abs("ackworker.py")
	for _, p := range []RelayParams{
		{Batch: 100, Window: 4, Rsyslogd: rsyslogd, Python: testpeer.Python, Script: script},
		{Batch: 10, Window: 1},
		{Batch: 100, Plain: true},
	} {
		p.Relay, p.Count, p.Workers, p.Size = relay, 20_000, 3, 64
		t.Run(fmt.Sprintf("batch=%d/window=%d/rsyslog=%v/py=%v/plain=%v", p.Batch, p.Window, p.Rsyslogd != "", p.Python != "", p.Plain), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r, err := RunRelay(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Stalled || r.Received != p.Count || r.Duplicates != 0 {
				t.Fatalf("%+v: want %d events once each", r, p.Count)
			}
		})
	}
}

// TestPythonSinkAcks: Go pass-through workers (ackworker without -ack)
// and ackworker.py as the sink, which prints each event once and acks
// every batch back to the relay.
func TestPythonSinkAcks(t *testing.T) {
	testpeer.NeedPyzmq(t)
	relay := buildRelay(t)
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	in, data, ack, httpPort, sinkPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	dir := t.TempDir()
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte(relayConfig(RelayParams{Batch: 50, Window: 8, Timeout: 10 * time.Second}, in, data, ack, httpPort)), 0o600)
	rp, err := startProc(dir, "relay", relay, "-c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.stop()
	sink := exec.Command(testpeer.Python, "-u", "ackworker.py", "sink", "--in", fmt.Sprintf("tcp://*:%d", sinkPort),
		"--ack", fmt.Sprintf("tcp://127.0.0.1:%d", ack), "--print")
	stdout, _ := sink.StdoutPipe()
	sink.Stderr = os.Stderr
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sink.Process.Kill(); sink.Wait() }()
	var mu sync.Mutex
	lines := map[string]int{}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "READY" {
				continue
			}
			mu.Lock()
			lines[sc.Text()]++
			mu.Unlock()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ackWorkerMain(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", data), fmt.Sprintf("tcp://127.0.0.1:%d", sinkPort), "", "", false, os.Stdout, nil)
		}()
	}
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort)
	waitFor(t, "2 workers", func() bool { return metricAtLeast(metrics, `relay_output_peers{output="workers"}`, 2) })
	const n = 10_000
	if err := feed(ctx, in, n, 64); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event acked by the Python sink", func() bool {
		return metricAtLeast(metrics, `relay_output_ack_events_acked_total{output="workers"}`, n)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != n {
		t.Fatalf("the sink printed %d distinct events, want %d", len(lines), n)
	}
	for l, c := range lines {
		if c != 1 || !strings.HasPrefix(l, "<13>1 ") {
			t.Fatalf("%q printed %d times", l, c)
		}
	}
}
