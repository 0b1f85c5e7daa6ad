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

// WholeConn is a Conn that can queue a run of messages to a single peer;
// *zmq.Push implements it. In Config.Whole mode a Sender uses it to send
// each batch to one worker.
type WholeConn interface {
	SendWhole(ctx context.Context, ms []zmq.Msg) (int, error)
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
	// Whole holds a batch's messages until the batch is closed (full,
	// Flush, FlushAfter) and then sends all of them in one call, to one
	// peer when the Conn is a WholeConn. A worker then sees whole batches
	// and can acknowledge them itself, and a worker that dies takes only
	// its own batches with it. No MARKER is needed: the last message held
	// gets the LAST flag. FlushAfter counts from a batch's first message,
	// so no message waits longer than that to be sent. Messages are kept
	// for resending whether or not ResendAfter is set; a batch that could
	// not be queued (Send's ctx ended) is retried with the resends, so
	// set ResendAfter.
	Whole bool
	// OnAck, if set, is called once for every acknowledged batch, outside
	// the Sender's locks, on the goroutine that delivered the ack.
	OnAck func(Acked)
	// OnAbandon, if set, is called by Close for every batch still
	// unacknowledged (the open one included) with the tags of its
	// messages (see SendTagged), so their owner learns they are not safe.
	OnAbandon func(seq uint64, tags []any)
	// OnSend, if set, is called just before messages are first queued to
	// the Conn, with their batch and the tags of exactly those messages
	// (Whole mode: once per batch, when it closes; otherwise once per part
	// of a Send). Resends do not call it. An owner that must know what may
	// have reached a peer (a spool counting redeliveries after a crash)
	// marks the tags here; it runs on the sending goroutine, outside the
	// Sender's locks, and delays the send by what it costs.
	OnSend func(seq uint64, tags []any)
}

// Acked describes an acknowledged batch, for Config.OnAck.
type Acked struct {
	Seq     uint64
	Msgs    int           // application messages in the batch
	Tags    []any         // the tags SendTagged gave its messages (nil entries for Send's)
	Latency time.Duration // from the batch's first send to its ack
	Resends int           // times it was sent again
}

// Stats is a snapshot of a Sender's counters.
type Stats struct {
	Stream     uint32
	Msgs       uint64 // messages accepted by Send
	Batches    uint64 // batches closed (full, flushed)
	Acked      uint64 // batches acknowledged
	AckedMsgs  uint64 // messages in acknowledged batches
	Resends    uint64 // batch resends
	ResentMsgs uint64 // messages resent
	// Acks that were ignored, by why: not an ack frame at all; another
	// sender's stream; a batch already acknowledged; a batch not closed
	// yet or never opened (an ack from the future).
	MalformedAcks, UnknownAcks, DupAcks, FutureAcks uint64
	Unsent                                          uint64        // messages Conn did not take (Send returned an error)
	Stalls                                          uint64        // times Send had to wait for the window
	StallTime                                       time.Duration // total time Send waited for the window
	Waiting                                         bool          // Send is waiting for the window now
	InFlight                                        int           // unacknowledged batches, the open one included
	AtRisk                                          int           // messages in those batches
}

type batch struct {
	seq      uint64
	n        int       // messages sent into it (their indexes are 0..n-1)
	msgs     []zmq.Msg // as sent, header first; only when resending is on (or Whole)
	tags     []any     // SendTagged's tags, parallel to the application messages
	closed   bool
	first    time.Time // open: when its first message was added
	last     time.Time // open: when the last message was added
	sentAt   time.Time // when it was first sent (Whole: closed; else opened)
	deadline time.Time // closed: when to resend
	resends  int
	unsent   bool // Whole: queueing it failed; the next resend round sends it
	acking   bool // acknowledged; OnAck runs, then it leaves the window
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
		keep:    c.ResendAfter > 0 || c.Whole,
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
	_, err := s.SendTagged(ctx, msgs, nil)
	return err
}

