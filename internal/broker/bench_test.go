package broker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// BenchmarkKafkaSend is the Kafka Sender's cost per record (headers, the
// window, promises, acks as ranges) into kfake, beside a raw franz-go
// producer of the same records.
func BenchmarkKafkaSend(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events", "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	recs := make([]spool.Record, 1024)
	for i := range recs {
		raw := fmt.Appendf(nil, "<14>1 2026-01-01T00:00:00Z web01 click - - - seq:%08d ", i)
		for len(raw) < 200 {
			raw = append(raw, 'x')
		}
		recs[i] = spool.Record{Raw: raw, Stream: "click", Input: "in", Peer: "127.0.0.1:5000", Received: time.Now()}
	}
	b.Run("sender", func(b *testing.B) {
		k, err := NewKafka(KafkaConfig{Name: "b", Brokers: c.ListenAddrs(), Topic: "events", SpoolID: "0123456789abcdef", Compression: "zstd"})
		if err != nil {
			b.Fatal(err)
		}
		defer k.Close(context.Background())
		var acked atomic.Int64
		ack := func(first, last uint64) { acked.Add(int64(last - first + 1)) }
		b.ResetTimer()
		seq := uint64(0)
		for i := 0; i < b.N; i += len(recs) {
			for j := range recs {
				seq++
				recs[j].Seq = seq
			}
			k.Send(context.Background(), recs, ack)
		}
		for acked.Load() < int64(seq) {
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "rec/s")
	})
	b.Run("raw", func(b *testing.B) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("raw"), kgo.ProducerBatchCompression(kgo.ZstdCompression()),
			kgo.MaxBufferedRecords(8192), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		b.ResetTimer()
		n := 0
		for i := 0; i < b.N; i += len(recs) {
			for j := range recs {
				n++
				cl.Produce(context.Background(), &kgo.Record{Key: []byte("click"), Value: recs[j].Raw}, nil)
			}
		}
		cl.Flush(context.Background())
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rec/s")
	})
}
