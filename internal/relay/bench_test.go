package relay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// BenchmarkRelay is the whole relay in process: 200-byte RFC 5424
// messages on one TCP connection, octet-counted → syslog input → router
// → PUSH output (raw or json) → an internal/zmq PULL. It exists to
// profile the event path (go test -bench Relay -cpuprofile);
// bench/relay.sh measures the binary against rsyslogd.
func BenchmarkRelay(b *testing.B) {
	for _, format := range []string{"raw", "json"} {
		b.Run(format, func(b *testing.B) { benchRelay(b, format) })
	}
}

func benchRelay(b *testing.B, format string) {
	r := startRelay(b, fmt.Sprintf(`
inputs:
  - name: in
    type: syslog
    listen: tcp://127.0.0.1:0
outputs:
  - name: out
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    format: %s
http:
  listen: ""
`, format))
	pull := zmq.NewPull(zmq.Options{})
	defer pull.Close()
	if err := pull.Dial(outputEndpoint(b, r, "out")); err != nil {
		b.Fatal(err)
	}
	testpeer.Eventually(b, 10*time.Second, testpeer.Text("the PULL peer"), func() bool { return metric(b, r, "relay_output_peers", "output=out") == 1 })

	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]zmq.Msg, 256)
		for got.Load() < int64(b.N) {
			k, err := pull.RecvBatch(context.Background(), buf)
			if err != nil {
				return
			}
			got.Add(int64(k))
		}
	}()
	msg := []byte("<14>1 2026-11-22T05:00:00.000000Z benchhost bench 1234 - - seq:0000000000 ")
	msg = append(msg, bytes.Repeat([]byte("x"), 200-len(msg))...)
	frame := append([]byte(fmt.Sprintf("%d ", len(msg))), msg...)
	const chunk = 1000
	buf := bytes.Repeat(frame, chunk)
	c, err := net.Dial("tcp", inputAddr(b, r, "in", "tcp"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += chunk {
		if _, err := c.Write(buf[:min(chunk, b.N-sent)*len(frame)]); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d messages arrived", got.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
