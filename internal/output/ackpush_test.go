package output

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"
	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// ackRig is an acknowledged PUSH output with Go workers passing messages
// on to a sink that acknowledges complete batches, as in the seed.
type ackRig struct {
	t       *testing.T
	out     *AckPush
	ackEP   string
	sink    *zmq.Pull
	ackPush *zmq.Push
	recv    *ackpipe.Receiver
	paused  sync.RWMutex // held for writing: the sink neither reads nor acks

	mu       sync.Mutex
	seen     map[string]int // payload → deliveries to the sink application
	streamID uint32
	stop     context.CancelFunc
	done     sync.WaitGroup
}

func newAckRig(t *testing.T, cfg AckPushConfig, workers int) *ackRig {
	t.Helper()
	cfg.Name = "acked"
	cfg.Bind = []string{"tcp://127.0.0.1:0"}
	cfg.AckBind = []string{"tcp://127.0.0.1:0"}
	out, err := NewAckPush(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rig := &ackRig{t: t, out: out, seen: map[string]int{}}
	rig.ackEP = "tcp://" + out.AckAddrs()[0].String()
	ctx, cancel := context.WithCancel(context.Background())
	rig.stop = cancel
	rig.sink = zmq.NewPull(zmq.Options{RecvHWM: 100000})
	rig.ackPush = zmq.NewPush(zmq.Options{})
	if err := rig.sink.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	sinkEP := "tcp://" + rig.sink.Addrs()[0].String()
	if err := rig.ackPush.Dial(rig.ackEP); err != nil {
		t.Fatal(err)
	}
	rig.recv = ackpipe.NewReceiver(rig.ackPush, ackpipe.ReceiverConfig{})
	var socks []interface{ Close() error }
	for range workers {
		in, fwd := zmq.NewPull(zmq.Options{}), zmq.NewPush(zmq.Options{})
		socks = append(socks, in, fwd)
		in.Dial("tcp://" + out.Addrs()[0].String())
		fwd.Dial(sinkEP)
		rig.done.Add(1)
		go func() {
			defer rig.done.Done()
			buf := make([]zmq.Msg, 64)
			for {
				n, err := in.RecvBatch(ctx, buf)
				if err != nil {
					return
				}
				if _, err := fwd.SendBatch(ctx, buf[:n]); err != nil {
					return
				}
				clear(buf[:n])
			}
		}()
	}
	rig.done.Add(1)
	go func() {
		defer rig.done.Done()
		buf := make([]zmq.Msg, 64)
		for {
			n, err := rig.sink.RecvBatch(ctx, buf)
			if err != nil {
				return
			}
			rig.paused.RLock()
			for _, m := range buf[:n] {
				h, _ := ackpipe.ParseHeader(m[0])
				p, fresh, err := rig.recv.Handle(ctx, m)
				if err != nil {
					t.Errorf("sink: %v", err)
				}
				if fresh {
					rig.mu.Lock()
					rig.seen[string(p[0])]++
					rig.streamID = h.Stream
					rig.mu.Unlock()
				}
			}
			err = rig.recv.Commit(ctx)
			rig.paused.RUnlock()
			if err != nil {
				return
			}
		}
	}()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("workers and the sink to connect"), func() bool {
		return out.Stats().Peers == workers && out.acks.Stats().Peers == 1 && rig.sink.Stats().Peers == workers
	})
	t.Cleanup(func() {
		rig.stop()
		rig.sink.Close()
		rig.ackPush.Close()
		for _, s := range socks {
			s.Close()
		}
		rig.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		out.Close(ctx)
	})
	return rig
}

// pause stops the sink (no reads, no acks) and returns the resume func.
func (r *ackRig) pause() func() {
	r.paused.Lock()
	resume := sync.OnceFunc(r.paused.Unlock)
	r.t.Cleanup(resume)
	return resume
}

func (r *ackRig) delivered() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// handoffs attaches one Handoff per event and returns how each fired.
type handoffs struct {
	mu    sync.Mutex
	fired map[int]error
	hs    []*event.Handoff
}

func withHandoffs(evs []*event.Event) *handoffs {
	h := &handoffs{fired: map[int]error{}}
	for i, e := range evs {
		hf := event.NewHandoff(func(err error) {
			h.mu.Lock()
			h.fired[i] = err
			h.mu.Unlock()
		})
		e.SetHandoff(hf)
		h.hs = append(h.hs, hf)
	}
	return h
}

