package relp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/ratelog"
)

// Handler receives the events of syslog frames, in batches, from many
// sessions at once. It may block: the session stops reading, and the
// client's window fills (backpressure). Every event carries an
// event.Handoff; its frame is answered once the hand-off fires. The batch
// slice is reused after Handler returns; the events belong to the Handler.
type Handler func(batch []*event.Event)

// Defaults applied by NewServer to zero Config fields.
const (
	// DefaultMaxMessageSize is librelp's default maximum frame data
	// (RELP_DFLT_MAX_DATA_SIZE, 128 KiB).
	DefaultMaxMessageSize = 128 << 10
	// DefaultAckTimeout is how long an answer may wait for its hand-off
	// before the session is closed so the client resends. It is below
	// omrelp's own session timeout (90 s), so the relay closes cleanly
	// first.
	DefaultAckTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds a write of answers: a client that reads
	// none for this long is disconnected.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxWindow bounds the frames a session may have unanswered;
	// past it the session stops reading until answers go out. librelp's
	// default window is 128; omrelp's windowSize raises it.
	DefaultMaxWindow = 1 << 16
	// DefaultMaxBatch is the most events handed to the Handler at once.
	DefaultMaxBatch = 256
)

// lingerTimeout is how long a closing session waits for the client to
// close its side after our last answer (or serverclose), so the answers
// are not lost to a reset.
const lingerTimeout = 2 * time.Second

// maxBatchBytes caps the payload of one batch.
const maxBatchBytes = 1 << 20

// Config configures a Server.
type Config struct {
	// MaxMessageSize is the largest DATALEN accepted (default
	// DefaultMaxMessageSize); a bigger frame is answered 500 and the
	// session closed.
	MaxMessageSize int
	// AckTimeout is how long a frame may wait for its hand-off (default
	// DefaultAckTimeout); then the session is closed with serverclose.
	AckTimeout time.Duration
	// WriteTimeout bounds each write of answers (default
	// DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MaxWindow bounds the frames unanswered per session (default
	// DefaultMaxWindow).
	MaxWindow int
	// MaxBatch bounds a Handler batch (default DefaultMaxBatch).
	MaxBatch int
	// Software is the relp_software offer: name, version, URL.
	Software []string
	Logger   *slog.Logger
}

// Server serves RELP sessions over connections its caller accepts (TCP,
// or TLS already handshaken), so any accept loop can host it.
type Server struct {
	cfg   Config
	h     Handler
	log   *slog.Logger
	warn  ratelog.Warner
	stats counters

	mu       sync.Mutex
	sessions map[*session]struct{}
	stopping bool
}

// NewServer returns a Server that hands events to h.
func NewServer(cfg Config, h Handler) *Server {
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = DefaultMaxWindow
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if len(cfg.Software) == 0 {
		cfg.Software = []string{"rsyslog-zmq-relay"}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, h: h, log: log, sessions: map[*session]struct{}{}}
	s.warn.Logger = log
	s.stats.ack = newHistogram()
	return s
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// TLSRefused counts a TLS handshake the caller's accept loop saw fail,
// by its reason (TLSRefusal), in Stats.TLSRefused.
func (s *Server) TLSRefused(err error) {
	switch TLSRefusal(err) {
	case TLSNoCert:
		s.stats.tlsNoCert.Add(1)
	case TLSUntrusted:
		s.stats.tlsUntrusted.Add(1)
	case TLSName:
		s.stats.tlsName.Add(1)
	default:
		s.stats.tlsOther.Add(1)
	}
}

// ServeConn serves one RELP session on c until the client closes it, the
// protocol breaks, an answer waits past the ack timeout, or the server
// shuts down; it closes c before it returns. The error says why the
// session ended (nil for a client's close or disconnect). Cancelling ctx
// ends the session at once: what is answered is sent, then serverclose.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = c.Close()
		return ErrShuttingDown
	}
	ss := newSession(s, c)
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	s.stats.sessions.Add(1)
	s.stats.sessionsTotal.Add(1)
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
		s.stats.sessions.Add(-1)
	}()
	stop := context.AfterFunc(ctx, func() { ss.abort(CloseShutdown) })
	defer stop()
	go ss.answerLoop()
	ss.readLoop()
	close(ss.readerDone)
	<-ss.answered
	return ss.result()
}

