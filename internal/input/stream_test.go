package input

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

func octet(m string) string { return fmt.Sprintf("%d %s", len(m), m) }

func msg5424(id string) string {
	return "<165>1 2026-11-22T05:00:00.000Z host app 42 ID47 - " + id
}

func TestTCPMixedFraming(t *testing.T) {
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}})
	conn := dialTCP(t, s)
	want := []string{msg5424("a"), "<13>Nov 22 05:00:00 host app: b", msg5424("c with\nnewline"), "<13>d", msg5424("e")}
	mustWrite(t, conn, octet(want[0])+want[1]+"\n"+octet(want[2])+want[3]+"\r\n")
	mustWrite(t, conn, octet(want[4]))
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("5 events"), func() bool { return c.len() == 5 })
	got := c.raws()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %q, want %q", i, got[i], want[i])
		}
	}
	for _, e := range c.snapshot() {
		if e.Input != "test" || e.Peer != conn.LocalAddr().String() || e.Received.IsZero() {
			t.Errorf("event not stamped: input %q peer %q (want %q) received %v", e.Input, e.Peer, conn.LocalAddr(), e.Received)
		}
	}
	if st := s.Stats(); st.Received != 5 || st.Malformed != 0 || st.ConnectionsTotal != 1 || st.Connections != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Junk of every kind on one connection: each is counted or passed through,
// the stream resynchronises, and the marker sent afterwards arrives, as do
// events on a second, clean connection.
func TestTCPGarbage(t *testing.T) {
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}, MaxMessageSize: 4096})
	bad := dialTCP(t, s)
	good := dialTCP(t, s)
	junk := []string{
		"99999999999999999999 way too many digits\n", // malformed count
		"12 short\n", // count longer than the frame: swallows what follows
		"\n\n\n",     // empty lines
		"3 <1>\n",    // count shorter than the frame
		"\x00\x01\x02\xff\xfe binary \x00 junk\n", // binary
		"5000 " + strings.Repeat("x", 5000),       // oversize octet-counted
		strings.Repeat("y", 5000) + "\n",          // oversize LF frame
		"\n<13>resync\n",
	}
	for _, j := range junk {
		mustWrite(t, bad, j)
		mustWrite(t, good, "<13>good\n")
	}
	mustWrite(t, bad, "<13>MARKER\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("marker after junk"), func() bool { return contains(c.raws(), "MARKER") })
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("every clean event"), func() bool {
		n := 0
		for _, r := range c.raws() {
			if r == "<13>good" {
				n++
			}
		}
		return n == len(junk)
	})
	// Exactly what each piece of junk became: the count of 12 takes
	// "short\n" and what follows (a count is a count), the count of 3
	// takes "<1>" short and its tail is a line of its own, binary is
	// passed through, empty lines are skipped, and only the digit run and
	// the two oversize frames are counted as bad.
	var fromBad []string
	for _, r := range c.raws() {
		if r != "<13>good" {
			fromBad = append(fromBad, r)
		}
	}
	want := []string{"short\n\n\n\n3 <", "1>", "\x00\x01\x02\xff\xfe binary \x00 junk", "<13>resync", "<13>MARKER"}
	if !slices.Equal(fromBad, want) {
		t.Errorf("events from the junk connection %q, want %q", fromBad, want)
	}
	st := s.Stats()
	if st.Malformed != 1 || st.Oversize != 2 || st.Received != uint64(len(junk)+len(want)) || st.ReadErrors != 0 {
		t.Errorf("malformed %d, oversize %d, received %d, read errors %d; want 1, 2, %d, 0", st.Malformed, st.Oversize, st.Received, st.ReadErrors, len(junk)+len(want))
	}
	if st.Connections != 2 {
		t.Errorf("a connection was dropped over junk: %+v", st)
	}
}

