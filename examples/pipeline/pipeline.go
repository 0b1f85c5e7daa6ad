package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Params is one run of the pipeline.
type Params struct {
	Batch   int // messages per acknowledged batch
	Window  int // batches in flight (1: the seed's pattern)
	Count   int // messages to send
	Workers int
	Size    int // payload bytes per message (at least 8: the message id)
	// ResendAfter resends an unacknowledged batch after this long; 0
	// never resends, so a lost message stalls the ventilator.
	ResendAfter time.Duration
	// Procs runs each worker as a child process (this program's worker
	// command), as the seed and pipeline.py do, instead of a goroutine.
	Procs bool
	// KillAfter, when > 0, kills worker 0 once the sink has this many
	// messages: its sockets close at once (or its process gets SIGKILL),
	// dropping what it holds.
	KillAfter int
	// Stall ends a run that made no progress for this long (default 5s).
	Stall time.Duration
	// sinkGate, when set, is taken for reading around every message the
	// sink handles: tests hold it to pause the sink.
	sinkGate *sync.RWMutex
	// worker0Gate, when set, is taken for reading around every batch
	// worker 0 forwards: tests hold it so worker 0 sits on its tasks.
	worker0Gate *sync.RWMutex
	// observe, when set, is called once the run is wired.
	observe func(*hooks)
}

// hooks let tests watch and disturb a run.
type hooks struct {
	sender *ackpipe.Sender
	prog   *progress
	kill   func() // kills worker 0
}

// Result is what a run measured.
type Result struct {
	Params
	Seconds    float64 // ventilator's first send to the sink's last new message
	Received   int     // distinct messages at the sink
	Missing    int     // never arrived (run stalled)
	Repeats    int     // delivered to the sink application more than once: must be 0
	Copies     uint64  // copies the receiver dropped (resends of delivered messages)
	Recovered  uint64  // arrived only thanks to a resend: lost in flight
	Sent       int     // messages the ventilator sent (resends not counted)
	Lost       int     // sent but lost in flight: recovered by resends or missing
	Resends    uint64  // batch resends
	Stalls     uint64  // times the ventilator waited for an ack
	Killed     bool    // a worker was killed
	StalledOut bool    // the run ended on Stall without completing
	MaxAtRisk  int     // most messages unacknowledged at once, sampled every millisecond
}

// ExactlyOnce reports whether every message reached the sink once.
func (r Result) ExactlyOnce() bool {
	return r.Missing == 0 && r.Repeats == 0 && r.Received == r.Count
}

// Rate is messages per second.
func (r Result) Rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Received) / r.Seconds
}

// progress is what the sink has received, for the kill switch and tests.
type progress struct {
	received atomic.Int64
}

// Received returns the distinct messages the sink has so far.
func (p *progress) Received() int { return int(p.received.Load()) }

const chunk = 64 // messages per Send/SendBatch call

