package output

import (
	"context"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// BenchmarkPubJSON compares a JSON PUB output's cost for a stream a
// subscriber wants (encoded and queued) with one nobody wants (skipped
// before encoding).
func BenchmarkPubJSON(b *testing.B) {
	out, err := NewZMQ(ZMQConfig{Name: "taps", Socket: "pub", Format: JSON, Bind: []string{"tcp://127.0.0.1:0"},
		Options: zmq.Options{HWM: 1 << 20}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close(context.Background())
	sub := zmq.NewSub(zmq.Options{})
	defer sub.Close()
	sub.Subscribe("click")
	sub.Dial("tcp://" + out.Addrs()[0].String())
	for deadline := time.Now().Add(10 * time.Second); !out.pub.Wanted([]byte("click")); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("subscriber never arrived")
		}
	}
	go func() { // drain, so the wanted case measures encoding, not a full queue
		buf := make([]zmq.Msg, 256)
		for {
			if _, err := sub.RecvBatch(context.Background(), buf); err != nil {
				return
			}
		}
	}()
	for _, stream := range []string{"click", "impression"} {
		b.Run("stream="+stream, func(b *testing.B) {
			batch := events(stream, 256)
			b.ReportAllocs()
			for b.Loop() {
				out.Write(context.Background(), batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
		})
	}
}
