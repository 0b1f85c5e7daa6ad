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
	// StartTimeout bounds each request that makes or checks the consumer.
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
	// Failed counts failed connection attempts and consumer requests by
	// cause (JetStreamInputCauses); each is retried.
	Failed map[string]uint64
	// Connected is set while the input has a connection and consumes its
	// consumer.
	Connected bool
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
	// connected wakes bindLoop when a connection comes up; bound is set
	// once the consumer is consumed.
	connected chan struct{}
	bound     atomic.Bool
	causes    *causes
	// ctx ends at Stop: requests to the server in flight end with it.
	ctx    context.Context
	cancel context.CancelFunc

	msgs chan jetstream.Msg
	stop chan struct{}
	done chan struct{}
	wg   sync.WaitGroup // hand-offs not fired

	received, bytes, redelivered, acked, naked, malformed atomic.Uint64
	refused                                               atomic.Uint64 // connections or requests refused for auth
	lag                                                   atomic.Uint64
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
	in := &JetStreamInput{cfg: cfg, log: cfg.Logger.With("input", cfg.Name),
		msgs: make(chan jetstream.Msg, cfg.Batch), stop: make(chan struct{}), done: make(chan struct{}), resub: make(chan struct{}, 1),
		connected: make(chan struct{}, 1)}
	in.causes = newCauses(in.log)
	in.causes.failMsg = "jetstream input cannot consume its stream; retrying with backoff, nothing is read from it meanwhile"
	in.causes.okMsg = "jetstream input consumes its stream"
	in.ctx, in.cancel = context.WithCancel(context.Background())
	return in, nil
}

// Name implements input.Input.
func (in *JetStreamInput) Name() string { return in.cfg.Name }

// Addrs implements input.Input: a JetStream input binds nothing.
func (in *JetStreamInput) Addrs() []net.Addr { return nil }

// Failure causes of a JetStream input's connection and consumer, besides
// CauseDisconnected, CauseAuth, CauseNoStream, CauseTimeout and CauseOther.
const (
	// CauseConsumerConfig: the durable consumer exists with settings the
	// input cannot change (or the server refused the consumer's config).
	CauseConsumerConfig = "consumer_config"
)

// JetStreamInputCauses are the causes a JetStream input counts failed
// connections and consumer requests by: the relay exports each at 0.
var JetStreamInputCauses = []string{CauseDisconnected, CauseAuth, CauseNoStream, CauseConsumerConfig, CauseTimeout, CauseOther}

// Start sets the input up and returns: connecting, finding the stream and
// creating (or updating) the durable consumer are retried in the
// background with a capped backoff until they succeed or Stop, like the
// broker outputs, so that a NATS server that is down, refused credentials
// or a stream not made yet do not keep the relay's other inputs from
// running. Each cause is logged once (with what to change) and counted
// (Failed, by cause); the input reads once the cause is gone.
func (in *JetStreamInput) Start(h input.Handler) error {
	opts, err := NATSOptions(in.cfg.Name, in.cfg.Auth, in.cfg.TLS)
	if err != nil {
		return fmt.Errorf("input %q: %w", in.cfg.Name, err)
	}
	servers := strings.Join(in.cfg.Servers, ",")
	opts = append(opts, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second), nats.Timeout(2*time.Second),
		nats.PingInterval(5*time.Second), nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				in.log.Warn("NATS connection lost; reconnecting (unacked messages are delivered again, counted)", "err", err)
			}
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			in.log.Info("NATS connection up", "server", nc.ConnectedUrlRedacted())
			in.wake()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			in.log.Info("NATS connection up", "server", nc.ConnectedUrlRedacted())
			if in.bound.Load() {
				in.causes.ok() // the consumer goes on by itself
			}
			in.wake()
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// A failed connection attempt, the first ones included
			// (RetryOnFailedConnect).
			switch {
			case err == nil:
			case isAuth(err):
				in.refused.Add(1)
				in.causes.fail(CauseAuth, 1, err, authHint)
			default:
				in.causes.fail(CauseDisconnected, 1, err, "start the NATS server, or correct servers ("+servers+"); the input connects once one answers")
			}
		}),
		// Keep trying when the server refuses the credentials (nats.go
		// would close the connection for good after two refusals): the
		// input resumes once the operator fixes them, without a restart.
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			switch {
			case errors.Is(err, nats.ErrPermissionViolation) || isPermission(err) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked):
				// Refused on a live connection.
				in.refused.Add(1)
				in.causes.fail(CauseAuth, 1, err, authHint)
			case isAuth(err):
				// A connection refused: the reconnect error handler
				// counts it, once.
			default:
				in.log.Warn("NATS asynchronous error", "err", err)
			}
		}))
	nc, err := nats.Connect(servers, opts...)
	if err != nil {
		// With RetryOnFailedConnect only bad options end up here.
		return fmt.Errorf("input %q: connect %s: %w", in.cfg.Name, servers, err)
	}
	in.nc = nc
	in.js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("input %q: %w", in.cfg.Name, err)
	}
	go in.loop(h)
	go in.bindLoop()
	return nil
}