// dispatched releases the inputs' own holds, as an input does once its
// batch was handed to the router.
func (h *handoffs) dispatched() {
	for _, hf := range h.hs {
		hf.Release(nil)
	}
}

func (h *handoffs) count() (ok, failed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.fired {
		if err == nil {
			ok++
		} else {
			failed++
		}
	}
	return ok, failed
}

func numbered(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = event.New(fmt.Appendf(nil, "<13>1 2026-11-22T05:00:00Z host app - - - msgnum:%08d", i))
		evs[i].Stream = "app"
	}
	return evs
}

func writeAll(ctx context.Context, out Output, evs []*event.Event, chunk int) error {
	for i := 0; i < len(evs); i += chunk {
		if err := out.Write(ctx, evs[i:min(i+chunk, len(evs))]); err != nil {
			return err
		}
	}
	return nil
}

func TestAckPushExactlyOnceAndHandoffsOnAck(t *testing.T) {
	const n = 20_000
	rig := newAckRig(t, AckPushConfig{Batch: 100, Window: 8, Timeout: time.Minute}, 3)
	evs := numbered(n)
	hs := withHandoffs(evs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := writeAll(ctx, rig.out, evs, 64); err != nil {
		t.Fatal(err)
	}
	hs.dispatched()
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", rig.out.AckStats()) }, func() bool {
		ok, _ := hs.count()
		return ok == n
	})
	seen := rig.delivered()
	for _, e := range evs {
		if c := seen[string(e.Raw)]; c != 1 {
			t.Fatalf("%s delivered %d times", e.Raw, c)
		}
	}
	st := rig.out.AckStats()
	// A pause between writes longer than Flush sends a partial batch: at
	// least n/100 batches.
	if st.Acked < n/100 || st.Acked != st.Batches || st.AckedEvents != n || st.Resent != 0 || st.InFlight != 0 || st.Latency.Count() != st.Acked {
		t.Fatalf("ack stats %+v", st)
	}
	if s := rig.out.Stats(); s.Sent != n || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestAckPushHandoffWaitsForAck: events written, sent and even received
// by the sink are not safe until it acknowledges their batch.
func TestAckPushHandoffWaitsForAck(t *testing.T) {
	rig := newAckRig(t, AckPushConfig{Batch: 100, Window: 4, Timeout: time.Minute, Flush: 5 * time.Millisecond}, 2)
	resume := rig.pause()
	evs := numbered(5)
	hs := withHandoffs(evs)
	if err := rig.out.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	hs.dispatched()
	// The partial batch is flushed after 5ms; the sink holds it unacked.
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the partial batch to be sent"), func() bool {
		return rig.out.AckStats().Batches == 1
	})
	time.Sleep(100 * time.Millisecond)
	if ok, failed := hs.count(); ok+failed != 0 {
		t.Fatalf("%d hand-offs fired before the ack", ok+failed)
	}
	resume()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the hand-offs"), func() bool {
		ok, _ := hs.count()
		return ok == 5
	})
}

// TestAckPushWindowBackpressure: with acks stopped, Write blocks once
// Window batches are unacknowledged, holding no more than Window*Batch
// events, and carries on when acks return.
func TestAckPushWindowBackpressure(t *testing.T) {
	const batch, window, n = 10, 3, 500
	rig := newAckRig(t, AckPushConfig{Batch: batch, Window: window, Timeout: time.Minute}, 2)
	resume := rig.pause()
	evs := numbered(n)
	errc := make(chan error, 1)
	go func() { errc <- writeAll(context.Background(), rig.out, evs, 7) }()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the window to fill"), func() bool {
		return rig.out.AckStats().WindowFull
	})
	st := rig.out.AckStats()
	if st.InFlight != window || st.EventsInFlight != batch*window {
		t.Fatalf("window full with %+v, want %d batches and %d events", st, window, batch*window)
	}
	time.Sleep(100 * time.Millisecond)
	// Sent counts a Write's events when it returns: the blocked one's
	// first events are in the window but not counted yet.
	if s := rig.out.Stats(); s.Sent > batch*window || s.Blocked < 50*time.Millisecond {
		t.Fatalf("stats while stalled %+v: want at most %d taken and the wait counted", s, batch*window)
	}
	select {
	case err := <-errc:
		t.Fatalf("Write returned with the window full: %v", err)
	default:
	}
	resume()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("every event at the sink"), func() bool { return len(rig.delivered()) == n })
}

