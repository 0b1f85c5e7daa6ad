package relp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// holder is a Handler that holds every event until the test releases it.
type holder struct {
	mu   sync.Mutex
	evs  []*event.Event
	hold bool
}

func (h *holder) handle(batch []*event.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range batch {
		if h.hold {
			e.Hold()
		}
		h.evs = append(h.evs, e)
	}
}

func (h *holder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.evs)
}

// release releases events [from, to) with err.
func (h *holder) release(from, to int, err error) {
	h.mu.Lock()
	evs := append([]*event.Event(nil), h.evs[from:to]...)
	h.mu.Unlock()
	for _, e := range evs {
		e.Release(err)
	}
}

func (h *holder) raws() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.evs {
		out = append(out, string(e.Raw))
	}
	return out
}

// client speaks RELP to a session the way librelp's client does.
type client struct {
	t    testing.TB
	c    net.Conn
	rd   *Reader
	txnr int
	done chan error
}

// serve starts a session of srv and returns a client connected to it.
func serve(t testing.TB, srv *Server) *client {
	t.Helper()
	c, s := tcpPair(t)
	cl := &client{t: t, c: c, rd: NewReader(c, 1<<20), txnr: 1, done: make(chan error, 1)}
	go func() { cl.done <- srv.ServeConn(context.Background(), s) }()
	return cl
}

// send writes a frame with the next transaction number and returns it.
func (cl *client) send(cmd string, data string) int {
	cl.t.Helper()
	n := cl.txnr
	cl.raw(string(AppendFrame(nil, n, cmd, []byte(data))))
	cl.txnr = NextTxnr(cl.txnr)
	return n
}

