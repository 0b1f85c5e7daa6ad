package input

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/relp"
)

// RELPConfig configures a RELP input (rsyslog's omrelp sends to it).
type RELPConfig struct {
	Name string
	// Listen holds tcp://host:port and tls://host:port URLs.
	Listen []string
	// TLS is the server configuration for tls:// listeners, with the
	// client certificate check (relp.PeerCheck) applied by the caller.
	TLS *tls.Config
	// MaxMessageSize is the largest frame data accepted (default
	// relp.DefaultMaxMessageSize).
	MaxMessageSize int
	// MaxConnections caps concurrent sessions (default
	// DefaultMaxConnections, <0: no cap).
	MaxConnections int
	// IdleTimeout closes a session idle this long with nothing unanswered
	// (0: never).
	IdleTimeout time.Duration
	// AckTimeout: see relp.Config (default relp.DefaultAckTimeout). It
	// also bounds a write of answers (relp.Config.WriteTimeout).
	AckTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake (default
	// DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// Software is the relp_software offer (name, version, URL).
	Software []string
}

// RELP is an input of rsyslog's RELP: every syslog frame is answered only
// once its event is handed off (see internal/relp).
type RELP struct {
	cfg   RELPConfig
	log   *slog.Logger
	warn  rateLog
	stats counters
	specs []listenSpec
	srv   *relp.Server

	ctx    context.Context // ends every session at once (after Stop's time)
	cancel context.CancelFunc

	mu        sync.Mutex
	started   bool
	stopping  bool
	listeners []net.Listener
	addrs     []net.Addr
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
	stopOnce  sync.Once
	stopErr   error
}

var _ Input = (*RELP)(nil)

// NewRELP checks cfg and returns an input ready to Start.
func NewRELP(cfg RELPConfig, log *slog.Logger) (*RELP, error) {
	if len(cfg.Listen) == 0 {
		return nil, fmt.Errorf("input %q: %w: set listen to tcp://host:port or tls://host:port", cfg.Name, ErrNoListen)
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = relp.DefaultMaxMessageSize
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	in := &RELP{cfg: cfg, log: orDiscard(log).With("input", cfg.Name), conns: map[net.Conn]struct{}{}}
	in.warn.log = in.log
	for _, u := range cfg.Listen {
		sp, err := parseListen(u)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", cfg.Name, err)
		}
		if sp.network != "tcp" && sp.network != "tls" {
			return nil, fmt.Errorf("input %q: listen %q: %w: RELP runs over tcp:// or tls://", cfg.Name, u, ErrListenURL)
		}
		if sp.network == "tls" && cfg.TLS == nil {
			return nil, fmt.Errorf("input %q: listen %q: %w", cfg.Name, u, ErrNoTLSConfig)
		}
		in.specs = append(in.specs, sp)
	}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	return in, nil
}

// Name returns the configured input name.
func (in *RELP) Name() string { return in.cfg.Name }

// Stats returns the input's counters; RELPStats has the protocol's.
func (in *RELP) Stats() Stats {
	s := in.stats.snapshot()
	in.mu.Lock()
	srv := in.srv
	in.mu.Unlock()
	if srv != nil {
		rs := srv.Stats()
		for _, n := range rs.BadFrames {
			s.Malformed += n
		}
		s.Oversize = rs.BadFrames[relp.ReasonOversize]
		s.Malformed -= s.Oversize
	}
	return s
}

// RELPStats returns the RELP counters: sessions, frames by command, acks,
// resend-closes, bad frames by reason, window, ack latency, TLS refusals.
func (in *RELP) RELPStats() relp.Stats {
	in.mu.Lock()
	srv := in.srv
	in.mu.Unlock()
	if srv == nil {
		return relp.Stats{}
	}
	return srv.Stats()
}

// Addrs returns the bound addresses, in Listen order.
func (in *RELP) Addrs() []net.Addr {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]net.Addr(nil), in.addrs...)
}

