package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// sender is the ZeroMQ socket a bridge publishes on, with the settings
// that shape its messages. It is replaced whole on SIGHUP.
type sender struct {
	push           *zmq.Push // one of push and pub is set
	pub            *zmq.Pub
	topic          []byte
	topicFromField bool
	maxMsg         int64  // --max-line: the largest message, as zmq.MsgSize counts it
	desc           string // for logs and error lines
	// dropped is set, before the socket closes, when close gives up on
	// messages still unwritten: a Flush waiting on it must not confirm.
	dropped atomic.Bool
}

func openSender(s settings, log *slog.Logger) (*sender, error) {
	o := zmq.Options{HWM: s.hwm, Logger: log}
	if s.curve.Enabled() {
		sec, err := s.curve.Security(log)
		if err != nil {
			return nil, fmt.Errorf("curve: %w", err)
		}
		o.Security = sec
	}
	var sock interface {
		Listen(string) error
		Dial(string) error
		Close() error
	}
	snd := &sender{topicFromField: s.topicFromField, maxMsg: int64(s.maxLine)}
	if s.topic != "" {
		snd.topic = []byte(s.topic)
	}
	if s.socket == "pub" {
		snd.pub = zmq.NewPub(o)
		sock = snd.pub
	} else {
		snd.push = zmq.NewPush(o)
		snd.push.SetWrittenCork(s.cork)
		sock = snd.push
	}
	for _, ep := range s.binds {
		if err := sock.Listen(ep); err != nil {
			sock.Close()
			return nil, fmt.Errorf("bind %q: %w", ep, err)
		}
	}
	for _, ep := range s.connects {
		if err := sock.Dial(ep); err != nil {
			sock.Close()
			return nil, fmt.Errorf("connect %q: %w", ep, err)
		}
	}
	snd.desc = fmt.Sprintf("%s bind=%v connect=%v", s.socket, s.binds, s.connects)
	return snd, nil
}

// frames splits one line into its message's frames: [line], [topic,
// line] or, with topicFromField, [first field, rest of line] (the space
// between them is not sent); two says whether second is a frame.
func (snd *sender) frames(line []byte) (first, second []byte, two bool) {
	switch {
	case snd.topicFromField:
		if i := bytes.IndexByte(line, ' '); i >= 0 {
			return line[:i], line[i+1:], true
		}
		return line, nil, true
	case snd.topic != nil:
		return snd.topic, line, true
	}
	return line, nil, false
}

// msg frames one line (see frames).
func (snd *sender) msg(line []byte) zmq.Msg {
	a, b, two := snd.frames(line)
	if two {
		return zmq.Msg{a, b}
	}
	return zmq.Msg{a}
}

// fits checks that line's message is within --max-line as the receiver
// counts it (zmq.MsgSize: the frames plus 32 bytes per extra frame).
func (snd *sender) fits(line []byte) error {
	if snd.maxMsg <= 0 {
		return nil
	}
	a, b, two := snd.frames(line)
	m := [2][]byte{a, b}
	n := 1
	if two {
		n = 2
	}
	if size := zmq.MsgSize(m[:n]); size > snd.maxMsg {
		return fmt.Errorf("%w: a message of %d bytes (line %d bytes) over the limit of %d; lower rsyslog's maxMessageSize, or raise --max-line together with the relay's max_message_size", ErrTooLarge, size, len(line), snd.maxMsg)
	}
	return nil
}

// msgs appends the framing of every line to dst, with the frames of all
// of them in one allocation.
func (snd *sender) msgs(dst []zmq.Msg, lines [][]byte) []zmq.Msg {
	per := 1
	if snd.topicFromField || snd.topic != nil {
		per = 2
	}
	frames := make([][]byte, per*len(lines))
	for i, line := range lines {
		f := frames[per*i : per*i+per : per*i+per]
		if per == 2 {
			f[0], f[1], _ = snd.frames(line)
		} else {
			f[0] = line
		}
		dst = append(dst, zmq.Msg(f))
	}
	return dst
}

func (snd *sender) close(ctx context.Context) error {
	if snd.push != nil {
		err := snd.push.Flush(ctx)
		if err != nil {
			snd.dropped.Store(true) // before Close wakes Flush callers
		}
		snd.push.Close()
		return err
	}
	return snd.pub.Close()
}

