package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/input"
)

// Defaults of a JetStream input.
const (
	DefaultInputBatch   = 256
	DefaultAckWait      = time.Minute
	DefaultMaxAckPend   = 8192
	DefaultInputTimeout = 5 * time.Second
)

// JetStreamInputConfig configures a JetStream input.
type JetStreamInputConfig struct {
	Name    string
	Servers []string
	Auth    NATSAuth
	TLS     *tls.Config
	// Stream is the stream (or a mirror of it) to read.
	Stream string
	// Consumer is the durable consumer's name (default relay-NAME): its
	// position survives restarts of the relay.
	Consumer string
	// FilterSubjects select the subjects read (empty: all; more than one
	// needs nats-server 2.10).
	FilterSubjects []string
	// Batch is the most events handed over at once (default 256).
	Batch int
	// AckWait is how long the server waits for an ack before it delivers
	// a message again (default 1m): it must exceed the time the outputs may
	// push back.
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered and not acked (default
	// 8192).
	MaxAckPending int
	// StartTimeout bounds the wait for a first connection at Start.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// JetStreamInputStats are the input's own counters.
type JetStreamInputStats struct {
	Redelivered uint64 // messages delivered more than once (the consumer's delivery count)
	Acked       uint64 // messages acked after their hand-off
	Naked       uint64 // messages handed back because an output failed to take them
	Pending     int64  // handed to the relay, hand-off not yet fired
	// Lag is how many messages the stream held for the consumer beyond
	// the last one delivered (its metadata's pending count): 0 when the
	// input keeps up.
	Lag uint64
	// Refused counts connections and requests the server refused for
	// the credentials or permissions.
	Refused uint64
	// Resubscribed counts consumers made again after the stream or the
	// consumer was deleted while the input ran.
	Resubscribed uint64
}

// JetStreamInput reads a stream through a durable pull consumer and acks
// each message once its event's hand-off fired: every output that must
// not lose it has it (a spool fsync'd it, a peer took it).
type JetStreamInput struct {
	cfg  JetStreamInputConfig
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
	ccMu sync.Mutex // guards cons and cc, which a resubscribe replaces
	cc   jetstream.ConsumeContext
	// resub asks resubscribeLoop to check the consumer and make it again
	// if it is gone.
	resub        chan struct{}
	resubscribed atomic.Uint64

	msgs chan jetstream.Msg
	stop chan struct{}
	done chan struct{}
	wg   sync.WaitGroup // hand-offs not fired

	received, bytes, redelivered, acked, naked, malformed atomic.Uint64
	refused                                               atomic.Uint64 // connections or requests refused for auth
	lag                                                   atomic.Uint64
	refusedLogged                                         atomic.Int64
	pending                                               atomic.Int64
	blockedNanos                                          atomic.Int64
	stopOnce                                              sync.Once
}

var _ input.Input = (*JetStreamInput)(nil)

// NewJetStreamInput checks the config; Start connects.
func NewJetStreamInput(cfg JetStreamInputConfig) (*JetStreamInput, error) {
	if cfg.Stream == "" {
		return nil, fmt.Errorf("input %q: no stream", cfg.Name)
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("input %q: no servers", cfg.Name)
	}
	if err := checkNATSServers(cfg.Servers); err != nil {
		return nil, fmt.Errorf("input %q: %w", cfg.Name, err)
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "relay-" + cfg.Name
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultInputBatch
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = DefaultMaxAckPend
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultInputTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &JetStreamInput{cfg: cfg, log: cfg.Logger.With("input", cfg.Name),
		msgs: make(chan jetstream.Msg, cfg.Batch), stop: make(chan struct{}), done: make(chan struct{}), resub: make(chan struct{}, 1)}, nil
}

// Name implements input.Input.
func (in *JetStreamInput) Name() string { return in.cfg.Name }

// Addrs implements input.Input: a JetStream input binds nothing.
func (in *JetStreamInput) Addrs() []net.Addr { return nil }

// Start connects, creates or updates the durable consumer and starts
// consuming. A server that cannot be reached, refused credentials or a
// stream that does not exist stop the start with what to change.
func (in *JetStreamInput) Start(h input.Handler) error {
	opts, err := NATSOptions(in.cfg.Name, in.cfg.Auth, in.cfg.TLS)
	if err != nil {
		return fmt.Errorf("input %q: %w", in.cfg.Name, err)
	}
	opts = append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.Timeout(2*time.Second),
		nats.PingInterval(5*time.Second), nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				in.log.Warn("NATS connection lost; reconnecting (unacked messages are delivered again, counted)", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { in.log.Info("NATS connection up", "server", nc.ConnectedUrlRedacted()) }),
		// Keep trying when the server refuses the credentials (nats.go
		// would close the connection for good after two refusals): the
		// input resumes once the operator fixes them, without a restart.
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if isAuth(err) {
				in.refused.Add(1)
				if last := in.refusedLogged.Load(); time.Since(time.Unix(0, last)) > time.Minute && in.refusedLogged.CompareAndSwap(last, time.Now().UnixNano()) {
					in.log.Warn("NATS server refuses the input's credentials or permissions; retrying, nothing is read meanwhile", "err", err,
						"fix", "check creds, nkey, user/password, token or tls (ca, cert, key), and the permission to use $JS.API.> and the consumer")
				}
				return
			}
			in.log.Warn("NATS asynchronous error", "err", err)
		}))
	servers := strings.Join(in.cfg.Servers, ",")
	nc, err := nats.Connect(servers, opts...)
	if err != nil {
		if isAuth(err) {
			return fmt.Errorf("input %q: %s: %w: %v; check creds, nkey, user/password, token or tls (ca, cert, key)", in.cfg.Name, servers, ErrRefused, err)
		}
		return fmt.Errorf("input %q: connect %s: %w; start the NATS server or correct servers: a jetstream input needs a server at start (later it reconnects by itself)", in.cfg.Name, servers, err)
	}
	in.nc = nc
	in.js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.cfg.StartTimeout)
	defer cancel()
	if err := in.subscribe(ctx); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("input %q: stream %s does not exist on %s; create it (or its mirror), or correct stream", in.cfg.Name, in.cfg.Stream, servers)
		}
		return err
	}
	go in.resubscribeLoop()
	go in.loop(h)
	return nil
}

