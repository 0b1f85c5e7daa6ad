package input

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/ratelog"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// ZMQConfig configures a ZeroMQ PULL input.
type ZMQConfig struct {
	Name string
	// Bind and Connect are ZeroMQ endpoints (tcp://host:port,
	// tcp://*:port, ipc:///path); at least one of either.
	Bind, Connect []string
	// HWM is the receive queue, in messages (0: the zmq default).
	HWM int
	// MaxMessageSize is the largest message accepted from a peer, in bytes;
	// a peer sending a larger one is disconnected (0: the zmq default).
	MaxMessageSize int64
	// MaxPeers limits the peers of a binding socket; more are refused and
	// counted in ConnectionsRefused (0: the zmq default).
	MaxPeers int
	// Security is NULL when nil; see zmq.PlainServer and zmq.PlainClient.
	Security zmq.Security
	// StreamFrame: a two-frame message [stream, payload] sets
	// Event.Stream, and the router keeps it. Without it the first of two
	// frames is ignored and the router derives the stream.
	StreamFrame bool
}

// ZMQ is an input of events from ZeroMQ PUSH peers.
type ZMQ struct {
	cfg     ZMQConfig
	log     *slog.Logger
	warn    ratelog.Warner
	stats   counters
	streams *event.Interner // stream frames repeat: one string per name

	mu       sync.Mutex
	pull     *zmq.Pull
	started  bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

var _ Input = (*ZMQ)(nil)

// NewZMQ checks cfg and returns an input ready to Start.
func NewZMQ(cfg ZMQConfig, log *slog.Logger) (*ZMQ, error) {
	if len(cfg.Bind)+len(cfg.Connect) == 0 {
		return nil, fmt.Errorf("input %q: %w: set bind or connect to a ZeroMQ endpoint such as tcp://*:5555", cfg.Name, ErrNoListen)
	}
	z := &ZMQ{cfg: cfg, log: orDiscard(log).With("input", cfg.Name), streams: event.NewInterner(1024)}
	z.warn.Logger = z.log
	return z, nil
}

// Name returns the configured input name.
func (z *ZMQ) Name() string { return z.cfg.Name }

// Addrs returns the bound addresses (port 0 resolved).
func (z *ZMQ) Addrs() []net.Addr {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.pull == nil {
		return nil
	}
	return z.pull.Addrs()
}

// Stats returns a snapshot of the input's counters, with the socket's
// (peers, handshakes, oversize, drops) folded in.
func (z *ZMQ) Stats() Stats {
	st := z.stats.snapshot()
	z.mu.Lock()
	p := z.pull
	z.mu.Unlock()
	if p != nil {
		addSocketStats(&st, p.Stats())
	}
	return st
}

// Start binds and connects the PULL socket, then receives in goroutines.
func (z *ZMQ) Start(h Handler) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.started {
		return fmt.Errorf("input %q: %w", z.cfg.Name, ErrStarted)
	}
	z.started = true
	p := zmq.NewPull(zmq.Options{
		RecvHWM:    z.cfg.HWM,
		MaxMsgSize: z.cfg.MaxMessageSize,
		MaxPeers:   z.cfg.MaxPeers,
		Security:   z.cfg.Security,
		Logger:     z.log,
	})
	for _, ep := range z.cfg.Bind {
		if err := p.Listen(ep); err != nil {
			p.Close()
			return fmt.Errorf("input %q: bind %q: %w", z.cfg.Name, ep, err)
		}
	}
	for _, ep := range z.cfg.Connect {
		if err := p.Dial(ep); err != nil {
			p.Close()
			return fmt.Errorf("input %q: connect %q: %w", z.cfg.Name, ep, err)
		}
	}
	z.pull = p
	ctx, cancel := context.WithCancel(context.Background())
	z.cancel = cancel
	z.wg.Add(1)
	go z.recvLoop(ctx, h)
	return nil
}

// recvLoop takes whatever the socket has queued (at least one message)
// and hands it over as one batch.
func (z *ZMQ) recvLoop(ctx context.Context, h Handler) {
	defer z.wg.Done()
	msgs := make([]zmq.Msg, MaxBatch)
	batch := make([]*event.Event, 0, MaxBatch)
	var events event.Slab // 64 events per allocation
	for {
		n, err := z.pull.RecvBatch(ctx, msgs)
		for i := range n {
			batch = z.add(batch, msgs[i], &events)
		}
		clear(msgs[:n])
		deliver(h, z.cfg.Name, &z.stats, batch)
		clear(batch)
		batch = batch[:0]
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, zmq.ErrClosed) {
				z.log.Error("zeromq receive failed", "err", err)
			}
			return
		}
	}
}

func (z *ZMQ) add(batch []*event.Event, m zmq.Msg, events *event.Slab) []*event.Event {
	var e *event.Event
	switch len(m) {
	case 1:
		e = events.New(m[0])
	case 2:
		e = events.New(m[1])
		if z.cfg.StreamFrame {
			e.Stream = z.streams.Intern(m[0])
		}
	default:
		z.stats.malformed.Add(1)
		z.warn.Warn("zeromq message discarded", "frames", len(m), "err", ErrTooManyFrames)
		return batch
	}
	return append(batch, e)
}

// Stop closes the socket, then hands every message it had already
// received to the Handler before returning, unless ctx is done first.
// Safe to call more than once.
func (z *ZMQ) Stop(ctx context.Context) error {
	z.stopOnce.Do(func() {
		z.mu.Lock()
		z.started = true // no Start after Stop
		p := z.pull
		z.mu.Unlock()
		if p == nil { // never started, or Start failed
			return
		}
		// A closed PULL stops reading from peers but still yields what
		// it queued; recvLoop drains it and ends on ErrClosed.
		p.Close()
		if err := waitGroup(ctx, &z.wg); err != nil {
			z.stopErr = fmt.Errorf("input %q: stop: %w", z.cfg.Name, err)
		}
		z.cancel() // a Handler still blocked returns into a loop that ends
	})
	return z.stopErr
}
