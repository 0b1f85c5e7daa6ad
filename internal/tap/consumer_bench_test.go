package tap

import (
	"context"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// BenchmarkConsumerPub is the tap CLI's receive path: a Go PUB sends raw
// events, the consumer receives, filters by stream and encodes JSON.
func BenchmarkConsumerPub(b *testing.B) {
	p := zmq.NewPub(zmq.Options{HWM: 100000})
	if err := p.Listen("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	f, _ := NewFilter([]string{"click", "view"}, nil, "", 0)
	c, err := NewConsumer(ConsumerConfig{Source: "tcp://" + p.Addrs()[0].String(), Filter: f, ZMQ: zmq.Options{RecvHWM: 100000}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ev := testEvent("click", 1, "u1")
	msg := func() zmq.Msg { return zmq.Msg{[]byte("click"), ev.Raw} }
	ctx := context.Background()
	// Wait for the subscription.
	for {
		p.Send(msg())
		rctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := c.Recv(rctx)
		cancel()
		if err == nil {
			break
		}
	}
	go func() {
		for i := 0; i < b.N+100000; i++ {
			p.Send(msg())
			if i%1000 == 0 {
				for p.Stats().QueueDepth > 50000 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
	}()
	var buf []byte
	b.SetBytes(int64(len(ev.Raw)))
	b.ResetTimer()
	for range b.N {
		m, err := c.Recv(ctx)
		if err != nil {
			b.Fatal(err)
		}
		buf = m.Event().AppendJSON(buf[:0])
	}
}
