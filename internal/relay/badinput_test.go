package relay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// goodMsgs are the well-formed messages of the "good" app, seq [from, to).
func goodMsgs(from, to int) []string {
	var m []string
	for i := from; i < to; i++ {
		m = append(m, fmt.Sprintf("<14>1 2026-11-22T05:00:00Z goodhost good - - - %s", testpeer.Seq(i)))
	}
	return m
}

// writeAll writes b to c, failing the test on error.
func writeAll(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestBadInput throws garbage, wrong octet counts, a 10 MiB frame, a
// half-open connection and binary junk at the syslog input, and a 2^49-byte
// ZMTP frame header and a junk greeting at the PULL input, while good
// connections send. The relay keeps serving, /metrics counts each case,
// and no event of a good connection is lost.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("real libzmq peers")
	}
	r := startRelay(t, `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
    max_message_size: 64KiB
    idle_timeout: 5s
  - name: zmq
    type: zmq
    socket: pull
    bind: tcp://127.0.0.1:0
    max_message_size: 1MiB
stream: {from: app-name, default: unknown}
outputs:
  - name: good
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [good]
  - name: junk
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: ["*"]
    hwm: 100000
http:
  listen: 127.0.0.1:0
`)
	good := startWorkers(t, r, "good", 1)[0]
	startWorkers(t, r, "junk", 1) // drains whatever the junk turns into
	addr := inputAddr(t, r, "syslog", "tcp")
	counter := func(name, input string) float64 { return metric(t, r, "relay_input_"+name, "input="+input) }

	// A good connection that stays open across everything below.
	gc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	sendOn := func(c net.Conn, msgs []string) {
		var b bytes.Buffer
		for _, m := range msgs {
			fmt.Fprintf(&b, "%d %s", len(m), m)
		}
		writeAll(t, c, b.Bytes())
	}
	sendOn(gc, goodMsgs(0, 1000))

	// Half-open: a peer that sends half a frame and then goes silent.
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	writeAll(t, half, []byte("300 <14>1 2026-11-22T05:00:00Z h good - - - never finished"))

	// Garbage text (LF-framed lines that are not syslog) and an 11-digit
	// octet count, then good frames on the same connection: it resyncs.
	c1, _ := net.Dial("tcp", addr)
	writeAll(t, c1, []byte("hello, this is not syslog\n\x00\x01\x02\n12345678901 too many digits\n"))
	sendOn(c1, goodMsgs(1000, 1100))
	c1.Close()

	// A 10 MiB octet-counted frame, then good frames on the same
	// connection: the frame is skipped, the rest arrives.
	c2, _ := net.Dial("tcp", addr)
	big := bytes.Repeat([]byte("A"), 10<<20)
	writeAll(t, c2, append([]byte(fmt.Sprintf("%d ", len(big))), big...))
	sendOn(c2, goodMsgs(1100, 1200))
	c2.Close()

	// A count larger than what follows before the peer closes.
	c3, _ := net.Dial("tcp", addr)
	writeAll(t, c3, []byte("500 <14>1 2026-11-22T05:00:00Z h good - - - short"))
	c3.Close()

	// Binary junk: 200 KiB without a LF (oversize as a line), then bytes
	// of every value.
	c4, _ := net.Dial("tcp", addr)
	junk := bytes.Repeat([]byte{0x80, 0xff, 0xfe, 0x00, 0x1b}, 40<<10)
	writeAll(t, c4, junk)
	all := make([]byte, 0, 256*64)
	for i := range 256 * 64 {
		all = append(all, byte(i*7))
	}
	writeAll(t, c4, all)
	c4.Close()

	// The PULL input: a ZMTP peer whose frame header claims 2^49 bytes,
	// and one that sends a junk greeting.
	zaddr := inputAddr(t, r, "zmq", "tcp")
	zc, err := net.Dial("tcp", zaddr)
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	zc.SetDeadline(time.Now().Add(10 * time.Second))
	testpeer.ZMTPHandshake(t, zc, "PUSH")
	hdr := []byte{0x02, 0, 0, 0, 0, 0, 0, 0, 0} // LONG message frame, last
	binary.BigEndian.PutUint64(hdr[1:], 1<<49)
	writeAll(t, zc, hdr)
	zc.Write(bytes.Repeat([]byte("x"), 4096))
	testpeer.ExpectClosed(t, zc, 10*time.Second, "ZMTP peer with a 2^49-byte frame")
	jc, _ := net.Dial("tcp", zaddr)
	jc.SetDeadline(time.Now().Add(10 * time.Second))
	jc.Write(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64))
	testpeer.ExpectClosed(t, jc, 10*time.Second, "ZMTP peer with a junk greeting")
	jc.Close()

	// Meanwhile the good connection and a good libzmq peer carry on.
	sendOn(gc, goodMsgs(1200, 2000))
	var zmsgs []string
	for _, m := range goodMsgs(2000, 2500) {
		zmsgs = append(zmsgs, m)
	}
	testpeer.PushLines(t, "tcp://"+zaddr, zmsgs)
	gc.Close()

	const n = 2500
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("%d good events, have %d; metrics: malformed %v oversize %v, zmq oversize %v handshake errors %v",
			n, good.Count(), counter("malformed_total", "syslog"), counter("oversize_total", "syslog"),
			counter("oversize_total", "zmq"), counter("handshake_errors_total", "zmq"))
	}, func() bool { return good.Count() >= n })
	checkExactlyOnce(t, n, good)

	// Each case shows in the counters.
	testpeer.Eventually(t, 10*time.Second, func() string {
		return fmt.Sprintf("the counters: malformed %v (want 2: 11-digit count, count beyond EOF), oversize %v (want 2: 10 MiB frame, 200 KiB line)",
			counter("malformed_total", "syslog"), counter("oversize_total", "syslog"))
	}, func() bool {
		return counter("malformed_total", "syslog") == 2 && counter("oversize_total", "syslog") == 2
	})
	if got := counter("oversize_total", "zmq"); got != 1 {
		t.Errorf("zmq oversize_total = %v, want 1 (the 2^49-byte frame header)", got)
	}
	if got := counter("handshake_errors_total", "zmq"); got != 1 {
		t.Errorf("zmq handshake_errors_total = %v, want 1 (the junk greeting)", got)
	}
	if got := counter("received_total", "zmq"); got != 500 {
		t.Errorf("zmq received_total = %v, want 500", got)
	}

	// The half-open connection is still there until idle_timeout closes it.
	half.SetReadDeadline(time.Now().Add(20 * time.Second))
	testpeer.ExpectClosed(t, half, 20*time.Second, "half-open connection (idle_timeout)")
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("no syslog connections open"), func() bool { return counter("connections", "syslog") == 0 })

	// The same counters as /metrics serves them over HTTP.
	resp, err := http.Get("http://" + r.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		// 3 now: the half-open connection's unfinished frame, cut off by
		// idle_timeout, is a malformed fragment too.
		`relay_input_malformed_total{input="syslog"} 3`,
		`relay_input_oversize_total{input="syslog"} 2`,
		`relay_input_oversize_total{input="zmq"} 1`,
		`relay_input_handshake_errors_total{input="zmq"} 1`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	// Still serving after all that.
	sendTCP(t, addr, false, goodMsgs(n, n+10))
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("events after the bad input"), func() bool { return good.Count() >= n+10 })
	checkExactlyOnce(t, n+10, good)
}
