package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// The spooled acknowledged PUSH output (spool + ack) across kill -9 of the
// relay: the relay runs as a child process (the real binary), the workers
// and the acking sink of ackpush_test.go stay up while it dies and comes
// back on the same ports.

// buildRelayBinary builds the relay command for tests that kill it.
func buildRelayBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relay")
	if out, err := exec.Command("go", "build", "-o", bin, "../../relay").CombinedOutput(); err != nil {
		t.Fatalf("go build relay: %v\n%s", err, out)
	}
	return bin
}

// relayChild is the relay binary running as a child process.
type relayChild struct {
	cmd  *exec.Cmd
	out  *testpeer.SyncBuffer
	http int
	done chan struct{}
}

// startRelayChild runs bin -c conf and waits for its /healthz.
func startRelayChild(t *testing.T, bin, conf string, httpPort int) *relayChild {
	t.Helper()
	c := &relayChild{cmd: exec.Command(bin, "-c", conf), out: &testpeer.SyncBuffer{}, http: httpPort, done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("relay (pid %d) output:\n%s", c.cmd.Process.Pid, c.out.String())
		}
	})
	testpeer.Eventually(t, 30*time.Second, func() string { return "relay /healthz 200; output:\n" + c.out.String() }, func() bool {
		select {
		case <-c.done:
			t.Fatalf("relay exited:\n%s", c.out.String())
		default:
		}
		code, _ := c.get("/healthz")
		return code == http.StatusOK
	})
	return c
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *relayChild) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func (c *relayChild) get(path string) (int, string) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d%s", c.http, path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns a series of its /metrics, written as in the exposition
// format (`relay_spool_records{output="workers"}`), or -1 if absent.
func (c *relayChild) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, body := c.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("/metrics line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// spoolOpened is what the relay logged (JSON) when it opened a spool: the
// records it holds and how many of them had been sent before the restart
// without an acknowledgement (what it will deliver again).
type spoolOpened struct {
	Records           int64 `json:"records"`
	SentBeforeRestart int64 `json:"sent_before_restart"`
}

func (c *relayChild) spoolOpened(t *testing.T) spoolOpened {
	t.Helper()
	var so spoolOpened
	testpeer.Eventually(t, 10*time.Second, func() string { return "the spool opened line in:\n" + c.out.String() }, func() bool {
		for _, line := range strings.Split(c.out.String(), "\n") {
			if strings.Contains(line, `"msg":"spool opened"`) {
				if err := json.Unmarshal([]byte(line), &so); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				return true
			}
		}
		return false
	})
	return so
}

// TestSpooledAckPushKillRelay (issue #12, with a spool): 60,000 events
// spooled by a relay whose acknowledged PUSH output has a disk spool; then
// two pyzmq workers and a Go worker pass them to a sink that acknowledges
// each batch, and the relay is killed with SIGKILL three times while they
// flow, restarted at once on the same ports. The second kill comes with
// the sink holding its acks, so the window is full of batches the sink
// has and the relay does not know it has.
//
// Every event reaches the sink (0 lost). Duplicates come only from the
// restarts, and per restart they are at most what the spool counts as
// sent and unacknowledged (its "sent_before_restart", then
// relay_spool_redelivered_total), which is at most one window (batch ×
// window events); after the kill with the acks held, exactly one window.
// No batch is resent by timeout (60 s), so no duplicate has another cause.
// ACK_KILL_EVENTS and ACK_KILLS scale it.
func TestSpooledAckPushKillRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the relay binary and worker processes")
	}
	const batch, window = 100, 8
	n, kills := envPositive(t, "ACK_KILL_EVENTS", 60_000), envPositive(t, "ACK_KILLS", 3)
	const heldKill = 1 // which kill comes with the acks held
	goBin, bin := buildPipeline(t), buildRelayBinary(t)
	pp := testpeer.FreePorts(t, 4)
	inPort, dataPort, ackPort, httpPort := pp[0], pp[1], pp[2], pp[3]
	data, ackEP := fmt.Sprintf("tcp://127.0.0.1:%d", dataPort), fmt.Sprintf("tcp://127.0.0.1:%d", ackPort)
	dir := t.TempDir()
	conf := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
inputs:
  - {name: in, type: syslog, listen: "tcp://127.0.0.1:%d"}
outputs:
  - name: workers
    socket: push
    bind: %s
    spool: {dir: %s}
    ack: {bind: %q, batch: %d, window: %d, timeout: 60s}