// Shutdown stops every session reading, answers what is handed off within
// ctx's time, then sends serverclose and closes the sessions: the clients
// resend what was not answered. New connections are refused. It returns
// once every session has closed its connection, or ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	list := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.drain()
	}
	for _, ss := range list {
		select {
		case <-ss.answered:
		case <-ctx.Done():
			for _, ss := range list {
				ss.abort(CloseShutdown)
			}
			for _, ss := range list {
				<-ss.answered // the abort interrupts its writes: quick
			}
			return ctx.Err()
		}
	}
	return nil
}

// slotKind says how a slot of the answer queue is answered.
type slotKind uint8

const (
	slotOK    slotKind = iota // n syslog frames: 200 OK each once handed off
	slotData                  // one frame answered with data (open)
	slotError                 // one frame answered 500, then the session ends (serverclose)
	slotClose                 // the client's close: 200 OK, then the session ends
	slotEnd                   // no frame: the session ends after what is before it (serverclose)
)

const (
	pending int32 = iota
	done
	failed
)

// slot is an entry of a session's answer queue: answers go out in
// transaction order, so a slot waits for every slot before it.
type slot struct {
	kind     slotKind
	first, n int // transaction numbers first… (n frames, consecutive)
	data     []byte
	cause    string // slotEnd: the resend-close cause, if it is one
	reason   error
	received time.Time
	state    atomic.Int32
	ss       *session
}

// complete is the slot's hand-off callback.
func (sl *slot) complete(err error) {
	st := done
	if err != nil {
		st = failed
		sl.reason = err
	}
	sl.state.Store(st)
	sl.ss.wake()
}

// session is one RELP connection: a reader (the ServeConn goroutine) that
// parses frames and hands events over, and an answerer that writes the
// answers in order as hand-offs fire.
type session struct {
	srv  *Server
	conn net.Conn
	peer string
	fr   *Reader

	mu       sync.Mutex
	slots    []*slot // unanswered, in transaction order
	cause    string  // set by abort: why the answerer must stop now
	aborting bool
	err      error // why the session ended

	kick       chan struct{} // cap 1: a slot was queued or completed, or abort
	room       chan struct{} // cap 1: answers went out
	abortCh    chan struct{}
	abortOnce  sync.Once
	answered   chan struct{} // the answerer is done and the conn closed
	readerDone chan struct{}

	outstanding atomic.Int64 // frames read and not yet answered
	peak        int64        // the most outstanding seen (reader only)
	draining    atomic.Bool
	ended       atomic.Bool // the answerer decided to end: the reader discards
	wbuf        []byte
}