func TestTCPTenMiBFrame(t *testing.T) {
	big := strings.Repeat("z", 10<<20)
	t.Run("oversize", func(t *testing.T) {
		s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}})
		conn := dialTCP(t, s)
		go conn.Write([]byte(octet(big) + "<13>after\n")) // the reader skips 10 MiB while this writes
		testpeer.Eventually(t, 10*time.Second, testpeer.Text("event after the skipped frame"), func() bool { return c.len() == 1 })
		if got := c.raws()[0]; got != "<13>after" {
			t.Errorf("got %q", got)
		}
		if st := s.Stats(); st.Oversize != 1 {
			t.Errorf("oversize = %d, want 1", st.Oversize)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}, MaxMessageSize: 16 << 20})
		conn := dialTCP(t, s)
		go conn.Write([]byte(octet(big) + "<13>after\n"))
		testpeer.Eventually(t, 10*time.Second, testpeer.Text("both events"), func() bool { return c.len() == 2 })
		if got := c.raws(); got[0] != big || got[1] != "<13>after" {
			t.Errorf("got lengths %d, %d", len(got[0]), len(got[1]))
		}
	})
}

// A peer that sends half a frame and then nothing holds one goroutine: the
// idle timeout closes it, and Stop never waits for it.
func TestTCPHalfOpen(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) {
		s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}, Limits: listen.Limits{IdleTimeout: 100 * time.Millisecond, CloseGrace: 100 * time.Millisecond}})
		half := dialTCP(t, s)
		mustWrite(t, half, "<13>complete\n<13>half a fra")
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("complete event"), func() bool { return c.len() >= 1 })
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("idle connection closed"), func() bool { return s.Stats().Connections == 0 })
		half.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := half.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("peer read after idle close: %v, want EOF", err)
		}
	})
	t.Run("stop", func(t *testing.T) {
		s, err := NewSyslog(SyslogConfig{Name: "t", Listen: []string{"tcp://127.0.0.1:0", "tls://127.0.0.1:0"}, TLS: testServerTLS(t)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		if err := s.Start(c.handle); err != nil {
			t.Fatal(err)
		}
		var conns []net.Conn
		for _, a := range s.Addrs() {
			conn, err := net.Dial("tcp", a.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conns = append(conns, conn)
		}
		mustWrite(t, conns[0], "<13>one\n<13>half")
		// conns[1] is a TLS listener: this client never starts the handshake.
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("event"), func() bool { return c.len() == 1 })
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("both connections"), func() bool { return s.Stats().Connections == 2 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("stop with half-open connections: %v", err)
		}
		if st := s.Stats(); st.Connections != 0 {
			t.Errorf("connections after stop = %d", st.Connections)
		}
	})
}

func TestTCPManyConnections(t *testing.T) {
	const conns, per = 50, 1000
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}})
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addrOf(t, s, "tcp").String())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			var b bytes.Buffer
			for j := range per {
				m := msg5424(fmt.Sprintf("c%d-m%d", i, j))
				if j%2 == 0 {
					b.WriteString(octet(m))
				} else {
					b.WriteString(m + "\n")
				}
			}
			if _, err := conn.Write(b.Bytes()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("every event"), func() bool { return c.len() >= conns*per })
	seen := map[string]int{}
	for _, r := range c.raws() {
		seen[r]++
	}
	for i := range conns {
		for j := range per {
			if n := seen[msg5424(fmt.Sprintf("c%d-m%d", i, j))]; n != 1 {
				t.Fatalf("c%d-m%d seen %d times", i, j, n)
			}
		}
	}
	if st := s.Stats(); st.Received != conns*per || st.ConnectionsTotal != conns {
		t.Errorf("stats = %+v", st)
	}
}

