package ackpipe

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// runConn records each SendWhole call as one run, the way a PUSH hands a
// batch to one worker.
type runConn struct {
	mu    sync.Mutex
	runs  [][]zmq.Msg
	block chan struct{} // when not nil, SendWhole waits on it (a full socket)
}

func (c *runConn) SendBatch(ctx context.Context, ms []zmq.Msg) (int, error) {
	panic("Whole mode must send whole runs")
}

func (c *runConn) SendWhole(ctx context.Context, ms []zmq.Msg) (int, error) {
	c.mu.Lock()
	block := c.block
	c.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	c.mu.Lock()
	c.runs = append(c.runs, ms)
	c.mu.Unlock()
	return len(ms), nil
}

func (c *runConn) taken() [][]zmq.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]zmq.Msg(nil), c.runs...)
}

// TestWholeSendsClosedBatchesInOneRun: nothing leaves before its batch
// closes; then the batch goes in one run, its last message flagged LAST,
// and OnAck returns the tags of exactly its messages.
func TestWholeSendsClosedBatchesInOneRun(t *testing.T) {
	conn := &runConn{}
	var acked []Acked
	var mu sync.Mutex
	s := NewSender(conn, Config{BatchSize: 4, Window: 3, Whole: true, Stream: 9, OnAck: func(a Acked) {
		mu.Lock()
		acked = append(acked, a)
		mu.Unlock()
	}})
	defer s.Close()
	ctx := context.Background()
	msgs := make([]zmq.Msg, 6)
	tags := make([]any, 6)
	for i := range msgs {
		msgs[i], tags[i] = payload(uint64(i)), i
	}
	if n, err := s.SendTagged(ctx, msgs[:3], tags[:3]); n != 3 || err != nil {
		t.Fatalf("SendTagged = %d, %v", n, err)
	}
	if runs := conn.taken(); len(runs) != 0 {
		t.Fatalf("%d runs sent before the batch was full", len(runs))
	}
	if n, err := s.SendTagged(ctx, msgs[3:], tags[3:]); n != 3 || err != nil {
		t.Fatalf("SendTagged = %d, %v", n, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	runs := conn.taken()
	if len(runs) != 2 || len(runs[0]) != 4 || len(runs[1]) != 2 {
		t.Fatalf("runs of %v, want 4 then 2 (no marker)", runLens(runs))
	}
	for r, run := range runs {
		for i, m := range run {
			h, err := ParseHeader(m[0])
			if err != nil {
				t.Fatal(err)
			}
			last := i == len(run)-1
			if h.Seq != uint64(r+1) || h.Index != uint32(i) || (h.Flags&FlagLast != 0) != last || h.Flags&FlagMarker != 0 {
				t.Fatalf("run %d message %d: header %+v", r, i, h)
			}
		}
	}
	if !s.Ack(2) || !s.Ack(1) {
		t.Fatal("acks refused")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != 2 || acked[0].Seq != 2 || len(acked[0].Tags) != 2 || acked[0].Tags[1] != 5 || acked[1].Msgs != 4 || acked[1].Tags[0] != 0 {
		t.Fatalf("OnAck got %+v", acked)
	}
}

func runLens(runs [][]zmq.Msg) []int {
	var n []int
	for _, r := range runs {
		n = append(n, len(r))
	}
	return n
}

// TestWholeFlushAfterCountsFromFirstMessage: a trickle that keeps adding
// to a batch still gets it sent FlushAfter after its first message.
func TestWholeFlushAfterCountsFromFirstMessage(t *testing.T) {
	conn := &runConn{}
	s := NewSender(conn, Config{BatchSize: 1000, Whole: true, FlushAfter: 50 * time.Millisecond})
	defer s.Close()
	ctx := context.Background()
	start := time.Now()
	for i := 0; len(conn.taken()) == 0; i++ {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the open batch was never flushed")
		}
		if err := s.Send(ctx, payload(uint64(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("flushed after %v", el)
	}
}

// TestAckClassification: every ack frame lands in exactly one counter.
func TestAckClassification(t *testing.T) {
	s := NewSender(&runConn{}, Config{BatchSize: 2, Window: 4, Whole: true, Stream: 5})
	defer s.Close()
	ctx := context.Background()
	if err := s.Send(ctx, payload(1), payload(2), payload(3)); err != nil { // batch 1 closed, 2 open
		t.Fatal(err)
	}
	ack := func(stream uint32, seq uint64) zmq.Msg { return zmq.Msg{AppendAck(nil, stream, seq)} }
	for _, m := range []zmq.Msg{
		ack(5, 1),                   // good
		ack(5, 1),                   // duplicate
		ack(5, 2),                   // future: batch 2 is still open
		ack(5, 3),                   // future: never opened
		ack(6, 1),                   // unknown stream
		{[]byte("short")},           // malformed
		{AppendAck(nil, 5, 1), nil}, // malformed: two frames
	} {
		_ = s.HandleAck(m)
	}
	st := s.Stats()
	if st.Acked != 1 || st.DupAcks != 1 || st.FutureAcks != 2 || st.UnknownAcks != 1 || st.MalformedAcks != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st.InFlight != 1 || st.AtRisk != 1 {
		t.Fatalf("in flight %d / at risk %d, want the open batch", st.InFlight, st.AtRisk)
	}
}

// TestWholeRetriesAnUnqueuedBatch: a batch whose first send failed (the
// socket was full and Send's context ended) stays taken and goes out with
// the next resend round, not counted as a resend.
func TestWholeRetriesAnUnqueuedBatch(t *testing.T) {
	block := make(chan struct{})
	conn := &runConn{block: block}
	s := NewSender(conn, Config{BatchSize: 2, Window: 2, Whole: true, ResendAfter: time.Minute, FlushAfter: 10 * time.Millisecond})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	n, err := s.SendTagged(ctx, []zmq.Msg{payload(1), payload(2)}, nil)
	cancel()
	if n != 2 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendTagged = %d, %v; want both taken and the deadline", n, err)
	}
	conn.mu.Lock()
	conn.block = nil
	conn.mu.Unlock()
	close(block)
	waitFor(t, "the batch to be sent", func() bool { return len(conn.taken()) == 1 })
	h, _ := ParseHeader(conn.taken()[0][0][0])
	if h.Flags&FlagResent != 0 {
		t.Fatal("a first send was flagged RESENT")
	}
	if st := s.Stats(); st.Resends != 0 || st.Unsent != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCloseAbandonsWithTags: Close reports every unacknowledged batch,
// the open one included, so the owners of its messages learn they are
// not safe; acknowledged ones are not reported again.
func TestCloseAbandonsWithTags(t *testing.T) {
	var abandoned []any
	s := NewSender(&runConn{}, Config{BatchSize: 2, Window: 4, Whole: true, OnAbandon: func(seq uint64, tags []any) {
		abandoned = append(abandoned, tags...)
	}})
	msgs := []zmq.Msg{payload(0), payload(1), payload(2), payload(3), payload(4)}
	if n, err := s.SendTagged(context.Background(), msgs, []any{0, 1, 2, 3, 4}); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	s.Ack(1)
	s.Close()
	if len(abandoned) != 3 || abandoned[0] != 2 || abandoned[2] != 4 {
		t.Fatalf("abandoned %v, want [2 3 4]", abandoned)
	}
}

// TestWholeOverZMQWorkersAck: three workers each receive whole batches
// and acknowledge them themselves with a Receiver, no sink involved.
func TestWholeOverZMQWorkersAck(t *testing.T) {
	const n, workers = 30_000, 3
	data := zmq.NewPush(zmq.Options{})
	acks := zmq.NewPull(zmq.Options{})
	t.Cleanup(func() { data.Close(); acks.Close() })
	if err := data.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := acks.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	seen := make([]int, n)
	perWorker := make([]int, workers)
	for w := range workers {
		in, out := zmq.NewPull(zmq.Options{}), zmq.NewPush(zmq.Options{})
		t.Cleanup(func() { in.Close(); out.Close() })
		in.Dial("tcp://" + data.Addrs()[0].String())
		out.Dial("tcp://" + acks.Addrs()[0].String())
		r := NewReceiver(out, ReceiverConfig{})
		go func() {
			buf := make([]zmq.Msg, 64)
			for {
				k, err := in.RecvBatch(ctx, buf)
				if err != nil {
					return
				}
				for _, m := range buf[:k] {
					p, fresh, err := r.Handle(ctx, m)
					if err != nil {
						t.Errorf("worker %d: %v", w, err)
						return
					}
					if fresh {
						mu.Lock()
						seen[binary.BigEndian.Uint64(p[0])]++
						perWorker[w]++
						mu.Unlock()
					}
				}
				if err := r.Commit(ctx); err != nil {
					return
				}
			}
		}()
	}
	waitFor(t, "3 workers", func() bool { return data.Stats().Peers == workers && acks.Stats().Peers == workers })
	s := NewSender(data, Config{BatchSize: 100, Window: 6, Whole: true, ResendAfter: 10 * time.Second})
	defer s.Close()
	go s.ReadAcks(ctx, acks)
	if err := sendAll(ctx, s, 0, n, 64); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := s.Wait(wctx); err != nil {
		t.Fatalf("wait for acks: %v (stats %+v)", err, s.Stats())
	}
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("message %d delivered %d times", id, c)
		}
	}
	for w, c := range perWorker {
		if c == 0 || c%100 != 0 {
			t.Fatalf("worker %d got %d messages: not whole batches of 100 (all: %v)", w, c, perWorker)
		}
	}
	if st := s.Stats(); st.Resends != 0 || st.Acked != n/100 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAckAfterCloseIsNotReported: a batch Close abandoned is reported
// once, to OnAbandon; an ack that arrives afterwards is a duplicate, not
// a second report to OnAck.
func TestAckAfterCloseIsNotReported(t *testing.T) {
	var acked, abandoned int
	s := NewSender(&runConn{}, Config{BatchSize: 1, Window: 2, Whole: true,
		OnAck:     func(Acked) { acked++ },
		OnAbandon: func(uint64, []any) { abandoned++ }})
	if err := s.Send(context.Background(), payload(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s.Ack(1) || acked != 0 || abandoned != 1 {
		t.Fatalf("after Close: acked %d, abandoned %d", acked, abandoned)
	}
	if st := s.Stats(); st.DupAcks != 1 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}
