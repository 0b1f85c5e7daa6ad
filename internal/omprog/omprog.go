// Package omprog speaks rsyslog's omprog external-plugin protocol: messages
// arrive on stdin one per line; with confirmMessages="on" the program
// answers one status line per line read (OK, DEFER_COMMIT or an error),
// optionally inside BEGIN/COMMIT TRANSACTION marks.
//
// The package knows nothing about ZeroMQ: it hands every message to a Sink
// and answers rsyslog according to what the Sink reports, so it is tested
// with fake sinks and fuzzed without a peer.
package omprog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default protocol settings, matching omprog's defaults.
const (
	DefaultBeginMark  = "BEGIN TRANSACTION"
	DefaultCommitMark = "COMMIT TRANSACTION"
	DefaultKeepAlive  = time.Second
	DefaultMaxWait    = 30 * time.Second
	DefaultMaxLine    = 16 << 20
	// DefaultCloseTimeout stays below omprog's closeTimeout (5s), after
	// which rsyslog may kill the program.
	DefaultCloseTimeout = 4 * time.Second
)

// Status lines of the protocol.
const (
	statusOK    = "OK\n"
	statusDefer = "DEFER_COMMIT\n"
)

// Sink takes the messages. Send returns once the message is handed off (for
// ZeroMQ: queued to a peer within its HWM), or with ctx's error when it
// could not be handed off in time; it must not hand off a message it
// returns an error for. Flush returns once every handed-off message has
// left the process, as far as the sink can tell. Both are first tried with
// a context that is already done: they must then return at once, with an
// error that wraps context.Canceled if they would have to wait (they are
// then called again with the real context); any other error is final.
type Sink interface {
	Send(ctx context.Context, msg []byte) error
	Flush(ctx context.Context) error
}

// BatchSink is a Sink that also takes many messages at once; Serve uses it
// without Confirm (fire-and-forget), where nothing is answered per line.
// SendBatch returns how many messages (a prefix of msgs) it handed off:
// all of them, or fewer with the error that stopped it (ctx's, or the
// sink's). The byte slices stay valid after it returns, so the sink may
// keep them; the outer slice is reused.
type BatchSink interface {
	Sink
	SendBatch(ctx context.Context, msgs [][]byte) (int, error)
}

// Tx selects whether the input uses omprog's transaction marks.
type Tx int

// Transaction modes.
const (
	// TxAuto looks at the first line: omprog with useTransactions="on"
	// always opens with the begin mark, so nothing needs configuring.
	TxAuto Tx = iota
	// TxOn treats the marks as transaction boundaries.
	TxOn
	// TxOff treats every line as a message, marks included.
	TxOff
)

// Options configure Serve. The zero value is fire-and-forget with the
// defaults above.
type Options struct {
	// Confirm answers rsyslog (omprog's confirmMessages="on"): OK once
	// ready, then one status line per line read.
	Confirm bool
	// Transactions selects how the begin/commit marks are recognised.
	Transactions Tx
	// BeginMark and CommitMark match omprog's beginTransactionMark and
	// commitTransactionMark.
	BeginMark, CommitMark string
	// KeepAlive is the longest gap between keep-alive dots while a
	// message waits for a peer; keep it well below omprog's confirmTimeout.
	KeepAlive time.Duration
	// MaxWait bounds the wait for a peer per message; then rsyslog gets an
	// error line and retries that message from its queue (inside a
	// transaction too: rsyslog re-submits from the failing message on).
	// A commit is bounded only while nothing of its transaction was handed
	// off: a failed commit makes rsyslog resend the whole transaction, so
	// once part of it is out the commit waits as long as it takes.
	// Negative waits forever. Ignored without Confirm: fire-and-forget has
	// nobody to tell.
	MaxWait time.Duration
	// MaxLine is the longest line accepted, bytes.
	MaxLine int
	// CloseTimeout bounds the flush at end of input.
	CloseTimeout time.Duration
	// FlushEach confirms a message only once Sink.Flush returned after its
	// Send, without a time limit (keep-alive dots meanwhile). rsyslog
	// retries only the failing message of a transaction, never the ones
	// it already got DEFER_COMMIT for, so a message confirmed while still
	// inside the process would be lost if the process died.
	FlushEach bool
	// Logger gets the program's log (stderr under omprog); nil discards.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.BeginMark == "" {
		o.BeginMark = DefaultBeginMark
	}
	if o.CommitMark == "" {
		o.CommitMark = DefaultCommitMark
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	o.MaxLine = max(o.MaxLine, len(o.BeginMark), len(o.CommitMark)) // marks always fit
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats counts what Serve did.
type Stats struct {
	Lines        uint64 // lines read, marks included
	Messages     uint64 // messages handed off to the sink
	Failed       uint64 // messages answered with an error line
	Oversize     uint64 // lines discarded for exceeding MaxLine
	Transactions uint64 // commits confirmed
	KeepAlives   uint64 // keep-alive dots written
}

// Server runs the protocol on one input and output.
type Server struct {
	opts Options
	sink Sink
	in   *bufio.Reader
	out  io.Writer

	mu        sync.Mutex   // serialises writes to out: status lines and dots
	busySince atomic.Int64 // unix nanos a wait started, 0 when idle
	txHanded  int          // messages handed off in the open transaction

	lines, messages, failed, oversize, commits, dots atomic.Uint64
}

// NewServer prepares a Server reading in and answering on out.
func NewServer(in io.Reader, out io.Writer, sink Sink, o Options) *Server {
	o.defaults()
	return &Server{opts: o, sink: sink, in: bufio.NewReaderSize(in, 64<<10), out: out}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Lines: s.lines.Load(), Messages: s.messages.Load(), Failed: s.failed.Load(),
		Oversize: s.oversize.Load(), Transactions: s.commits.Load(), KeepAlives: s.dots.Load(),
	}
}