// Run wires ventilator, workers and sink over TCP loopback in this
// process, sends p.Count messages and checks what arrived.
func Run(ctx context.Context, p Params) (Result, error) {
	if p.Batch <= 0 || p.Count <= 0 || p.Workers <= 0 {
		return Result{}, errors.New("pipeline: batch, count and workers must be positive")
	}
	if p.Size < 8 {
		return Result{}, fmt.Errorf("pipeline: size %d too small: the payload holds an 8-byte message id", p.Size)
	}
	if p.Window <= 0 {
		p.Window = 1
	}
	if p.Stall <= 0 {
		p.Stall = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := Result{Params: p}

	var socks []interface{ Close() error }
	defer func() {
		for i := len(socks) - 1; i >= 0; i-- {
			socks[i].Close()
		}
	}()
	listen := func(s interface {
		Listen(string) error
		Addrs() []net.Addr
		Close() error
	}) (string, error) {
		socks = append(socks, s)
		if err := s.Listen("tcp://127.0.0.1:0"); err != nil {
			return "", err
		}
		return "tcp://" + s.Addrs()[0].String(), nil
	}

	// The ventilator and the sink bind; workers connect, as in the seed.
	tasks, acks := zmq.NewPush(zmq.Options{}), zmq.NewPull(zmq.Options{})
	results, ackOut := zmq.NewPull(zmq.Options{}), zmq.NewPush(zmq.Options{})
	tasksEP, err := listen(tasks)
	if err != nil {
		return res, fmt.Errorf("ventilator: listen: %w", err)
	}
	acksEP, err := listen(acks)
	if err != nil {
		return res, fmt.Errorf("ventilator: listen for acks: %w", err)
	}
	resultsEP, err := listen(results)
	if err != nil {
		return res, fmt.Errorf("sink: listen: %w", err)
	}
	socks = append(socks, ackOut)
	if err := ackOut.Dial(acksEP); err != nil {
		return res, fmt.Errorf("sink: dial %q: %w", acksEP, err)
	}

	// kills[i] crashes worker i: no flush, whatever it holds is gone.
	kills := make([]func(), p.Workers)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // before the sockets close
	for i := range p.Workers {
		if p.Procs {
			cmd, err := startWorkerProc(tasksEP, resultsEP)
			if err != nil {
				return res, fmt.Errorf("worker %d: %w", i, err)
			}
			kills[i] = sync.OnceFunc(func() { cmd.Process.Kill(); cmd.Wait() })
			defer kills[i]()
			continue
		}
		in, out := zmq.NewPull(zmq.Options{}), zmq.NewPush(zmq.Options{})
		socks = append(socks, in, out)
		if err := in.Dial(tasksEP); err != nil {
			return res, fmt.Errorf("worker %d: dial %q: %w", i, tasksEP, err)
		}
		if err := out.Dial(resultsEP); err != nil {
			return res, fmt.Errorf("worker %d: dial %q: %w", i, resultsEP, err)
		}
		kills[i] = sync.OnceFunc(func() { in.Close(); out.Close() })
		var gate *sync.RWMutex
		if i == 0 {
			gate = p.worker0Gate
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runWorker(ctx, in, out, gate)
		}()
	}
	// PUSH round-robins over connected peers only: start once all are in.
	if err := waitUntil(ctx, 10*time.Second, func() bool {
		return tasks.Stats().Peers == p.Workers && results.Stats().Peers == p.Workers && acks.Stats().Peers == 1
	}); err != nil {
		return res, fmt.Errorf("pipeline: workers did not connect: %w", err)
	}

	sender := ackpipe.NewSender(tasks, ackpipe.Config{BatchSize: p.Batch, Window: p.Window, ResendAfter: p.ResendAfter})
	defer sender.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		sender.ReadAcks(ctx, acks)
	}()
	recv := ackpipe.NewReceiver(ackOut, ackpipe.ReceiverConfig{MaxBatch: max(p.Batch+1, ackpipe.DefaultMaxBatch)})

	prog := &progress{}
	kill := kills[0]
	if p.observe != nil {
		p.observe(&hooks{sender: sender, prog: prog, kill: kill})
	}
	seen := make([]uint8, p.Count)
	sinkDone := make(chan time.Time, 1)
	var repeats, foreign int
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]zmq.Msg, chunk)
		got := 0
		for got < p.Count {
			n, err := results.RecvBatch(ctx, buf)
			if err != nil {
				return
			}
			for _, m := range buf[:n] {
				if p.sinkGate != nil {
					p.sinkGate.RLock()
				}
				pl, fresh, err := recv.Handle(ctx, m)
				if p.sinkGate != nil {
					p.sinkGate.RUnlock()
				}
				if err != nil || !fresh {
					continue
				}
				id := binary.BigEndian.Uint64(pl[0])
				if id >= uint64(p.Count) {
					foreign++
					continue
				}
				if seen[id] != 0 {
					repeats++
				} else {
					got++
				}
				seen[id]++
			}
			// Ack the batches these messages completed, now that the sink
			// has counted them.
			if p.sinkGate != nil {
				p.sinkGate.RLock()
			}
			err = recv.Commit(ctx)
			if p.sinkGate != nil {
				p.sinkGate.RUnlock()
			}
			if err != nil {
				return
			}
			prog.received.Store(int64(got))
			clear(buf[:n])
		}
		sinkDone <- time.Now()
	}()

	if p.KillAfter > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if waitUntil(ctx, time.Hour, func() bool { return prog.Received() >= p.KillAfter }) == nil {
				kill()
			}
		}()
	}

	start := time.Now()
	ventDone := make(chan error, 1)
	go func() { ventDone <- ventilate(ctx, sender, p) }()

	// Wait for the sink to have everything, or for progress to stop.
	var end time.Time
	last, lastAt := -1, time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case end = <-sinkDone:
			break wait
		case err := <-ventDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				return res, err
			}
			ventDone = nil
		case now := <-tick.C:
			res.MaxAtRisk = max(res.MaxAtRisk, sender.Stats().AtRisk)
			if r := prog.Received(); r != last {
				last, lastAt = r, now
			} else if now.Sub(lastAt) > p.Stall {
				res.StalledOut = true
				end = lastAt
				break wait
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Seconds = end.Sub(start).Seconds()
	if ventDone != nil && !res.StalledOut {
		// The sink has everything; the last ack is on its way back.
		select {
		case <-ventDone:
			ventDone = nil
		case <-time.After(p.Stall):
		}
	}
	cancel()
	if ventDone != nil {
		<-ventDone
	}
	for _, k := range kills {
		k()
	}
	wg.Wait()

	st, rs := sender.Stats(), recv.Stats()
	res.Received = prog.Received()
	res.Missing = p.Count - res.Received
	res.Sent = int(st.Msgs)
	res.Lost = int(rs.Recovered) + res.Sent - res.Received
	res.Repeats = repeats + foreign
	res.Copies, res.Recovered = rs.Duplicates, rs.Recovered
	res.Resends, res.Stalls = st.Resends, st.Stalls
	res.Killed = p.KillAfter > 0
	return res, nil
}

