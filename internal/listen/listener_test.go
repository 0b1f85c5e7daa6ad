package listen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// lines is a Handler that reads LF-terminated frames, calls Frame for
// each and records them, until the connection fails.
type lines struct {
	mu    sync.Mutex
	got   []string
	errs  []error
	gate  chan struct{} // when not nil, each frame waits for it (backpressure)
	write []byte        // written once before reading, when not nil
}

func (h *lines) serve(c *Conn) {
	if h.write != nil {
		if _, err := c.Write(h.write); err != nil {
			h.mu.Lock()
			h.errs = append(h.errs, err)
			h.mu.Unlock()
			return
		}
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			h.mu.Lock()
			h.errs = append(h.errs, err)
			h.mu.Unlock()
			return
		}
		c.Frame()
		h.mu.Lock()
		gate := h.gate
		h.got = append(h.got, strings.TrimSuffix(line, "\n"))
		h.mu.Unlock()
		if gate != nil {
			<-gate
		}
	}
}

func (h *lines) frames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func (h *lines) errors() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.errs...)
}

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// start serves h on a loopback port with lim and returns the listener and
// its address.
func start(t *testing.T, lim Limits, tlsConf *tls.Config, h Handler) (*Listener, string) {
	t.Helper()
	l, err := New(lim, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve(ln, tlsConf, h)
	t.Cleanup(func() {
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Wait(ctx); err != nil {
			t.Errorf("wait: %v", err)
		}
	})
	return l, ln.Addr().String()
}

// dialFrom connects to addr from the loopback address src ("" for any).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedFrom connects from src and returns how the connection ended: a
// reset may come before connect returns.
func refusedFrom(src, addr string) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return readEnd(c, 5*time.Second)
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readEnd reads c until it ends and returns how: io.EOF for our FIN,
// syscall.ECONNRESET for a reset, or a timeout error.
func readEnd(c net.Conn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	b := make([]byte, 4096)
	for {
		if _, err := c.Read(b); err != nil {
			return err
		}
	}
}

func waitStat(t *testing.T, l *Listener, r Reason, n uint64) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, func() string {
		return "waiting for " + r.String() + ": " + fmtStats(l.Stats())
	}, func() bool { return l.Stats().Closed[r] >= n })
}

func fmtStats(s Stats) string {
	var b strings.Builder
	for _, r := range Reasons() {
		if s.Closed[r] > 0 {
			b.WriteString(r.String() + "=" + itoa(s.Closed[r]) + " ")
		}
	}
	return b.String() + "open=" + itoa(uint64(s.Open))
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func off() Limits {
	return Limits{HandshakeTimeout: Off, FirstFrameTimeout: Off, FrameTimeout: Off, IdleTimeout: Off, WriteTimeout: Off}
}

// timely runs attempt until the timing it needs from its own clients
// held, at most 5 times. attempt returns "" when it held (its checks have
// then counted), or what did not hold, without checking anything else: a
// client goroutine meant to send every 50 ms, or just after it connects,
// cannot be promised that on a loaded machine (make test runs beside other
// test binaries); it can only check that it did.
func timely(t *testing.T, attempt func() (late string)) {
	t.Helper()
	const attempts = 5
	for i := 1; ; i++ {
		late := attempt()
		if late == "" {
			return
		}
		if i == attempts {
			t.Fatalf("the clients' timing did not hold in %d attempts (machine too loaded?): %s", i, late)
		}
		t.Logf("attempt %d discarded, its clients ran late: %s", i, late)
	}
}

// early is how much sooner than its deadline the listener may close a
// connection: the clock readers stamp is advanced a tick at a time, by at
// most two ticks per sweep.
func early(lim Limits) time.Duration { return 2 * lim.WithDefaults().tick() }

// pacer writes to a connection every interval until stopped, and keeps the
// longest silence the listener can have seen: from before one write to
// after the next returned (loopback delivers within the write).
type pacer struct {
	mu      sync.Mutex
	last    time.Time // before the last write (or since)
	longest time.Duration
	err     error
	stop    chan struct{}
	done    chan struct{}
}

// pace starts writing data to c every interval; since is when c last
// sent (or was dialed).
func pace(c net.Conn, every time.Duration, data string, since time.Time) *pacer {
	p := &pacer{last: since, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(every):
			}
			before := time.Now()
			_, err := c.Write([]byte(data))
			p.mu.Lock()
			if err != nil {
				p.err = err
				p.mu.Unlock()
				return
			}
			p.longest = max(p.longest, time.Since(p.last))
			p.last = before
			p.mu.Unlock()
		}
	}()
	return p
}

