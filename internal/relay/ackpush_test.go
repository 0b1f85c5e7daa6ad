package relay

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// The acknowledged PUSH output end to end: syslog over TCP into an
// in-process relay, its "workers" output acknowledged, workers running as
// real child processes (pyzmq's ackworker.py and Go's pipeline ackworker
// from examples/pipeline), and a sink in the test that records every copy
// of every event with the worker that passed it on.

// ackWorkerScript is the pyzmq worker of examples/pipeline.
var ackWorkerScript = filepath.Join("..", "..", "examples", "pipeline", "ackworker.py")

// buildPipeline builds examples/pipeline, whose ackworker command is the
// Go worker.
func buildPipeline(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pipeline")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/pipeline").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/pipeline: %v\n%s", err, out)
	}
	return bin
}

// worker is a worker child process.
type worker struct {
	name string
	cmd  *exec.Cmd
	out  *testpeer.SyncBuffer
	done chan struct{}
}

// startWorker runs worker name ("py…" for ackworker.py, else the Go one)
// pulling from data and passing events on to sink; with ack it acks the
// batches it completes, else the sink acks. extra are more arguments.
func startWorker(t *testing.T, goBin, name, data, sink, ack string, extra ...string) *worker {
	t.Helper()
	w := &worker{name: name, out: &testpeer.SyncBuffer{}, done: make(chan struct{})}
	if strings.HasPrefix(name, "py") {
		testpeer.NeedPyzmq(t)
		args := []string{"-u", ackWorkerScript, "worker", "--in", data, "--out", sink, "--id", name}
		if ack != "" {
			args = append(args, "--ack", ack)
		}
		w.cmd = exec.Command(testpeer.Python, args...)
	} else {
		args := []string{"ackworker", "-in", data, "-out", sink, "-id", name}
		if ack != "" {
			args = append(args, "-ack", ack)
		}
		w.cmd = exec.Command(goBin, append(args, extra...)...)
	}
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start worker %s: %v", name, err)
	}
	go func() { w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			t.Logf("worker %s output:\n%s", name, w.out.String())
		}
	})
	return w
}

// kill sends SIGKILL and waits: no flush, whatever it holds is gone.
func (w *worker) kill() {
	select {
	case <-w.done:
		return
	default:
	}
	w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// freeze stops the worker (SIGSTOP) and waits until every one of its
// threads is stopped: from then on it does nothing, and every write it
// made is complete.
func (w *worker) freeze(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGSTOP)
	pid := w.cmd.Process.Pid
	stopped := func() bool {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil || len(tasks) == 0 {
			return false
		}
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			if err != nil {
				return false
			}
			// "tid (comm) STATE …": comm may hold spaces and parentheses.
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) == 0 || (f[0] != "T" && f[0] != "t") {
				return false
			}
		}
		return true
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("worker "+w.name+" to stop"), stopped)
}

// thaw resumes a frozen worker (SIGCONT).
func (w *worker) thaw() { w.cmd.Process.Signal(syscall.SIGCONT) }

// holding reads a Go worker's -report file: the batches its last round
// took and that it has not acknowledged since, and how many events of
// them, or none. Only a frozen (or dead) worker's answer stays true.
func holding(t *testing.T, report string) (events int, seqs []uint64) {
	t.Helper()
	b, err := os.ReadFile(report)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 3 || f[0] != "holding" {
		return 0, nil // nothing reported, or "acking" last
	}
	if events, err = strconv.Atoi(f[1]); err != nil {
		t.Fatalf("report %s: %q", report, lines[len(lines)-1])
	}
	for _, x := range f[2:] {
		seq, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			t.Fatalf("report %s: %q", report, lines[len(lines)-1])
		}
		seqs = append(seqs, seq)
	}
	return events, seqs
}

// victim is the worker a kill test chose: the first that, by its report,
// held batches it had not acknowledged when every worker was frozen.
type victim struct {
	name       string
	heldEvents map[string]int      // per worker, events of its unacknowledged batches
	held       map[string][]uint64 // per worker, those batches
	frozen     int                 // how many times the workers were frozen to find it
}

