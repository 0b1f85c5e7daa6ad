package output

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// BenchmarkLinkOutput: events through the link output (spool fsync always,
// link sender, zstd) to an in-process receiver whose handler takes them at
// once, measured until the receiver has every event. Compare with
// BenchmarkSpooledPush (the spool alone) for the link's own cost.
func BenchmarkLinkOutput(b *testing.B) {
	for _, comp := range []link.Compression{link.CompressZstd, link.CompressS2, link.CompressNone} {
		b.Run(fmt.Sprintf("compression=%d", comp), func(b *testing.B) {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			l.Close()
			got := make(chan int, 1024)
			r, err := link.NewReceiver(link.ReceiverConfig{Name: "in", Listen: []string{"tcp://" + addr}, StateDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			r.Start(func(evs []*event.Event) {
				for _, e := range evs {
					e.Release(nil)
				}
				got <- len(evs)
			})
			defer r.Stop(context.Background())
			o, err := NewLink(LinkConfig{Name: "out", Spool: spool.Options{Dir: b.TempDir(), MaxBytes: 1 << 30},
				Sender: link.SenderConfig{Connect: []string{"tcp://" + addr}, Compression: comp}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer o.Close(context.Background())
			batch := make([]*event.Event, 256)
			raw := []byte(`<134>1 2026-12-07T08:00:00.123456Z web042.fra2.adserve.example.net impression 4242 ID47 [ad@32473 user="5f3a9c0e11d2b7a4" campaign="1234" ad="55555" placement="42" price="1.2345" ip="10.20.30.40"] GET /v2/impression?cid=1234&aid=55555&u=5f3a9c0e11d2b7a4 HTTP/1.1 200 1234 12ms`)
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i += len(batch) {
				k := min(len(batch), b.N-i)
				for j := 0; j < k; j++ {
					e := event.New(raw)
					e.Stream, e.Input, e.Received = "impression", "rsyslog", start
					batch[j] = e
				}
				if err := o.Write(context.Background(), batch[:k]); err != nil {
					b.Fatal(err)
				}
			}
			for n := 0; n < b.N; {
				n += <-got
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			st := o.LinkStats()
			b.Logf("window %d, ack rtt %s, batches %d, raw %d wire %d, marks fsyncs %d", st.Window, st.AckRTT, st.Batches, st.RawBytes, st.WireBytes, r.Stats().MarkFsyncs)
		})
	}
}