// Serve answers the initial OK (call it once the sink is ready), then
// processes lines until EOF, a read error, or ctx is done. At EOF it
// flushes the sink and returns nil. A message in flight when ctx ends is
// left unconfirmed, so rsyslog retries it.
func (s *Server) Serve(ctx context.Context) error {
	if bs, ok := s.sink.(BatchSink); ok && !s.opts.Confirm {
		return s.serveBatches(ctx, bs)
	}
	if s.opts.Confirm {
		stop := s.startKeepAlive()
		defer stop()
		if err := s.write(statusOK); err != nil {
			return err
		}
	}
	tx := s.opts.Transactions
	first := true
	for {
		line, err := s.readLine()
		if errors.Is(err, ErrLineTooLong) {
			// An error, never OK: a line confirmed and then dropped would
			// be lost without rsyslog knowing. rsyslog keeps it and retries
			// it (action.resumeRetryCount), logging the error line.
			s.discardOversize(&first, &tx)
			if werr := s.answer(tx == TxOn, fmt.Errorf("%w: longer than %d bytes; lower rsyslog's maxMessageSize or raise --max-line (and the receiver's limit)", ErrLineTooLong, s.opts.MaxLine)); werr != nil {
				return werr
			}
			continue
		}
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return s.flushAtEOF(ctx)
			}
			return fmt.Errorf("read stdin: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.lines.Add(1)
		if first {
			first = false
			if tx == TxAuto {
				tx = TxOff
				if string(line) == s.opts.BeginMark {
					tx = TxOn
				}
			}
		}
		if err := s.handle(ctx, line, tx == TxOn); err != nil {
			return err
		}
		if err != nil { // a last line without LF, then EOF
			return s.flushAtEOF(ctx)
		}
	}
}

func (s *Server) handle(ctx context.Context, line []byte, tx bool) error {
	if tx {
		switch string(line) {
		case s.opts.BeginMark:
			s.txHanded = 0
			if s.opts.Confirm {
				return s.write(statusOK)
			}
			return nil
		case s.opts.CommitMark:
			err := s.wait(ctx, s.sink.Flush, s.txHanded == 0)
			if err == nil {
				s.commits.Add(1)
				s.txHanded = 0
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				s.opts.Logger.Warn("commit not confirmed; rsyslog retries the transaction", "err", err)
			}
			return s.answerStatus(statusOK, err)
		}
	}
	msg := bytes.Clone(line) // the sink owns what it is given
	err := s.wait(ctx, func(ctx context.Context) error { return s.sink.Send(ctx, msg) }, true)
	if err == nil && s.opts.FlushEach {
		// Handed off: failing now would duplicate it, so no time limit.
		err = s.wait(ctx, s.sink.Flush, false)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		s.failed.Add(1)
		s.opts.Logger.Warn("message not handed off; rsyslog retries it", "err", err)
	} else {
		s.messages.Add(1)
		if tx {
			s.txHanded++
		}
	}
	return s.answer(tx, err)
}

// answer writes a message's status: DEFER_COMMIT inside a transaction (the
// commit's OK covers it), OK outside, or an error line.
func (s *Server) answer(tx bool, err error) error {
	if tx {
		return s.answerStatus(statusDefer, err)
	}
	return s.answerStatus(statusOK, err)
}