// pickVictim waits until no ack has come for 500 ms while stalled(acked)
// holds, then freezes every worker and picks the first that, by its
// report, holds batches it has not acknowledged; if none does (workers
// between rounds), it thaws them and waits for the next stop. Every worker
// is still frozen when it returns. why adds to the failure message.
func pickVictim(t *testing.T, r *Relay, ws map[string]*worker, names []string, reports map[string]string,
	timeout time.Duration, stalled func(acked int) bool, why func() string) victim {
	t.Helper()
	v := victim{heldEvents: map[string]int{}, held: map[string][]uint64{}}
	last, since := -1, time.Now()
	testpeer.Eventually(t, timeout, func() string {
		return fmt.Sprintf("the pipeline to stop behind the held sink with a worker holding unacknowledged batches (%d times frozen, none held any)%s", v.frozen, why())
	}, func() bool {
		if a := ackMetric(t, r, "events_acked_total"); a != last || !stalled(a) {
			last, since = a, time.Now()
			return false
		}
		if time.Since(since) < 500*time.Millisecond {
			return false
		}
		for _, name := range names {
			ws[name].freeze(t)
		}
		v.frozen++
		for _, name := range names {
			v.heldEvents[name], v.held[name] = holding(t, reports[name])
			if v.name == "" && v.heldEvents[name] > 0 {
				v.name = name
			}
		}
		if v.name == "" {
			for _, name := range names {
				ws[name].thaw()
			}
			last = -1
		}
		return v.name != ""
	})
	return v
}

// copyRec is one copy of an event as it reached the sink.
type copyRec struct {
	id     int
	seq    uint64
	resent bool
	worker string
}

// ackSink binds a PULL for the workers' results and records every copy.
// With ack, it also acknowledges complete batches (ackpipe.Receiver) to
// the relay, unless paused. While held it reads nothing, so what the
// workers pass on backs up into their sockets.
type ackSink struct {
	pull   *zmq.Pull
	ackOut *zmq.Push
	recv   *ackpipe.Receiver
	paused atomic.Bool
	held   atomic.Bool

	mu       sync.Mutex
	recs     []copyRec
	distinct map[int]int
	bad      int
}

func startAckSink(t *testing.T, ack string) (*ackSink, string) {
	t.Helper()
	return startAckSinkHWM(t, ack, 100000)
}

// startAckSinkHWM is startAckSink with a PULL queue of hwm messages.
func startAckSinkHWM(t *testing.T, ack string, hwm int) (*ackSink, string) {
	t.Helper()
	s := &ackSink{pull: zmq.NewPull(zmq.Options{RecvHWM: hwm}), distinct: map[int]int{}}
	if err := s.pull.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if ack != "" {
		s.ackOut = zmq.NewPush(zmq.Options{})
		s.ackOut.Dial(ack)
		s.recv = ackpipe.NewReceiver(s.ackOut, ackpipe.ReceiverConfig{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]zmq.Msg, 256)
		for {
			for s.held.Load() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			n, err := s.pull.RecvBatch(ctx, buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			for _, m := range buf[:n] {
				s.record(ctx, m)
			}
			s.mu.Unlock()
			if s.recv != nil && !s.paused.Load() {
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
		if s.ackOut != nil {
			s.ackOut.Close()
		}
	})
	return s, "tcp://" + s.pull.Addrs()[0].String()
}

// record notes one message [header, payload, worker] (mu held).
func (s *ackSink) record(ctx context.Context, m zmq.Msg) {
	if s.recv != nil {
		s.recv.Handle(ctx, m) // for the acks; every copy is recorded below
	}
	if len(m) < 2 {
		return // a marker
	}
	h, err := ackpipe.ParseHeader(m[0])
	id := testpeer.MsgNum(string(m[1]))
	if err != nil || id < 0 {
		s.bad++
		return
	}
	r := copyRec{id: id, seq: h.Seq, resent: h.Flags&ackpipe.FlagResent != 0}
	if len(m) > 2 {
		r.worker = string(m[2])
	}
	s.recs = append(s.recs, r)
	s.distinct[id]++
}

func (s *ackSink) counts() (copies, distinct, bad int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs), len(s.distinct), s.bad
}

// sinkAccount is what the sink holds, with the copies of resent batches.
type sinkAccount struct {
	copies, distinct, bad int
	resentSeqs            map[uint64]bool // batches that arrived resent
	// firstBy counts the first (not resent) copies of resent batches'
	// events, by the worker that passed them on.
	firstBy map[string]int
}

func (s *ackSink) account() sinkAccount {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := sinkAccount{copies: len(s.recs), distinct: len(s.distinct), bad: s.bad, resentSeqs: map[uint64]bool{}, firstBy: map[string]int{}}
	for _, rec := range s.recs {
		if rec.resent {
			a.resentSeqs[rec.seq] = true
		}
	}
	for _, rec := range s.recs {
		if !rec.resent && a.resentSeqs[rec.seq] {
			a.firstBy[rec.worker]++
		}
	}
	return a
}

// waitSinkHas waits up to 30 s for the sink to hold n distinct events
// (acked is not arrived: a worker acks once it has passed a batch on) and
// fails with how many never came.
func waitSinkHas(t *testing.T, sink *ackSink, n int) {
	t.Helper()
	_, d, bad := sink.counts()
	for deadline := time.Now().Add(30 * time.Second); d < n && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, d, bad = sink.counts()
	}
	if d != n || bad != 0 {
		t.Fatalf("%d events acknowledged to the relay never reached the sink (%d of %d there, %d bad)", n-d, d, n, bad)
	}
}

