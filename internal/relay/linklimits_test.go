package relay

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestLinkInputStreamLimits: a link input's connection limits come from
// its config like a syslog or RELP input's: a connection that sends
// nothing is closed at first_frame_timeout (200ms here, not listen's 10s
// default the link input used whatever the config said) and counted in
// relay_input_connections_closed_total.
func TestLinkInputStreamLimits(t *testing.T) {
	dir := t.TempDir()
	r := startRelay(t, fmt.Sprintf(`
inputs:
  - name: from-dc1
    type: link
    bind: [tcp://127.0.0.1:0]
    state_dir: %s/state
    first_frame_timeout: 200ms
outputs:
  - {name: o, socket: pub, bind: "tcp://127.0.0.1:0"}
http:
  listen: ""
`, dir))
	c, err := net.Dial("tcp", inputAddr(t, r, "from-dc1", "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	took := time.Since(start)
	if err == nil || took > 3*time.Second {
		t.Fatalf("a silent connection to the link input: %v after %v; want it closed at first_frame_timeout (200ms)", err, took)
	}
	if got := metric(t, r, "relay_input_connections_closed_total", "input=from-dc1", "reason=first_frame_timeout"); got != 1 {
		t.Errorf("relay_input_connections_closed_total{reason=first_frame_timeout} = %v, want 1", got)
	}
}
