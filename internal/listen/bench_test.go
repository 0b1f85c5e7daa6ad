package listen

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/frame"
)

// BenchmarkConn reads b.N 200-byte octet-counted frames from one TCP
// connection with internal/frame, once from the accepted *net.TCPConn
// (the reference: no core) and once through the core's Conn calling
// Frame for each frame (with and without an OnWait hook that hands over
// a batch of 256, as the syslog input does). The difference is what the
// core costs per frame.
func BenchmarkConn(b *testing.B) {
	m := "<165>1 2026-11-22T05:00:00.000000Z host.example.com app 4242 ID47 [ex@32473 i=\"00000000\"] "
	m += strings.Repeat("x", 200-len(m))
	var chunk bytes.Buffer
	const per = 1000
	for range per {
		fmt.Fprintf(&chunk, "%d %s", len(m), m)
	}
	for _, mode := range []string{"net", "listen", "listen+onwait"} {
		b.Run("conn="+mode, func(b *testing.B) {
			// One connection, so one reader: it closes done at the b.N-th frame.
			done := make(chan struct{})
			var seen int
			frameDone := func() {
				if seen++; seen == b.N {
					close(done)
				}
			}
			readAll := func(c net.Conn, onFrame func()) {
				fr := frame.NewReader(c, 0)
				for {
					if _, err := fr.Next(); err != nil {
						return
					}
					onFrame()
					frameDone()
				}
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			if mode == "net" {
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					readAll(c, func() {})
				}()
				defer ln.Close()
			} else {
				l, err := New(Limits{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				go l.Serve(ln, nil, func(c *Conn) {
					if mode == "listen+onwait" {
						pending := 0
						c.OnWait(func() bool { return pending > 0 }, func() { pending = 0 })
						readAll(c, func() {
							c.Frame()
							if pending++; pending == 256 {
								pending = 0
							}
						})
						return
					}
					readAll(c, c.Frame)
				})
				defer l.Close()
			}
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			size := chunk.Len() / per
			b.SetBytes(200)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			go func() {
				for sent := 0; sent < b.N; {
					n := min(per, b.N-sent)
					if _, err := conn.Write(chunk.Bytes()[:n*size]); err != nil {
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