// feedSyslog writes events msgnum first..first+n-1 to the relay's TCP
// syslog input, octet-counted, on one connection; it returns once all are
// written (the relay pushing back makes it wait).
func feedSyslog(t *testing.T, addr string, first, n int) {
	t.Helper()
	feedSyslogPadded(t, addr, first, n, 0)
}

// feedSyslogPadded is feedSyslog with pad bytes of filler after each
// event's number.
func feedSyslogPadded(t *testing.T, addr string, first, n, pad int) {
	t.Helper()
	filler := " " + strings.Repeat("x", pad)
	if pad == 0 {
		filler = ""
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	for i := first; i < first+n; i++ {
		m := "<14>1 2026-01-01T00:00:00Z host app - - - " + testpeer.Numbered(i) + filler
		fmt.Fprintf(w, "%d %s", len(m), m)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("feed: %v", err)
	}
}

// ackRelay starts a relay with a syslog input and the acknowledged
// "workers" output; it returns the relay, its data endpoint and its ack
// endpoint.
func ackRelay(t *testing.T, ack string) (*Relay, string, string) {
	t.Helper()
	ackEP := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	r := startRelay(t, fmt.Sprintf(`
inputs:
  - {name: in, type: syslog, listen: "tcp://127.0.0.1:0"}
outputs:
  - name: workers
    socket: push
    bind: tcp://127.0.0.1:0
    ack: {bind: %q, %s}
http: {listen: ""}
drain_timeout: 5s
`, ackEP, ack))
	return r, outputEndpoint(t, r, "workers"), ackEP
}

func ackMetric(t *testing.T, r *Relay, name string, labels ...string) int {
	return int(metric(t, r, "relay_output_ack_"+name, append([]string{"output=workers"}, labels...)...))
}

// TestAckPushExactlyOnceThreeWorkers: 100,000 events through the relay to
// three acknowledging workers (two pyzmq, one Go) arrive exactly once,
// and every batch is acknowledged without a resend.
func TestAckPushExactlyOnceThreeWorkers(t *testing.T) {
	const n = 100_000
	goBin := buildPipeline(t)
	r, data, ackEP := ackRelay(t, "batch: 100, window: 16, timeout: 10s")
	sink, sinkEP := startAckSink(t, "")
	for _, name := range []string{"py1", "py2", "go1"} {
		startWorker(t, goBin, name, data, sinkEP, ackEP)
	}
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("3 workers connected"), func() bool {
		return metric(t, r, "relay_output_peers", "output=workers") == 3 && sink.pull.Stats().Peers == 3
	})
	feedSyslog(t, inputAddr(t, r, "in", "tcp"), 0, n)
	testpeer.Eventually(t, 60*time.Second, func() string {
		c, d, _ := sink.counts()
		return fmt.Sprintf("every event acked: sink has %d copies of %d events, relay acked %d", c, d, ackMetric(t, r, "events_acked_total"))
	}, func() bool { return ackMetric(t, r, "events_acked_total") == n })
	waitSinkHas(t, sink, n)
	copies, distinct, bad := sink.counts()
	if copies != n || distinct != n || bad != 0 {
		t.Fatalf("sink: %d copies of %d distinct events (%d bad), want %d once each", copies, distinct, bad, n)
	}
	// Every batch went whole to one worker, and each worker got some.
	per := map[string]int{}
	batchWorker := map[uint64]string{}
	sink.mu.Lock()
	for _, rec := range sink.recs {
		per[rec.worker]++
		if rec.resent {
			t.Errorf("event %d came from a resent batch %d", rec.id, rec.seq)
		}
		if w, ok := batchWorker[rec.seq]; ok && w != rec.worker {
			t.Errorf("batch %d split between workers %s and %s", rec.seq, w, rec.worker)
		}
		batchWorker[rec.seq] = rec.worker
	}
	sink.mu.Unlock()
	for _, name := range []string{"py1", "py2", "go1"} {
		if per[name] == 0 {
			t.Errorf("worker %s passed nothing on (all: %v)", name, per)
		}
	}
	if rs := ackMetric(t, r, "batches_resent_total"); rs != 0 || ackMetric(t, r, "batches_in_flight") != 0 {
		t.Fatalf("%d batches resent, %d in flight", rs, ackMetric(t, r, "batches_in_flight"))
	}
	if h := metric(t, r, "relay_output_ack_latency_seconds", "output=workers"); h != 0 {
		t.Logf("latency histogram read as %v", h)
	}
	t.Logf("per worker: %v", per)
}

