package relay

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"
	"github.com/rsyslog-zmq/relay/internal/relp"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// TestRELPWindowFullAndErrorAnswers reads two RELP series at the relay's
// /metrics: relay_relp_window_full_seconds_total grows while a client's
// window is full of frames the relay cannot answer yet (its acknowledged
// PUSH output's worker got them and has not acknowledged them), and
// relay_relp_error_answers_total counts the 500 answer to a frame that
// cannot be parsed.
//
// A plain PUSH output with no worker would not do for the first: its
// write blocks the session's reader inside the hand-over, so the session
// never waits on the client and counts no window-full time. The series
// counts a wait when the session's read returns: it shows once the client
// sends again (or the window opens), not while the wait lasts.
func TestRELPWindowFullAndErrorAnswers(t *testing.T) {
	ackEP := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	r := startRelay(t, fmt.Sprintf(`
inputs:
  - {name: relp, type: relp, listen: "tcp://127.0.0.1:0"}
outputs:
  - name: workers
    socket: push
    bind: tcp://127.0.0.1:0
    ack: {bind: %q, batch: 100, window: 16, timeout: 30s}
http: {listen: ""}
drain_timeout: 5s
`, ackEP))
	w := zmq.NewPull(zmq.Options{})
	defer w.Close()
	w.Dial(outputEndpoint(t, r, "workers"))
	acks := zmq.NewPush(zmq.Options{})
	defer acks.Close()
	acks.Dial(ackEP)
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the worker connected"), func() bool {
		return metric(t, r, "relay_output_peers", "output=workers") == 1
	})
	addr := inputAddr(t, r, "relp", "tcp")
	open := relp.AppendFrame(nil, 1, relp.CmdOpen, []byte("relp_version=0\nrelp_software=test\ncommands=syslog"))

	// A client with a window of 16 frames sends them all; the worker
	// receives them and acknowledges nothing, so none can be answered.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const window = 16
	buf := append([]byte(nil), open...)
	for i := range window {
		buf = relp.AppendFrame(buf, 2+i, relp.CmdSyslog, []byte("<13>1 - h stalled - - - "+testpeer.Numbered(i)))
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	batches := map[[2]uint64]bool{}
	for got := 0; got < window; got++ {
		m, err := w.Recv(ctx)
		if err != nil {
			t.Fatalf("worker: %v after %d events", err, got)
		}
		h, err := ackpipe.ParseHeader(m[0])
		if err != nil {
			t.Fatal(err)
		}
		batches[[2]uint64{uint64(h.Stream), h.Seq}] = true
	}
	if wf := metric(t, r, "relay_relp_window_frames", "input=relp"); wf != window {
		t.Fatalf("%v frames unanswered, want the client's window %d", wf, window)
	}
	before := metric(t, r, "relay_relp_window_full_seconds_total", "input=relp")
	const stall = 500 * time.Millisecond
	time.Sleep(stall)
	// One more frame ends the session's wait, which is then counted.
	if _, err := c.Write(relp.AppendFrame(nil, 2+window, relp.CmdSyslog, []byte("<13>1 - h stalled - - - "+testpeer.Numbered(window)))); err != nil {
		t.Fatal(err)
	}
	var wf float64
	testpeer.Eventually(t, 10*time.Second, func() string {
		return fmt.Sprintf("the window-full wait counted: %v s (%v before the stall)", wf, before)
	}, func() bool {
		wf = metric(t, r, "relay_relp_window_full_seconds_total", "input=relp")
		return wf-before >= stall.Seconds()*0.8
	})
	if a := metric(t, r, "relay_relp_acked_total", "input=relp"); a != 0 {
		t.Errorf("%v frames answered before the worker acknowledged any", a)
	}

	// The worker acknowledges: every frame is answered, in order.
	m, err := w.Recv(ctx) // the 17th event
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ackpipe.ParseHeader(m[0])
	batches[[2]uint64{uint64(h.Stream), h.Seq}] = true
	for b := range batches {
		if err := acks.Send(ctx, zmq.Msg{ackpipe.AppendAck(nil, h.Stream, b[1])}); err != nil {
			t.Fatal(err)
		}
	}
	rd := relp.NewReader(c, 1<<20)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for want := 1; want <= window+2; want++ {
		f, err := rd.Next()
		if err != nil || f.Txnr != want || !strings.HasPrefix(string(f.Data), "200 OK") {
			t.Fatalf("answer %d: %d %s %q, %v", want, f.Txnr, f.Command, f.Data, err)
		}
	}

	// An unparsable frame (no LF trailer) on its own session: answered
	// 500, then serverclose, and counted.
	if e := metric(t, r, "relay_relp_error_answers_total", "input=relp"); e != 0 {
		t.Fatalf("relay_relp_error_answers_total %v before any bad frame", e)
	}
	got := badRELPClient(t, addr, string(open)+"2 syslog 3 abcd\n")
	if strings.Join(got, "|") != "1 rsp 200|2 rsp 500|0 serverclose " {
		t.Fatalf("answers %q", got)
	}
	e := metric(t, r, "relay_relp_error_answers_total", "input=relp")
	if e != 1 {
		t.Errorf("relay_relp_error_answers_total = %v after one unparsable frame, want 1", e)
	}
	t.Logf("window full %.3f s (%.3f before) after a %v stall with %d frames unanswered; error answers %v", wf, before, stall, window, e)
}
