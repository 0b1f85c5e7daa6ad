package ackpipe

import (
	"context"
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
