package input

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// bench200 is a 200-byte RFC 5424 message.
func bench200(i int) string {
	m := fmt.Sprintf("<165>1 2026-11-22T05:00:00.000000Z host.example.com app 4242 ID47 [ex@32473 i=\"%08d\"] ", i)
	return m + strings.Repeat("x", 200-len(m))
}

// BenchmarkSyslogInput pushes b.N 200-byte RFC 5424 messages through one
// connection (or socket) into a counting Handler and reports msg/s.
// allocs/op and B/op are per message, both ends included.
func BenchmarkSyslogInput(b *testing.B) {
	for _, tc := range []struct{ name, listen string }{
		{"tcp_octet", "tcp://127.0.0.1:0"},
		{"tcp_lf", "tcp://127.0.0.1:0"},
		{"tls_octet", "tls://127.0.0.1:0"},
		{"udp", "udp://127.0.0.1:0"},
		{"unixgram", "unix://DIR/bench.sock"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := SyslogConfig{Name: "bench", Listen: []string{strings.ReplaceAll(tc.listen, "DIR", b.TempDir())}}
			var cli *tls.Config
			if strings.HasPrefix(tc.listen, "tls") {
				p := newTestPKI(b)
				srv, err := LoadTLS(p.serverCert, p.serverKey, "", "")
				if err != nil {
					b.Fatal(err)
				}
				cfg.TLS, cli = srv, p.clientConfig(b, false)
			}
			s, err := NewSyslog(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			var got atomic.Int64
			done := make(chan struct{})
			target := int64(b.N)
			if err := s.Start(func(batch []*event.Event) {
				if got.Add(int64(len(batch))) == target {
					close(done)
				}
			}); err != nil {
				b.Fatal(err)
			}
			defer s.Stop(context.Background())
			a := s.Addrs()[0]
			var conn net.Conn
			switch {
			case cli != nil:
				conn, err = tls.Dial("tcp", a.String(), cli)
			default:
				conn, err = net.Dial(a.Network(), a.String())
			}
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()

			dgram := tc.name == "udp" || tc.name == "unixgram"
			const chunk = 1000
			var buf bytes.Buffer
			var msgs [][]byte
			for i := range chunk {
				m := bench200(i)
				switch {
				case dgram:
					msgs = append(msgs, []byte(m))
				case tc.name == "tcp_lf":
					buf.WriteString(m + "\n")
				default:
					buf.WriteString(octet(m))
				}
			}
			per := buf.Len() / chunk
			b.SetBytes(200)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			go func() {
				for sent := 0; sent < b.N; {
					n := min(chunk, b.N-sent)
					if dgram {
						for _, m := range msgs[:n] {
							if _, err := conn.Write(m); err != nil {
								return
							}
						}
					} else if _, err := conn.Write(buf.Bytes()[:n*per]); err != nil {
						return
					}
					sent += n
				}
			}()
			if tc.name == "udp" {
				// UDP may drop under load: wait for all or a quiet spell.
				for last := int64(-1); ; {
					select {
					case <-done:
					case <-time.After(200 * time.Millisecond):
						if g := got.Load(); g != last {
							last = g
							continue
						}
					}
					break
				}
			} else {
				<-done
			}
			el, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(got.Load())/el.Seconds(), "msg/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
			if tc.name == "udp" {
				b.ReportMetric(float64(int64(b.N)-got.Load())/float64(b.N), "lost/op")
			}
		})
	}
}

// BenchmarkZMQInput pushes b.N 200-byte messages from an internal/zmq
// PUSH over TCP into the PULL input and a counting Handler.
func BenchmarkZMQInput(b *testing.B) {
	for _, frames := range []int{1, 2} {
		b.Run(fmt.Sprintf("frames=%d", frames), func(b *testing.B) {
			z, err := NewZMQ(ZMQConfig{Name: "bench", Bind: []string{"tcp://127.0.0.1:0"}, StreamFrame: true}, nil)
			if err != nil {
				b.Fatal(err)
			}
			var got atomic.Int64
			done := make(chan struct{})
			target := int64(b.N)
			if err := z.Start(func(batch []*event.Event) {
				if got.Add(int64(len(batch))) == target {
					close(done)
				}
			}); err != nil {
				b.Fatal(err)
			}
			defer z.Stop(context.Background())
			push := zmq.NewPush(zmq.Options{})
			defer push.Close()
			if err := push.Dial("tcp://" + z.Addrs()[0].String()); err != nil {
				b.Fatal(err)
			}
			payload := []byte(bench200(0))
			b.SetBytes(200)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			go func() {
				for range b.N {
					m := zmq.Msg{payload}
					if frames == 2 {
						m = zmq.Msg{[]byte("stream"), payload}
					}
					if push.Send(context.Background(), m) != nil {
						return
					}
				}
			}()
			<-done
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msg/s")
		})
	}
}

// BenchmarkSyslogInputFlood is BenchmarkSyslogInput's tcp_octet case with
// 1,000 idle connections held open meanwhile (they never send, as in an
// idle flood; the first-frame deadline is off so they stay): on the same
// input ("input"), or on a bare net.Listener of the same process
// ("elsewhere", the reference: the same descriptors and kernel sockets,
// without the core), or none. input vs elsewhere is what the core's
// handling of the flood costs the connection that carries the events.
func BenchmarkSyslogInputFlood(b *testing.B) {
	const idle = 1000
	for _, where := range []string{"none", "elsewhere", "input"} {
		b.Run("idle="+where, func(b *testing.B) {
			cfg := SyslogConfig{Name: "bench", Listen: []string{"tcp://127.0.0.1:0"},
				Limits: listen.Limits{MaxConnections: 2 * idle, MaxPerSource: -1, FirstFrameTimeout: listen.Off}}
			s, err := NewSyslog(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			var got atomic.Int64
			done := make(chan struct{})
			target := int64(b.N)
			if err := s.Start(func(batch []*event.Event) {
				if got.Add(int64(len(batch))) == target {
					close(done)
				}
			}); err != nil {
				b.Fatal(err)
			}
			defer s.Stop(context.Background())
			addr := s.Addrs()[0].String()
			var held atomic.Int64
			switch where {
			case "elsewhere":
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						defer c.Close()
						held.Add(1)
					}
				}()
				addr = ln.Addr().String()
			}
			if where != "none" {
				for range idle {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
				}
				for held.Load() < idle && s.Stats().Connections < idle {
					time.Sleep(time.Millisecond)
				}
			}
			conn, err := net.Dial("tcp", s.Addrs()[0].String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			const chunk = 1000
			var buf bytes.Buffer
			for i := range chunk {
				buf.WriteString(octet(bench200(i)))
			}
			per := buf.Len() / chunk
			b.SetBytes(200)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			go func() {
				for sent := 0; sent < b.N; {
					n := min(chunk, b.N-sent)
					if _, err := conn.Write(buf.Bytes()[:n*per]); err != nil {
						return
					}
					sent += n
				}
			}()
			<-done
			el, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msg/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
		})
	}
}

// cpuTime is the process's CPU time (user and system): unlike wall time,
// it does not grow when neighbours take the shared cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
