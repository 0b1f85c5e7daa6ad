package output

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// BenchmarkPushAcked writes batches of 256 events to a PUSH output, plain
// and acknowledged, with one worker in the process that takes everything
// (and, acknowledged, acks every batch it completes): the output's own
// cost per event, beside the plain output's.
func BenchmarkPushAcked(b *testing.B) {
	for _, tc := range []struct {
		name  string
		batch int
	}{{"plain", 0}, {"acked/batch=100", 100}, {"acked/batch=1000", 1000}} {
		b.Run(tc.name, func(b *testing.B) {
			var out Output
			var data string
			var ack *zmq.Push
			if tc.batch == 0 {
				o, err := NewZMQ(ZMQConfig{Name: "w", Socket: "push", Bind: []string{"tcp://127.0.0.1:0"}}, nil)
				if err != nil {
					b.Fatal(err)
				}
				out, data = o, "tcp://"+o.Addrs()[0].String()
			} else {
				o, err := NewAckPush(AckPushConfig{Name: "w", Bind: []string{"tcp://127.0.0.1:0"}, AckBind: []string{"tcp://127.0.0.1:0"},
					Batch: tc.batch, Window: 16, Timeout: time.Minute}, nil)
				if err != nil {
					b.Fatal(err)
				}
				out, data = o, "tcp://"+o.Addrs()[0].String()
				ack = zmq.NewPush(zmq.Options{})
				defer ack.Close()
				ack.Dial("tcp://" + o.AckAddrs()[0].String())
			}
			pull := zmq.NewPull(zmq.Options{RecvHWM: 10000})
			defer pull.Close()
			pull.Dial(data)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				var r *ackpipe.Receiver
				if ack != nil {
					r = ackpipe.NewReceiver(ack, ackpipe.ReceiverConfig{})
				}
				buf := make([]zmq.Msg, 256)
				for {
					n, err := pull.RecvBatch(ctx, buf)
					if err != nil {
						return
					}
					if r != nil {
						for _, m := range buf[:n] {
							r.Handle(ctx, m)
						}
						r.Commit(ctx)
					}
				}
			}()
			for deadline := time.Now().Add(10 * time.Second); out.Stats().Peers == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("no worker")
				}
			}
			batch := events("click", 256)
			b.ReportAllocs()
			for b.Loop() {
				if err := out.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			if err := out.Close(cctx); err != nil {
				b.Fatal(fmt.Errorf("close: %w", err))
			}
		})
	}
}