// At max_connections a new connection evicts the longest-idle one
// (gracefully: it reads EOF, and a reconnecting sender gets in).
func TestTCPMaxConnections(t *testing.T) {
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}, Limits: listen.Limits{MaxConnections: 2, MaxPerSource: -1}})
	a, b := dialTCP(t, s), dialTCP(t, s)
	mustWrite(t, a, "<13>a\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("a's event"), func() bool { return c.len() == 1 })
	time.Sleep(20 * time.Millisecond)
	mustWrite(t, b, "<13>b\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("two events"), func() bool { return c.len() == 2 })
	third := dialTCP(t, s)
	mustWrite(t, third, "<13>third\n")
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("longest-idle connection not evicted: read err %v", err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the third's event"), func() bool { return c.len() == 3 })
	if st := s.Stats(); st.Closed[listen.EvictedIdle] != 1 || st.ConnectionsRefused != 0 || st.ConnectionsTotal != 3 {
		t.Errorf("stats = %+v", st)
	}
}

// While the Handler blocks, the input stops reading: the kernel buffers
// fill and the sender's writes stop making progress. Once it resumes,
// every event arrives exactly once.
func TestTCPBackpressure(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		s, c := startSyslog(t, SyslogConfig{Listen: []string{"tcp://127.0.0.1:0"}})
		testBackpressure(t, s, c, func() net.Conn { return dialTCP(t, s) })
	})
	t.Run("tls", func(t *testing.T) {
		p := newTestPKI(t)
		srv, err := LoadTLS(p.serverCert, p.serverKey, "", "")
		if err != nil {
			t.Fatal(err)
		}
		s, c := startSyslog(t, SyslogConfig{Listen: []string{"tls://127.0.0.1:0"}, TLS: srv})
		testBackpressure(t, s, c, func() net.Conn {
			conn, err := tls.Dial("tcp", addrOf(t, s, "tcp").String(), p.clientConfig(t, false))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return conn
		})
	})
}

// testBackpressure dials only once its data is ready: a connection
// silent past the first-frame deadline (10 s; building the data takes
// that long under -race on a busy machine) is closed.
func testBackpressure(t *testing.T, s *Syslog, c *collector, dial func() net.Conn) {
	gate := c.block()

	const n = 500000 // ~32 MiB: far more than socket buffers hold
	var b bytes.Buffer
	for i := range n {
		b.WriteString(octet(msg5424(fmt.Sprintf("m%07d", i))))
	}
	data := b.Bytes()
	conn := dial()

	// A writer in 64 KiB chunks; the test watches its progress stall: the
	// receiver has stopped reading and the buffers between us are full.
	// (No write deadlines: a timed-out TLS write breaks the connection.)
	var written atomic.Int64
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); {
			w, err := conn.Write(data[off:min(off+64<<10, len(data))])
			off += w
			written.Store(int64(off))
			if err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	for last, still := int64(-1), 0; still < 3; {
		time.Sleep(100 * time.Millisecond)
		select {
		case err := <-werr:
			t.Fatalf("writer finished (%v) with %d of %d bytes while the handler was blocked: no backpressure", err, written.Load(), len(data))
		default:
		}
		if w := written.Load(); w == last {
			still++
		} else {
			last, still = w, 0
		}
	}
	if got := c.len(); got != 0 {
		t.Fatalf("%d events delivered past a blocked handler", got)
	}
	t.Logf("sender blocked after %d of %d bytes", written.Load(), len(data))

	close(gate)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("every event"), func() bool { return c.len() >= n })
	for i, r := range c.raws() {
		if want := msg5424(fmt.Sprintf("m%07d", i)); r != want {
			t.Fatalf("event %d = %q, want %q", i, r, want)
		}
	}
	if st := s.Stats(); st.Received != n || st.HandlerBlocked <= 0 {
		t.Errorf("stats = %+v", st)
	}
}