func (snd *sender) stats() zmq.Stats {
	if snd.push != nil {
		return snd.push.Stats()
	}
	return snd.pub.Stats()
}

// bridge is the omprog.Sink publishing lines to ZeroMQ. Send and Flush
// are called from one goroutine (the protocol loop); reload runs from the
// signal handler and swaps the sender between or during them.
type bridge struct {
	log *slog.Logger
	cur atomic.Pointer[sender]

	mu      sync.Mutex    // guards changed, retired, and serialises reloads
	changed chan struct{} // closed when cur is replaced
	retired zmq.Stats     // counters of the sockets reloads replaced
	// used lists the PUSH senders messages went to since the last Flush
	// (the protocol goroutine's own): Flush waits for each and fails if a
	// reload dropped what one held, so rsyslog retries.
	used []*sender
	// written makes Send return only once a PUSH message is written to a
	// peer's connection (--confirm-when written, with confirmations).
	written bool
	// flushing counts Flush calls waiting on a socket now (tests wait
	// for it before they reload under a waiting Flush).
	flushing atomic.Int32

	batch []zmq.Msg // SendBatch's reused message list

	// tooLarge counts lines refused for --max-line.
	tooLarge    atomic.Uint64
	tooLargeLog everySecond
}

// everySecond lets one log line through per second.
type everySecond struct{ last atomic.Int64 }

func (e *everySecond) allow() bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	return now-last >= int64(time.Second) && e.last.CompareAndSwap(last, now)
}

func newBridge(s settings, log *slog.Logger) (*bridge, error) {
	snd, err := openSender(s, log)
	if err != nil {
		return nil, err
	}
	b := &bridge{log: log, changed: make(chan struct{})}
	b.cur.Store(snd)
	return b, nil
}