http: {listen: "127.0.0.1:%d"}
log: {format: json}
drain_timeout: 1s
`, inPort, data, filepath.Join(dir, "spool"), ackEP, batch, window, httpPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := startRelayChild(t, bin, conf, httpPort)
	feedSyslog(t, fmt.Sprintf("127.0.0.1:%d", inPort), 0, n)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("every event in the spool"), func() bool {
		return relay.metric(t, `relay_spool_appended_total{output="workers"}`) == float64(n)
	})

	sink, sinkEP := startStreamSink(t, ackEP)
	for _, name := range []string{"py1", "py2", "go1"} {
		startWorker(t, goBin, name, data, sinkEP, "") // pass-through: the sink acks
	}
	type restart struct {
		opened         spoolOpened
		copiesAtKill   int
		distinctAtKill int
		held           bool
	}
	var restarts []restart
	for k := 0; k < kills; k++ {
		target := (k + 1) * n / (kills + 1)
		testpeer.Eventually(t, 60*time.Second, func() string {
			c, d, _ := sink.counts()
			return fmt.Sprintf("%d distinct events at the sink before kill %d; have %d copies of %d", target, k+1, c, d)
		}, func() bool { _, d, _ := sink.counts(); return d >= target })
		held := k == heldKill
		if held {
			// Hold the acks: the relay fills its window, and the sink gets
			// every batch of it: this run's copies at the sink are what
			// the relay saw acknowledged plus the whole window.
			sink.paused.Store(true)
			testpeer.Eventually(t, 30*time.Second, func() string {
				return fmt.Sprintf("the window full and all of it at the sink: this run's copies %d, acked %v, window full %v",
					sink.latestCopies(), relay.metric(t, `relay_output_ack_events_acked_total{output="workers"}`),
					relay.metric(t, `relay_output_ack_window_full{output="workers"}`))
			}, func() bool {
				return relay.metric(t, `relay_output_ack_window_full{output="workers"}`) == 1 &&
					float64(sink.latestCopies()) == relay.metric(t, `relay_output_ack_events_acked_total{output="workers"}`)+batch*window
			})
		}
		relay.kill()
		c, d, _ := sink.counts()
		relay = startRelayChild(t, bin, conf, httpPort)
		so := relay.spoolOpened(t)
		restarts = append(restarts, restart{opened: so, copiesAtKill: c, distinctAtKill: d, held: held})
		if so.Records == 0 {
			t.Fatalf("kill %d came after the spool was drained (%d of %d events at the sink): nothing was in flight", k+1, d, n)
		}
		sink.paused.Store(false)
	}
	testpeer.Eventually(t, 120*time.Second, func() string {
		c, d, _ := sink.counts()
		return fmt.Sprintf("all %d events at the sink and the spool empty: sink has %d copies of %d, spool holds %v",
			n, c, d, relay.metric(t, `relay_spool_records{output="workers"}`))
	}, func() bool {
		_, d, _ := sink.counts()
		return d == n && relay.metric(t, `relay_spool_records{output="workers"}`) == 0
	})
	time.Sleep(300 * time.Millisecond) // a straggler copy would show now
	copies, distinct, bad := sink.counts()
	if distinct != n || bad != 0 {
		t.Fatalf("sink: %d of %d events (%d bad)", distinct, n, bad)
	}

	// Attribute every copy to the relay run that sent it (each run is a new
	// sender stream in the ackpipe header), in the order the runs began:
	// run j's duplicates are its copies of events an earlier run delivered.
	recs, order := sink.copies()
	runOf := map[uint32]int{}
	for i, st := range order {
		runOf[st] = i
	}
	firstRun := map[int]int{}
	for _, rec := range recs {
		r := runOf[rec.stream]
		if f, ok := firstRun[rec.id]; !ok || r < f {
			firstRun[rec.id] = r
		}
	}
	perRun := make([]int, len(order))
	inRun := 0
	seenIn := map[[2]int]bool{}
	for _, rec := range recs {
		r := runOf[rec.stream]
		key := [2]int{rec.id, r}
		switch {
		case seenIn[key]:
			inRun++ // a second copy within one run: a resend (there should be none)
		case firstRun[rec.id] < r:
			perRun[r]++
		}
		seenIn[key] = true
	}
	dups := copies - distinct
	sumSent := int64(0)
	for _, rs := range restarts {
		sumSent += rs.opened.SentBeforeRestart
	}
	redelivered := relay.metric(t, `relay_spool_redelivered_total{output="workers"}`)
	t.Logf("%d events, %d kills: %d copies at the sink, %d duplicates (per run %v, within a run %d); spool sent-before-restart per restart %v (total %d), window %d events; last run's relay_spool_redelivered_total %v",
		n, kills, copies, dups, perRun, inRun, func() []int64 {
			var s []int64
			for _, rs := range restarts {
				s = append(s, rs.opened.SentBeforeRestart)
			}
			return s
		}(), sumSent, batch*window, redelivered)
	if len(order) != kills+1 {
		t.Fatalf("copies came from %d sender streams, want one per relay run (%d)", len(order), kills+1)
	}
	if inRun != 0 || relay.metric(t, `relay_output_ack_batches_resent_total{output="workers"}`) != 0 {
		t.Errorf("%d copies within one run: no batch should be resent by timeout here", inRun)
	}
	if int64(dups) > sumSent {
		t.Errorf("%d duplicates, more than the %d records the spool counted as sent and unacknowledged", dups, sumSent)
	}
	for k, rs := range restarts {
		so := rs.opened
		if so.SentBeforeRestart > batch*window {
			t.Errorf("restart %d: %d records sent and unacknowledged, more than one window (%d)", k+1, so.SentBeforeRestart, batch*window)
		}
		if int64(perRun[k+1]) > so.SentBeforeRestart {
			t.Errorf("restart %d: %d duplicates, more than the %d the spool counted as sent and unacknowledged", k+1, perRun[k+1], so.SentBeforeRestart)
		}
		if rs.held && (so.SentBeforeRestart != batch*window || perRun[k+1] != batch*window) {
			t.Errorf("restart %d (acks held, the sink had the whole window): %d counted, %d duplicates; want exactly one window, %d",
				k+1, so.SentBeforeRestart, perRun[k+1], batch*window)
		}
	}
	// The last run read everything it had to deliver again, and its ack
	// metrics show (a spooled output passes them through).
	if last := restarts[len(restarts)-1].opened.SentBeforeRestart; redelivered != float64(last) {
		t.Errorf("relay_spool_redelivered_total %v, want the %d the spool found at open", redelivered, last)
	}
	if v := relay.metric(t, `relay_output_ack_events_acked_total{output="workers"}`); v <= 0 {
		t.Errorf("relay_output_ack_events_acked_total of the spooled output = %v", v)
	}
}

// streamSink binds a PULL for the workers' results, records every copy
// with the sender stream of its ackpipe header (one per relay run), and
// acknowledges complete batches to the relay unless paused.
type streamSink struct {
	pull   *zmq.Pull
	ackOut *zmq.Push
	recv   *ackpipe.Receiver
	paused atomic.Bool

	mu       sync.Mutex
	recs     []streamCopy
	order    []uint32 // streams in the order they first appeared
	distinct map[int]bool
	bad      int
}

type streamCopy struct {
	id     int
	stream uint32
}

func startStreamSink(t *testing.T, ack string) (*streamSink, string) {
	t.Helper()
	s := &streamSink{pull: zmq.NewPull(zmq.Options{RecvHWM: 100000}), ackOut: zmq.NewPush(zmq.Options{}), distinct: map[int]bool{}}
	if err := s.pull.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.ackOut.Dial(ack); err != nil {
		t.Fatal(err)
	}
	s.recv = ackpipe.NewReceiver(s.ackOut, ackpipe.ReceiverConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]zmq.Msg, 256)
		seen := map[uint32]bool{}
		for {
			n, err := s.pull.RecvBatch(ctx, buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			for _, m := range buf[:n] {
				s.recv.Handle(ctx, m) // for the acks; every copy is recorded
				if len(m) < 2 {
					continue // a marker
				}
				h, err := ackpipe.ParseHeader(m[0])
				id := testpeer.MsgNum(string(m[1]))
				if err != nil || id < 0 {
					s.bad++
					continue
				}
				if !seen[h.Stream] {
					seen[h.Stream] = true
					s.order = append(s.order, h.Stream)
				}
				s.recs = append(s.recs, streamCopy{id: id, stream: h.Stream})
				s.distinct[id] = true
			}
			s.mu.Unlock()
			if !s.paused.Load() {
				if err := s.recv.Commit(ctx); err != nil {
					return
				}
			}
			clear(buf[:n])
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		s.pull.Close()
		s.ackOut.Close()
	})
	return s, "tcp://" + s.pull.Addrs()[0].String()
}

func (s *streamSink) counts() (copies, distinct, bad int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs), len(s.distinct), s.bad
}

// latestCopies counts the copies sent by the newest sender stream (the
// relay run now up).
func (s *streamSink) latestCopies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return 0
	}
	latest, n := s.order[len(s.order)-1], 0
	for _, r := range s.recs {
		if r.stream == latest {
			n++
		}
	}
	return n
}

func (s *streamSink) copies() ([]streamCopy, []uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recs), slices.Clone(s.order)
}

func envPositive(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return k
}