func (s *Server) answerStatus(ok string, err error) error {
	if !s.opts.Confirm {
		return nil
	}
	if err != nil {
		return s.write(errorLine(err))
	}
	return s.write(ok)
}

// errorLine renders err as one status line that omprog reads as a failure
// (anything but OK, DEFER_COMMIT, PREVIOUS_COMMITTED) and, with
// reportFailures="on", logs.
func errorLine(err error) string {
	msg := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, err.Error())
	if len(msg) > 1000 { // omprog's reply buffer is 4 KiB
		msg = msg[:1000]
	}
	return "ERROR " + msg + "\n"
}

// wait runs fn, marking the server busy so the keep-alive loop writes dots,
// and bounding it by MaxWait when bounded is set and rsyslog can be told
// about a failure.
func (s *Server) wait(ctx context.Context, fn func(context.Context) error, bounded bool) error {
	// Busy from the start: even the first try may sit in a write to a
	// peer that stopped reading, and rsyslog must keep getting dots.
	s.busySince.Store(time.Now().UnixNano())
	defer s.idle()
	// Fast path: a sink with room hands off at once, so try with a done
	// context before paying for a timer. Only "would block" (the done
	// context's error) is worth the real wait; any other error is final.
	if err := fn(doneCtx); err == nil || !errors.Is(err, context.Canceled) {
		return err
	}
	if !bounded || !s.opts.Confirm || s.opts.MaxWait < 0 {
		return fn(ctx)
	}
	wctx, cancel := context.WithTimeoutCause(ctx, s.opts.MaxWait,
		fmt.Errorf("%w within %v: no peer could take it", ErrNotHandedOff, s.opts.MaxWait))
	defer cancel()
	err := fn(wctx)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		err = context.Cause(wctx)
	}
	return err
}

// doneCtx makes a Sink call non-blocking: it must fail rather than wait.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// idle clears the busy mark under the write lock, so no dot can follow the
// status line that comes next.
func (s *Server) idle() {
	s.mu.Lock()
	s.busySince.Store(0)
	s.mu.Unlock()
}

func (s *Server) write(line string) error {
	s.mu.Lock()
	_, err := io.WriteString(s.out, line)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write status to stdout: %w", err)
	}
	return nil
}

// startKeepAlive writes a dot whenever a wait has lasted half the
// keep-alive interval, so omprog's confirmTimeout restarts while a peer is
// missing. omprog ignores leading dots on a status line.
func (s *Server) startKeepAlive() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		half := s.opts.KeepAlive / 2
		t := time.NewTicker(half)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s.mu.Lock()
				if b := s.busySince.Load(); b != 0 && now.UnixNano()-b >= int64(half) {
					if _, err := io.WriteString(s.out, "."); err == nil {
						s.dots.Add(1)
					}
				}
				s.mu.Unlock()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// readLine returns the next line without its LF. The slice is valid until
// the next call. A line longer than MaxLine is consumed and reported as
// ErrLineTooLong. A last line without LF comes with io.EOF.
func (s *Server) readLine() ([]byte, error) {
	line, err := s.in.ReadSlice('\n')
	if len(line) > s.opts.MaxLine+1 || (err != nil && len(line) > s.opts.MaxLine) {
		return s.skipLine(err)
	}
	if err == nil {
		return line[:len(line)-1], nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	buf := append([]byte(nil), line...)
	for {
		line, err = s.in.ReadSlice('\n')
		if len(buf)+len(line) > s.opts.MaxLine+1 {
			return s.skipLine(err)
		}
		buf = append(buf, line...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return buf, err
		}
	}
}

// skipLine consumes the rest of an oversize line.
func (s *Server) skipLine(err error) ([]byte, error) {
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = s.in.ReadSlice('\n')
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return nil, ErrLineTooLong // at EOF the next read reports it again
}

// flushAtEOF waits for the sink to push out what it holds: rsyslog closed
// the pipe and gives us closeTimeout to finish.
func (s *Server) flushAtEOF(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.CloseTimeout)
	defer cancel()
	if err := s.sink.Flush(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnflushed, err)
	}
	return nil
}

// discardOversize counts and logs a line longer than MaxLine. A mark is
// never too long, so such a first line settles TxAuto as off.
func (s *Server) discardOversize(first *bool, tx *Tx) {
	if *first && *tx == TxAuto {
		*tx = TxOff
	}
	*first = false
	s.lines.Add(1)
	s.oversize.Add(1)
	s.opts.Logger.Error("discarding a line longer than the maximum; raise --max-line or lower rsyslog's maxMessageSize",
		"max", s.opts.MaxLine)
}