// TestAckPushKillWorker kills one worker with SIGKILL mid-stream: its
// unacknowledged batches are resent to the others, every event reaches
// the sink, and the duplicates are exactly the events of the resent
// batches that the dead worker had passed on before it died.
//
// Each victim runs in a mode whose guarantee holds under kill -9. The Go
// worker passes events on and acks them itself: it acks only what it has
// written to the kernel. ackworker.py cannot know that (libzmq queues in
// its I/O thread), so when it is the victim every worker passes through
// and the sink acks what reached it, as in the seed.
func TestAckPushKillWorker(t *testing.T) {
	goBin := buildPipeline(t)
	for _, tc := range []struct {
		victim   string
		sinkAcks bool // pass-through workers, the sink acks; else the workers ack
	}{{"py1", true}, {"go1", false}} {
		victim := tc.victim
		t.Run("kill="+victim, func(t *testing.T) {
			const n = 60_000
			r, data, ackEP := ackRelay(t, "batch: 100, window: 16, timeout: 2s")
			sinkAck, workerAck := "", ackEP
			if tc.sinkAcks {
				sinkAck, workerAck = ackEP, ""
			}
			sink, sinkEP := startAckSink(t, sinkAck)
			ws := map[string]*worker{}
			for _, name := range []string{"py1", "py2", "go1"} {
				ws[name] = startWorker(t, goBin, name, data, sinkEP, workerAck)
			}
			testpeer.Eventually(t, 20*time.Second, testpeer.Text("3 workers connected"), func() bool {
				return metric(t, r, "relay_output_peers", "output=workers") == 3 && sink.pull.Stats().Peers == 3
			})
			fed := make(chan struct{})
			go func() {
				defer close(fed)
				feedSyslog(t, inputAddr(t, r, "in", "tcp"), 0, n)
			}()
			testpeer.Eventually(t, 30*time.Second, testpeer.Text("a third of the events at the sink"), func() bool {
				_, d, _ := sink.counts()
				return d >= n/3
			})
			// Freeze the victim first, so it surely dies holding batches
			// it has not acknowledged (a fast worker might otherwise have
			// acked everything it got); the relay meanwhile keeps giving it
			// batches until its queue is full. Then kill -9.
			ws[victim].cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(300 * time.Millisecond)
			ws[victim].kill()
			<-fed
			testpeer.Eventually(t, 60*time.Second, func() string {
				c, d, _ := sink.counts()
				return fmt.Sprintf("every event acked: sink has %d copies of %d events, relay acked %d, resent %d batches",
					c, d, ackMetric(t, r, "events_acked_total"), ackMetric(t, r, "batches_resent_total"))
			}, func() bool { return ackMetric(t, r, "events_acked_total") == n })

			// Acked is not arrived: a worker acks once it has passed a
			// batch on (written it to the kernel; ackworker.py: queued it
			// in libzmq), so the last copies may still be on their way.
			// Wait for them to settle, then check the accounting.
			var a sinkAccount
			ackedAt := time.Now()
			for deadline := ackedAt.Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				a = sink.account()
				if (a.distinct == n && a.copies-a.distinct == a.firstBy[victim]) || time.Now().After(deadline) {
					break
				}
			}
			if a.distinct != n || a.bad != 0 {
				t.Fatalf("%d events acknowledged to the relay never reached the sink (%d of %d there, %d bad)", n-a.distinct, a.distinct, n, a.bad)
			}
			resentSeqs, firstBy, dups := a.resentSeqs, a.firstBy, a.copies-a.distinct
			resent := ackMetric(t, r, "batches_resent_total")
			t.Logf("killed %s: %d resent batches reached the sink (relay counted %d resends, %d events; %d messages taken back from the dead worker's queue); %d duplicates; first copies of resent batches by worker: %v; settled %v after the last ack",
				victim, len(resentSeqs), resent, ackMetric(t, r, "events_resent_total"), ackMetric(t, r, "orphaned_total"), dups, firstBy, time.Since(ackedAt).Round(time.Millisecond))
			if resent == 0 || len(resentSeqs) == 0 {
				t.Fatal("nothing was resent: the worker died with nothing unacknowledged; kill it earlier")
			}
			if len(resentSeqs) != resent {
				t.Errorf("%d batches arrived resent, the relay resent %d", len(resentSeqs), resent)
			}
			if dups != firstBy[victim] {
				t.Errorf("%d duplicates, want the %d events of resent batches the dead worker had passed on", dups, firstBy[victim])
			}
			for w, k := range firstBy {
				if w != victim {
					t.Errorf("worker %s, alive, passed on %d events of batches that were resent", w, k)
				}
			}
			if ev := ackMetric(t, r, "events_resent_total"); ev < dups {
				t.Errorf("relay counts %d events resent, fewer than the %d duplicates", ev, dups)
			}
		})
	}
}

