package ackpipe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Conn is where a Sender writes data messages; *zmq.Push implements it.
// SendBatch must not modify the frames it is given: a Sender keeps them
// to resend.
type Conn interface {
	SendBatch(ctx context.Context, ms []zmq.Msg) (int, error)
}

// AckSource is where a Sender reads acks; *zmq.Pull implements it.
type AckSource interface {
	RecvBatch(ctx context.Context, buf []zmq.Msg) (int, error)
}

// Defaults for the zero fields of Config.
const (
	DefaultBatchSize = 100
	DefaultWindow    = 1
)

// Config configures a Sender. The zero value is usable: one batch of 100
// messages in flight, no resending, no idle flush.
type Config struct {
	BatchSize int // messages per batch (default 100)
	// Window is how many batches may be unacknowledged at once, the one
	// being filled included (default 1, the seed's pattern). At most
	// Window*BatchSize messages are at risk.
	Window int
	// ResendAfter resends a closed batch not acknowledged for this long,
	// and again each time it passes. 0 never resends; batches are then
	// not kept in memory.
	ResendAfter time.Duration
	// FlushAfter closes a partly filled batch once no message was added
	// for this long, so a quiet sender's last messages get acknowledged
	// (and resent). 0: ResendAfter/2 when resending (an open batch is
	// never resent), else only Flush and Wait close it.
	FlushAfter time.Duration
	Stream     uint32 // this sender's id on the wire; 0 picks a random one
	// OnResend, if set, is called after each resend with the batch
	// sequence number and how many messages it held.
	OnResend func(seq uint64, msgs int)
}

// Stats is a snapshot of a Sender's counters.
type Stats struct {
	Stream     uint32
	Msgs       uint64        // messages accepted by Send
	Batches    uint64        // batches closed (full, flushed)
	Acked      uint64        // batches acknowledged
	AckedMsgs  uint64        // messages in acknowledged batches
	Resends    uint64        // batch resends
	ResentMsgs uint64        // messages resent
	StaleAcks  uint64        // acks for batches not awaiting one (late or repeated)
	BadAcks    uint64        // malformed acks, or another stream's
	Unsent     uint64        // messages Conn did not take (Send returned an error)
	Stalls     uint64        // times Send had to wait for the window
	StallTime  time.Duration // total time Send waited for the window
	Waiting    bool          // Send is waiting for the window now
	InFlight   int           // unacknowledged batches, the open one included
	AtRisk     int           // messages in those batches
}

type batch struct {
	seq      uint64
	n        int       // messages sent into it (their indexes are 0..n-1)
	msgs     []zmq.Msg // as sent, header first; only when resending is on
	closed   bool
	last     time.Time // open: when the last message was added
	deadline time.Time // closed: when to resend
}

// Sender sends messages in acknowledged batches over a Conn. Send, Flush
// and Wait are safe for concurrent use; concurrent Sends are serialised.
type Sender struct {
	conn Conn
	cfg  Config
	keep bool // resending: batches keep their messages

	sendMu sync.Mutex // one batch is filled at a time, in order

	mu         sync.Mutex
	open       *batch
	window     map[uint64]*batch // unacknowledged, the open one included
	nextSeq    uint64
	changed    chan struct{} // closed and replaced on ack or Close, when waiters > 0
	waiters    int
	stallSince time.Time
	closed     bool
	st         Stats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSender returns a Sender writing to conn. Feed it acks with
// ReadAcks, HandleAck or Ack. With ResendAfter or FlushAfter set it runs
// a goroutine until Close.
func NewSender(conn Conn, c Config) *Sender {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.FlushAfter <= 0 && c.ResendAfter > 0 {
		c.FlushAfter = c.ResendAfter / 2
	}
	for c.Stream == 0 {
		c.Stream = rand.Uint32()
	}
	s := &Sender{
		conn:    conn,
		cfg:     c,
		keep:    c.ResendAfter > 0,
		window:  make(map[uint64]*batch, c.Window),
		changed: make(chan struct{}),
	}
	s.st.Stream = c.Stream
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if c.ResendAfter > 0 || c.FlushAfter > 0 {
		s.wg.Add(1)
		go s.timers()
	}
	return s
}

// Stream returns the sender's id on the wire.
func (s *Sender) Stream() uint32 { return s.cfg.Stream }

// Send sends msgs in order, each behind a header frame, opening batches
// as needed. It blocks while Window batches are unacknowledged, until ctx
// ends or Close. Send takes ownership of the frames. On an error, the
// messages before the failing one were sent.
func (s *Sender) Send(ctx context.Context, msgs ...zmq.Msg) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	for len(msgs) > 0 {
		b, err := s.openBatch(ctx)
		if err != nil {
			return err
		}
		k := min(len(msgs), s.cfg.BatchSize-b.n)
		out := s.wrap(b.seq, b.n, msgs[:k])
		now := time.Now()
		s.mu.Lock()
		b.n += k
		if s.keep {
			b.msgs = append(b.msgs, out...)
		}
		if b.n == s.cfg.BatchSize {
			s.closeLocked(b, now)
		} else {
			b.last = now
		}
		s.st.Msgs += uint64(k)
		s.mu.Unlock()
		if n, err := s.conn.SendBatch(ctx, out); err != nil {
			s.mu.Lock()
			s.st.Unsent += uint64(k - n)
			s.mu.Unlock()
			return fmt.Errorf("ackpipe: send batch %d: %w", b.seq, err)
		}
		msgs = msgs[k:]
	}
	return nil
}