// silence is the longest the peer can have waited for a byte of p's up
// to now (or to its first failed write, when the connection was closed).
func (p *pacer) silence() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.longest
	}
	return max(p.longest, time.Since(p.last))
}

func (p *pacer) end() error {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// A connection that never sends a complete frame is reset after the
// first-frame deadline; one that does is kept.
func TestFirstFrameTimeout(t *testing.T) {
	lim := off()
	// Long enough for the good client to connect and send under make
	// test's load (stalls of 400 ms seen), checked by timely.
	lim.FirstFrameTimeout = 600 * time.Millisecond
	timely(t, func() string {
		h := &lines{}
		l, addr := start(t, lim, nil, h.serve)
		startT := time.Now()
		silent := dialFrom(t, "", addr)
		partial := dialFrom(t, "", addr)
		send(t, partial, "<13>no LF")
		goodT := time.Now()
		good := dialFrom(t, "", addr)
		send(t, good, "<13>one\n")
		if d := time.Since(goodT); d >= lim.FirstFrameTimeout-early(lim) {
			return "the good client took " + d.String() + " to connect and send its frame"
		}
		for _, c := range []net.Conn{silent, partial} {
			if err := readEnd(c, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("silent peer's read: %v, want a reset", err)
			}
		}
		// From before the dial, so more than the listener saw.
		if el := time.Since(startT); el < lim.FirstFrameTimeout-early(lim) {
			t.Errorf("closed after %v, before the deadline", el)
		}
		waitStat(t, l, FirstFrameTimeout, 2)
		time.Sleep(400 * time.Millisecond)
		send(t, good, "<13>two\n")
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("two frames from the good peer"), func() bool { return len(h.frames()) == 2 })
		if s := l.Stats(); s.Closed[FirstFrameTimeout] != 2 || s.Open != 1 || s.Accepted != 3 {
			t.Errorf("stats %s, accepted %d; want 2 first_frame_timeout, 1 open, 3 accepted", fmtStats(s), s.Accepted)
		}
		for _, err := range h.errors() {
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Reason != FirstFrameTimeout || !errors.Is(err, ErrClosed) {
				t.Errorf("handler's read error %v, want a CloseError first_frame_timeout", err)
			}
		}
		return ""
	})
}

// Slowloris: after a good frame, a frame dribbled a byte at a time is
// abandoned at the frame deadline, although bytes keep coming (so the idle
// timeout never fires); a peer sending whole frames slowly is kept.
func TestFrameTimeout(t *testing.T) {
	lim := off()
	// Pacers write every 50 ms; the idle timeout is long enough for them
	// under make test's load (stalls of 400 ms seen), checked by timely.
	lim.FrameTimeout = 1200 * time.Millisecond
	lim.IdleTimeout = 800 * time.Millisecond
	quiet := lim.IdleTimeout - early(lim) // the longest either client may be silent
	timely(t, func() string {
		h := &lines{}
		l, addr := start(t, lim, nil, h.serve)
		dialT := time.Now()
		loris := dialFrom(t, "", addr)
		slow := dialFrom(t, "", addr)
		send(t, loris, "<13>hello\n60000 <13>")
		lorisP := pace(loris, 50*time.Millisecond, "x", dialT)
		slowP := pace(slow, 50*time.Millisecond, "<13>slow\n", dialT)
		testpeer.Eventually(t, 10*time.Second, func() string { return "waiting for frame_timeout: " + fmtStats(l.Stats()) }, func() bool {
			s := l.Stats()
			return s.Closed[FrameTimeout]+s.Closed[IdleTimeout] > 0
		})
		// The slow sender goes on past the frame deadline, and the
		// loris's Handler returns.
		time.Sleep(500 * time.Millisecond)
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("the loris released"), func() bool {
			s := l.Stats()
			return s.Open == 1 || s.Closed[IdleTimeout] > 0
		})
		s := l.Stats()
		slowQuiet, lorisQuiet := slowP.silence(), lorisP.silence()
		lorisP.end()
		slowErr := slowP.end()
		if lorisQuiet >= quiet || slowQuiet >= quiet {
			return "silent for " + lorisQuiet.String() + " (loris), " + slowQuiet.String() + " (slow sender), idle timeout " + lim.IdleTimeout.String()
		}
		if s.Closed[FrameTimeout] != 1 || s.Closed[IdleTimeout] != 0 || s.Open != 1 {
			t.Errorf("stats %s; want frame_timeout 1, no idle timeout, 1 open", fmtStats(s))
		}
		if slowErr != nil {
			t.Errorf("slow but complete sender: %v", slowErr)
		}
		return ""
	})
}

