package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
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
			err := snd.push.Send(ctx, snd.msg(line))
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
func (b *bridge) Flush(ctx context.Context) error {
	if b.dropped.Swap(false) {
		return ErrDroppedOnReload
	}
	for {
		snd, changed := b.current()
		if snd.pub != nil {
			return nil
		}
		// The writer usually has it on the wire within microseconds, far
		// below Push.Flush's polling tick: probe a while first.
		for deadline := time.Now().Add(flushSpin); time.Now().Before(deadline); {
			if snd.push.Flush(doneCtx) == nil {
				return nil
			}
			runtime.Gosched()
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

// flushSpin bounds the probing before Flush falls back to Push.Flush's
// millisecond polling.
const flushSpin = 2 * time.Millisecond

// doneCtx turns Push.Flush into a probe: nil when everything is written.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

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