// TestAckPushKillPassOnWorker: a Go worker that passes events on and acks
// them itself is killed with SIGKILL while the next stage is slow, so what
// it passes on backs up in its socket: no event it acknowledged is
// missing at the sink, and the batches it held unacknowledged arrive
// resent. A worker that acked once its events were queued, not written,
// lost what was queued (1,292 of 60,000 in one run of
// TestAckPushKillWorker under load; here every round). Rounds:
// ACKPUSH_KILL_ROUNDS, 3 by default.
//
// The victim is the worker that holds unacknowledged batches by its own
// report, taken while both workers are frozen: with the window full, all
// of it can sit with one worker while the other has acknowledged all it
// got and gets nothing new, so killing a fixed worker sometimes killed one
// that had nothing to lose.
func TestAckPushKillPassOnWorker(t *testing.T) {
	rounds := envPositive(t, "ACKPUSH_KILL_ROUNDS", 3)
	goBin := buildPipeline(t)
	for round := 1; round <= rounds; round++ {
		t.Run(fmt.Sprintf("round=%d", round), func(t *testing.T) {
			// 2 KiB events: 40 MB, far more than the sockets' kernel
			// buffers and the sink's queue hold, so the workers' own
			// queues fill while the sink is held.
			const n, pad = 20_000, 2000
			r, data, ackEP := ackRelay(t, "batch: 100, window: 16, timeout: 3s")
			sink, sinkEP := startAckSinkHWM(t, "", 1000)
			names := []string{"go1", "go2"}
			ws, reports := map[string]*worker{}, map[string]string{}
			for _, name := range names {
				reports[name] = filepath.Join(t.TempDir(), name+".report")
				ws[name] = startWorker(t, goBin, name, data, sinkEP, ackEP, "-report", reports[name])
			}
			testpeer.Eventually(t, 20*time.Second, testpeer.Text("2 workers connected"), func() bool {
				return metric(t, r, "relay_output_peers", "output=workers") == 2 && sink.pull.Stats().Peers == 2
			})
			sink.held.Store(true)
			fed := make(chan struct{})
			go func() {
				defer close(fed)
				feedSyslogPadded(t, inputAddr(t, r, "in", "tcp"), 0, n, pad)
			}()
			// Kill once everything has backed up: the window is full and
			// no ack came for 500 ms, so the workers' own queues are full
			// (a window full only because the workers are slow to start
			// would leave them little to lose). Then freeze both workers
			// and kill one that, by its report, took batches it has not
			// acknowledged (go1 if both did); if neither did (a worker
			// between rounds), let them run and wait for the next stop.
			v := pickVictim(t, r, ws, names, reports, 30*time.Second,
				func(int) bool { return ackMetric(t, r, "window_full") == 1 }, func() string { return "" })
			victim, heldEvents, held, frozen := v.name, v.heldEvents, v.held, v.frozen
			ackedAtKill := ackMetric(t, r, "events_acked_total")
			ws[victim].kill()
			for _, name := range names {
				ws[name].thaw()
			}
			sink.held.Store(false)
			<-fed
			testpeer.Eventually(t, 60*time.Second, func() string {
				c, d, _ := sink.counts()
				return fmt.Sprintf("every event acked: sink has %d copies of %d events, relay acked %d, resent %d batches",
					c, d, ackMetric(t, r, "events_acked_total"), ackMetric(t, r, "batches_resent_total"))
			}, func() bool { return ackMetric(t, r, "events_acked_total") == n })
			defer func() {
				copies, distinct, _ := sink.counts()
				t.Logf("killed %s, holding %d events of batches %v unacknowledged (all held: %v, frozen %d times to find it); acked %d before the kill; %d batches resent (%d events), %d taken back from the dead worker's queue; sink: %d copies of %d events",
					victim, heldEvents[victim], held[victim], heldEvents, frozen, ackedAtKill,
					ackMetric(t, r, "batches_resent_total"), ackMetric(t, r, "events_resent_total"),
					ackMetric(t, r, "orphaned_total"), copies, distinct)
			}()
			waitSinkHas(t, sink, n)
			if ackMetric(t, r, "batches_resent_total") == 0 {
				t.Fatal("nothing was resent, though the dead worker held unacknowledged batches")
			}
			// Only the relay's resend can complete a batch the dead worker
			// held: each arrives with the RESENT flag (acked is not
			// arrived: its copies may still be on their way).
			missing := func() []uint64 {
				a := sink.account()
				var m []uint64
				for _, seq := range held[victim] {
					if !a.resentSeqs[seq] {
						m = append(m, seq)
					}
				}
				return m
			}
			testpeer.Eventually(t, 30*time.Second, func() string {
				return fmt.Sprintf("the batches the dead worker held to arrive resent: %v did not", missing())
			}, func() bool { return len(missing()) == 0 })
		})
	}
}