// ventilate sends messages 0..Count-1 and waits for the last ack.
func ventilate(ctx context.Context, s *ackpipe.Sender, p Params) error {
	msgs := make([]zmq.Msg, chunk)
	for id := 0; id < p.Count; id += chunk {
		k := min(chunk, p.Count-id)
		slab := make([]byte, k*p.Size)
		frames := make([][]byte, k)
		for i := range k {
			b := slab[i*p.Size : (i+1)*p.Size : (i+1)*p.Size]
			binary.BigEndian.PutUint64(b, uint64(id+i))
			frames[i] = b
			msgs[i] = zmq.Msg(frames[i : i+1 : i+1])
		}
		if err := s.Send(ctx, msgs[:k]...); err != nil {
			return fmt.Errorf("ventilator: %w", err)
		}
	}
	return s.Wait(ctx)
}

// runWorker passes every task on to the sink, header frame untouched. A
// real worker would transform the payload frames here.
func runWorker(ctx context.Context, in *zmq.Pull, out *zmq.Push, gate *sync.RWMutex) {
	buf := make([]zmq.Msg, chunk)
	for {
		n, err := in.RecvBatch(ctx, buf)
		if err != nil {
			return
		}
		if gate != nil {
			gate.RLock()
		}
		_, err = out.SendBatch(ctx, buf[:n])
		if gate != nil {
			gate.RUnlock()
		}
		if err != nil {
			return
		}
		clear(buf[:n])
	}
}

// waitUntil polls cond every millisecond until it holds, ctx ends or
// limit passes.
func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("still not true after %v", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// startWorkerProc starts this program's worker command as a child.
func startWorkerProc(in, out string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(self, "worker", "-in", in, "-out", out)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s worker: %w", self, err)
	}
	return cmd, nil
}

// workerMain is the worker command: PULL tasks from in, PUSH them to out,
// until killed.
func workerMain(in, out string) error {
	pull, push := zmq.NewPull(zmq.Options{}), zmq.NewPush(zmq.Options{})
	defer pull.Close()
	defer push.Close()
	if err := pull.Dial(in); err != nil {
		return fmt.Errorf("worker: dial %q: %w", in, err)
	}
	if err := push.Dial(out); err != nil {
		return fmt.Errorf("worker: dial %q: %w", out, err)
	}
	runWorker(context.Background(), pull, push, nil)
	return nil
}