func newSession(s *Server, c net.Conn) *session {
	return &session{
		srv:        s,
		conn:       c,
		peer:       c.RemoteAddr().String(),
		fr:         NewReader(c, s.cfg.MaxMessageSize),
		kick:       make(chan struct{}, 1),
		room:       make(chan struct{}, 1),
		abortCh:    make(chan struct{}),
		answered:   make(chan struct{}),
		readerDone: make(chan struct{}),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (ss *session) wake() { signal(ss.kick) }

func (ss *session) enqueue(sl *slot) {
	sl.ss = ss
	ss.mu.Lock()
	ss.slots = append(ss.slots, sl)
	ss.mu.Unlock()
	ss.wake()
}

// abort makes the answerer stop now: it sends what is answered, then
// serverclose unless cause is "" (the client is gone), and closes.
func (ss *session) abort(cause string) {
	ss.abortOnce.Do(func() {
		ss.mu.Lock()
		ss.cause, ss.aborting = cause, true
		ss.mu.Unlock()
		close(ss.abortCh)
		// A write blocked on a client that does not read gives up now.
		_ = ss.conn.SetWriteDeadline(time.Now())
	})
}

// drain stops the reader: what it read is handed over and answered, then
// the session ends with serverclose.
func (ss *session) drain() {
	ss.draining.Store(true)
	_ = ss.conn.SetReadDeadline(time.Now())
}

func (ss *session) setErr(err error) {
	ss.mu.Lock()
	if ss.err == nil {
		ss.err = err
	}
	ss.mu.Unlock()
}

func (ss *session) result() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.err
}

func (ss *session) read(n int) {
	ss.outstanding.Add(int64(n))
	ss.srv.stats.window.Add(int64(n))
}

// readLoop reads frames until the session ends, handing syslog frames
// over in batches and queueing every answer in order.
// firstTxnr is the transaction number a session expects first: 1, as
// every client starts. Tests start it near MaxTxnr to cross the wrap
// without sending a billion frames.
var firstTxnr = 1

func (ss *session) readLoop() {
	s := ss.srv
	maxBatch := s.cfg.MaxBatch
	batch := make([]*event.Event, 0, maxBatch)
	var first, batchBytes int
	var events event.Slab
	flush := func() {
		if len(batch) == 0 {
			return
		}
		sl := &slot{kind: slotOK, first: first, n: len(batch), received: time.Now()}
		sl.ss = ss
		h := event.NewHandoff(sl.complete)
		for _, e := range batch {
			e.SetHandoff(h) // the input stamps Received (and Input) as it hands the batch over
		}
		ss.enqueue(sl)
		s.h(batch)
		h.Release(nil) // the creator's hold: fires now unless an output holds
		clear(batch)
		batch = batch[:0]
		batchBytes = 0
	}
	// A connection core (internal/listen) flushes the batch itself right
	// before its Read would wait for the client, after a non-blocking read
	// finds nothing: batches then span what the kernel already has. It
	// also wants to hear of every complete frame (its deadlines).
	framer, _ := ss.conn.(interface{ Frame() })
	waiter, onWait := ss.conn.(interface{ OnWait(func() bool, func()) })
	if onWait {
		waiter.OnWait(func() bool { return len(batch) > 0 }, flush)
	}
	expect, opened := firstTxnr, false
	for {
		if !onWait && len(batch) > 0 && ss.fr.Buffered() == 0 {
			flush() // never make events wait for the next bytes
		}
		for ss.outstanding.Load() >= int64(s.cfg.MaxWindow) {
			flush()
			select {
			case <-ss.room:
			case <-ss.abortCh:
				return
			}
		}
		var waitFrom time.Time
		if ss.fr.Buffered() == 0 {
			if out := ss.outstanding.Load(); out > 0 && out >= ss.peak {
				waitFrom = time.Now() // the client's window is (likely) full
			}
		}
		f, err := ss.fr.Next()
		if !waitFrom.IsZero() {
			s.stats.windowFull.Add(int64(time.Since(waitFrom)))
		}
		if err != nil {
			flush()
			ss.readFailed(err, opened, expect)
			return
		}
		if framer != nil {
			framer.Frame()
		}
		if ss.ended.Load() {
			continue // the answerer is closing: discard
		}
		s.stats.frame(f.Command)
		if f.Txnr != expect {
			reason := ReasonSequence
			if !opened {
				reason = ReasonBeforeOpen
			}
			flush()
			ss.refuse(reason, 0, "", "txnr %d, expected %d", f.Txnr, expect)
			return
		}
		expect = NextTxnr(expect)
		ss.read(1)
		if out := ss.outstanding.Load(); out > ss.peak {
			ss.peak = out
		}
		switch {
		case f.Command == CmdSyslog && opened:
			raw := f.Data
			if n := len(raw); n > 0 && raw[n-1] == '\n' {
				raw = raw[:n-1]
			}
			e := events.New(raw)
			e.Peer = ss.peer
			if len(batch) == 0 {
				first = f.Txnr
			}
			batch = append(batch, e)
			batchBytes += len(raw)
			if len(batch) == maxBatch || batchBytes >= maxBatchBytes {
				flush()
			}
		case !opened && f.Command != CmdOpen:
			// Junk, or a syslog frame before open: no 500 to a syslog
			// frame (the client would drop it), serverclose only.
			ss.refuse(ReasonBeforeOpen, 0, "", "%q before open", f.Command)
			return
		case f.Command == CmdOpen:
			flush()
			if opened {
				ss.refuse(ReasonSecondOpen, f.Txnr, "protocol error: session already open", "second open")
				return
			}
			offers, err := ParseOffers(f.Data)
			var answer []byte
			if err == nil {
				answer, err = negotiate(offers, s.cfg.Software)
			}
			if err != nil {
				ss.refuse(ReasonOffers, f.Txnr, err.Error(), "%v", err)
				return
			}
			ss.enqueueDone(&slot{kind: slotData, first: f.Txnr, n: 1, data: answer})
			opened = true
			s.log.Debug("relp session opened", "peer", ss.peer)
		case f.Command == CmdClose:
			flush()
			ss.enqueueDone(&slot{kind: slotClose, first: f.Txnr, n: 1})
			ss.discard()
			return
		default:
			flush()
			ss.refuse(ReasonUnknownCommand, f.Txnr, "command not supported", "command %q", f.Command)
			return
		}
	}
}

// enqueueDone queues a slot that needs no hand-off.
func (ss *session) enqueueDone(sl *slot) {
	sl.received = time.Now()
	sl.state.Store(done)
	ss.enqueue(sl)
}

// refuse counts reason and ends the session: the frame txnr (if > 0) is
// answered 500 msg after everything before it, then serverclose.
func (ss *session) refuse(reason Reason, txnr int, msg, format string, args ...any) {
	ss.srv.stats.badFrame(reason)
	ss.srv.warn.Warn("relp frame refused, closing session", "peer", ss.peer, "reason", string(reason), "detail", fmt.Sprintf(format, args...))
	ss.setErr(&FrameError{Reason: reason, Txnr: txnr, Err: errProtocol, Detail: fmt.Sprintf(format, args...)})
	if txnr > 0 {
		ss.srv.stats.refused500.Add(1)
		ss.enqueueDone(&slot{kind: slotError, first: txnr, n: 1, data: []byte(msg)})
	} else {
		ss.enqueueDone(&slot{kind: slotEnd})
	}
	ss.discard()
}

var errProtocol = errors.New("relp: protocol error")

// readFailed ends the session after a read error.
func (ss *session) readFailed(err error, opened bool, expect int) {
	if ss.ended.Load() {
		return // the answerer closed the session: this is the linger ending
	}
	var fe *FrameError
	switch {
	case ss.draining.Load() && isTimeout(err):
		// Shutdown: answer what was read, then serverclose.
		ss.enqueueDone(&slot{kind: slotEnd, cause: CloseShutdown})
	case errors.As(err, &fe) && fe.Reason == ReasonTruncated:
		if errors.Is(err, io.ErrUnexpectedEOF) {
			ss.srv.stats.badFrame(ReasonTruncated)
			ss.setErr(err)
		}
		ss.abort("") // the client is gone
	case errors.As(err, &fe):
		reason := fe.Reason
		if !opened {
			reason = ReasonBeforeOpen
		}
		ss.srv.stats.badFrame(reason)
		ss.srv.warn.Warn("bad relp frame, closing session", "peer", ss.peer, "reason", string(reason), "err", err)
		ss.setErr(err)
		if fe.Txnr > 0 && fe.Txnr == expect {
			ss.read(1)
			ss.srv.stats.refused500.Add(1)
			ss.enqueueDone(&slot{kind: slotError, first: fe.Txnr, n: 1, data: []byte(fe.Err.Error())})
		} else {
			ss.enqueueDone(&slot{kind: slotEnd})
		}
		ss.discard()
	default:
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			ss.setErr(err)
		}
		ss.abort("") // the client is gone
	}
}