func (cl *client) raw(s string) {
	cl.t.Helper()
	if _, err := cl.c.Write([]byte(s)); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// next reads the next frame from the server within d.
func (cl *client) next(d time.Duration) (Frame, error) {
	_ = cl.c.SetReadDeadline(time.Now().Add(d))
	return cl.rd.Next()
}

// expect reads the next frame and checks it answers txnr with data
// starting with prefix (txnr 0: the serverclose hint).
func (cl *client) expect(txnr int, prefix string) Frame {
	cl.t.Helper()
	f, err := cl.next(5 * time.Second)
	if err != nil {
		cl.t.Fatalf("waiting for the answer to %d (%q): %v", txnr, prefix, err)
	}
	want := CmdRsp
	if txnr == 0 {
		want = CmdServerclose
	}
	if f.Txnr != txnr || f.Command != want || !strings.HasPrefix(string(f.Data), prefix) {
		cl.t.Fatalf("got %d %s %q, want %d %s %q…", f.Txnr, f.Command, f.Data, txnr, want, prefix)
	}
	return f
}

// silent checks that nothing arrives within d.
func (cl *client) silent(d time.Duration) {
	cl.t.Helper()
	if f, err := cl.next(d); err == nil {
		cl.t.Fatalf("unexpected frame %d %s %q", f.Txnr, f.Command, f.Data)
	} else if !isTimeout(err) {
		cl.t.Fatalf("unexpected %v", err)
	}
	cl.rd = NewReader(cl.c, 1<<20) // the timed-out read may have left state
}

// eof checks that the server closed the connection.
func (cl *client) eof() {
	cl.t.Helper()
	f, err := cl.next(5 * time.Second)
	if err == nil {
		cl.t.Fatalf("unexpected frame %d %s %q, want the connection closed", f.Txnr, f.Command, f.Data)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		cl.t.Fatalf("want EOF, got %v", err)
	}
	cl.c.Close() // as librelp's client does once the server closed
}

func (cl *client) open() {
	cl.t.Helper()
	n := cl.send(CmdOpen, librelpOffers)
	cl.expect(n, "200 OK\n")
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestOpenAnswer(t *testing.T) {
	srv := NewServer(Config{Software: []string{"relay", "v1"}}, (&holder{}).handle)
	cl := serve(t, srv)
	n := cl.send(CmdOpen, librelpOffers)
	f := cl.expect(n, "200 OK\n")
	want := "200 OK\nrelp_version=0\nrelp_software=relay,v1\ncommands=syslog"
	if string(f.Data) != want {
		t.Fatalf("open answer %q, want %q", f.Data, want)
	}
	n = cl.send(CmdClose, "")
	cl.expect(n, "200 OK")
	cl.eof()
	if err := <-cl.done; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	st := srv.Stats()
	if st.Frames[CmdOpen] != 1 || st.Frames[CmdClose] != 1 || st.SessionsTotal != 1 || st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAnswersWaitForHandoff: a frame is answered only once its event's
// hand-off fires, and in transaction order even when a later batch is
// handed off first.
func TestAnswersWaitForHandoff(t *testing.T) {
	h := &holder{hold: true}
	srv := NewServer(Config{}, h.handle)
	cl := serve(t, srv)
	cl.open()
	a := cl.send(CmdSyslog, "first\n")
	waitFor(t, "the first event", func() bool { return h.count() == 1 })
	b := cl.send(CmdSyslog, "second")
	c := cl.send(CmdSyslog, "third")
	waitFor(t, "three events", func() bool { return h.count() == 3 })
	if got := h.raws(); got[0] != "first" || got[1] != "second" {
		t.Fatalf("events %q (the trailing LF of data is not part of the message)", got)
	}
	cl.silent(100 * time.Millisecond)
	if w := srv.Stats().Window; w != 3 {
		t.Fatalf("window %d, want 3 unanswered", w)
	}
	h.release(1, 3, nil) // the later ones first: still nothing
	cl.silent(100 * time.Millisecond)
	h.release(0, 1, nil)
	cl.expect(a, "200 OK")
	cl.expect(b, "200 OK")
	cl.expect(c, "200 OK")
	st := srv.Stats()
	if st.Acked != 3 || st.AckLatency.Count != 3 || st.Window != 0 || st.AckLatency.Quantile(0.5) < 50*time.Millisecond {
		t.Fatalf("stats: acked %d, latency %+v p50 %v, window %d", st.Acked, st.AckLatency, st.AckLatency.Quantile(0.5), st.Window)
	}
	if st.WindowFull <= 0 {
		t.Fatalf("window full time %v: the client waited with every frame unanswered", st.WindowFull)
	}
}

// TestHandoffFailure: an event that cannot be handed off is never
// answered (and never with 500): what precedes it is answered, then
// serverclose makes the client resend the rest.
func TestHandoffFailure(t *testing.T) {
	h := &holder{hold: true}
	srv := NewServer(Config{}, h.handle)
	cl := serve(t, srv)
	cl.open()
	a := cl.send(CmdSyslog, "ok")
	waitFor(t, "event", func() bool { return h.count() == 1 })
	cl.send(CmdSyslog, "fails")
	waitFor(t, "event", func() bool { return h.count() == 2 })
	h.release(1, 2, errors.New("spool write failed"))
	cl.silent(50 * time.Millisecond) // the first is not handed off yet
	h.release(0, 1, nil)
	cl.expect(a, "200 OK")
	cl.expect(0, "")
	cl.eof()
	if err := <-cl.done; !errors.Is(err, ErrNotHandedOff) {
		t.Fatalf("ServeConn: %v", err)
	}
	if st := srv.Stats(); st.ResendCloses[CloseHandoffFailed] != 1 || st.Acked != 1 || st.Refused500 != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAckTimeout: an answer held past the ack timeout ends the session
// with serverclose, counted.
func TestAckTimeout(t *testing.T) {
	h := &holder{hold: true}
	srv := NewServer(Config{AckTimeout: 200 * time.Millisecond}, h.handle)
	cl := serve(t, srv)
	cl.open()
	cl.send(CmdSyslog, "held")
	start := time.Now()
	cl.expect(0, "")
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("serverclose after %v, before the ack timeout", d)
	}
	cl.eof()
	if err := <-cl.done; !errors.Is(err, ErrAckTimeout) {
		t.Fatalf("ServeConn: %v", err)
	}
	if st := srv.Stats(); st.ResendCloses[CloseAckTimeout] != 1 || st.Window != 0 {
		t.Fatalf("stats %+v", st)
	}
	h.release(0, 1, nil) // late: nobody to answer, nothing breaks
}

// TestBadInputs: each bad input ends its session per protocol (a 500 only
// to a frame that cannot be parsed or served, never to a syslog frame),
// after answering what came before; counted by reason.
func TestBadInputs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opened bool   // open and send one good syslog frame first
		input  string // then this (txnr 3 is the next after open+syslog)
		want   int    // txnr answered 500, or 0: serverclose only
		reason Reason
	}{
		{"junk before open", false, "GET / HTTP/1.1\r\n\r\n", 0, ReasonBeforeOpen},
		{"syslog before open", false, "1 syslog 5 hello\n", 0, ReasonBeforeOpen},
		{"datalen beyond the limit", true, "3 syslog 999999999 xxx", 3, ReasonOversize},
		{"non-numeric txnr", true, "3x syslog 1 a\n", 0, ReasonTxnr},
		{"missing trailer", true, "3 syslog 3 abcd\n", 3, ReasonTrailer},
		{"second open", true, string(AppendFrame(nil, 3, CmdOpen, []byte(librelpOffers))), 3, ReasonSecondOpen},
		{"unknown command", true, "3 starttls 0\n", 3, ReasonUnknownCommand},
		{"txnr out of sequence", true, "7 syslog 1 a\n", 0, ReasonSequence},
		{"txnr 0", true, "0 syslog 1 a\n", 0, ReasonSequence},
		{"open without syslog", false, string(AppendFrame(nil, 1, CmdOpen, []byte("relp_version=0\ncommands=eventlog"))), 1, ReasonOffers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &holder{}
			srv := NewServer(Config{MaxMessageSize: 1024}, h.handle)
			cl := serve(t, srv)
			if tc.opened {
				cl.open()
				n := cl.send(CmdSyslog, "good")
				cl.expect(n, "200 OK")
			}
			cl.raw(tc.input)
			if tc.want > 0 {
				cl.expect(tc.want, "500 ")
			}
			cl.expect(0, "")
			cl.eof()
			<-cl.done
			st := srv.Stats()
			if st.BadFrames[tc.reason] != 1 {
				t.Fatalf("bad frames %v, want 1 %s", st.BadFrames, tc.reason)
			}
			if tc.opened && (st.Acked != 1 || len(h.raws()) != 1 || h.raws()[0] != "good") {
				t.Fatalf("acked %d, events %q: the good frame before is untouched", st.Acked, h.raws())
			}
		})
	}
}