// subscribe creates (or updates) the durable consumer and consumes it.
func (in *JetStreamInput) subscribe(ctx context.Context) error {
	cc := jetstream.ConsumerConfig{
		Durable:       in.cfg.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       in.cfg.AckWait,
		MaxAckPending: in.cfg.MaxAckPending,
		Description:   "relay input " + in.cfg.Name,
	}
	switch len(in.cfg.FilterSubjects) {
	case 0:
	case 1:
		cc.FilterSubject = in.cfg.FilterSubjects[0]
	default:
		cc.FilterSubjects = in.cfg.FilterSubjects
	}
	cons, err := in.js.CreateOrUpdateConsumer(ctx, in.cfg.Stream, cc)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		return fmt.Errorf("input %q: consumer %s on stream %s: %w", in.cfg.Name, in.cfg.Consumer, in.cfg.Stream, err)
	}
	in.ccMu.Lock()
	defer in.ccMu.Unlock()
	select {
	case <-in.stop:
		return errors.New("stopping")
	default:
	}
	consume, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case in.msgs <- m:
		case <-in.stop:
			// Stopping: not acked, delivered again at the next start.
		}
	}, jetstream.PullMaxMessages(2*in.cfg.Batch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		switch {
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrBadRequest):
			// Terminal for this ConsumeContext: the stream or the
			// consumer was deleted. Make them anew once the stream is
			// back, instead of reading nothing until a restart.
			in.log.Error("the stream's consumer was deleted (or the stream itself); waiting for the stream to exist, then the consumer is made again and reads it from its start",
				"stream", in.cfg.Stream, "consumer", in.cfg.Consumer, "err", err)
			in.resubscribe()
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			if in.nc.IsConnected() {
				in.log.Warn("JetStream consume: no heartbeat from the consumer; checking that it still exists", "err", err)
				in.resubscribe()
			}
		default:
			in.log.Warn("JetStream consume", "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("input %q: consume: %w", in.cfg.Name, err)
	}
	in.cons, in.cc = cons, consume
	return nil
}

func (in *JetStreamInput) resubscribe() {
	select {
	case in.resub <- struct{}{}:
	default:
	}
}

// resubscribeLoop makes the consumer again when it is gone (the stream
// deleted and made again, the consumer deleted), checking every few
// seconds until the stream exists. A consumer that still exists is left
// as it is.
func (in *JetStreamInput) resubscribeLoop() {
	bo := backoff{min: 500 * time.Millisecond, max: 10 * time.Second}
	for {
		select {
		case <-in.resub:
		case <-in.stop:
			return
		}
		bo.reset()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), in.cfg.StartTimeout)
			_, err := in.js.Consumer(ctx, in.cfg.Stream, in.cfg.Consumer)
			gone := errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
			in.ccMu.Lock()
			dead := in.cc != nil && isClosed(in.cc)
			in.ccMu.Unlock()
			if err == nil && !dead {
				cancel()
				break
			}
			if gone || dead {
				in.ccMu.Lock()
				if in.cc != nil {
					in.cc.Stop()
				}
				in.ccMu.Unlock()
				err = in.subscribe(ctx)
				if err == nil {
					in.resubscribed.Add(1)
					in.log.Info("consuming the stream again", "stream", in.cfg.Stream, "consumer", in.cfg.Consumer)
					cancel()
					break
				}
			}
			cancel()
			t := time.NewTimer(bo.next())
			select {
			case <-t.C:
			case <-in.stop:
				t.Stop()
				return
			}
		}
	}
}

