package ackpipe

import (
	"context"
	"fmt"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// TestLateBatchBehindManyLaterOnes: a batch a slow worker passes on late,
// after many later batches (of a live, resending sender) completed, is
// delivered and acknowledged once whole; it is not taken for a copy of an
// acknowledged batch. The receiver used to forget the gap once more than
// 4×MaxOpen later batches were complete, drop the late batch's messages
// as copies and re-ack it: a silent loss (seen in bench/ackpush.sh with a
// window of 16 on a loaded machine: 1000 events missing, all acked).
func TestLateBatchBehindManyLaterOnes(t *testing.T) {
	ctx := context.Background()
	var acked []uint64
	r := NewReceiver(ackFunc(func(_ context.Context, m zmq.Msg) error {
		_, seq, err := ParseAck(m[0])
		if err != nil {
			return err
		}
		acked = append(acked, seq)
		return nil
	}), ReceiverConfig{MaxOpen: 4})
	msg := func(seq uint64, i uint32, last bool) zmq.Msg {
		h := Header{Stream: 9, Seq: seq, Index: i}
		if last {
			h.Flags = FlagLast
		}
		return zmq.Msg{AppendHeader(nil, h), []byte(fmt.Sprintf("%d/%d", seq, i))}
	}
	// Batch 1's first message arrives, then batches 2..5000 whole (one
	// worker), then the rest of batch 1 (the slow one).
	if _, fresh, err := r.Handle(ctx, msg(1, 0, false)); err != nil || !fresh {
		t.Fatalf("batch 1 index 0: fresh=%v err=%v", fresh, err)
	}
	const later = 5000
	for seq := uint64(2); seq <= later; seq++ {
		for i := uint32(0); i < 2; i++ {
			if _, fresh, err := r.Handle(ctx, msg(seq, i, i == 1)); err != nil || !fresh {
				t.Fatalf("batch %d index %d: fresh=%v err=%v", seq, i, fresh, err)
			}
		}
	}
	if err := r.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if len(acked) != later-1 {
		t.Fatalf("%d acks for the %d later batches", len(acked), later-1)
	}
	acked = acked[:0]
	if _, fresh, err := r.Handle(ctx, msg(1, 1, true)); err != nil || !fresh {
		t.Fatalf("late batch 1 index 1: fresh=%v err=%v (taken for a copy)", fresh, err)
	}
	if err := r.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if len(acked) != 1 || acked[0] != 1 {
		t.Fatalf("acks after batch 1 completed: %v, want [1]", acked)
	}
	// Now every batch is complete: copies of any are copies.
	for _, seq := range []uint64{1, 2, later / 2, later} {
		if _, fresh, _ := r.Handle(ctx, msg(seq, 0, false)); fresh {
			t.Fatalf("copy of batch %d delivered again", seq)
		}
	}
	if st := r.Stats(); st.Msgs != 2*later || st.Duplicates != 4 {
		t.Fatalf("stats %+v: want %d messages and 4 copies", st, 2*later)
	}
}

// TestDoneSpanIsBounded: what a Receiver remembers of complete batches
// past an incomplete one is bounded (maxDoneSpan batches); past it the
// oldest are forgotten and counted, and a batch number far in the future
// costs no time.
func TestDoneSpanIsBounded(t *testing.T) {
	ctx := context.Background()
	r := NewReceiver(ackFunc(func(context.Context, zmq.Msg) error { return nil }), ReceiverConfig{})
	one := func(seq uint64, i uint32, last bool) bool {
		h := Header{Stream: 3, Seq: seq, Index: i}
		if last {
			h.Flags = FlagLast
		}
		_, fresh, err := r.Handle(ctx, zmq.Msg{AppendHeader(nil, h), []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	one(1, 0, false) // batch 1 stays incomplete
	for _, seq := range []uint64{2, maxDoneSpan, maxDoneSpan + 100, 1 << 62} {
		if !one(seq, 0, true) {
			t.Fatalf("batch %d not delivered", seq)
		}
	}
	if st := r.Stats(); st.Evicted != 1 {
		t.Fatalf("Evicted = %d, want 1 (batch 1, forgotten)", st.Evicted)
	}
	s := r.streams[3]
	if len(s.done)*64 > maxDoneSpan+64 {
		t.Fatalf("done holds %d words", len(s.done))
	}
	// Forgotten counts as complete: a late message of batch 1 is a copy.
	if one(1, 1, true) {
		t.Fatal("a message of a forgotten batch was delivered")
	}
	if !one((1<<62)+1, 0, true) || one(1<<62, 0, true) {
		t.Fatal("batches after the jump are not tracked")
	}
}