// wrap puts a header frame in front of each message, with three
// allocations per call rather than per message.
func (s *Sender) wrap(seq uint64, first int, msgs []zmq.Msg) []zmq.Msg {
	frames := 0
	for _, m := range msgs {
		frames += len(m) + 1
	}
	hdrs := make([]byte, len(msgs)*HeaderLen)
	backing := make([][]byte, 0, frames)
	out := make([]zmq.Msg, len(msgs))
	for i, m := range msgs {
		h := Header{Stream: s.cfg.Stream, Seq: seq, Index: uint32(first + i)}
		if first+i == s.cfg.BatchSize-1 {
			h.Flags = FlagLast
		}
		hb := hdrs[i*HeaderLen : (i+1)*HeaderLen : (i+1)*HeaderLen]
		putHeader(hb, h)
		start := len(backing)
		backing = append(backing, hb)
		backing = append(backing, m...)
		out[i] = zmq.Msg(backing[start:len(backing):len(backing)])
	}
	return out
}

// openBatch returns the batch being filled, opening one when the window
// has room and waiting when it has none.
func (s *Sender) openBatch(ctx context.Context) (*batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return nil, ErrClosed
		}
		if s.open != nil {
			return s.open, nil
		}
		if len(s.window) < s.cfg.Window {
			s.endStallLocked()
			s.nextSeq++
			b := &batch{seq: s.nextSeq}
			if s.keep {
				b.msgs = make([]zmq.Msg, 0, min(s.cfg.BatchSize+1, 4096))
			}
			s.open = b
			s.window[b.seq] = b
			return b, nil
		}
		if !s.st.Waiting {
			s.st.Waiting = true
			s.st.Stalls++
			s.stallSince = time.Now()
		}
		if err := s.waitLocked(ctx); err != nil {
			s.endStallLocked()
			return nil, err
		}
	}
}

func (s *Sender) endStallLocked() {
	if s.st.Waiting {
		s.st.Waiting = false
		s.st.StallTime += time.Since(s.stallSince)
	}
}

// waitLocked waits, with mu released, until an ack or Close changes the
// window, or ctx ends.
func (s *Sender) waitLocked(ctx context.Context) error {
	ch := s.changed
	s.waiters++
	s.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.ctx.Done():
		err = ErrClosed
	}
	s.mu.Lock()
	s.waiters--
	return err
}

func (s *Sender) closeLocked(b *batch, now time.Time) {
	b.closed = true
	b.deadline = now.Add(s.cfg.ResendAfter)
	s.open = nil
	s.st.Batches++
}

// Flush closes the batch being filled, if any, so it can be acknowledged
// before it is full: it sends a MARKER message ending it.
func (s *Sender) Flush(ctx context.Context) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.flush(ctx)
}

// flush needs sendMu held.
func (s *Sender) flush(ctx context.Context) error {
	s.mu.Lock()
	b := s.open
	if b == nil {
		s.mu.Unlock()
		return nil
	}
	h := Header{Flags: FlagLast | FlagMarker, Stream: s.cfg.Stream, Seq: b.seq, Index: uint32(b.n)}
	marker := zmq.Msg{AppendHeader(make([]byte, 0, HeaderLen), h)}
	if s.keep {
		b.msgs = append(b.msgs, marker)
	}
	s.closeLocked(b, time.Now())
	s.mu.Unlock()
	if _, err := s.conn.SendBatch(ctx, []zmq.Msg{marker}); err != nil {
		return fmt.Errorf("ackpipe: flush batch %d: %w", b.seq, err)
	}
	return nil
}

