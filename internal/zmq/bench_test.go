package zmq

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkPushPull: 200-byte messages, Go PUSH → Go PULL over TCP
// loopback. msg/s is the figure to compare (bench/zmq.sh puts it next to
// libzmq's).
func BenchmarkPushPull(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			push := NewPush(Options{})
			pull := NewPull(Options{})
			defer push.Close()
			defer pull.Close()
			if err := pull.Listen("tcp://127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			push.Dial(tcpEndpoint(pull.Addrs()[0]))
			ctx := context.Background()
			payload := make([]byte, 200)
			done := make(chan error, 1)
			go func() {
				buf := make([]Msg, 256)
				for n := 0; n < b.N; {
					k, err := pull.RecvBatch(ctx, buf)
					if err != nil {
						done <- err
						return
					}
					n += k
				}
				done <- nil
			}()
			b.SetBytes(200)
			b.ResetTimer()
			start := time.Now()
			if batch == 1 {
				for i := 0; i < b.N; i++ {
					push.Send(ctx, Msg{payload})
				}
			} else {
				ms := make([]Msg, batch)
				for i := 0; i < b.N; i += batch {
					k := min(batch, b.N-i)
					for j := range k {
						ms[j] = Msg{payload}
					}
					push.SendBatch(ctx, ms[:k])
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		})
	}
}

// BenchmarkPubSub: 200-byte messages, Go PUB → Go SUBs; one subscriber
// may be stalled (connected, never reading). Reports the healthy
// subscribers' receive rate and the drops.
func BenchmarkPubSub(b *testing.B) {
	for _, c := range []struct{ healthy, stalled int }{{1, 0}, {3, 0}, {3, 1}} {
		b.Run(fmt.Sprintf("subs=%d/stalled=%d", c.healthy, c.stalled), func(b *testing.B) {
			pub := NewPub(Options{HWM: 10000})
			defer pub.Close()
			if err := pub.Listen("tcp://127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			ep := tcpEndpoint(pub.Addrs()[0])
			var subs []*Sub
			for i := 0; i < c.healthy+c.stalled; i++ {
				s := NewSub(Options{RecvHWM: 10000})
				defer s.Close()
				s.Subscribe("")
				s.Dial(ep)
				subs = append(subs, s)
				// One at a time, so the first c.healthy peers are the healthy ones.
				for {
					l := *pub.list.Load()
					if len(l) == i+1 && l[i].subs.Load().match(nil) {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			healthy := (*pub.list.Load())[:c.healthy]
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan int, c.healthy)
			for _, s := range subs[:c.healthy] {
				go func() {
					n := 0
					buf := make([]Msg, 256)
					for {
						k, err := s.RecvBatch(ctx, buf)
						n += k
						if err != nil || n >= b.N {
							got <- n
							return
						}
					}
				}()
			}
			payload := make([]byte, 200)
			b.SetBytes(200)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				pub.Send(Msg{payload})
				if i%256 == 0 {
					// Pace to the healthy subscribers so drops come from
					// the stalled one only.
					for maxDepth(healthy) > 5000 {
						runtime.Gosched()
					}
				}
			}
			// Wait for the healthy ones, or give up a second after the end.
			total := 0
			timeout := time.After(time.Second + time.Duration(b.N)*time.Microsecond)
			for i := 0; i < c.healthy; i++ {
				select {
				case n := <-got:
					total += n
				case <-timeout:
					cancel()
					total += <-got
				}
			}
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(total)/float64(c.healthy)/el, "msg/s/sub")
			b.ReportMetric(float64(pub.Stats().Drops[DropPubQueueFull])/float64(b.N), "drops/op")
		})
	}
}

// maxDepth is the longest send queue among peers.
func maxDepth(peers []*peer) int {
	m := 0
	for _, p := range peers {
		m = max(m, p.q.len())
	}
	return m
}
