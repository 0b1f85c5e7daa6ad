package zmq

import (
	"context"
	"fmt"
	"io"
	"net"
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

// BenchmarkPingPong: one 32-byte message there and back per op, Go PUSH →
// Go PULL, echoed by PUSH → PULL on a second connection: the latency of
// two hops through the socket layer. The tcp case is the same exchange
// over raw loopback TCP connections (one write and one read per hop), the
// floor the kernel sets.
func BenchmarkPingPong(b *testing.B) {
	b.Run("zmq", func(b *testing.B) {
		ctx := context.Background()
		aPush, aPull := NewPush(Options{}), NewPull(Options{})
		bPush, bPull := NewPush(Options{}), NewPull(Options{})
		for _, s := range []interface{ Close() error }{aPush, aPull, bPush, bPull} {
			defer s.Close()
		}
		if err := bPull.Listen("tcp://127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
		if err := aPull.Listen("tcp://127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
		aPush.Dial(tcpEndpoint(bPull.Addrs()[0]))
		bPush.Dial(tcpEndpoint(aPull.Addrs()[0]))
		echoCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			for {
				m, err := bPull.Recv(echoCtx)
				if err != nil {
					return
				}
				if bPush.Send(echoCtx, m) != nil {
					return
				}
			}
		}()
		payload := make([]byte, 32)
		rtt := func() {
			if err := aPush.Send(ctx, Msg{payload}); err != nil {
				b.Fatal(err)
			}
			if _, err := aPull.Recv(ctx); err != nil {
				b.Fatal(err)
			}
		}
		rtt() // connections up
		b.ResetTimer()
		for range b.N {
			rtt()
		}
	})
	b.Run("tcp", func(b *testing.B) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 34)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 34) // a 32-byte ZMTP frame with its header
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