// TestAckPushCloseReleasesUnacked: what is unacknowledged when the output
// closes is released with ErrNotAcknowledged and counted as dropped.
func TestAckPushCloseReleasesUnacked(t *testing.T) {
	rig := newAckRig(t, AckPushConfig{Batch: 10, Window: 4, Timeout: time.Minute}, 1)
	rig.pause()
	evs := numbered(25)
	hs := withHandoffs(evs)
	if err := rig.out.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	hs.dispatched()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := rig.out.Close(ctx); err == nil || !strings.Contains(err.Error(), "25 events in 3 batches not acknowledged") {
		t.Fatalf("Close = %v", err)
	}
	ok, failed := hs.count()
	if ok != 0 || failed != 25 {
		t.Fatalf("hand-offs: %d ok, %d failed; want 25 failed", ok, failed)
	}
	for _, err := range hs.fired {
		if !errors.Is(err, ErrNotAcknowledged) {
			t.Fatalf("released with %v", err)
		}
	}
	if s := rig.out.Stats(); s.Dropped != 25 || rig.out.AckStats().Abandoned != 25 {
		t.Fatalf("stats %+v", s)
	}
}

// TestAckPushIgnoresBadAcks: malformed acks, acks of another stream, of a
// batch already acknowledged and of one never sent are counted and change
// nothing.
func TestAckPushIgnoresBadAcks(t *testing.T) {
	rig := newAckRig(t, AckPushConfig{Batch: 10, Window: 4, Timeout: time.Minute}, 1)
	if err := rig.out.Write(context.Background(), numbered(20)); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("2 batches acked"), func() bool { return rig.out.AckStats().Acked == 2 })
	rig.mu.Lock()
	stream := rig.streamID
	rig.mu.Unlock()
	rogue := zmq.NewPush(zmq.Options{})
	defer rogue.Close()
	rogue.Dial(rig.ackEP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []zmq.Msg{
		{ackpipe.AppendAck(nil, stream, 1)},      // duplicate
		{ackpipe.AppendAck(nil, stream, 3)},      // future: never sent
		{ackpipe.AppendAck(nil, stream+1, 1)},    // unknown stream
		{[]byte("not an ack")},                   // malformed
		{ackpipe.AppendAck(nil, stream, 2), nil}, // malformed: two frames
		{ackpipe.AppendAck(nil, stream, 0)},      // malformed: batch 0
	} {
		if err := rogue.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	testpeer.Eventually(t, 5*time.Second, func() string { return fmt.Sprintf("%+v", rig.out.AckStats()) }, func() bool {
		st := rig.out.AckStats()
		return st.AcksDuplicate == 1 && st.AcksFuture == 1 && st.AcksUnknown == 1 && st.AcksMalformed == 3
	})
	// The output still works: the next batch is acknowledged normally.
	if err := rig.out.Write(context.Background(), numbered(10)); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("batch 3 acked"), func() bool { return rig.out.AckStats().Acked == 3 })
}

// TestAckPushResendsWhatAWorkerSwallowed: a worker that takes batches and
// never passes them on; after Timeout they are resent to the others.
func TestAckPushResendsWhatAWorkerSwallowed(t *testing.T) {
	const n = 2000
	rig := newAckRig(t, AckPushConfig{Batch: 50, Window: 8, Timeout: 300 * time.Millisecond}, 2)
	// A third worker that reads and drops everything.
	black := zmq.NewPull(zmq.Options{})
	defer black.Close()
	black.Dial("tcp://" + rig.out.Addrs()[0].String())
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("3 workers"), func() bool { return rig.out.Stats().Peers == 3 })
	var swallowed atomic.Int64
	go func() {
		for {
			if _, err := black.Recv(context.Background()); err != nil {
				return
			}
			swallowed.Add(1)
		}
	}()
	evs := numbered(n)
	hs := withHandoffs(evs)
	if err := writeAll(context.Background(), rig.out, evs, 64); err != nil {
		t.Fatal(err)
	}
	hs.dispatched()
	// The black hole keeps taking resends too, but each time it is one
	// of three workers: every batch gets through eventually.
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", rig.out.AckStats()) }, func() bool {
		ok, _ := hs.count()
		return ok == n
	})
	seen := rig.delivered()
	for _, e := range evs {
		if seen[string(e.Raw)] != 1 {
			t.Fatalf("%s delivered %d times to the sink application", e.Raw, seen[string(e.Raw)])
		}
	}
	st := rig.out.AckStats()
	if swallowed.Load() == 0 || st.Resent == 0 || st.ResentEvents != 50*st.Resent {
		t.Fatalf("swallowed %d; ack stats %+v", swallowed.Load(), st)
	}
}

