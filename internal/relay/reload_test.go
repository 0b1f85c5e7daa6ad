package relay

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// twoOutputs is a config whose outputs a and b take the given streams.
func twoOutputs(t testing.TB, listen string, pa, pb int, aStreams, bStreams string, hwm ...int) *config.Config {
	h := 1000
	if len(hwm) > 0 {
		h = hwm[0]
	}
	t.Helper()
	yaml := fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: %s
stream: {from: app-name, default: unknown}
outputs:
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
    streams: %s
    hwm: %d
  - name: b
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
    streams: %s
    hwm: %d
drain_timeout: 10s
http:
  listen: ""
`, listen, pa, aStreams, h, pb, bStreams, h)
	file := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestReloadUnderLoad moves a stream back and forth between two PUSH
// outputs while a sender keeps sending on one connection: every event
// arrives exactly once, the connection is never dropped, and events sent
// after each reload go where the new route says.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("real libzmq peers")
	}
	// Fixed ports: a reloaded output rebinds its configured endpoint, and
	// the workers reconnect to the same address.
	ports := testpeer.FreePorts(t, 3)
	pa, pb, pin := ports[0], ports[1], ports[2]
	listen := fmt.Sprintf("tcp://127.0.0.1:%d", pin)
	r, err := New(twoOutputs(t, listen, pa, pb, "[click]", "[impression]"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, r)
	wa := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", pa))
	wb := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", pb))
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("both workers"), func() bool {
		return metric(t, r, "relay_output_peers", "output=a") == 1 && metric(t, r, "relay_output_peers", "output=b") == 1
	})
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", pin))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next := 0
	send := func(k int) {
		t.Helper()
		var b bytes.Buffer
		for i := next; i < next+k; i++ {
			m := fmt.Sprintf("<14>1 2026-11-22T05:00:00Z h click - - - %s", testpeer.Seq(i))
			fmt.Fprintf(&b, "%d %s", len(m), m)
		}
		next += k
		if _, err := c.Write(b.Bytes()); err != nil {
			t.Fatalf("the sender's connection broke: %v", err)
		}
	}

	// Reload while sending: click goes to a, b, a, b, a.
	routes := [][2]string{{"[click]", "[impression]"}, {"[other]", "[click]"}}
	for round := 1; round <= 4; round++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ro := routes[round%2]
			// A new hwm each round: the sockets are replaced (gated and
			// rebound) as well as the streams moved.
			if err := r.Reload(twoOutputs(t, listen, pa, pb, ro[0], ro[1], 1000+round)); err != nil {
				t.Errorf("reload %d: %v", round, err)
			}
		}()
		for i := 0; i < 10; i++ {
			send(500)
		}
		<-done
		// After the reload returned, a marked batch must follow the new route.
		marker := next
		send(1000)
		to, other := wb, wa
		if round%2 == 0 {
			to, other = wa, wb
		}
		testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("round %d: seq %d at the new route's worker", round, marker) },
			func() bool { return hasSeq(to, marker) && hasSeq(to, marker+999) })
		if hasSeq(other, marker) || hasSeq(other, marker+999) {
			t.Errorf("round %d: events sent after the reload reached the old route's worker", round)
		}
	}
	n := next
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%d events, have %d", n, wa.Count()+wb.Count()) },
		func() bool { return wa.Count()+wb.Count() >= n })
	checkExactlyOnce(t, n, wa, wb)
	// The outputs were replaced four times; their counters carry over.
	if got := metric(t, r, "relay_output_sent_total", "output=a") + metric(t, r, "relay_output_sent_total", "output=b"); got != float64(n) {
		t.Errorf("relay_output_sent_total a+b = %v, want %d: counters lost across reloads", got, n)
	}
	if got := metric(t, r, "relay_input_connections_total", "input=syslog"); got != 1 {
		t.Errorf("connections_total = %v: the sender's connection was dropped by a reload", got)
	}
	if got := metric(t, r, "relay_config_last_reload_successful"); got != 1 {
		t.Errorf("last_reload_successful = %v", got)
	}
}

func hasSeq(p *testpeer.Peer, seq int) bool {
	want := testpeer.Seq(seq)
	for _, m := range p.Messages() {
		if bytes.Contains([]byte(m[len(m)-1]), []byte(want)) {
			return true
		}
	}
	return false
}

// TestReloadRefused: a config the running relay cannot take (a changed
// http section) is refused and the old routing keeps working.
func TestReloadRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("real libzmq peers")
	}
	ports := testpeer.FreePorts(t, 2) // fixed: see TestReloadUnderLoad
	pa, pb := ports[0], ports[1]
	cfg := twoOutputs(t, "tcp://127.0.0.1:0", pa, pb, "[click]", "[impression]")
	r, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, r)
	wa := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", pa))
	bad := twoOutputs(t, "tcp://127.0.0.1:0", pa, pb, "[impression]", "[click]")
	bad.HTTP.Listen = "127.0.0.1:1"
	if err := r.Reload(bad); err == nil {
		t.Fatal("a reload changing http.listen was accepted")
	}
	if got := metric(t, r, "relay_config_last_reload_successful"); got != 0 {
		t.Errorf("relay_config_last_reload_successful = %v after a refused reload, want 0", got)
	}
	addr := inputAddr(t, r, "syslog", "tcp")
	sendTCP(t, addr, true, []string{"<14>1 - h click - - - " + testpeer.Seq(0)})
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the click at a, the old route"), func() bool { return wa.Count() == 1 })
	if !r.Ready() {
		t.Error("not ready after a refused reload")
	}
}

// A reload that only moves streams between outputs keeps their sockets:
// workers and subscribers stay connected.
func TestReloadStreamsOnlyKeepsSockets(t *testing.T) {
	ports := testpeer.FreePorts(t, 2)
	r, err := New(twoOutputs(t, "tcp://127.0.0.1:0", ports[0], ports[1], "[click]", "[impression]"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, r)
	a, b := r.outputs["a"].out, r.outputs["b"].out
	if err := r.Reload(twoOutputs(t, "tcp://127.0.0.1:0", ports[0], ports[1], "[other]", "[click]")); err != nil {
		t.Fatal(err)
	}
	if r.outputs["a"].out != a || r.outputs["b"].out != b {
		t.Fatal("a streams-only reload replaced the outputs' sockets")
	}
	if got := r.gen.Load().table.Match("click"); len(got) != 1 || r.gen.Load().table.Targets()[got[0]].Name != "b" {
		t.Fatalf("click routes to %v after the reload, want b", got)
	}
}