// Start binds every listener, then serves sessions in goroutines.
func (in *RELP) Start(h Handler) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.started || in.stopping {
		return fmt.Errorf("input %q: %w", in.cfg.Name, ErrStarted)
	}
	in.started = true
	in.srv = relp.NewServer(relp.Config{
		MaxMessageSize: in.cfg.MaxMessageSize,
		AckTimeout:     in.cfg.AckTimeout,
		// A client that cannot take its answers for as long as an answer
		// may wait for its hand-off is not reading them.
		WriteTimeout: in.cfg.AckTimeout,
		IdleTimeout:  in.cfg.IdleTimeout,
		MaxBatch:     MaxBatch,
		Software:     in.cfg.Software,
		Logger:       in.log,
	}, func(batch []*event.Event) { deliver(h, in.cfg.Name, &in.stats, batch) })
	for _, sp := range in.specs {
		l, err := net.Listen("tcp", sp.addr)
		if err != nil {
			for _, l := range in.listeners {
				l.Close()
			}
			return fmt.Errorf("input %q: listen %q: %w", in.cfg.Name, sp.url, err)
		}
		if sp.network == "tls" {
			l = &tlsListener{Listener: l}
		}
		in.listeners = append(in.listeners, l)
		in.addrs = append(in.addrs, l.Addr())
	}
	for _, l := range in.listeners {
		in.wg.Add(1)
		go in.acceptLoop(l)
	}
	return nil
}

// acceptLoop is the thin accept glue: connection cap, then a goroutine
// per connection for the TLS handshake and the RELP session.
func (in *RELP) acceptLoop(l net.Listener) {
	defer in.wg.Done()
	_, isTLS := l.(*tlsListener)
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			in.warn.warn("accept failed", "addr", l.Addr().String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ok, full := in.track(c)
		switch {
		case full:
			c.Close()
			in.stats.connsRefused.Add(1)
			in.warn.warn("connection refused: max_connections reached", "peer", c.RemoteAddr().String(), "max_connections", in.cfg.MaxConnections)
			continue
		case !ok:
			c.Close()
			return
		}
		in.stats.connsTotal.Add(1)
		in.stats.conns.Add(1)
		go in.serve(c, isTLS)
	}
}

func (in *RELP) serve(c net.Conn, isTLS bool) {
	defer in.wg.Done()
	defer in.stats.conns.Add(-1)
	defer in.untrack(c)
	peer := c.RemoteAddr().String()
	if tc, ok := c.(*net.TCPConn); ok {
		// Answers are small and the client waits for them: never let
		// Nagle hold one back (Go sets this by default; say so).
		_ = tc.SetNoDelay(true)
	}
	conn := c
	if isTLS {
		tc := tls.Server(c, in.cfg.TLS)
		ctx, cancel := context.WithTimeout(in.ctx, in.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.Close()
			if !in.isStopping() {
				in.stats.handshakeErrors.Add(1)
				in.srv.TLSRefused(err)
				in.warn.warn("tls handshake refused", "peer", peer, "err", err)
			}
			return
		}
		conn = tc
	}
	if err := in.srv.ServeConn(in.ctx, conn); err != nil && !errors.Is(err, relp.ErrShuttingDown) {
		in.log.Debug("relp session ended", "peer", peer, "err", err)
	}
}

// Stop closes the listeners, lets every session answer what is handed off
// within ctx's time, then closes them with serverclose (the clients resend
// the rest), and waits until every event read has been handed over.
func (in *RELP) Stop(ctx context.Context) error {
	in.stopOnce.Do(func() {
		in.mu.Lock()
		in.stopping = true
		for _, l := range in.listeners {
			l.Close()
		}
		srv := in.srv
		in.mu.Unlock()
		if srv != nil {
			if err := srv.Shutdown(ctx); err != nil {
				in.stopErr = fmt.Errorf("input %q: stop: %w", in.cfg.Name, err)
			}
		}
		in.cancel() // handshakes in progress, sessions accepted meanwhile
		if err := waitGroup(ctx, &in.wg); err != nil && in.stopErr == nil {
			in.stopErr = fmt.Errorf("input %q: stop: %w", in.cfg.Name, err)
		}
	})
	return in.stopErr
}

func (in *RELP) track(c net.Conn) (ok, full bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopping {
		return false, false
	}
	if in.cfg.MaxConnections > 0 && len(in.conns) >= in.cfg.MaxConnections {
		return false, true
	}
	in.conns[c] = struct{}{}
	in.wg.Add(1)
	return true, false
}

func (in *RELP) untrack(c net.Conn) {
	in.mu.Lock()
	delete(in.conns, c)
	in.mu.Unlock()
}

func (in *RELP) isStopping() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stopping
}
