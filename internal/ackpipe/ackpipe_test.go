package ackpipe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text(what), cond)
}

// chanConn is an in-memory Conn; drop, if set, loses chosen messages the
// way a dying peer would.
type chanConn struct {
	ch   chan zmq.Msg
	drop func(h Header) bool
	sent atomic.Int64
}

func (c *chanConn) SendBatch(ctx context.Context, ms []zmq.Msg) (int, error) {
	for i, m := range ms {
		h, err := ParseHeader(m[0])
		if err != nil {
			return i, err
		}
		if c.drop != nil && c.drop(h) {
			continue
		}
		select {
		case c.ch <- m:
			c.sent.Add(1)
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(ms), nil
}

// ackFunc adapts a function to AckConn.
type ackFunc func(ctx context.Context, m zmq.Msg) error

func (f ackFunc) Send(ctx context.Context, m zmq.Msg) error { return f(ctx, m) }

func payload(id uint64) zmq.Msg {
	return zmq.Msg{binary.BigEndian.AppendUint64(nil, id)}
}

// harness runs a Receiver on conn's channel, feeding its acks straight
// back to the Sender, and records what the application saw.
type harness struct {
	t    *testing.T
	s    *Sender
	r    *Receiver
	conn *chanConn
	gate sync.RWMutex // held for writing: the consumer is paused

	mu   sync.Mutex
	seen map[uint64]int
	done chan struct{}
	stop context.CancelFunc
	// dropAck, if set, loses chosen acks once.
	dropAck func(seq uint64) bool
}

func newHarness(t *testing.T, c Config, drop func(Header) bool) *harness {
	t.Helper()
	h := &harness{t: t, conn: &chanConn{ch: make(chan zmq.Msg, 16), drop: drop}, seen: map[uint64]int{}, done: make(chan struct{})}
	h.s = NewSender(h.conn, c)
	h.r = NewReceiver(ackFunc(func(ctx context.Context, m zmq.Msg) error {
		_, seq, err := ParseAck(m[0])
		if err != nil {
			return err
		}
		if h.dropAck != nil && h.dropAck(seq) {
			return nil
		}
		return h.s.HandleAck(m)
	}), ReceiverConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() {
		defer close(h.done)
		for {
			select {
			case m := <-h.conn.ch:
				h.gate.RLock()
				p, fresh, err := h.r.Handle(ctx, m)
				h.gate.RUnlock()
				if err != nil {
					t.Errorf("Handle: %v", err)
					return
				}
				if fresh {
					h.mu.Lock()
					h.seen[binary.BigEndian.Uint64(p[0])]++
					h.mu.Unlock()
				}
				// Ack only once the message is recorded, as a real sink
				// acks only what it has processed.
				h.gate.RLock()
				err = h.r.Commit(ctx)
				h.gate.RUnlock()
				if err != nil && ctx.Err() == nil {
					t.Errorf("Commit: %v", err)
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-h.done
		h.s.Close()
	})
	return h
}

// pause stops the consumer (no more acks) and returns the function that
// resumes it; cleanup resumes it too, so a failing test does not hang.
func (h *harness) pause() (resume func()) {
	h.gate.Lock()
	resume = sync.OnceFunc(h.gate.Unlock)
	h.t.Cleanup(resume)
	return resume
}

func (h *harness) received() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// exactlyOnce fails unless ids 0..n-1 were each delivered once.
func (h *harness) exactlyOnce(n int) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range uint64(n) {
		if c := h.seen[id]; c != 1 {
			h.t.Fatalf("message %d delivered %d times", id, c)
		}
	}
	if len(h.seen) != n {
		h.t.Fatalf("delivered %d distinct messages, want %d", len(h.seen), n)
	}
}

func sendAll(ctx context.Context, s *Sender, from, n, chunk int) error {
	for i := from; i < from+n; i += chunk {
		msgs := make([]zmq.Msg, 0, chunk)
		for j := i; j < min(i+chunk, from+n); j++ {
			msgs = append(msgs, payload(uint64(j)))
		}
		if err := s.Send(ctx, msgs...); err != nil {
			return err
		}
	}
	return nil
}

func TestExactlyOnceEveryBatchSize(t *testing.T) {
	const n = 5003 // not a multiple of any batch size: the last batch is flushed
	for _, batch := range []int{1_000_000, 1000, 100, 50, 10, 1} {
		for _, window := range []int{1, 4} {
			for _, chunk := range []int{1, 64} {
				t.Run(fmt.Sprintf("batch=%d/window=%d/chunk=%d", batch, window, chunk), func(t *testing.T) {
					h := newHarness(t, Config{BatchSize: batch, Window: window}, nil)
					ctx := context.Background()
					if err := sendAll(ctx, h.s, 0, n, chunk); err != nil {
						t.Fatal(err)
					}
					if err := h.s.Wait(ctx); err != nil {
						t.Fatal(err)
					}
					h.exactlyOnce(n)
					st := h.s.Stats()
					wantBatches := uint64((n + batch - 1) / batch)
					if st.Msgs != n || st.Batches != wantBatches || st.Acked != wantBatches || st.AckedMsgs != n || st.InFlight != 0 || st.AtRisk != 0 {
						t.Fatalf("sender stats %+v, want %d msgs in %d batches all acked", st, n, wantBatches)
					}
					rs := h.r.Stats()
					if rs.Msgs != n || rs.Duplicates != 0 || rs.Batches != wantBatches || rs.Malformed != 0 {
						t.Fatalf("receiver stats %+v", rs)
					}
				})
			}
		}
	}
}

func TestStallsWhileAcksStopAndResumes(t *testing.T) {
	const batch, window, n = 5, 2, 100
	h := newHarness(t, Config{BatchSize: batch, Window: window}, nil)
	resume := h.pause() // no acks
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() { errc <- sendAll(ctx, h.s, 0, n, 3) }()

	waitFor(t, "the sender to wait for the window", func() bool { return h.s.Stats().Waiting })
	st := h.s.Stats()
	if st.InFlight != window || st.AtRisk != batch*window || st.Acked != 0 {
		t.Fatalf("stalled with %+v, want %d batches / %d messages at risk", st, window, batch*window)
	}
	// One message is held by the paused consumer, the rest are queued in
	// the connection: nothing beyond the window was sent.
	if got := h.conn.sent.Load(); got != batch*window {
		t.Fatalf("sent %d messages while stalled, want %d", got, batch*window)
	}
	select {
	case err := <-errc:
		t.Fatalf("Send returned while the window was full: %v", err)
	default:
	}

	resume()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := h.s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	h.exactlyOnce(n)
	if st := h.s.Stats(); st.Stalls == 0 || st.StallTime <= 0 || st.Waiting {
		t.Fatalf("stall not counted: %+v", st)
	}
}

func TestSendHonoursContextWhileStalled(t *testing.T) {
	h := newHarness(t, Config{BatchSize: 2, Window: 1}, nil)
	defer h.pause()()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- sendAll(ctx, h.s, 0, 10, 1) }()
	waitFor(t, "the stall", func() bool { return h.s.Stats().Waiting })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want context.Canceled", err)
	}
	if h.s.Stats().Waiting {
		t.Fatal("still waiting after the context ended")
	}
}

func TestCloseWakesBlockedSend(t *testing.T) {
	h := newHarness(t, Config{BatchSize: 2, Window: 1}, nil)
	defer h.pause()()
	errc := make(chan error, 1)
	go func() { errc <- sendAll(context.Background(), h.s, 0, 10, 1) }()
	waitFor(t, "the stall", func() bool { return h.s.Stats().Waiting })
	h.s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Send = %v, want ErrClosed", err)
	}
	if err := h.s.Send(context.Background(), payload(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestResendRecoversLostMessages(t *testing.T) {
	const batch, n = 10, 1000
	var lost atomic.Int64
	var resends atomic.Int64
	drop := func(h Header) bool {
		// Lose every 7th message of its first transmission, like a
		// worker dying with them, and one whole batch's ending.
		if h.Flags&FlagResent != 0 {
			return false
		}
		if (uint64(h.Index)+h.Seq)%7 == 0 || h.Seq == 3 {
			if h.Flags&FlagMarker == 0 {
				lost.Add(1)
			}
			return true
		}
		return false
	}
	h := newHarness(t, Config{BatchSize: batch, Window: 3, ResendAfter: 5 * time.Millisecond,
		OnResend: func(uint64, int) { resends.Add(1) }}, drop)
	ctx := context.Background()
	if err := sendAll(ctx, h.s, 0, n, 16); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	h.exactlyOnce(n)
	// A resend already under way when the last ack arrived counts in
	// Stats before its OnResend runs: wait for the hook to catch up.
	waitFor(t, "OnResend to match Stats.Resends", func() bool { return uint64(resends.Load()) == h.s.Stats().Resends })
	// Copies resent just before the last ack may still be on their way to
	// the receiver when Wait returns: wait until it has handled every
	// resent message (the equality below), then check it holds exactly.
	waitFor(t, "the receiver to handle every resent message", func() bool {
		rs, st := h.r.Stats(), h.s.Stats()
		return rs.Recovered+rs.Duplicates >= st.ResentMsgs
	})
	rs, st := h.r.Stats(), h.s.Stats()
	if rs.Recovered != uint64(lost.Load()) {
		t.Fatalf("recovered %d, lost %d", rs.Recovered, lost.Load())
	}
	if st.Resends == 0 {
		t.Fatalf("no batch was resent, yet %d messages were lost", lost.Load())
	}
	// Every resent message was either recovered or a dropped copy.
	if rs.Recovered+rs.Duplicates != st.ResentMsgs {
		t.Fatalf("recovered %d + duplicates %d != resent %d", rs.Recovered, rs.Duplicates, st.ResentMsgs)
	}
}

func TestLostAckIsRepeated(t *testing.T) {
	h := newHarness(t, Config{BatchSize: 4, Window: 1, ResendAfter: 5 * time.Millisecond}, nil)
	var once sync.Once
	h.dropAck = func(seq uint64) bool {
		dropped := false
		if seq == 2 {
			once.Do(func() { dropped = true })
		}
		return dropped
	}
	ctx := context.Background()
	if err := sendAll(ctx, h.s, 0, 20, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	h.exactlyOnce(20)
	rs := h.r.Stats()
	if rs.ReAcks == 0 || rs.Duplicates < 4 {
		t.Fatalf("want batch 2 resent, dropped as copies and acked again: %+v", rs)
	}
}

func TestFlushAfterIdle(t *testing.T) {
	h := newHarness(t, Config{BatchSize: 100, FlushAfter: 2 * time.Millisecond}, nil)
	if err := sendAll(context.Background(), h.s, 0, 3, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle batch to be flushed and acked", func() bool { return h.s.Stats().Acked == 1 })
	h.exactlyOnce(3)
	if st := h.s.Stats(); st.AtRisk != 0 || st.AckedMsgs != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStreamsAreIndependent(t *testing.T) {
	var acked []uint64
	r := NewReceiver(ackFunc(func(_ context.Context, m zmq.Msg) error {
		_, seq, err := ParseAck(m[0])
		acked = append(acked, seq)
		return err
	}), ReceiverConfig{})
	ctx := context.Background()
	for _, stream := range []uint32{1, 2} {
		// A restarted sender starts again at batch 1 under a new stream.
		m := zmq.Msg{AppendHeader(nil, Header{Flags: FlagLast, Stream: stream, Seq: 1}), []byte("x")}
		if _, fresh, err := r.Handle(ctx, m); err != nil || !fresh {
			t.Fatalf("stream %d: fresh=%v err=%v", stream, fresh, err)
		}
		if len(acked) != int(stream)-1 {
			t.Fatalf("stream %d: acked %v before Commit", stream, acked)
		}
		if err := r.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) != 2 {
		t.Fatalf("acks %v, want one per stream", acked)
	}
}

func TestReceiverRefusesBadMessages(t *testing.T) {
	r := NewReceiver(ackFunc(func(context.Context, zmq.Msg) error { return nil }), ReceiverConfig{MaxBatch: 10})
	ctx := context.Background()
	good := func(h Header) []byte { return AppendHeader(nil, h) }
	cases := map[string]struct {
		m    zmq.Msg
		want error
	}{
		"empty":          {zmq.Msg{}, ErrMalformed},
		"short header":   {zmq.Msg{[]byte{1, 'D'}}, ErrMalformed},
		"ack as data":    {zmq.Msg{AppendAck(nil, 1, 1)}, ErrMalformed},
		"seq 0":          {zmq.Msg{good(Header{Stream: 1}), nil}, ErrMalformed},
		"index too big":  {zmq.Msg{good(Header{Stream: 1, Seq: 1, Index: 10}), nil}, ErrBatchTooLarge},
		"marker payload": {zmq.Msg{good(Header{Flags: FlagLast | FlagMarker, Stream: 1, Seq: 1}), []byte("x")}, ErrMalformed},
		"unknown flag":   {zmq.Msg{good(Header{Flags: 0x40, Stream: 1, Seq: 1})}, ErrMalformed},
	}
	for name, c := range cases {
		if _, fresh, err := r.Handle(ctx, c.m); !errors.Is(err, c.want) || fresh {
			t.Errorf("%s: fresh=%v err=%v, want %v", name, fresh, err, c.want)
		}
	}
	// An index past the batch's LAST is refused, not delivered.
	if _, _, err := r.Handle(ctx, zmq.Msg{good(Header{Flags: FlagLast, Stream: 2, Seq: 1, Index: 3}), nil}); err != nil {
		t.Fatal(err)
	}
	if _, fresh, err := r.Handle(ctx, zmq.Msg{good(Header{Stream: 2, Seq: 1, Index: 5}), nil}); !errors.Is(err, ErrMalformed) || fresh {
		t.Fatalf("index past LAST: fresh=%v err=%v", fresh, err)
	}
	if got := r.Stats().Malformed; got != uint64(len(cases))+1 {
		t.Fatalf("Malformed = %d, want %d", got, len(cases)+1)
	}
}

func TestHandleAckCountsBadAcks(t *testing.T) {
	s := NewSender(&chanConn{ch: make(chan zmq.Msg, 1)}, Config{Stream: 7})
	defer s.Close()
	if err := s.HandleAck(zmq.Msg{[]byte("junk")}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("junk ack: %v", err)
	}
	if err := s.HandleAck(zmq.Msg{AppendAck(nil, 8, 1)}); err != nil {
		t.Fatalf("foreign ack: %v", err)
	}
	if s.Ack(42) {
		t.Fatal("ack for a batch never sent was accepted")
	}
	if st := s.Stats(); st.MalformedAcks != 1 || st.UnknownAcks != 1 || st.FutureAcks != 1 || st.DupAcks != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLostMarkerIsResent(t *testing.T) {
	var dropped atomic.Bool
	drop := func(h Header) bool {
		return h.Flags&FlagMarker != 0 && h.Flags&FlagResent == 0 && dropped.CompareAndSwap(false, true)
	}
	h := newHarness(t, Config{BatchSize: 10, ResendAfter: 5 * time.Millisecond}, drop)
	ctx := context.Background()
	if err := sendAll(ctx, h.s, 0, 25, 4); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	h.exactlyOnce(25)
	if !dropped.Load() {
		t.Fatal("no marker was sent")
	}
	if rs := h.r.Stats(); rs.Batches != 3 || rs.Duplicates != 5 || rs.Recovered != 0 {
		t.Fatalf("want the partial batch resent whole, its 5 messages dropped as copies: %+v", rs)
	}
}

func TestWindowBoundsMessagesAtRisk(t *testing.T) {
	const batch, window = 4, 3 // 12 messages fit in chanConn's buffer
	h := newHarness(t, Config{BatchSize: batch, Window: window}, nil)
	var maxRisk atomic.Int64
	resume := h.pause()
	errc := make(chan error, 1)
	go func() { errc <- sendAll(context.Background(), h.s, 0, 500, 5) }()
	waitFor(t, "the stall", func() bool { return h.s.Stats().Waiting })
	maxRisk.Store(int64(h.s.Stats().AtRisk))
	resume()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := maxRisk.Load(); got != batch*window {
		t.Fatalf("at risk while stalled: %d, want window×batch = %d", got, batch*window)
	}
}

func TestResendingSenderFlushesIdleBatch(t *testing.T) {
	// The first copy of the partial batch is lost; without an idle flush
	// it would stay open, never resent.
	var lost atomic.Bool
	drop := func(h Header) bool { return h.Flags&FlagResent == 0 && lost.CompareAndSwap(false, true) }
	h := newHarness(t, Config{BatchSize: 100, ResendAfter: 10 * time.Millisecond}, drop)
	if err := sendAll(context.Background(), h.s, 0, 3, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the partial batch to be flushed, resent and acked", func() bool { return h.s.Stats().Acked == 1 })
	h.exactlyOnce(3)
	if rs := h.r.Stats(); rs.Recovered != 1 {
		t.Fatalf("receiver %+v, want 1 recovered", rs)
	}
}