// TestAckPushStalledSink: a sink that stops acknowledging stops the relay
// at its window, with its memory flat and the input pushed back; when the
// acks return, everything arrives. The window is counted in batches: a
// batch the flush timer (10 ms after its first event) closed before it
// was full is a whole batch of it, so the events held are at most
// batch*window, and exactly what the workers were sent.
func TestAckPushStalledSink(t *testing.T) {
	const batch, window, n = 100, 4, 300_000
	goBin := buildPipeline(t)
	r, data, ackEP := ackRelay(t, fmt.Sprintf("batch: %d, window: %d, timeout: 1s", batch, window))
	sink, sinkEP := startAckSink(t, ackEP)
	// Pass-through workers: the sink acks, as in the seed.
	startWorker(t, goBin, "go1", data, sinkEP, "")
	startWorker(t, goBin, "py1", data, sinkEP, "")
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("2 workers connected"), func() bool {
		return metric(t, r, "relay_output_peers", "output=workers") == 2 && sink.pull.Stats().Peers == 2
	})
	sink.paused.Store(true)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feedSyslog(t, inputAddr(t, r, "in", "tcp"), 0, n)
	}()
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the window to fill"), func() bool {
		return ackMetric(t, r, "window_full") == 1
	})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	received := func() int { return int(metric(t, r, "relay_input_received_total", "input=in")) }
	time.Sleep(300 * time.Millisecond) // let the input's last read batch settle
	h0, rcv0 := heap(), received()
	time.Sleep(2500 * time.Millisecond) // two resend rounds
	h1, rcv1 := heap(), received()
	inflight := ackMetric(t, r, "events_in_flight")
	t.Logf("stalled: %d events in flight, input received %d then %d, heap %d KiB then %d KiB, %d batches resent",
		inflight, rcv0, rcv1, h0>>10, h1>>10, ackMetric(t, r, "batches_resent_total"))
	if bif := ackMetric(t, r, "batches_in_flight"); bif != window || inflight < window || inflight > batch*window {
		t.Errorf("%d events in %d batches in flight, want the window: %d batches, %d to %d events", inflight, bif, window, window, batch*window)
	}
	// Every event in flight went to the workers, which pass each on to
	// the sink: the sink holds exactly those, and none was acked.
	testpeer.Eventually(t, 10*time.Second, func() string {
		_, d, _ := sink.counts()
		return fmt.Sprintf("the sink to hold the %d events in flight: it has %d", inflight, d)
	}, func() bool { _, d, _ := sink.counts(); return d >= inflight })
	if _, d, bad := sink.counts(); d != inflight || bad != 0 || ackMetric(t, r, "events_acked_total") != 0 {
		t.Errorf("sink has %d distinct events (%d bad), %d acked; want the %d in flight, none acked", d, bad, ackMetric(t, r, "events_acked_total"), inflight)
	}
	if rcv1 != rcv0 || rcv1 >= n {
		t.Errorf("the input kept reading while the window was full: %d then %d of %d", rcv0, rcv1, n)
	}
	// The wait shows while it lasts: at least the 2.8 s slept since the
	// window filled.
	if w := metric(t, r, "relay_output_ack_window_wait_seconds_total", "output=workers"); w < 2.5 {
		t.Errorf("relay_output_ack_window_wait_seconds_total = %v after 2.8 s with the window full", w)
	}
	if h1 > h0+4<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB while stalled", h0>>10, h1>>10)
	}
	select {
	case <-fed:
		t.Fatal("the feeder wrote everything while the relay was stalled")
	default:
	}
	if ackMetric(t, r, "batches_resent_total") < window {
		t.Errorf("unacknowledged batches were not resent after the timeout")
	}
	sink.paused.Store(false)
	<-fed
	testpeer.Eventually(t, 60*time.Second, func() string {
		_, d, _ := sink.counts()
		return fmt.Sprintf("every event acked: sink has %d of %d, relay acked %d", d, n, ackMetric(t, r, "events_acked_total"))
	}, func() bool { return ackMetric(t, r, "events_acked_total") == n })
	if _, d, bad := sink.counts(); d != n || bad != 0 {
		t.Fatalf("sink has %d of %d (%d bad)", d, n, bad)
	}
}