// discard reads and drops whatever the client still sends until the
// answerer has closed the session, so our last answers are not lost to a
// reset caused by unread data.
func (ss *session) discard() {
	buf := make([]byte, 4096)
	for {
		if _, err := ss.conn.Read(buf); err != nil {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// answerLoop writes the answers in transaction order as slots complete,
// and ends the session when a slot says so, a hand-off fails, the head
// slot waits past the ack timeout, or abort is called.
func (ss *session) answerLoop() {
	s := ss.srv
	defer close(ss.answered)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		ss.mu.Lock()
		var head, end *slot
		answered := 0
		now := time.Now()
		for len(ss.slots) > 0 {
			sl := ss.slots[0]
			st := sl.state.Load()
			if st == pending {
				head = sl
				break
			}
			if st == failed {
				end = sl
				break
			}
			ss.slots[0] = nil
			ss.slots = ss.slots[1:]
			switch sl.kind {
			case slotOK:
				t := sl.first
				for range sl.n {
					ss.wbuf = AppendOK(ss.wbuf, t)
					t = NextTxnr(t)
				}
				s.stats.acked.Add(uint64(sl.n))
				s.stats.ack.observe(now.Sub(sl.received), sl.n)
				answered += sl.n
			case slotData:
				ss.wbuf = AppendFrame(ss.wbuf, sl.first, CmdRsp, sl.data)
				answered++
			case slotError:
				ss.wbuf = AppendError(ss.wbuf, sl.first, string(sl.data))
				answered++
				end = sl
			case slotClose:
				ss.wbuf = AppendOK(ss.wbuf, sl.first)
				answered++
				end = sl
			case slotEnd:
				end = sl
			}
			if end != nil {
				break
			}
		}
		aborting, cause := ss.aborting, ss.cause
		if len(ss.slots) == 0 {
			ss.slots = ss.slots[:0:0] // let the drained array go
		}
		ss.mu.Unlock()

		if answered > 0 {
			ss.outstanding.Add(-int64(answered))
			s.stats.window.Add(-int64(answered))
			signal(ss.room)
		}
		if len(ss.wbuf) > 0 {
			if err := ss.write(); err != nil {
				ss.finish("", false)
				return
			}
		}
		switch {
		case end != nil && end.state.Load() == failed:
			ss.srv.warn.Warn("event not handed off; closing relp session so the client resends", "peer", ss.peer, "err", end.reason)
			ss.setErr(errors.Join(ErrNotHandedOff, end.reason))
			ss.finish(CloseHandoffFailed, true)
			return
		case end != nil && end.kind == slotClose:
			ss.finish("", false)
			return
		case end != nil:
			ss.finish(end.cause, true)
			return
		case aborting:
			ss.finish(cause, cause != "")
			return
		}
		if head != nil {
			wait := time.Until(head.received.Add(s.cfg.AckTimeout))
			if wait <= 0 {
				ss.srv.warn.Warn("relp answer waited past ack_timeout; closing session so the client resends", "peer", ss.peer, "ack_timeout", s.cfg.AckTimeout)
				ss.setErr(ErrAckTimeout)
				ss.finish(CloseAckTimeout, true)
				return
			}
			timer.Reset(wait)
		}
		select {
		case <-ss.kick:
		case <-timer.C:
		case <-ss.abortCh:
		}
		timer.Stop()
	}
}

// write sends the buffered answers under the write timeout.
func (ss *session) write() error {
	_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
	_, err := ss.conn.Write(ss.wbuf)
	if cap(ss.wbuf) > 1<<20 {
		ss.wbuf = nil
	} else {
		ss.wbuf = ss.wbuf[:0]
	}
	if err != nil {
		if isTimeout(err) && !ss.isAborting() {
			ss.srv.stats.badFrame(ReasonNotReading)
			ss.srv.warn.Warn("relp client does not read its answers; closing session", "peer", ss.peer, "write_timeout", ss.srv.cfg.WriteTimeout)
			ss.setErr(&FrameError{Reason: ReasonNotReading, Err: err})
		}
		return err
	}
	return nil
}

func (ss *session) isAborting() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.aborting
}

// finish ends the session: serverclose if hint (counted as a resend-close
// under cause when frames are left unanswered), then a lingering close.
func (ss *session) finish(cause string, hint bool) {
	ss.ended.Store(true)
	if left := ss.outstanding.Load(); left > 0 {
		ss.srv.stats.window.Add(-left)
		ss.outstanding.Add(-left)
		if hint && cause != "" {
			ss.srv.stats.resendClose(cause)
		}
	}
	if hint {
		_ = ss.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = ss.conn.Write(AppendServerclose(nil))
	}
	// Linger: half-close, let the client read our last bytes and close its
	// side (the reader is discarding meanwhile), then close.
	if cw, ok := ss.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = ss.conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	select {
	case <-ss.readerDone:
	case <-time.After(lingerTimeout):
	}
	_ = ss.conn.Close()
	signal(ss.room)
}