// TestAckPushResendsOrphansAtOnce: batches still queued for a worker that
// goes away were never sent to anyone; they are resent whole at once,
// not after Timeout, and not spread over the other workers piecemeal.
func TestAckPushResendsOrphansAtOnce(t *testing.T) {
	rig := newAckRig(t, AckPushConfig{Batch: 10, Window: 64, Timeout: time.Minute, Options: zmq.Options{HWM: 1000}}, 1)
	// A worker that completes the handshake and never reads: once its
	// kernel buffers are full, the relay queues its batches.
	c, err := net.Dial("tcp", rig.out.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	testpeer.ZMTPHandshake(t, c, "PULL")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("2 workers"), func() bool { return rig.out.Stats().Peers == 2 })
	big := make([]byte, 32<<10)
	var evs []*event.Event
	for i := range 640 {
		e := event.New(fmt.Appendf(append([]byte(nil), big...), " msgnum:%08d", i))
		e.Stream = "app"
		evs = append(evs, e)
	}
	if err := writeAll(context.Background(), rig.out, evs, 10); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("batches queued for the stuck worker"), func() bool {
		return rig.out.Stats().Queued > 0
	})
	c.Close()
	// The stuck worker's kernel had some batches: those wait for the
	// timeout (a minute). The queued ones go to the live worker now.
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("%+v", rig.out.AckStats()) }, func() bool {
		st := rig.out.AckStats()
		return st.Orphaned > 0 && st.Resent > 0 && st.Acked+uint64(st.InFlight) == 64 && st.Acked >= 64-uint64(st.Resent)
	})
	// Every orphaned message's batch was resent (a minute before its
	// timeout), whole: at most 10 orphans per resent batch.
	st := rig.out.AckStats()
	if st.Orphaned > 10*st.Resent {
		t.Fatalf("orphaned %d messages but resent %d batches", st.Orphaned, st.Resent)
	}
	// What the socket lost in the failed write is resent, not lost: the
	// output's socket counters do not report it as dropped.
	if n := rig.out.Socket().Drops[zmq.DropLostInFlight]; n != 0 {
		t.Fatalf("socket drops report %d lost in flight", n)
	}
	t.Logf("%+v", st)
}

// TestAckPushSendSeqs: the spool's side of the output. Records are
// acknowledged to the spool in runs of consecutive seqs, only once their
// batch is acknowledged, never twice; what is unacknowledged at Close is
// not acknowledged (the spool keeps it for after a restart).
func TestAckPushSendSeqs(t *testing.T) {
	rig := newAckRig(t, AckPushConfig{Batch: 10, Window: 4, Timeout: time.Minute}, 2)
	var mu sync.Mutex
	acked := map[uint64]int{}
	ack := func(first, last uint64) {
		mu.Lock()
		defer mu.Unlock()
		if last < first {
			t.Errorf("ack(%d, %d)", first, last)
		}
		for s := first; s <= last; s++ {
			acked[s]++
		}
	}
	send := func(from, n int) {
		payloads := make([][]byte, n)
		seqs := make([]uint64, n)
		for i := range n {
			seqs[i] = uint64(from + i)
			payloads[i] = fmt.Appendf(nil, "<13>1 - h app - - - msgnum:%08d", from+i)
		}
		if k, err := rig.out.SendSeqs(context.Background(), payloads, seqs, ack); k != n || err != nil {
			t.Fatalf("SendSeqs = %d, %v", k, err)
		}
	}
	// Seqs from 1000, in calls that cross batch boundaries; a gap at
	// 1100 (the spool dropped nothing, but another output read them).
	send(1000, 37)
	send(1037, 63)
	send(1200, 20)
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("every record acked"), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == 120
	})
	mu.Lock()
	for s, c := range acked {
		if c != 1 || (s >= 1100 && s < 1200) || s < 1000 || s >= 1220 {
			t.Fatalf("seq %d acked %d times", s, c)
		}
	}
	mu.Unlock()
	// Now the sink stops acking: nothing more is acked, before or after
	// Close.
	rig.pause()
	send(2000, 15)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := rig.out.Close(ctx); err == nil {
		t.Fatal("Close with unacked batches returned nil")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != 120 {
		t.Fatalf("%d records acked, want the first 120 only", len(acked))
	}
}