// A sweeper held up (here: by the listener's lock, as by a process short
// of CPU) leaves the clock stale, and readers stamp it as they start to
// wait: once it runs again, the time it lost must not count against peers
// that kept sending. (Before, the sweeper judged those stale stamps by the
// real time, and closed the connection of a peer sending every 50 ms for
// an idle timeout of 800 ms.)
func TestLateSweeper(t *testing.T) {
	lim := off()
	lim.IdleTimeout = 800 * time.Millisecond
	quiet := lim.IdleTimeout - early(lim)
	timely(t, func() string {
		h := &lines{}
		l, addr := start(t, lim, nil, h.serve)
		dialT := time.Now()
		c := dialFrom(t, "", addr)
		p := pace(c, 50*time.Millisecond, "<13>steady\n", dialT)
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("a frame"), func() bool { return len(h.frames()) > 0 })
		l.mu.Lock()
		time.Sleep(2 * time.Second)
		n := len(h.frames())
		l.mu.Unlock()
		// A few sweeps after it.
		time.Sleep(4 * lim.WithDefaults().tick())
		s := l.Stats()
		silent := p.silence()
		err := p.end()
		if silent >= quiet {
			return "the sender was silent for " + silent.String()
		}
		if n < 10 {
			return "the handler read only " + itoa(uint64(n)) + " frames while the sweeper was held"
		}
		if s.Closed[IdleTimeout] != 0 || s.Open != 1 || err != nil {
			t.Errorf("stats %s, sender's error %v; want no idle timeout, 1 open", fmtStats(s), err)
		}
		return ""
	})
}

// Bytes the peer sent wait in the socket while the reader, stamped as
// waiting, has not yet been scheduled to read them: the peer is not idle.
// (Here the reader's stamp is an hour old and it sleeps past several
// sweeps before reading.)
func TestUnreadInputIsNotIdle(t *testing.T) {
	lim := off()
	lim.IdleTimeout = 100 * time.Millisecond
	gotOne, sent := make(chan struct{}), make(chan struct{})
	h := &lines{}
	l, addr := start(t, lim, nil, func(c *Conn) {
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		c.Frame()
		close(gotOne)
		<-sent
		c.waitSince.Store(c.l.clock.Load() - int64(time.Hour))
		time.Sleep(500 * time.Millisecond)
		c.waitSince.Store(0)
		h.serve(c) // reads on, from the socket
	})
	c := dialFrom(t, "", addr)
	send(t, c, "<13>one\n")
	<-gotOne
	send(t, c, "<13>two\n")
	close(sent)
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("frame two"), func() bool { return len(h.frames()) == 1 })
	if s := l.Stats(); s.Closed[IdleTimeout] != 0 {
		t.Errorf("stats %s: closed as idle with the peer's frame unread", fmtStats(s))
	}
	// Idle for real now.
	waitStat(t, l, IdleTimeout, 1)
}

// The idle timeout closes gracefully: the peer reads EOF (not a reset),
// and what it writes during the grace is still read.
func TestIdleTimeoutGraceful(t *testing.T) {
	lim := off()
	lim.IdleTimeout = 200 * time.Millisecond
	lim.CloseGrace = time.Second
	h := &lines{}
	l, addr := start(t, lim, nil, h.serve)
	c := dialFrom(t, "", addr)
	send(t, c, "<13>first\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after idle timeout: %v, want EOF (our FIN)", err)
	}
	// rsyslog would now reconnect; a frame it had already written still
	// arrives.
	send(t, c, "<13>in flight\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the frame written after the FIN"), func() bool { return len(h.frames()) == 2 })
	c.Close()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("connection released"), func() bool { return l.Stats().Open == 0 })
	if s := l.Stats(); s.Closed[IdleTimeout] != 1 {
		t.Errorf("stats %s, want idle_timeout 1", fmtStats(s))
	}
	if errs := h.errors(); len(errs) != 1 || errs[0] != io.EOF {
		t.Errorf("handler's read errors %v, want EOF", errs)
	}
}

