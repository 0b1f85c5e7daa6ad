package zmq

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCurvePushPull: 200-byte messages, Go PUSH → Go PULL over TCP
// loopback, NULL beside CURVE in one run; the ns/msg difference is what
// CURVE costs per message (both ends' boxes on this machine's cores).
func BenchmarkCurvePushPull(b *testing.B) {
	for _, mech := range []string{"null", "curve"} {
		b.Run(mech, func(b *testing.B) {
			var po, lo Options
			if mech == "curve" {
				ss, cs, _, _ := curvePair(b)
				po.Security, lo.Security = cs, ss
			}
			push := NewPush(po)
			pull := NewPull(lo)
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
			for i := 0; i < b.N; i++ {
				push.Send(ctx, Msg{payload})
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		})
	}
}

// BenchmarkMsgCipher is one 200-byte frame sealed and opened.
func BenchmarkMsgCipher(b *testing.B) {
	var shared [32]byte
	c := newMsgCipher(&shared, nonceMsgC, 0)
	buf := make([]byte, 201)
	tag := make([]byte, boxOverhead)
	b.SetBytes(201)
	for i := 0; b.Loop(); i++ {
		c.seal(uint64(i), tag, buf)
		if !c.open(uint64(i), tag, buf) {
			b.Fatal("open")
		}
	}
}

// BenchmarkNullEncodeCost: what a NULL peer's writer pays for CURVE
// support, one 200-byte message at a time: appendMsg as before beside
// peer.appendMsg (the nil check in front of it), in one run.
func BenchmarkNullEncodeCost(b *testing.B) {
	m := Msg{make([]byte, 200)}
	buf := make([]byte, 0, writeBufSize)
	p := &peer{}
	b.Run("appendMsg", func(b *testing.B) {
		for b.Loop() {
			buf = appendMsg(buf[:0], m)
		}
	})
	b.Run("peer.appendMsg", func(b *testing.B) {
		for b.Loop() {
			buf = p.appendMsg(buf[:0], m)
		}
	})
}