// TestAckPushIgnoredAckMetrics: acks that are malformed, of an unknown
// sender, duplicated or from the future are counted by reason.
func TestAckPushIgnoredAckMetrics(t *testing.T) {
	r, data, ackEP := ackRelay(t, "batch: 5, window: 4, timeout: 10s")
	w := zmq.NewPull(zmq.Options{})
	defer w.Close()
	w.Dial(data)
	acks := zmq.NewPush(zmq.Options{})
	defer acks.Close()
	acks.Dial(ackEP)
	feedSyslog(t, inputAddr(t, r, "in", "tcp"), 0, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := w.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ackpipe.ParseHeader(m[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []zmq.Msg{
		{ackpipe.AppendAck(nil, h.Stream, h.Seq)},   // the good one
		{ackpipe.AppendAck(nil, h.Stream, h.Seq)},   // duplicate
		{ackpipe.AppendAck(nil, h.Stream, 77)},      // future
		{ackpipe.AppendAck(nil, h.Stream^1, h.Seq)}, // unknown stream
		{[]byte("0123456789abcdef")},                // malformed
	} {
		if err := acks.Send(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"malformed": 1, "unknown": 1, "duplicate": 1, "future": 1}
	testpeer.Eventually(t, 10*time.Second, func() string {
		got := map[string]int{}
		for reason := range want {
			got[reason] = ackMetric(t, r, "ignored_total", "reason="+reason)
		}
		return fmt.Sprintf("ignored acks %v, want %v", got, want)
	}, func() bool {
		for reason, n := range want {
			if ackMetric(t, r, "ignored_total", "reason="+reason) != n {
				return false
			}
		}
		return ackMetric(t, r, "batches_acked_total") == 1
	})
	// The output carries on.
	if got := ackMetric(t, r, "events_acked_total"); got != 5 {
		t.Fatalf("events acked %d, want 5", got)
	}
}
