package ackpipe

import (
	"context"
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// zmqPair returns a bound PUSH and a PULL dialled to it over TCP loopback.
func zmqPair(t testing.TB) (*zmq.Push, *zmq.Pull) {
	t.Helper()
	push, pull := zmq.NewPush(zmq.Options{}), zmq.NewPull(zmq.Options{})
	t.Cleanup(func() { push.Close(); pull.Close() })
	if err := push.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := pull.Dial("tcp://" + push.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	return push, pull
}

// TestOverZMQ runs the pipeline's two ends over our real sockets: data on
// one PUSH/PULL pair, acks on another.
func TestOverZMQ(t *testing.T) {
	const n = 20_000
	data, dataIn := zmqPair(t)
	ackOut, ackIn := zmqPair(t)
	s := NewSender(data, Config{BatchSize: 100, Window: 2})
	defer s.Close()
	r := NewReceiver(ackOut, ReceiverConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.ReadAcks(ctx, ackIn)

	seen := make([]int, n)
	recvDone := make(chan error, 1)
	go func() {
		buf := make([]zmq.Msg, 64)
		got := 0
		for got < n {
			k, err := dataIn.RecvBatch(ctx, buf)
			if err != nil {
				recvDone <- err
				return
			}
			for _, m := range buf[:k] {
				p, fresh, err := r.Handle(ctx, m)
				if err != nil {
					recvDone <- err
					return
				}
				if fresh {
					seen[binary.BigEndian.Uint64(p[0])]++
					got++
				}
			}
			if err := r.Commit(ctx); err != nil {
				recvDone <- err
				return
			}
		}
		recvDone <- nil
	}()
	if err := sendAll(ctx, s, 0, n, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-recvDone; err != nil {
		t.Fatal(err)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("message %d delivered %d times", id, c)
		}
	}
	if st := s.Stats(); st.AckedMsgs != n || st.Acked != n/100 {
		t.Fatalf("sender stats %+v", st)
	}
}

// BenchmarkSender measures the sender's own cost per message, acks
// applied inline, with a Conn that discards.
func BenchmarkSender(b *testing.B) {
	for _, batch := range []int{10, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			var s *Sender
			s = NewSender(connFunc(func(_ context.Context, ms []zmq.Msg) (int, error) {
				for _, m := range ms {
					if m[0][2]&FlagLast != 0 {
						h, _ := ParseHeader(m[0])
						defer s.Ack(h.Seq) // after Send has recorded the batch
					}
				}
				return len(ms), nil
			}), Config{BatchSize: batch})
			defer s.Close()
			msgs := make([]zmq.Msg, 64)
			for i := range msgs {
				msgs[i] = payload(uint64(i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(msgs) {
				if err := s.Send(context.Background(), msgs...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type connFunc func(ctx context.Context, ms []zmq.Msg) (int, error)

func (f connFunc) SendBatch(ctx context.Context, ms []zmq.Msg) (int, error) { return f(ctx, ms) }

// BenchmarkReceiver measures Handle per message, batches of 100.
func BenchmarkReceiver(b *testing.B) {
	r := NewReceiver(ackFunc(func(context.Context, zmq.Msg) error { return nil }), ReceiverConfig{})
	const batch = 100
	msgs := make([]zmq.Msg, 0, b.N)
	for i := 0; i < b.N; i++ {
		h := Header{Stream: 1, Seq: uint64(i/batch + 1), Index: uint32(i % batch)}
		if i%batch == batch-1 {
			h.Flags = FlagLast
		}
		msgs = append(msgs, zmq.Msg{AppendHeader(nil, h), []byte("payload")})
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for _, m := range msgs {
		if _, fresh, err := r.Handle(ctx, m); err != nil || !fresh {
			b.Fatal(fresh, err)
		}
		if err := r.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
