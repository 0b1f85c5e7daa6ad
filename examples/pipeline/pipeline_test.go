package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestMain lets the test binary be the worker command, so -procs runs
// (os.Executable is the test binary) can start workers.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		main()
		return
	}
	os.Exit(m.Run())
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, 20*time.Second, testpeer.Text(what), cond)
}

func TestExactlyOnceEveryBatchSize(t *testing.T) {
	count := 20_000
	if testing.Short() {
		count = 2_000
	}
	for _, batch := range []int{1_000_000, 1000, 100, 50, 10} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			r, err := Run(context.Background(), Params{Batch: batch, Count: count, Workers: 4, Size: 32})
			if err != nil {
				t.Fatal(err)
			}
			if !r.ExactlyOnce() || r.Received != count || r.Sent != count || r.Lost != 0 || r.Copies != 0 {
				t.Fatalf("not exactly once: %+v", r)
			}
			// One batch in flight: the ventilator waited once per batch
			// it could not start (all but the first), or never.
			if wantMax := (count + batch - 1) / batch; int(r.Stalls) >= wantMax {
				t.Fatalf("%d stalls for %d batches", r.Stalls, wantMax)
			}
		})
	}
}

func TestVentilatorStallsWhileSinkPausedAndResumes(t *testing.T) {
	const batch, window, count = 50, 2, 5_000
	var gate sync.RWMutex
	hc := make(chan *hooks, 1)
	p := Params{Batch: batch, Window: window, Count: count, Workers: 4, Size: 32, Stall: time.Minute,
		sinkGate: &gate, observe: func(h *hooks) { hc <- h }}
	done := make(chan Result, 1)
	go func() {
		r, err := Run(context.Background(), p)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	h := <-hc
	// Let some batches through, then pause the sink: no more acks.
	waitFor(t, "the sink to get going", func() bool { return h.prog.Received() >= 1000 })
	gate.Lock()
	resume := sync.OnceFunc(gate.Unlock)
	t.Cleanup(resume) // a failing test must not leave the run hanging
	// Acks already on their way when the sink paused still arrive and let
	// the ventilator send a little more: wait until it waits on a full
	// window and has stopped moving (two polls in a row agree).
	var st ackpipe.Stats
	waitFor(t, "the ventilator to stall on a full window", func() bool {
		prev := st
		st = h.sender.Stats()
		return st.Waiting && st.InFlight == window && st.Msgs == prev.Msgs && st.AckedMsgs == prev.AckedMsgs
	})
	if st.InFlight != window || st.AtRisk != window*batch {
		t.Fatalf("stalled with %d batches / %d messages unacknowledged, want %d / %d", st.InFlight, st.AtRisk, window, window*batch)
	}
	if sent := int(st.Msgs); sent != int(st.AckedMsgs)+window*batch || sent >= count {
		t.Fatalf("sent %d, acked %d: the ventilator ran past its window", sent, st.AckedMsgs)
	}
	select {
	case r := <-done:
		t.Fatalf("run finished while the sink was paused: %+v", r)
	default:
	}
	resume()
	r := <-done
	if !r.ExactlyOnce() {
		t.Fatalf("after resuming: %+v", r)
	}
	if got := h.sender.Stats(); got.Waiting || got.Stalls == 0 || got.AckedMsgs != count {
		t.Fatalf("sender after resuming: %+v", got)
	}
}

// killWorkerMidBatch stops worker 0 forwarding, waits until the
// ventilator is stuck on a batch partly held by it, and kills it.
func killWorkerMidBatch(t *testing.T, p Params) Result {
	t.Helper()
	var gate sync.RWMutex
	gate.Lock()
	release := sync.OnceFunc(gate.Unlock)
	t.Cleanup(release)
	hc := make(chan *hooks, 1)
	p.worker0Gate, p.observe = &gate, func(h *hooks) { hc <- h }
	done := make(chan Result, 1)
	go func() {
		r, err := Run(context.Background(), p)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	h := <-hc
	waitFor(t, "a batch stuck at worker 0", func() bool { return h.sender.Stats().Waiting })
	h.kill()
	release() // its goroutine now finds its sockets closed
	return <-done
}

func TestWorkerKilledResendRecovers(t *testing.T) {
	const batch, count = 100, 10_000
	r := killWorkerMidBatch(t, Params{Batch: batch, Count: count, Workers: 4, Size: 32, ResendAfter: 20 * time.Millisecond})
	if !r.ExactlyOnce() {
		t.Fatalf("not exactly once after resending: %+v", r)
	}
	if r.Lost == 0 || r.Lost > batch || int(r.Recovered) != r.Lost || r.Resends == 0 {
		t.Fatalf("lost %d (want 1..%d, all recovered), recovered %d, resends %d", r.Lost, batch, r.Recovered, r.Resends)
	}
}

func TestWorkerKilledWithoutResendReportsLoss(t *testing.T) {
	const batch, count = 100, 10_000
	r := killWorkerMidBatch(t, Params{Batch: batch, Count: count, Workers: 4, Size: 32, Stall: 300 * time.Millisecond})
	if !r.StalledOut || r.ExactlyOnce() {
		t.Fatalf("want a stalled run: %+v", r)
	}
	// What is lost is bounded by the one batch in flight; the rest was
	// never sent because the ventilator waited for its ack.
	if r.Lost == 0 || r.Lost > batch || r.Repeats != 0 || r.Sent > batch {
		t.Fatalf("lost %d of %d sent (want 1..%d), repeats %d", r.Lost, r.Sent, batch, r.Repeats)
	}
}

func TestWorkerProcessKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	const batch, count = 500, 50_000
	r, err := Run(context.Background(), Params{Batch: batch, Count: count, Workers: 4, Size: 32, Procs: true,
		KillAfter: count / 3, ResendAfter: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// SIGKILL lands wherever the worker is, so the loss may be zero, but
	// never more than the batch in flight, and resending recovers it.
	if !r.ExactlyOnce() || r.Lost > batch || int(r.Recovered) != r.Lost {
		t.Fatalf("worker process killed: %+v", r)
	}
	t.Logf("worker process killed after %d: %d lost in flight, recovered by %d resends", count/3, r.Lost, r.Resends)
}

func TestCompareTableAndChart(t *testing.T) {
	in := "python\t1000\t100\t1.0\t100000\tyes\ngo\t1000\t100\t0.1\t1200000\tyes\n" +
		"python\t10\t100\t1.0\t20000\tyes\ngo\t10\t100\t0.1\t150000\tno\n"
	svg := filepath.Join(t.TempDir(), "chart.svg")
	var out bytes.Buffer
	if err := compareCmd([]string{"-svg", svg}, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"12.0x  yes", "7.5x  no", "NOT met"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("<svg")) || bytes.Count(b, []byte("<polyline")) != 2 || !bytes.Contains(b, []byte("12.0×")) {
		t.Fatalf("chart:\n%s", b)
	}
	if err := compareCmd(nil, strings.NewReader("go\t1\n"), &out); err == nil {
		t.Fatal("a short line was accepted")
	}
}

// TestPythonReference runs pipeline.py, the reference the benchmark
// compares against, and checks it too delivers exactly once.
func TestPythonReference(t *testing.T) {
	if testing.Short() {
		t.Skip("real peer: Debian's python3 with pyzmq")
	}
	const py = testpeer.Python
	testpeer.NeedPyzmq(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "pipeline.py", "--tsv", "--count", "5000", "--batch", "1000,10").CombinedOutput()
	if err != nil {
		t.Fatalf("pipeline.py: %v\n%s", err, out)
	}
	rows, err := readRows(bytes.NewReader(out))
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %v, err %v:\n%s", rows, err, out)
	}
	for _, r := range rows {
		if r.impl != "python" || !r.ok || r.rate <= 0 {
			t.Fatalf("python row %+v", r)
		}
	}
}
