package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	desc           string // for logs and error lines
}

func openSender(s settings, log *slog.Logger) (*sender, error) {
	o := zmq.Options{HWM: s.hwm, Logger: log}
	var sock interface {
		Listen(string) error
		Dial(string) error
		Close() error
	}
	snd := &sender{topicFromField: s.topicFromField}
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

// msg frames one line: [line], [topic, line] or, with topicFromField,
// [first field, rest of line].
func (snd *sender) msg(line []byte) zmq.Msg {
	switch {
	case snd.topicFromField:
		if i := bytes.IndexByte(line, ' '); i >= 0 {
			return zmq.Msg{line[:i], line[i+1:]}
		}
		return zmq.Msg{line, nil}
	case snd.topic != nil:
		return zmq.Msg{snd.topic, line}
	}
	return zmq.Msg{line}
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
		switch {
		case snd.topicFromField:
			if j := bytes.IndexByte(line, ' '); j >= 0 {
				f[0], f[1] = line[:j], line[j+1:]
			} else {
				f[0], f[1] = line, nil
			}
		case snd.topic != nil:
			f[0], f[1] = snd.topic, line
		default:
			f[0] = line
		}
		dst = append(dst, zmq.Msg(f))
	}
	return dst
}

func (snd *sender) close(ctx context.Context) error {
	if snd.push != nil {
		err := snd.push.Flush(ctx)
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

	mu      sync.Mutex    // guards changed and serialises reloads
	changed chan struct{} // closed when cur is replaced
	// dropped is set when a replaced socket closed with messages unsent:
	// the next Flush fails, so rsyslog retries the open transaction.
	dropped atomic.Bool
	// written makes Send return only once a PUSH message is written to a
	// peer's connection (--confirm-when written, with confirmations).
	written bool

	batch []zmq.Msg // SendBatch's reused message list
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
					// Queued: handed off. Flush waits for the write.
					return nil
				}
			} else {
				err = snd.push.Send(ctx, snd.msg(line))
			}
			if err == nil {
				return nil
			}
			if !errors.Is(err, zmq.ErrClosed) {
				if ctx.Err() != nil {
					return fmt.Errorf("%s: %w", snd.desc, context.Cause(ctx))
				}
				return err
			}
		}
		select { // closed by a reload: wait for its replacement
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Flush waits until what the current PUSH socket accepted is written to
// its peers' connections, so a killed bridge loses nothing it confirmed.
// After a SendWritten that wrote directly there is nothing left to wait for.
func (b *bridge) Flush(ctx context.Context) error {
	if b.dropped.Swap(false) {
		return ErrDroppedOnReload
	}
	for {
		snd, changed := b.current()
		if snd.pub != nil {
			return nil
		}
		err := snd.push.Flush(ctx)
		if !errors.Is(err, zmq.ErrClosed) {
			if err != nil && ctx.Err() != nil {
				return fmt.Errorf("flush %s: %w", snd.desc, context.Cause(ctx))
			}
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// SendBatch hands lines to the current socket in one go (fire-and-forget:
// PUSH queues them in order, waiting for room; PUB never waits). The
// lines stay owned by the socket. A batch cut short by a reload goes on
// on the new socket.
func (b *bridge) SendBatch(ctx context.Context, lines [][]byte) (int, error) {
	done := 0
	for done < len(lines) {
		snd, changed := b.current()
		var err error
		if snd.pub != nil {
			for ; done < len(lines); done++ {
				if err = snd.pub.Send(snd.msg(lines[done])); err != nil {
					break
				}
			}
		} else {
			b.batch = snd.msgs(b.batch[:0], lines[done:])
			var k int
			k, err = snd.push.SendBatch(ctx, b.batch)
			clear(b.batch)
			done += k
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, zmq.ErrClosed) {
			if ctx.Err() != nil {
				return done, fmt.Errorf("%s: %w", snd.desc, context.Cause(ctx))
			}
			return done, err
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
		b.dropped.Store(true)
		b.log.Warn("reload: the old socket closed with messages unsent; the open transaction will be retried",
			"err", err)
	}
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

func (b *bridge) stats() zmq.Stats { return b.cur.Load().stats() }