// authHint says what to check when the server refuses the input.
const authHint = "the NATS server refuses the input's credentials or permissions: check creds, nkey, user/password, token or tls (ca, cert, key), and the permission to use $JS.API.> and to ack"

// wake tells bindLoop a connection came up.
func (in *JetStreamInput) wake() {
	select {
	case in.connected <- struct{}{}:
	default:
	}
}

// bindLoop creates (or updates) the durable consumer and consumes it,
// trying again with a capped backoff (and at once when a connection comes
// up) until it succeeds or the input stops; then it watches the consumer
// (resubscribeLoop).
func (in *JetStreamInput) bindLoop() {
	bo := backoff{min: 250 * time.Millisecond, max: 5 * time.Second}
	for {
		if in.nc.IsConnected() {
			ctx, cancel := context.WithTimeout(in.ctx, in.cfg.StartTimeout)
			err := in.subscribe(ctx)
			cancel()
			if err == nil {
				in.bound.Store(true)
				in.causes.ok()
				in.log.Info("consuming the stream", "stream", in.cfg.Stream, "consumer", in.cfg.Consumer)
				in.resubscribeLoop()
				return
			}
			if in.ctx.Err() != nil {
				return
			}
			cause, hint := in.classify(err)
			in.causes.fail(cause, 1, err, hint)
		}
		t := time.NewTimer(bo.next())
		select {
		case <-t.C:
		case <-in.connected:
			t.Stop()
		case <-in.stop:
			t.Stop()
			return
		}
	}
}

// classify names the cause of a failed consumer request and what the
// operator changes to end it.
func (in *JetStreamInput) classify(err error) (cause, hint string) {
	servers := strings.Join(in.cfg.Servers, ",")
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return CauseNoStream, fmt.Sprintf("create the stream %s (or its mirror) on %s, or correct stream; the input binds once it exists", in.cfg.Stream, servers)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return CauseNoStream, "enable JetStream in the server's config (jetstream {store_dir: …}) or for the account"
	case isAuth(err):
		in.refused.Add(1)
		return CauseAuth, "check the input's permission to use $JS.API.> (consumer create and info) and to ack"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoStreamResponse):
		return CauseTimeout, "no answer: check that the stream has a leader (its servers are up)"
	case errors.As(err, &apiErr):
		return CauseConsumerConfig, fmt.Sprintf("the server refused consumer %s's settings: delete the consumer (`nats consumer rm %s %s`) so the input makes it anew from its settings, or set consumer to another name, or correct filter_subjects",
			in.cfg.Consumer, in.cfg.Stream, in.cfg.Consumer)
	}
	return CauseOther, ""
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
			ctx, cancel := context.WithTimeout(in.ctx, in.cfg.StartTimeout)
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
		in.cancel()
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
		if in.nc.IsConnected() {
			// The acks go out before the connection closes; without a
			// connection there is nothing to flush (Flush would wait).
			fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
			in.nc.FlushWithContext(fctx)
			fcancel()
		}
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
		Lag: in.lag.Load(), Refused: in.refused.Load(), Resubscribed: in.resubscribed.Load(), Failed: in.causes.snapshot(),
		Connected: in.bound.Load() && in.nc != nil && in.nc.IsConnected()}
}