// A peer that stays silent through the grace is closed for good after it.
func TestIdleGraceEnds(t *testing.T) {
	lim := off()
	lim.IdleTimeout = 100 * time.Millisecond
	lim.CloseGrace = 200 * time.Millisecond
	h := &lines{}
	l, addr := start(t, lim, nil, h.serve)
	c := dialFrom(t, "", addr)
	send(t, c, "<13>first\n")
	waitStat(t, l, IdleTimeout, 1)
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("closed after the grace"), func() bool { return l.Stats().Open == 0 && len(h.errors()) == 1 })
	errs := h.errors()
	var ce *CloseError
	if len(errs) != 1 || !errors.As(errs[0], &ce) || ce.Reason != IdleTimeout {
		t.Errorf("handler's read errors %v, want a CloseError idle_timeout", errs)
	}
}

// A Handler held up by backpressure (here: for longer than every
// deadline) is not closed: only waiting for the peer counts.
func TestBackpressureIsNotIdle(t *testing.T) {
	lim := Limits{FirstFrameTimeout: 100 * time.Millisecond, FrameTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond, HandshakeTimeout: Off, WriteTimeout: Off}
	gate := make(chan struct{})
	h := &lines{gate: gate}
	l, addr := start(t, lim, nil, h.serve)
	c := dialFrom(t, "", addr)
	send(t, c, "<13>one\n<13>two\n<13>thr")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("first frame"), func() bool { return len(h.frames()) == 1 })
	time.Sleep(600 * time.Millisecond) // the Handler is stuck in frame one
	if s := l.Stats(); s.Open != 1 {
		t.Fatalf("closed while the handler was blocked: %s", fmtStats(s))
	}
	h.mu.Lock()
	h.gate = nil
	h.mu.Unlock()
	close(gate)
	send(t, c, "ee\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("three frames"), func() bool { return len(h.frames()) == 3 })
	// Now idle for real.
	waitStat(t, l, IdleTimeout, 1)
}

// The OnWait hook runs before a read would wait, and the time it takes
// (backpressure) does not count against the frame deadline.
func TestOnWaitFlushNotCounted(t *testing.T) {
	lim := off()
	lim.FrameTimeout = 150 * time.Millisecond
	var mu sync.Mutex
	var flushes int
	l, addr := start(t, lim, nil, func(c *Conn) {
		pending := false
		c.OnWait(func() bool { return pending }, func() {
			time.Sleep(400 * time.Millisecond) // a slow output
			mu.Lock()
			flushes++
			mu.Unlock()
			pending = false
		})
		b := make([]byte, 64)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			for _, x := range b[:n] {
				if x == '\n' {
					c.Frame()
					pending = true
				}
			}
		}
	})
	c := dialFrom(t, "", addr)
	// A frame and the start of the next: the flush of the first takes
	// longer than the frame deadline, then the rest of the second comes.
	send(t, c, "<13>a\n<13>b")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("a flush"), func() bool { mu.Lock(); defer mu.Unlock(); return flushes == 1 })
	send(t, c, "\n")
	time.Sleep(100 * time.Millisecond)
	if s := l.Stats(); s.Closed[FrameTimeout] != 0 || s.Open != 1 {
		t.Errorf("stats %s: the flush's time counted against the peer", fmtStats(s))
	}
}