// Wait flushes and then waits until every batch is acknowledged, ctx
// ends or the Sender is closed.
func (s *Sender) Wait(ctx context.Context) error {
	if err := s.Flush(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.window) > 0 {
		if s.closed {
			return ErrClosed
		}
		if err := s.waitLocked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Ack acknowledges batch seq: its messages leave the window. It reports
// whether seq was awaiting an ack.
func (s *Sender) Ack(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.window[seq]
	if !ok || !b.closed {
		s.st.StaleAcks++
		return false
	}
	delete(s.window, seq)
	s.st.Acked++
	s.st.AckedMsgs += uint64(b.n)
	if s.waiters > 0 {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return true
}

// HandleAck applies one ack message. Malformed acks and acks for another
// stream are counted in Stats.BadAcks; only the former return an error.
func (s *Sender) HandleAck(m zmq.Msg) error {
	if len(m) != 1 {
		s.badAck()
		return fmt.Errorf("ack of %d frames, want 1: %w", len(m), ErrMalformed)
	}
	stream, seq, err := ParseAck(m[0])
	if err != nil {
		s.badAck()
		return err
	}
	if stream != s.cfg.Stream {
		s.badAck()
		return nil
	}
	s.Ack(seq)
	return nil
}

func (s *Sender) badAck() {
	s.mu.Lock()
	s.st.BadAcks++
	s.mu.Unlock()
}

// ReadAcks applies the acks src delivers until ctx ends or src fails
// (for a *zmq.Pull: until it is closed), and returns that error.
// Malformed acks are counted and skipped.
func (s *Sender) ReadAcks(ctx context.Context, src AckSource) error {
	buf := make([]zmq.Msg, 64)
	for {
		n, err := src.RecvBatch(ctx, buf)
		for _, m := range buf[:n] {
			_ = s.HandleAck(m) // counted in BadAcks
		}
		clear(buf[:n])
		if err != nil {
			return err
		}
	}
}

// Stats returns a snapshot of the counters.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if st.Waiting {
		st.StallTime += time.Since(s.stallSince)
	}
	st.InFlight = len(s.window)
	for _, b := range s.window {
		st.AtRisk += b.n
	}
	return st
}

// Close stops the resend and flush timers and wakes blocked calls with
// ErrClosed. Unacknowledged batches are abandoned (Stats.AtRisk).
func (s *Sender) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// timers resends overdue batches and flushes idle ones. A ticker rather
// than a timer per batch, so a busy sender pays nothing per batch.
func (s *Sender) timers() {
	defer s.wg.Done()
	tick := s.cfg.ResendAfter
	if tick == 0 || (s.cfg.FlushAfter > 0 && s.cfg.FlushAfter < tick) {
		tick = s.cfg.FlushAfter
	}
	tick = max(tick/4, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			if s.cfg.FlushAfter > 0 {
				s.flushIdle(now)
			}
			if s.keep {
				if err := s.resend(now); errors.Is(err, zmq.ErrClosed) {
					return
				}
			}
		}
	}
}

func (s *Sender) flushIdle(now time.Time) {
	s.mu.Lock()
	idle := s.open != nil && now.Sub(s.open.last) >= s.cfg.FlushAfter
	s.mu.Unlock()
	// A Send in progress will close or refresh the batch itself.
	if idle && s.sendMu.TryLock() {
		_ = s.flush(s.ctx) // a failed marker is resent with its batch
		s.sendMu.Unlock()
	}
}

// resend sends every overdue batch again, oldest first, flagged RESENT.
func (s *Sender) resend(now time.Time) error {
	type due struct {
		seq  uint64
		msgs []zmq.Msg
		n    int // application messages, the marker left out
	}
	var todo []due
	s.mu.Lock()
	for _, b := range s.window {
		if !b.closed || now.Before(b.deadline) {
			continue
		}
		b.deadline = now.Add(s.cfg.ResendAfter)
		out := make([]zmq.Msg, len(b.msgs))
		for i, m := range b.msgs {
			h := append(make([]byte, 0, HeaderLen), m[0]...)
			h[2] |= FlagResent
			out[i] = append(zmq.Msg{h}, m[1:]...)
		}
		todo = append(todo, due{b.seq, out, b.n})
		s.st.Resends++
		s.st.ResentMsgs += uint64(b.n)
	}
	s.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].seq < todo[j].seq })
	for _, d := range todo {
		if _, err := s.conn.SendBatch(s.ctx, d.msgs); err != nil {
			return fmt.Errorf("ackpipe: resend batch %d: %w", d.seq, err)
		}
		if s.cfg.OnResend != nil {
			s.cfg.OnResend(d.seq, d.n)
		}
	}
	return nil
}
