package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/relp"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestRELPInputStreamLimits (#16): a relp input's first_frame_timeout,
// frame_timeout and idle_timeout from the config reach its sessions, as
// TestLinkInputStreamLimits checks for the link input. Each is far below
// listen's default (10 s, 30 s, 5 min), so a session run on defaults
// fails the test. A connection that sends nothing is closed at
// first_frame_timeout; a session that opens and then trickles a syslog
// frame a byte at a time (slowloris) at frame_timeout; a session that
// opens and then sends nothing at idle_timeout. Each close is counted once
// under its reason and under no other.
func TestRELPInputStreamLimits(t *testing.T) {
	const (
		firstFrame = 300 * time.Millisecond
		frame      = 500 * time.Millisecond
		idle       = 1500 * time.Millisecond // must be above ack_timeout
	)
	r := relpRelay(t, "tcp://127.0.0.1:0", fmt.Sprintf(`    ack_timeout: 1s
    first_frame_timeout: %v
    frame_timeout: %v
    idle_timeout: %v`, firstFrame, frame, idle))
	addr := inputAddr(t, r, "relp", "tcp")
	closed := func(reason string) float64 {
		return metric(t, r, "relay_input_connections_closed_total", "input=relp", "reason="+reason)
	}
	reasons := []string{"first_frame_timeout", "frame_timeout", "idle_timeout"}
	want := map[string]float64{}
	counted := func(reason string) {
		t.Helper()
		want[reason]++
		testpeer.Eventually(t, 5*time.Second, func() string {
			var got []string
			for _, r := range reasons {
				got = append(got, fmt.Sprintf("%s=%v", r, closed(r)))
			}
			return fmt.Sprintf("closed counts %v, want %v", got, want)
		}, func() bool {
			for _, r := range reasons {
				if closed(r) != want[r] {
					return false
				}
			}
			return true
		})
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// open starts a RELP session as librelp's client does and reads the
	// relay's answer.
	open := func(c net.Conn) *relp.Reader {
		t.Helper()
		offers := "relp_version=0\nrelp_software=gaps-test,1,none\ncommands=syslog"
		if _, err := c.Write(relp.AppendFrame(nil, 1, relp.CmdOpen, []byte(offers))); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		rd := relp.NewReader(c, 1<<20)
		f, err := rd.Next()
		if err != nil || f.Command != relp.CmdRsp || f.Txnr != 1 || !strings.HasPrefix(string(f.Data), "200 ") {
			t.Fatalf("open answered %+v (%q), %v", f, f.Data, err)
		}
		return rd
	}
	// closedWithin reads (discarding a serverclose frame) until the relay
	// ends the connection, and returns how long that took from start.
	closedWithin := func(c net.Conn, start time.Time, limit time.Duration, what string) time.Duration {
		t.Helper()
		_ = c.SetReadDeadline(start.Add(limit))
		_, err := io.Copy(io.Discard, c)
		took := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: still open after %v", what, took)
		}
		return took
	}

	// An idle flood: connect, send nothing.
	c := dial()
	start := time.Now()
	took := closedWithin(c, start, 5*time.Second, "a silent connection")
	if took < firstFrame-50*time.Millisecond {
		t.Errorf("a silent connection closed after %v, before first_frame_timeout %v", took, firstFrame)
	}
	counted("first_frame_timeout")

	// Slowloris: a session opened, then a syslog frame a byte every 50 ms.
	c = dial()
	open(c)
	partial := relp.AppendFrame(nil, 2, relp.CmdSyslog, []byte("<14>1 2026-12-07T12:00:00Z h slow - - - "+strings.Repeat("x", 200)))
	start = time.Now()
	wrote := make(chan struct{})
	go func(c net.Conn) {
		defer close(wrote)
		for i := 0; i < len(partial)-1; i++ {
			if _, err := c.Write(partial[i : i+1]); err != nil {
				return // closed by the relay
			}
			time.Sleep(50 * time.Millisecond)
		}
	}(c)
	took = closedWithin(c, start, 5*time.Second, "a slowloris frame")
	<-wrote
	if took < frame-50*time.Millisecond {
		t.Errorf("the slowloris session closed after %v, before frame_timeout %v", took, frame)
	}
	counted("frame_timeout")

	// An opened session that then sends nothing.
	c = dial()
	open(c)
	start = time.Now()
	took = closedWithin(c, start, 10*time.Second, "an idle session")
	if took < idle-100*time.Millisecond {
		t.Errorf("the idle session closed after %v, before idle_timeout %v", took, idle)
	}
	counted("idle_timeout")
	t.Logf("closed: silent at first_frame_timeout, slowloris at frame_timeout, idle at idle_timeout (last after %v)", took)
}