// More connections than the per-source limit from one address are
// refused (reset); other addresses are not affected.
func TestPerSourceLimit(t *testing.T) {
	lim := off()
	lim.MaxConnections = 100
	lim.MaxPerSource = 3
	h := &lines{}
	l, addr := start(t, lim, nil, h.serve)
	for i := range 3 {
		send(t, dialFrom(t, "127.0.0.2", addr), "<13>from .2 #"+itoa(uint64(i))+"\n")
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("3 frames"), func() bool { return len(h.frames()) == 3 })
	if err := refusedFrom("127.0.0.2", addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("4th connection from 127.0.0.2: %v, want a reset", err)
	}
	other := dialFrom(t, "127.0.0.3", addr)
	send(t, other, "<13>from .3\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("frame from 127.0.0.3"), func() bool { return len(h.frames()) == 4 })
	if s := l.Stats(); s.Closed[PerSourceLimit] != 1 || s.Open != 4 || s.Refused() != 1 {
		t.Errorf("stats %s; want per_source_limit 1, 4 open", fmtStats(s))
	}
}

// At max_connections a new connection evicts the longest-idle connection
// that never sent a frame, then the longest-idle one overall (gracefully);
// when every connection is busy it is refused.
func TestEviction(t *testing.T) {
	lim := off()
	lim.MaxConnections = 3
	lim.MaxPerSource = 3
	lim.CloseGrace = 5 * time.Second
	h := &lines{}
	l, addr := start(t, lim, nil, h.serve)
	framedOld := dialFrom(t, "", addr)
	send(t, framedOld, "<13>old\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("frame"), func() bool { return len(h.frames()) == 1 })
	time.Sleep(50 * time.Millisecond)
	silentOld := dialFrom(t, "", addr)
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("2 open"), func() bool { return l.Stats().Open == 2 })
	time.Sleep(50 * time.Millisecond)
	silentNew := dialFrom(t, "", addr)
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("3 open"), func() bool { return l.Stats().Open == 3 })

	// A reconnecting sender: evicts silentOld.
	next := dialFrom(t, "127.0.0.5", addr)
	send(t, next, "<13>next\n")
	if err := readEnd(silentOld, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("oldest silent connection: %v, want a reset", err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("next's frame"), func() bool { return len(h.frames()) == 2 })
	// Another: evicts silentNew, the only one left without a frame.
	next2 := dialFrom(t, "127.0.0.6", addr)
	send(t, next2, "<13>next2\n")
	if err := readEnd(silentNew, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("second silent connection: %v, want a reset", err)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("next2's frame"), func() bool { return len(h.frames()) == 3 })
	// All three have sent frames now; the longest idle, framedOld, goes,
	// gracefully: EOF, and what it writes in the grace still arrives.
	time.Sleep(100 * time.Millisecond)
	send(t, next, "<13>next again\n")
	send(t, next2, "<13>next2 again\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("5 frames"), func() bool { return len(h.frames()) == 5 })
	third := dialFrom(t, "127.0.0.7", addr)
	framedOld.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := framedOld.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("longest-idle framed connection: %v, want EOF", err)
	}
	send(t, framedOld, "<13>old in flight\n")
	send(t, third, "<13>third\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("7 frames"), func() bool { return len(h.frames()) == 7 })
	s := l.Stats()
	if s.Closed[EvictedUnframed] != 2 || s.Closed[EvictedIdle] != 1 || s.Refused() != 0 {
		t.Errorf("stats %s; want evicted_unframed 2, evicted_idle 1", fmtStats(s))
	}
}

// When every connection is busy (its Handler held by backpressure), a new
// one is refused rather than evicting one that is making progress.
func TestMaxConnectionsAllBusy(t *testing.T) {
	lim := off()
	lim.MaxConnections = 2
	lim.MaxPerSource = -1
	gate := make(chan struct{})
	defer close(gate)
	h := &lines{gate: gate}
	l, addr := start(t, lim, nil, h.serve)
	send(t, dialFrom(t, "", addr), "<13>a\n")
	send(t, dialFrom(t, "", addr), "<13>b\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("two blocked handlers"), func() bool { return len(h.frames()) == 2 })
	if err := refusedFrom("", addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("connection over max_connections: %v, want a reset", err)
	}
	if s := l.Stats(); s.Closed[MaxConnections] != 1 || s.Open != 2 {
		t.Errorf("stats %s; want max_connections 1, 2 open", fmtStats(s))
	}
}

// A peer that does not read what the Handler writes is closed after the
// write deadline; the Handler's Write returns a CloseError.
func TestWriteTimeout(t *testing.T) {
	lim := off()
	lim.WriteTimeout = 200 * time.Millisecond
	h := &lines{write: make([]byte, 64<<20)}
	l, addr := start(t, lim, nil, h.serve)
	c := dialFrom(t, "", addr)
	c.(*net.TCPConn).SetReadBuffer(4096)
	send(t, c, "<13>hello\n") // the Handler runs once the client has sent
	waitStat(t, l, WriteTimeout, 1)
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("handler's write error"), func() bool { return len(h.errors()) == 1 })
	if err := h.errors()[0]; !errors.Is(err, ErrClosed) {
		t.Errorf("write error %v, want ErrClosed", err)
	}
}

// Close ends every connection and Serve; Wait returns.
func TestCloseWait(t *testing.T) {
	l, err := New(off(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve(ln, nil, (&lines{}).serve) }()
	var cs []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("5 open"), func() bool { return l.Stats().Open == 5 })
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if s := l.Stats(); s.Open != 0 {
		t.Errorf("open after Close: %d", s.Open)
	}
	for _, c := range cs {
		if err := readEnd(c, 5*time.Second); err != io.EOF {
			t.Errorf("client after Close: %v, want EOF", err)
		}
	}
	if err := l.Serve(ln, nil, nil); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
}

func TestLimitsDefaults(t *testing.T) {
	d := Limits{}.WithDefaults()
	if d.MaxConnections != 1024 || d.MaxPerSource != 64 || d.FirstFrameTimeout != 10*time.Second || d.IdleTimeout != 5*time.Minute {
		t.Errorf("defaults %+v", d)
	}
	for in, want := range map[int]int{1024: 64, 10: 8, 4: 4, 100000: 6250, -1: -1} {
		if got := DefaultPerSource(in); got != want {
			t.Errorf("DefaultPerSource(%d) = %d, want %d", in, got, want)
		}
	}
	if err := (Limits{MaxConnections: 10, MaxPerSource: 11}).WithDefaults().Validate(); !errors.Is(err, ErrLimits) {
		t.Errorf("per-source above max: %v", err)
	}
	if tk := d.tick(); tk != 250*time.Millisecond {
		t.Errorf("tick %v", tk)
	}
}

// Connections whose peer has not sent anything hold no goroutine (they are
// parked); one that then sends is served, one whose peer closes is
// released, and the rest go at the first-frame deadline.
func TestParkedNoGoroutine(t *testing.T) {
	lim := off()
	lim.FirstFrameTimeout = time.Second
	lim.MaxPerSource = -1
	h := &lines{}
	l, addr := start(t, lim, nil, h.serve)
	before := runtime.NumGoroutine()
	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dialFrom(t, "", addr)
	}
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("all open"), func() bool { return l.Stats().Open == n })
	if g := runtime.NumGoroutine() - before; g > 20 {
		t.Errorf("%d idle connections added %d goroutines", n, g)
	}
	send(t, conns[0], "<13>hello\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the frame"), func() bool { return len(h.frames()) == 1 })
	conns[1].Close()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the closed one released"), func() bool { return l.Stats().Open == n-1 })
	waitStat(t, l, FirstFrameTimeout, n-2)
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("all but the sender released"), func() bool { return l.Stats().Open == 1 })
	if s := l.Stats(); s.Closed[FirstFrameTimeout] != n-2 {
		t.Errorf("stats %s", fmtStats(s))
	}
}