// Send hands line to the current socket: for PUSH, once queued to a peer
// with room; for PUB, once queued to every matching subscriber with room
// (PUB never blocks, and a subscriber without room misses it). A send cut
// short by a reload is retried on the new socket.
func (b *bridge) Send(ctx context.Context, line []byte) error {
	for {
		snd, changed := b.current()
		if err := snd.fits(line); err != nil {
			b.tooLarge.Add(1)
			return err
		}
		if snd.pub != nil {
			err := snd.pub.Send(snd.msg(line))
			if !errors.Is(err, zmq.ErrClosed) {
				return err
			}
		} else {
			var err error
			if b.written {
				err = snd.push.SendWritten(ctx, snd.msg(line))
				if errors.Is(err, zmq.ErrNotWritten) {
					err = nil // queued: handed off; Flush waits for the write
				}
			} else {
				err = snd.push.Send(ctx, snd.msg(line))
			}
			if err == nil {
				if n := len(b.used); n == 0 || b.used[n-1] != snd {
					b.used = append(b.used, snd)
				}
				return nil
			}
			if !errors.Is(err, zmq.ErrClosed) {
				return ctxCause(ctx, snd.desc, err)
			}
		}
		select { // closed by a reload: wait for its replacement
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Flush waits until what Send handed to PUSH sockets since the last Flush
// is written to peers' connections, so a killed bridge loses nothing it
// confirmed. A socket a reload replaced counts as written if it closed
// with nothing unwritten; if it dropped messages, Flush fails with
// ErrDroppedOnReload and rsyslog retries them.
func (b *bridge) Flush(ctx context.Context) error {
	for i, snd := range b.used {
		b.flushing.Add(1)
		err := snd.push.Flush(ctx)
		b.flushing.Add(-1)
		if snd.dropped.Load() {
			b.used = b.used[:0]
			return fmt.Errorf("%s: %w", snd.desc, ErrDroppedOnReload)
		}
		if err != nil && !errors.Is(err, zmq.ErrClosed) {
			b.used = b.used[i:] // still to wait for
			return ctxCause(ctx, "flush "+snd.desc, err)
		}
	}
	b.used = b.used[:0]
	return nil
}

// ctxCause returns err, or ctx's cause if err is ctx's ending, with what
// was being done.
func ctxCause(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	return err
}

// SendBatch hands lines to the current socket in one go (fire-and-forget:
// PUSH queues them in order, waiting for room; PUB never waits). The
// lines stay owned by the socket. A batch cut short by a reload goes on
// on the new socket.
func (b *bridge) SendBatch(ctx context.Context, lines [][]byte) (int, error) {
	done := 0
	for done < len(lines) {
		snd, changed := b.current()
		// Drop what the receiver would refuse: sent, it would cost the
		// connection and whatever followed it. Fire-and-forget has nobody
		// to tell but the log and the counters.
		if err := snd.fits(lines[done]); err != nil {
			if b.tooLarge.Add(1) == 1 || b.tooLargeLog.allow() {
				b.log.Error("dropping a line larger than --max-line", "err", err, "dropped_total", b.tooLarge.Load())
			}
			done++
			continue
		}
		end := done + 1
		for end < len(lines) && snd.fits(lines[end]) == nil {
			end++
		}
		var err error
		if snd.pub != nil {
			for ; done < end; done++ {
				if err = snd.pub.Send(snd.msg(lines[done])); err != nil {
					break
				}
			}
		} else {
			b.batch = snd.msgs(b.batch[:0], lines[done:end])
			var k int
			k, err = snd.push.SendBatch(ctx, b.batch)
			clear(b.batch)
			done += k
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, zmq.ErrClosed) {
			return done, ctxCause(ctx, snd.desc, err)
		}
		select { // closed by a reload: wait for its replacement
		case <-changed:
		case <-ctx.Done():
			return done, context.Cause(ctx)
		}
	}
	return done, nil
}

func (b *bridge) current() (*sender, <-chan struct{}) {
	b.mu.Lock()
	ch := b.changed
	b.mu.Unlock()
	return b.cur.Load(), ch
}

// reload replaces the socket with one built from s. The old socket first
// flushes (bounded by flushTimeout) and closes, so a rebind to the same
// endpoint works; if the new settings cannot be applied, the old ones are
// reopened.
func (b *bridge) reload(s, old settings, flushTimeout time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.cur.Load()
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	err := prev.close(ctx)
	cancel()
	if err != nil {
		b.log.Warn("reload: the old socket closed with messages unsent; rsyslog will retry them",
			"err", err)
	}
	addStats(&b.retired, prev.stats())
	snd, err := openSender(s, b.log)
	if err != nil {
		b.log.Error("reload: new settings failed, keeping the old ones", "err", err)
		var rerr error
		if snd, rerr = openSender(old, b.log); rerr != nil {
			return fmt.Errorf("reopen old settings after failed reload: %w", errors.Join(err, rerr))
		}
	}
	b.cur.Store(snd)
	close(b.changed)
	b.changed = make(chan struct{})
	return err
}

// close flushes within ctx and closes the socket.
func (b *bridge) close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur.Load().close(ctx)
}

// stats are the current socket's counters plus those of the sockets
// reloads replaced (gauges are the current socket's).
func (b *bridge) stats() zmq.Stats {
	b.mu.Lock()
	st := b.retired
	st.Drops = maps.Clone(st.Drops)
	b.mu.Unlock()
	addStats(&st, b.cur.Load().stats())
	return st
}

// addStats adds src's counters to dst and takes its gauges.
func addStats(dst *zmq.Stats, src zmq.Stats) {
	dst.Type, dst.Peers, dst.QueueDepth = src.Type, src.Peers, src.QueueDepth
	dst.MsgsIn += src.MsgsIn
	dst.MsgsOut += src.MsgsOut
	dst.BytesIn += src.BytesIn
	dst.BytesOut += src.BytesOut
	dst.HandshakeFailures += src.HandshakeFailures
	dst.Oversize += src.Oversize
	dst.Reconnects += src.Reconnects
	dst.HeartbeatTimeouts += src.HeartbeatTimeouts
	dst.Connects += src.Connects
	dst.Disconnects += src.Disconnects
	for reason, n := range src.Drops {
		if dst.Drops == nil {
			dst.Drops = map[string]uint64{}
		}
		dst.Drops[reason] += n
	}
}
