package ackpipe

import (
	"bytes"
	"context"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

func FuzzParseHeader(f *testing.F) {
	f.Add(AppendHeader(nil, Header{Flags: FlagLast, Stream: 1, Seq: 1, Index: 9}))
	f.Add(AppendHeader(nil, Header{Flags: FlagLast | FlagMarker | FlagResent, Stream: ^uint32(0), Seq: ^uint64(0)}))
	f.Add(AppendAck(nil, 1, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to the same bytes.
		if got := AppendHeader(nil, h); !bytes.Equal(got, b) {
			t.Fatalf("round trip %x -> %+v -> %x", b, h, got)
		}
	})
}

func FuzzParseAck(f *testing.F) {
	f.Add(AppendAck(nil, 1, 1))
	f.Add(AppendAck(nil, ^uint32(0), ^uint64(0)))
	f.Add(AppendHeader(nil, Header{Stream: 1, Seq: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		stream, seq, err := ParseAck(b)
		if err != nil {
			return
		}
		if got := AppendAck(nil, stream, seq); !bytes.Equal(got, b) {
			t.Fatalf("round trip %x -> %d/%d -> %x", b, stream, seq, got)
		}
	})
}

// FuzzReceiver feeds a Receiver a stream of messages cut from the input:
// each 20-byte chunk is a header, optionally followed by a payload frame.
// Whatever arrives, no message is delivered twice and nothing panics.
func FuzzReceiver(f *testing.F) {
	var seed []byte
	for i := range uint32(3) {
		seed = AppendHeader(seed, Header{Stream: 1, Seq: 1, Index: i, Flags: map[bool]byte{true: FlagLast}[i == 2]})
		seed = append(seed, 1)
	}
	seed = AppendHeader(seed, Header{Stream: 1, Seq: 1, Index: 1, Flags: FlagResent})
	seed = append(seed, 1)
	seed = AppendHeader(seed, Header{Stream: 1, Seq: 2, Index: 0, Flags: FlagLast | FlagMarker})
	seed = append(seed, 0)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		acks := 0
		r := NewReceiver(ackFunc(func(_ context.Context, m zmq.Msg) error {
			if _, _, err := ParseAck(m[0]); err != nil {
				t.Fatalf("receiver sent a bad ack: %v", err)
			}
			acks++
			return nil
		}), ReceiverConfig{MaxBatch: 1 << 12, MaxOpen: 4, MaxStreams: 4})
		type key struct {
			stream uint32
			seq    uint64
			index  uint32
		}
		delivered := map[key]bool{}
		for len(b) >= HeaderLen+1 {
			hb, more := b[:HeaderLen], b[HeaderLen]
			b = b[HeaderLen+1:]
			m := zmq.Msg{hb}
			if more&1 != 0 {
				m = append(m, []byte("payload"))
			}
			_, fresh, err := r.Handle(context.Background(), m)
			if cerr := r.Commit(context.Background()); cerr != nil {
				t.Fatalf("Commit: %v", cerr)
			}
			if !fresh {
				continue
			}
			if err != nil {
				t.Fatalf("delivered with error %v", err)
			}
			h, _ := ParseHeader(hb)
			k := key{h.Stream, h.Seq, h.Index}
			// Eviction may forget a batch, so only check within the bounds.
			if delivered[k] && r.Stats().Evicted == 0 {
				t.Fatalf("%+v delivered twice", k)
			}
			delivered[k] = true
		}
		if st := r.Stats(); st.Batches+st.ReAcks != uint64(acks) {
			t.Fatalf("acks sent %d, stats %+v", acks, st)
		}
	})
}

// FuzzSenderAcks feeds a Sender with batches 1..5 closed and 6 open
// whatever ack frames the input holds (each: one length byte, then that
// many bytes). Every frame must be counted exactly once (acked, or
// ignored as malformed, unknown, duplicate or future), no batch may be
// acknowledged twice or before it closed, and nothing panics.
func FuzzSenderAcks(f *testing.F) {
	frame := func(b []byte) []byte { return append([]byte{byte(len(b))}, b...) }
	var seed []byte
	for _, seq := range []uint64{1, 3, 3, 6, 7, 1 << 40} {
		seed = append(seed, frame(AppendAck(nil, 7, seq))...)
	}
	seed = append(seed, frame(AppendAck(nil, 8, 2))...)
	seed = append(seed, frame([]byte{1, 'A', 0})...)
	f.Add(seed)
	f.Add(frame(AppendHeader(nil, Header{Stream: 7, Seq: 2})))
	f.Fuzz(func(t *testing.T, b []byte) {
		acked := map[uint64]int{}
		s := NewSender(&runConn{}, Config{BatchSize: 2, Window: 8, Whole: true, Stream: 7, OnAck: func(a Acked) {
			acked[a.Seq]++
			if len(a.Tags) != a.Msgs {
				t.Fatalf("batch %d: %d tags for %d messages", a.Seq, len(a.Tags), a.Msgs)
			}
		}})
		defer s.Close()
		msgs := make([]zmq.Msg, 11) // batches 1..5 closed, 6 open with one message
		for i := range msgs {
			msgs[i] = payload(uint64(i))
		}
		if n, err := s.SendTagged(context.Background(), msgs, make([]any, len(msgs))); n != len(msgs) || err != nil {
			t.Fatal(n, err)
		}
		frames := 0
		for len(b) > 0 {
			n := int(b[0])
			b = b[1:]
			if n > len(b) {
				n = len(b)
			}
			_ = s.HandleAck(zmq.Msg{b[:n]})
			b = b[n:]
			frames++
		}
		st := s.Stats()
		if got := st.Acked + st.MalformedAcks + st.UnknownAcks + st.DupAcks + st.FutureAcks; got != uint64(frames) {
			t.Fatalf("%d frames, counted %d: %+v", frames, got, st)
		}
		for seq, c := range acked {
			if c != 1 || seq < 1 || seq > 5 {
				t.Fatalf("batch %d acknowledged %d times (closed batches are 1..5)", seq, c)
			}
		}
		if st.Acked != uint64(len(acked)) || st.InFlight != 6-len(acked) {
			t.Fatalf("stats %+v after %d acks", st, len(acked))
		}
	})
}