// SendTagged is Send with a tag per message (tags is nil or as long as
// msgs): the tags of a batch come back in Config.OnAck once it is
// acknowledged, or in Config.OnAbandon if Close abandons it, so the caller
// can tell the messages' owners. It returns how many messages the Sender
// took: those are reported exactly once through OnAck or OnAbandon; the
// rest were not taken (ctx ended, or Close) and remain the caller's.
// In Whole mode a batch that could not be queued to the Conn is still
// taken: it is retried with the resends.
func (s *Sender) SendTagged(ctx context.Context, msgs []zmq.Msg, tags []any) (int, error) {
	return s.send(ctx, source{msgs: msgs}, tags)
}

// SendPayloads is SendTagged for one-frame messages: each payload goes
// out as [header, payload], without a zmq.Msg per payload to build first.
func (s *Sender) SendPayloads(ctx context.Context, payloads [][]byte, tags []any) (int, error) {
	return s.send(ctx, source{payloads: payloads, one: true}, tags)
}

// source is the application messages of one Send call: msgs, or one-frame
// payloads.
type source struct {
	msgs     []zmq.Msg
	payloads [][]byte
	one      bool
}

func (src source) len() int {
	if src.one {
		return len(src.payloads)
	}
	return len(src.msgs)
}

func (s *Sender) send(ctx context.Context, src source, tags []any) (int, error) {
	total := src.len()
	if tags != nil && len(tags) != total {
		return 0, fmt.Errorf("ackpipe: %d tags for %d messages", len(tags), total)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	// Close must not wait behind a Send blocked on a full Conn.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	taken := 0
	for taken < total {
		b, err := s.openBatch(ctx)
		if err != nil {
			return taken, err
		}
		k := min(total-taken, s.cfg.BatchSize-b.n)
		var out []zmq.Msg
		if !s.cfg.Whole {
			out = s.wrap(nil, b.seq, b.n, src, taken, taken+k)
		}
		now := time.Now()
		s.mu.Lock()
		if b.n == 0 {
			b.first = now
		}
		if s.cfg.Whole {
			// Held until the batch closes: wrap straight into it.
			b.msgs = s.wrap(b.msgs, b.seq, b.n, src, taken, taken+k)
		} else if s.keep {
			b.msgs = append(b.msgs, out...)
		}
		b.n += k
		if tags != nil {
			b.tags = append(b.tags, tags[taken:taken+k]...)
		} else if s.cfg.OnAck != nil || s.cfg.OnAbandon != nil {
			b.tags = append(b.tags, make([]any, k)...)
		}
		full := b.n == s.cfg.BatchSize
		if full {
			s.closeLocked(b, now)
		} else {
			b.last = now
		}
		s.st.Msgs += uint64(k)
		s.mu.Unlock()
		taken += k
		if s.cfg.Whole {
			if full {
				if err := s.sendClosed(ctx, b); err != nil {
					return taken, err
				}
			}
			continue
		}
		if s.cfg.OnSend != nil {
			var part []any
			if tags != nil {
				part = tags[taken-k : taken]
			}
			s.cfg.OnSend(b.seq, part)
		}
		if n, err := s.conn.SendBatch(ctx, out); err != nil {
			s.mu.Lock()
			s.st.Unsent += uint64(k - n)
			s.mu.Unlock()
			return taken, fmt.Errorf("ackpipe: send batch %d: %w", b.seq, err)
		}
	}
	return taken, nil
}

// sendClosed sends a closed batch's messages in one call (Whole mode).
// A batch that cannot be queued stays in the window, due for a resend at
// once, so the next resend round retries it.
func (s *Sender) sendClosed(ctx context.Context, b *batch) error {
	s.mu.Lock()
	msgs, tags := b.msgs, b.tags
	s.mu.Unlock()
	if s.cfg.OnSend != nil {
		s.cfg.OnSend(b.seq, tags)
	}
	if _, err := s.sendRun(ctx, msgs); err != nil {
		s.mu.Lock()
		s.st.Unsent += uint64(b.n)
		b.unsent = true
		s.mu.Unlock()
		return fmt.Errorf("ackpipe: send batch %d: %w", b.seq, err)
	}
	return nil
}

// sendRun queues msgs to one peer when the Conn can, else as a batch.
func (s *Sender) sendRun(ctx context.Context, msgs []zmq.Msg) (int, error) {
	if wc, ok := s.conn.(WholeConn); ok && s.cfg.Whole {
		return wc.SendWhole(ctx, msgs)
	}
	return s.conn.SendBatch(ctx, msgs)
}

// wrap appends messages from..to of src to dst, each behind a header
// frame (indexes from first), with two allocations per call rather than
// per message.
func (s *Sender) wrap(dst []zmq.Msg, seq uint64, first int, src source, from, to int) []zmq.Msg {
	k := to - from
	frames := 2 * k
	if !src.one {
		frames = 0
		for _, m := range src.msgs[from:to] {
			frames += len(m) + 1
		}
	}
	hdrs := make([]byte, k*HeaderLen)
	backing := make([][]byte, 0, frames)
	if dst == nil {
		dst = make([]zmq.Msg, 0, k)
	}
	for i := range k {
		h := Header{Stream: s.cfg.Stream, Seq: seq, Index: uint32(first + i)}
		if first+i == s.cfg.BatchSize-1 {
			h.Flags = FlagLast
		}
		hb := hdrs[i*HeaderLen : (i+1)*HeaderLen : (i+1)*HeaderLen]
		putHeader(hb, h)
		start := len(backing)
		backing = append(backing, hb)
		if src.one {
			backing = append(backing, src.payloads[from+i])
		} else {
			backing = append(backing, src.msgs[from+i]...)
		}
		dst = append(dst, zmq.Msg(backing[start:len(backing):len(backing)]))
	}
	return dst
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
			b := &batch{seq: s.nextSeq, sentAt: time.Now()}
			if s.keep {
				b.msgs = make([]zmq.Msg, 0, min(s.cfg.BatchSize+1, 4096))
			}
			if s.cfg.OnAck != nil || s.cfg.OnAbandon != nil {
				b.tags = make([]any, 0, min(s.cfg.BatchSize, 4096))
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
	if s.cfg.Whole {
		b.sentAt = now
	}
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
	if s.cfg.Whole {
		// Nothing of it is sent yet: its last message can still carry LAST.
		lastHdr := b.msgs[len(b.msgs)-1][0]
		lastHdr[2] |= FlagLast
		s.closeLocked(b, time.Now())
		s.mu.Unlock()
		return s.sendClosed(ctx, b)
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
// whether seq was awaiting an ack; other acks are counted (DupAcks,
// FutureAcks) and ignored.
//
// The batch leaves the window only after OnAck returned: a Send waiting
// for room opens the next batch (and announces it with OnSend) after the
// owner has settled this one, so what an owner knows as sent and not
// acknowledged never exceeds the window.
func (s *Sender) Ack(seq uint64) bool {
	s.mu.Lock()
	b, ok := s.window[seq]
	if !ok || !b.closed || b.acking {
		switch {
		case ok && b.acking:
			s.st.DupAcks++ // being acknowledged now
		case ok || seq > s.nextSeq:
			s.st.FutureAcks++ // the batch is still open, or was never opened
		default:
			s.st.DupAcks++ // acknowledged before (or abandoned)
		}
		s.mu.Unlock()
		return false
	}
	b.acking = true
	s.mu.Unlock()
	if s.cfg.OnAck != nil {
		s.cfg.OnAck(Acked{Seq: seq, Msgs: b.n, Tags: b.tags, Latency: time.Since(b.sentAt), Resends: b.resends})
	}
	s.mu.Lock()
	delete(s.window, seq)
	s.st.Acked++
	s.st.AckedMsgs += uint64(b.n)
	if s.waiters > 0 {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	return true
}

// ResendNow makes the closed batches seqs due for a resend at the next
// timer tick instead of after ResendAfter: some of their messages are
// known lost (a peer went away before writing them), so waiting for the
// timeout would only delay them. Batches not awaiting an ack are skipped.
// It needs ResendAfter; it never blocks.
func (s *Sender) ResendNow(seqs ...uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seq := range seqs {
		if b, ok := s.window[seq]; ok && b.closed && !b.acking {
			b.deadline = time.Time{}
		}
	}
}

// HandleAck applies one ack message. Malformed acks and acks for another
// stream are counted (MalformedAcks, UnknownAcks) and ignored; only the
// former return an error.
func (s *Sender) HandleAck(m zmq.Msg) error {
	if len(m) != 1 {
		s.count(&s.st.MalformedAcks)
		return fmt.Errorf("ack of %d frames, want 1: %w", len(m), ErrMalformed)
	}
	stream, seq, err := ParseAck(m[0])
	if err != nil {
		s.count(&s.st.MalformedAcks)
		return err
	}
	if stream != s.cfg.Stream {
		s.count(&s.st.UnknownAcks)
		return nil
	}
	s.Ack(seq)
	return nil
}

func (s *Sender) count(c *uint64) {
	s.mu.Lock()
	*c++
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
			_ = s.HandleAck(m) // counted in MalformedAcks
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
// ErrClosed. Unacknowledged batches are abandoned (Stats.AtRisk), each
// reported to Config.OnAbandon.
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
	// A Send in progress holds sendMu until it sees ErrClosed: after it, no
	// batch enters the window.
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	left := make([]*batch, 0, len(s.window))
	for _, b := range s.window {
		if !b.acking { // being settled by its OnAck
			left = append(left, b)
		}
	}
	// Abandoned: an ack arriving now is a duplicate, so no batch is both
	// acknowledged and abandoned.
	clear(s.window)
	s.open = nil
	s.mu.Unlock()
	sort.Slice(left, func(i, j int) bool { return left[i].seq < left[j].seq })
	if s.cfg.OnAbandon != nil {
		for _, b := range left {
			s.cfg.OnAbandon(b.seq, b.tags)
		}
	}
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
	idle := false
	if b := s.open; b != nil {
		since := b.last
		if s.cfg.Whole {
			since = b.first // nothing of it is sent yet
		}
		idle = now.Sub(since) >= s.cfg.FlushAfter
	}
	s.mu.Unlock()
	// A Send in progress will close or refresh the batch itself.
	if idle && s.sendMu.TryLock() {
		_ = s.flush(s.ctx) // a failed marker is resent with its batch
		s.sendMu.Unlock()
	}
}

// resend sends every overdue batch again, oldest first, flagged RESENT,
// and in Whole mode every batch that could not be queued the first time.
func (s *Sender) resend(now time.Time) error {
	type due struct {
		seq    uint64
		msgs   []zmq.Msg
		n      int // application messages, the marker left out
		resent bool
	}
	var todo []due
	s.mu.Lock()
	for _, b := range s.window {
		if !b.closed || b.acking {
			continue
		}
		if b.unsent {
			// Its first send never happened: not a resend.
			b.unsent = false
			b.deadline = now.Add(s.cfg.ResendAfter)
			todo = append(todo, due{b.seq, b.msgs, b.n, false})
			continue
		}
		if s.cfg.ResendAfter <= 0 || now.Before(b.deadline) {
			continue
		}
		b.deadline = now.Add(s.cfg.ResendAfter)
		b.resends++
		out := make([]zmq.Msg, len(b.msgs))
		for i, m := range b.msgs {
			h := append(make([]byte, 0, HeaderLen), m[0]...)
			h[2] |= FlagResent
			out[i] = append(zmq.Msg{h}, m[1:]...)
		}
		todo = append(todo, due{b.seq, out, b.n, true})
		s.st.Resends++
		s.st.ResentMsgs += uint64(b.n)
	}
	s.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].seq < todo[j].seq })
	for i, d := range todo {
		if _, err := s.sendRun(s.ctx, d.msgs); err != nil {
			s.mu.Lock()
			for _, d := range todo[i:] {
				if b, ok := s.window[d.seq]; ok && !d.resent {
					b.unsent = true
				}
			}
			s.mu.Unlock()
			return fmt.Errorf("ackpipe: resend batch %d: %w", d.seq, err)
		}
		if d.resent && s.cfg.OnResend != nil {
			s.cfg.OnResend(d.seq, d.n)
		}
	}
	return nil
}
