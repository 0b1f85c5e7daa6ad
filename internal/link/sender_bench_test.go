package link

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// ackingReceiver is the cheapest receiver: it welcomes a sender and acks
// every batch as soon as its header is read, without decompressing it, so
// a benchmark's CPU is the sender's.
func ackingReceiver(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				zs, err := zmq.NewSession(c, zmq.SessionOptions{Type: "DEALER", MaxMsgSize: MaxBatchLimit + 64<<10})
				if err != nil {
					return
				}
				defer zs.Close()
				if _, _, err := zs.Recv(); err != nil {
					return
				}
				if zs.Send(appendWelcome(Welcome{Name: "bench", MaxBatch: MaxBatchLimit})) != nil {
					return
				}
				var ack []byte
				for {
					m, cmd, err := zs.Recv()
					if err != nil {
						return
					}
					if cmd {
						if name, data, ok := zmq.ParseCommand(m[0]); ok && name == "PING" && len(data) >= 2 {
							zs.SendCmd("PONG", data[2:])
						}
						continue
					}
					h, err := ParseBatchHeader(m[0], MaxBatchLimit)
					if err != nil {
						return
					}
					ack = appendAck(ack[:0], h.Last)
					if zs.Send(zmq.Msg{ack}) != nil {
						return
					}
				}
			}()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// cpuNow is the process's user+system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSenderPath is a link output's sending side, as in a relay:
// batches of 256 realistic records appended to a disk spool (fsync
// always), drained into a Sender, batched, compressed and written over
// loopback to a receiver that acks each batch at once. It reports the
// process's CPU per event (cpu-ns/event: the sender's cost, the receiver
// only reads) beside the wall time per event. zstd,workers=1 compresses
// on the drain's goroutine, zstd,workers=2 on two goroutines of their own
// (CompressWorkers); plain zstd is the default (half of GOMAXPROCS).
//
//	go test -run XXX -bench SenderPath -benchtime 200000x ./internal/link/
func BenchmarkSenderPath(b *testing.B) {
	recs := realistic(4096, 7)
	var raw int
	for i := range recs {
		raw += len(recs[i].Raw)
	}
	for _, c := range []struct {
		name    string
		comp    Compression
		workers int
	}{{"none", CompressNone, 0}, {"s2", CompressS2, 0}, {"zstd", CompressZstd, 0}, {"zstd,workers=1", CompressZstd, 1}, {"zstd,workers=2", CompressZstd, 2}} {
		b.Run("compression="+c.name, func(b *testing.B) {
			sp, err := spool.Open(spool.Options{Dir: b.TempDir(), MaxBytes: 512 << 20, Fsync: spool.FsyncAlways})
			if err != nil {
				b.Fatal(err)
			}
			defer sp.Close()
			var id SenderID
			id[0] = 1
			snd, err := NewSender(SenderConfig{Name: "bench", Connect: []string{ackingReceiver(b)}, ID: id, Compression: c.comp, CompressWorkers: c.workers,
				Sent: func(r spool.Range) error { return sp.Sent(r) }})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { Drain(ctx, sp, snd, DefaultBatchRecords); close(done) }()
			defer func() {
				cancel()
				<-done
				snd.Close(context.Background())
			}()
			b.SetBytes(int64(raw / len(recs)))
			b.ResetTimer()
			cpu0, t0 := cpuNow(), time.Now()
			batch := make([]spool.Record, 0, 256)
			for i := 0; i < b.N; {
				batch = batch[:0]
				for ; len(batch) < 256 && i < b.N; i++ {
					batch = append(batch, recs[i%len(recs)])
				}
				if err := sp.Append(ctx, batch, nil); err != nil {
					b.Fatal(err)
				}
			}
			for snd.Stats().AckedRecords < uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			wall, cpu := time.Since(t0), cpuNow()-cpu0
			b.StopTimer()
			st := snd.Stats()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
			b.ReportMetric(float64(b.N)/wall.Seconds(), "events/s")
			b.ReportMetric(float64(st.RawBytes)/float64(max(st.WireBytes, 1)), "ratio")
			if testing.Verbose() {
				fmt.Printf("%s: %d batches, %.0f records each, window %d, ack rtt %s\n", c.name, st.Batches, float64(st.Records)/float64(max(st.Batches, 1)), st.Window, st.AckRTT)
			}
		})
	}
}
