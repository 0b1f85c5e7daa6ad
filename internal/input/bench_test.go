package input

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
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
			start := time.Now()
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
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(got.Load())/el.Seconds(), "msg/s")
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
