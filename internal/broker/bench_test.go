package broker

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// BenchmarkKafkaSend is the Kafka Sender's cost per record (headers, the
// window, promises, acks as ranges) into kfake, beside a raw franz-go
// producer of the same values (raw), and of the same values with the
// Sender's key and headers (raw-headers). cpu-ns/rec is the process's CPU
// (kfake's included: it runs in the test's process) per record, steadier
// than the wall-clock ns/op on a shared machine.
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
		cpu0 := cpuNow()
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
		b.ReportMetric(float64(cpuNow()-cpu0)/float64(seq), "cpu-ns/rec")
	})
	for _, hdrs := range []bool{false, true} {
		name := "raw"
		if hdrs {
			name = "raw-headers"
		}
		b.Run(name, func(b *testing.B) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("raw"), kgo.ProducerBatchCompression(kgo.ZstdCompression()),
				kgo.MaxBufferedRecords(DefaultMaxPending), kgo.ProducerLinger(5*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			b.ResetTimer()
			cpu0 := cpuNow()
			n := 0
			recv := []byte(time.Now().UTC().Format(time.RFC3339Nano))
			for i := 0; i < b.N; i += len(recs) {
				for j := range recs {
					n++
					r := &kgo.Record{Key: []byte("click"), Value: recs[j].Raw}
					if hdrs {
						r.Headers = []kgo.RecordHeader{{Key: KafkaHeaderID, Value: fmt.Appendf(nil, "0123456789abcdef-%d", n)},
							{Key: KafkaHeaderStream, Value: []byte("click")}, {Key: KafkaHeaderInput, Value: []byte("in")},
							{Key: KafkaHeaderPeer, Value: []byte("127.0.0.1:5000")}, {Key: KafkaHeaderReceived, Value: recv}}
					}
					cl.Produce(context.Background(), r, nil)
				}
			}
			cl.Flush(context.Background())
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rec/s")
			b.ReportMetric(float64(cpuNow()-cpu0)/float64(n), "cpu-ns/rec")
		})
	}
}

// cpuNow is the process's CPU time (user and system) in nanoseconds.
func cpuNow() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