func TestSettleRuns(t *testing.T) {
	var got [][2]uint64
	a := &seqAcker{ack: func(f, l uint64) { got = append(got, [2]uint64{f, l}) }}
	b := &seqAcker{ack: func(f, l uint64) { got = append(got, [2]uint64{f + 1000, l + 1000}) }}
	var tags []any
	for _, s := range []struct {
		seq uint64
		a   *seqAcker
	}{{1, a}, {2, a}, {3, a}, {5, a}, {6, b}, {7, b}, {9, b}} {
		tags = append(tags, &seqTag{seq: s.seq, acker: s.a})
	}
	settle(tags, nil)
	want := [][2]uint64{{1, 3}, {5, 5}, {1006, 1007}, {1009, 1009}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	got = nil
	settle(tags, ErrNotAcknowledged)
	if got != nil {
		t.Fatalf("abandoned records acked: %v", got)
	}
}

// TestAckPushAsSpoolSender drains a disk spool into the acknowledged
// output: a record leaves the spool only once a worker's ack covers it.
// The output is then closed with batches unacknowledged (the sink stopped
// acking) and the spool reopened, as after a restart: exactly those
// records are delivered again, and nothing more than one window is
// duplicated.
func TestAckPushAsSpoolSender(t *testing.T) {
	const batch, window = 10, 4
	dir := t.TempDir()
	open := func() *spool.Disk {
		sp, err := spool.Open(spool.Options{Dir: dir, Fsync: spool.FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	appendN := func(sp *spool.Disk, from, n int) {
		recs := make([]spool.Record, n)
		for i := range recs {
			recs[i] = spool.Record{Raw: fmt.Appendf(nil, "<13>1 - h app - - - msgnum:%08d", from+i), Stream: "app"}
		}
		if err := sp.Append(context.Background(), recs, func(error) {}); err != nil {
			t.Fatal(err)
		}
	}
	drain := func(ctx context.Context, sp *spool.Disk, out *AckPush) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				recs, err := sp.Read(ctx, 64)
				if err != nil {
					return
				}
				if err := out.Send(ctx, recs, func(first, last uint64) { sp.Ack(first, last) }); err != nil {
					return
				}
			}
		}()
		return done
	}

	sp := open()
	rig := newAckRig(t, AckPushConfig{Batch: batch, Window: window, Timeout: time.Minute}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := drain(ctx, sp, rig.out)
	appendN(sp, 0, 1000)
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("spool empty: %+v", sp.Stats()) }, func() bool {
		return sp.Stats().Records == 0
	})
	if d := rig.delivered(); len(d) != 1000 {
		t.Fatalf("sink has %d of 1000", len(d))
	}
	// The sink stops acking; more records come; the window fills.
	resume := rig.pause()
	appendN(sp, 1000, 500)
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the window to fill"), func() bool { return rig.out.AckStats().WindowFull })
	if left := sp.Stats().Records; left != 500 {
		t.Fatalf("the spool holds %d records, want all 500 unacknowledged", left)
	}
	cancel()
	<-done
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	rig.out.Close(cctx) // abandons the window: nothing is acked to the spool
	ccancel()
	resume()
	sp.Close()

	// "Restart": the spool reopens and a new output delivers what is left.
	sp = open()
	defer sp.Close()
	if left := sp.Stats().Records; left != 500 {
		t.Fatalf("after reopening the spool holds %d records, want 500", left)
	}
	rig2 := newAckRig(t, AckPushConfig{Batch: batch, Window: window, Timeout: time.Minute}, 2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	done2 := drain(ctx2, sp, rig2.out)
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("spool empty: %+v", sp.Stats()) }, func() bool {
		return sp.Stats().Records == 0
	})
	cancel2()
	<-done2
	first, second := rig.delivered(), rig2.delivered()
	dups := 0
	for k := range second {
		if first[k] > 0 {
			dups++
		}
	}
	if len(second) != 500 || dups > batch*window {
		t.Fatalf("after the restart: %d delivered, %d of them duplicates; want the 500 left, at most %d duplicated", len(second), dups, batch*window)
	}
	for i := 1000; i < 1500; i++ {
		k := fmt.Sprintf("<13>1 - h app - - - msgnum:%08d", i)
		if first[k]+second[k] == 0 {
			t.Fatalf("%s lost", k)
		}
	}
	t.Logf("after the restart: %d duplicates (window %d events)", dups, batch*window)
}