// TestClientNotReading: a client that sends without ever reading its
// answers is disconnected once a write of answers times out.
func TestClientNotReading(t *testing.T) {
	srv := NewServer(Config{WriteTimeout: 300 * time.Millisecond}, (&holder{}).handle)
	c, s := tcpPair(t)
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	_ = s.(*net.TCPConn).SetWriteBuffer(4096)
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), s) }()
	go func() {
		var b []byte
		b = AppendFrame(b, 1, CmdOpen, []byte(librelpOffers))
		for i := 2; i < 200_000; i++ {
			b = AppendFrame(b, i, CmdSyslog, []byte("x"))
		}
		_, _ = c.Write(b) // ends when the server stops reading and closes
	}()
	select {
	case err := <-done:
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Reason != ReasonNotReading {
			t.Fatalf("ServeConn: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the session of a client that does not read never ended")
	}
	if st := srv.Stats(); st.BadFrames[ReasonNotReading] != 1 {
		t.Fatalf("stats %+v", st.BadFrames)
	}
}

// TestCloseAnswersEverything: the client's close is answered after every
// frame before it, then the connection closes without serverclose.
func TestCloseAnswersEverything(t *testing.T) {
	h := &holder{hold: true}
	srv := NewServer(Config{}, h.handle)
	cl := serve(t, srv)
	cl.open()
	a := cl.send(CmdSyslog, "one")
	b := cl.send(CmdSyslog, "two")
	waitFor(t, "events", func() bool { return h.count() == 2 })
	c := cl.send(CmdClose, "")
	cl.silent(50 * time.Millisecond)
	h.release(0, 2, nil)
	cl.expect(a, "200 OK")
	cl.expect(b, "200 OK")
	cl.expect(c, "200 OK")
	cl.eof()
	if err := <-cl.done; err != nil {
		t.Fatal(err)
	}
}

// TestShutdown: Shutdown stops reading, answers what is handed off in
// time, then sends serverclose; what is still held is left for the
// client to resend (counted).
func TestShutdown(t *testing.T) {
	for _, release := range []bool{true, false} {
		t.Run(fmt.Sprintf("handed_off=%v", release), func(t *testing.T) {
			h := &holder{hold: true}
			srv := NewServer(Config{}, h.handle)
			cl := serve(t, srv)
			cl.open()
			a := cl.send(CmdSyslog, "one")
			waitFor(t, "event", func() bool { return h.count() == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- srv.Shutdown(ctx) }()
			if release {
				time.Sleep(50 * time.Millisecond)
				h.release(0, 1, nil)
				cl.expect(a, "200 OK")
			}
			cl.expect(0, "")
			cl.eof()
			err := <-errc
			st := srv.Stats()
			if release && (err != nil || st.ResendCloses[CloseShutdown] != 0 || st.Acked != 1) {
				t.Fatalf("Shutdown %v, stats %+v", err, st)
			}
			if !release && (!errors.Is(err, context.DeadlineExceeded) || st.ResendCloses[CloseShutdown] != 1) {
				t.Fatalf("Shutdown %v, stats %+v", err, st)
			}
			if err := srv.ServeConn(context.Background(), &net.TCPConn{}); !errors.Is(err, ErrShuttingDown) {
				t.Fatalf("ServeConn after Shutdown: %v", err)
			}
		})
	}
}

// TestMaxWindow: a session stops reading once MaxWindow frames are
// unanswered, and goes on when answers go out.
func TestMaxWindow(t *testing.T) {
	h := &holder{hold: true}
	srv := NewServer(Config{MaxWindow: 4}, h.handle)
	cl := serve(t, srv)
	cl.open()
	var b bytes.Buffer
	for i := 0; i < 10; i++ {
		b.Write(AppendFrame(nil, cl.txnr, CmdSyslog, []byte("m")))
		cl.txnr++
	}
	cl.raw(b.String())
	waitFor(t, "4 events", func() bool { return h.count() >= 4 })
	time.Sleep(100 * time.Millisecond)
	if n := h.count(); n != 4 {
		t.Fatalf("%d events read with a window of 4", n)
	}
	released := 0
	waitFor(t, "the rest", func() bool {
		n := h.count()
		if n-released > 4 {
			t.Fatalf("%d events unanswered, window 4", n-released)
		}
		h.release(released, n, nil)
		released = n
		return n == 10
	})
	for i := 2; i < 12; i++ {
		cl.expect(i, "200 OK")
	}
}