// Stop hands over what was read before it returns.
func TestTCPStopDelivers(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Name: "t", Listen: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{gate: make(chan struct{})}
	entered := make(chan struct{}, 1)
	var returned atomic.Bool // the handler has returned
	h := func(b []*event.Event) {
		select {
		case entered <- struct{}{}:
		default:
		}
		c.handle(b)
		returned.Store(true)
	}
	if err := s.Start(h); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustWrite(t, conn, "<13>one\n")
	<-entered
	type result struct {
		err            error
		handlerWasDone bool
	}
	stopped := make(chan result)
	go func() {
		err := s.Stop(context.Background())
		stopped <- result{err, returned.Load()}
	}()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("Stop to begin"), s.isStopping)
	close(c.gate)
	res := <-stopped
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.handlerWasDone {
		t.Fatal("Stop returned while the handler still held an event")
	}
	if got := c.raws(); len(got) != 1 || got[0] != "<13>one" {
		t.Errorf("delivered %q", got)
	}
}

func TestListenErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  SyslogConfig
		want error
	}{
		{SyslogConfig{}, ErrNoListen},
		{SyslogConfig{Listen: []string{"127.0.0.1:514"}}, ErrListenURL},
		{SyslogConfig{Listen: []string{"sctp://127.0.0.1:514"}}, ErrListenURL},
		{SyslogConfig{Listen: []string{"tcp://127.0.0.1"}}, ErrListenURL},
		{SyslogConfig{Listen: []string{"unix://"}}, ErrListenURL},
		{SyslogConfig{Listen: []string{"tls://127.0.0.1:0"}}, ErrNoTLSConfig},
	} {
		if _, err := NewSyslog(tc.cfg, nil); !errors.Is(err, tc.want) {
			t.Errorf("%v: err %v, want %v", tc.cfg.Listen, err, tc.want)
		}
	}
	// A failing listener closes the ones already bound (TCP, UDP, unix)
	// and removes the unix socket it created.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ports := testpeer.FreePorts(t, 2)
	sock := filepath.Join(t.TempDir(), "log.sock")
	s, err := NewSyslog(SyslogConfig{Listen: []string{
		fmt.Sprintf("tcp://127.0.0.1:%d", ports[0]), fmt.Sprintf("udp://127.0.0.1:%d", ports[1]), "unix://" + sock,
		"tcp://" + l.Addr().String(),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(func([]*event.Event) {}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start with a busy port = %v, want EADDRINUSE", err)
	}
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0])); err != nil {
		t.Errorf("the TCP listener bound before the failure is still open: %v", err)
	} else {
		l.Close()
	}
	if p, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", ports[1])); err != nil {
		t.Errorf("the UDP socket bound before the failure is still open: %v", err)
	} else {
		p.Close()
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unix socket %s is left behind: %v", sock, err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Stop gives up when its context ends before a blocked Handler returns,
// and the input still finishes once the Handler does.
func TestStopContextExpires(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Name: "t", Listen: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	gate := c.block()
	if err := s.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	conn := dialTCP(t, s)
	mustWrite(t, conn, "<13>held\n")
	// The event must be read and held by the blocked Handler before Stop:
	// a line still in the kernel when Stop closes the connection was never
	// read, and is rightly not delivered.
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("handler holding the event"), func() bool { return c.calls() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with a blocked handler = %v, want context.Canceled", err)
	}
	close(gate)
	s.core.Wait(context.Background())
	s.wg.Wait()
	if got := c.raws(); len(got) != 1 {
		t.Errorf("delivered %q after the handler resumed", got)
	}
}

// A TLS client that never handshakes is dropped after HandshakeTimeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	s, _ := startSyslog(t, SyslogConfig{Listen: []string{"tls://127.0.0.1:0"}, TLS: testServerTLS(t), Limits: listen.Limits{HandshakeTimeout: 50 * time.Millisecond}})
	conn := dialTCP(t, s)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("silent TLS client not dropped: %v", err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("handshake timeout counted"), func() bool {
		st := s.Stats()
		return st.HandshakeErrors == 1 && st.Closed[listen.HandshakeTimeout] == 1
	})
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("connection released"), func() bool { return s.Stats().Connections == 0 })
}