// isClosed reports whether a ConsumeContext has ended.
func isClosed(cc jetstream.ConsumeContext) bool {
	select {
	case <-cc.Closed():
		return true
	default:
		return false
	}
}

// loop hands batches to h: the first message waits, then what is already
// there joins it.
func (in *JetStreamInput) loop(h input.Handler) {
	defer close(in.done)
	batch := make([]*event.Event, 0, in.cfg.Batch)
	held := make([]jetstream.Msg, 0, in.cfg.Batch)
	for {
		var m jetstream.Msg
		select {
		case m = <-in.msgs:
		case <-in.stop:
			return
		}
		held = append(held[:0], m)
	more:
		for len(held) < in.cfg.Batch {
			select {
			case m = <-in.msgs:
				held = append(held, m)
			default:
				break more
			}
		}
		msgs := append([]jetstream.Msg(nil), held...)
		in.pending.Add(int64(len(msgs)))
		in.wg.Add(1)
		hand := event.NewHandoff(func(err error) { in.settle(msgs, err) })
		batch = batch[:0]
		now := time.Now()
		var n int
		for _, m := range msgs {
			if md, err := m.Metadata(); err == nil {
				if md.NumDelivered > 1 {
					in.redelivered.Add(1)
				}
				// What the stream holds for this consumer beyond this
				// message: how far the input is behind.
				in.lag.Store(md.NumPending)
			}
			e := event.New(m.Data())
			e.Input, e.Received = in.cfg.Name, now
			if hd := m.Headers(); hd != nil {
				e.Stream = hd.Get(HeaderStream)
				e.Peer = hd.Get(HeaderPeer)
			}
			e.SetHandoff(hand)
			batch = append(batch, e)
			n += len(e.Raw)
		}
		h(batch)
		in.blockedNanos.Add(time.Since(now).Nanoseconds())
		in.received.Add(uint64(len(batch)))
		in.bytes.Add(uint64(n))
		hand.Release(nil)
	}
}

// settle acks (or, if an output failed to take them, naks) the messages
// of a batch once its hand-off fired. It runs on whichever goroutine
// released the last hold and must not block: acks are asynchronous
// publishes; a lost one means a redelivery, counted.
func (in *JetStreamInput) settle(msgs []jetstream.Msg, err error) {
	defer in.wg.Done()
	defer in.pending.Add(-int64(len(msgs)))
	if err != nil {
		for _, m := range msgs {
			m.Nak()
		}
		in.naked.Add(uint64(len(msgs)))
		in.log.Warn("an output did not take a batch; handed back to the stream to be delivered again", "events", len(msgs), "err", err)
		return
	}
	for _, m := range msgs {
		m.Ack()
	}
	in.acked.Add(uint64(len(msgs)))
}

// Stop stops consuming, waits (within ctx) for the hand-offs of what was
// handed over, so their acks go out, and closes the connection. Messages
// not acked are delivered again at the next start (counted then).
func (in *JetStreamInput) Stop(ctx context.Context) error {
	var err error
	in.stopOnce.Do(func() {
		in.ccMu.Lock()
		close(in.stop)
		if in.cc != nil {
			in.cc.Stop()
		}
		in.ccMu.Unlock()
		if in.nc == nil {
			return
		}
		select {
		case <-in.done:
		case <-ctx.Done():
			err = fmt.Errorf("input %q: the outputs did not take the last batch before the stop timed out; the stream delivers it again: %w", in.cfg.Name, ctx.Err())
			in.nc.Close()
			return
		}
		// What was fetched and not handed over goes back at once, instead
		// of after ack_wait.
	naks:
		for {
			select {
			case m := <-in.msgs:
				m.Nak()
			default:
				break naks
			}
		}
		fired := make(chan struct{})
		go func() { in.wg.Wait(); close(fired) }()
		select {
		case <-fired:
		case <-ctx.Done():
			err = fmt.Errorf("input %q: %d events not handed off when the stop timed out; the stream delivers them again: %w", in.cfg.Name, in.pending.Load(), ctx.Err())
		}
		in.nc.Flush()
		in.nc.Close()
	})
	return err
}

// Stats implements input.Input.
func (in *JetStreamInput) Stats() input.Stats {
	var conns int64
	if in.nc != nil && in.nc.IsConnected() {
		conns = 1
	}
	return input.Stats{
		Received:       in.received.Load(),
		Bytes:          in.bytes.Load(),
		Connections:    conns,
		HandlerBlocked: time.Duration(in.blockedNanos.Load()),
	}
}

// JetStreamStats returns the input's own counters.
func (in *JetStreamInput) JetStreamStats() JetStreamInputStats {
	return JetStreamInputStats{Redelivered: in.redelivered.Load(), Acked: in.acked.Load(), Naked: in.naked.Load(), Pending: in.pending.Load(),
		Lag: in.lag.Load(), Refused: in.refused.Load(), Resubscribed: in.resubscribed.Load()}
}
