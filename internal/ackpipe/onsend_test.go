package ackpipe

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// onSendLog records OnSend calls together with how many runs the Conn had
// taken at that moment.
type onSendLog struct {
	mu    sync.Mutex
	calls []onSendCall
}

type onSendCall struct {
	seq       uint64
	tags      []int
	runsTaken int
}

// TestOnSendWholeOncePerBatchBeforeItsRun: in Whole mode OnSend comes once
// per batch, with exactly its tags, before its run reaches the Conn (a
// full batch, and one closed by FlushAfter); a resend does not call it.
func TestOnSendWholeOncePerBatchBeforeItsRun(t *testing.T) {
	conn := &runConn{}
	var log onSendLog
	s := NewSender(conn, Config{BatchSize: 4, Window: 4, Whole: true, Stream: 3,
		ResendAfter: 150 * time.Millisecond, FlushAfter: 30 * time.Millisecond,
		OnSend: func(seq uint64, tags []any) {
			c := onSendCall{seq: seq, runsTaken: len(conn.taken())}
			for _, tg := range tags {
				c.tags = append(c.tags, tg.(int))
			}
			log.mu.Lock()
			log.calls = append(log.calls, c)
			log.mu.Unlock()
		}})
	defer s.Close()
	ctx := context.Background()
	msgs, tags := make([]zmq.Msg, 6), make([]any, 6)
	for i := range msgs {
		msgs[i], tags[i] = payload(uint64(i)), i
	}
	if n, err := s.SendTagged(ctx, msgs, tags); n != 6 || err != nil {
		t.Fatalf("SendTagged = %d, %v", n, err)
	}
	// Batch 1 (tags 0..3) went at once; batch 2 (4, 5) goes by FlushAfter;
	// both are then resent (no acks), without OnSend.
	waitFor(t, "both batches resent", func() bool { return s.Stats().Resends >= 2 })
	log.mu.Lock()
	calls := slices.Clone(log.calls)
	log.mu.Unlock()
	want := []onSendCall{{seq: 1, tags: []int{0, 1, 2, 3}, runsTaken: 0}, {seq: 2, tags: []int{4, 5}, runsTaken: 1}}
	if len(calls) != len(want) {
		t.Fatalf("OnSend calls %+v, want %+v", calls, want)
	}
	for i := range want {
		if calls[i].seq != want[i].seq || !slices.Equal(calls[i].tags, want[i].tags) || calls[i].runsTaken != want[i].runsTaken {
			t.Errorf("OnSend call %d: %+v, want %+v (runsTaken: runs the Conn had before it)", i, calls[i], want[i])
		}
	}
}

// TestOnSendPartsBeforeTheirMessages: without Whole, each part of a Send
// is announced with its own tags before its messages are queued.
func TestOnSendPartsBeforeTheirMessages(t *testing.T) {
	conn := &chanConn{ch: make(chan zmq.Msg, 100)}
	var log onSendLog
	s := NewSender(conn, Config{BatchSize: 3, Window: 4, Stream: 5, OnSend: func(seq uint64, tags []any) {
		c := onSendCall{seq: seq, runsTaken: int(conn.sent.Load())}
		for _, tg := range tags {
			c.tags = append(c.tags, tg.(int))
		}
		log.mu.Lock()
		log.calls = append(log.calls, c)
		log.mu.Unlock()
	}})
	defer s.Close()
	ctx := context.Background()
	msgs, tags := make([]zmq.Msg, 5), make([]any, 5)
	for i := range msgs {
		msgs[i], tags[i] = payload(uint64(i)), i
	}
	if n, err := s.SendTagged(ctx, msgs[:2], tags[:2]); n != 2 || err != nil {
		t.Fatalf("SendTagged = %d, %v", n, err)
	}
	if n, err := s.SendTagged(ctx, msgs[2:], tags[2:]); n != 3 || err != nil {
		t.Fatalf("SendTagged = %d, %v", n, err)
	}
	want := []onSendCall{
		{seq: 1, tags: []int{0, 1}, runsTaken: 0},
		{seq: 1, tags: []int{2}, runsTaken: 2},
		{seq: 2, tags: []int{3, 4}, runsTaken: 3},
	}
	if len(log.calls) != len(want) {
		t.Fatalf("OnSend calls %+v, want %+v", log.calls, want)
	}
	for i := range want {
		c := log.calls[i]
		if c.seq != want[i].seq || !slices.Equal(c.tags, want[i].tags) || c.runsTaken != want[i].runsTaken {
			t.Errorf("OnSend call %d: %+v, want %+v (runsTaken: messages the Conn had before it)", i, c, want[i])
		}
	}
}

// TestAckFreesTheWindowAfterOnAck: a Send waiting for room opens (and
// announces) its batch only once OnAck of the acknowledged one returned,
// so an owner never sees more than the window sent and unsettled.
func TestAckFreesTheWindowAfterOnAck(t *testing.T) {
	conn := &runConn{}
	inAck, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	s := NewSender(conn, Config{BatchSize: 2, Window: 1, Whole: true, Stream: 7,
		OnAck: func(a Acked) {
			close(inAck)
			<-release
			note(fmt.Sprintf("acked %d", a.Seq))
		},
		OnSend: func(seq uint64, _ []any) { note(fmt.Sprintf("send %d", seq)) }})
	defer s.Close()
	ctx := context.Background()
	if _, err := s.SendTagged(ctx, []zmq.Msg{payload(0), payload(1)}, []any{0, 1}); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := s.SendTagged(ctx, []zmq.Msg{payload(2), payload(3)}, []any{2, 3})
		sent <- err
	}()
	go s.Ack(1)
	<-inAck
	if s.Ack(1) {
		t.Error("a second ack of a batch being acknowledged was taken")
	}
	select {
	case err := <-sent:
		t.Fatalf("Send took the window while OnAck ran (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"send 1", "acked 1", "send 2"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if st := s.Stats(); st.DupAcks != 1 || st.Acked != 1 {
		t.Errorf("acked %d, duplicates %d; want 1 and 1", st.Acked, st.DupAcks)
	}
}