// Among connections without a frame, eviction takes from the address
// holding the most of them: a flood's, not a sender that connected
// earlier and has yet to send.
func TestEvictionHeaviestSource(t *testing.T) {
	lim := off()
	lim.MaxConnections = 4
	lim.MaxPerSource = -1
	h := &lines{}
	l, addr := start(t, lim, nil, h.serve)
	open := func(src string, n int64) net.Conn {
		c := dialFrom(t, src, addr)
		testpeer.Eventually(t, 5*time.Second, testpeer.Text("accepted"), func() bool { return l.Stats().Accepted == uint64(n) })
		time.Sleep(20 * time.Millisecond)
		return c
	}
	a1 := open("127.0.0.2", 1)
	sender := open("127.0.0.3", 2) // connected, has not sent yet
	open("127.0.0.2", 3)
	open("127.0.0.2", 4)
	open("127.0.0.2", 5) // evicts a1: the oldest of the heaviest address
	if err := readEnd(a1, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the flood's oldest connection: %v, want a reset", err)
	}
	open("127.0.0.2", 6)
	open("127.0.0.2", 7)
	send(t, sender, "<13>late but welcome\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the sender's frame"), func() bool { return len(h.frames()) == 1 })
	if s := l.Stats(); s.Closed[EvictedUnframed] != 3 {
		t.Errorf("stats %s, want evicted_unframed 3", fmtStats(s))
	}
}

// Close wakes the parking goroutine: Wait returns at once, not when its
// epoll_wait next times out. (It used to wait for that timeout, 200 ms: an
// input's Stop with a drain_timeout of 200 ms failed with "context
// deadline exceeded" when the machine was busy, TestReloadCountsUnflushed
// in internal/relay.) The poll timeout is made endless here, so without
// the wake-up Wait would not return at all.
func TestCloseWakesParking(t *testing.T) {
	saved := parkPollMillis
	parkPollMillis = -1
	defer func() { parkPollMillis = saved }()
	l, err := New(off(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve(ln, nil, (&lines{}).serve) }()
	// One connection parked: the parking goroutine is in epoll_wait.
	c := dialFrom(t, "", ln.Addr().String())
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("1 open"), func() bool { return l.Stats().Open == 1 })
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait after Close: %v: the parking goroutine was not woken", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if err := readEnd(c, 5*time.Second); err != io.EOF {
		t.Errorf("client after Close: %v, want EOF", err)
	}
}
