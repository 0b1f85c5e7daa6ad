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
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/relp"
)

// RELPConfig configures a RELP input (rsyslog's omrelp sends to it).
type RELPConfig struct {
	Name string
	// Listen holds tcp://host:port and tls://host:port URLs.
	Listen []string
	// TLS is the server configuration for tls:// listeners. It may hand
	// out the configuration in force at each handshake (GetConfigForClient:
	// certificates and client CA read again on reload).
	TLS *tls.Config
	// PermittedPeers, if set, are the names a client certificate must
	// carry (relp.PeerCheck, librelp's tls.authMode="name"), checked
	// against the ClientCAs of the configuration in force at the handshake;
	// refusals are counted by reason (RELPStats().TLSRefused).
	PermittedPeers []string
	// MaxMessageSize is the largest frame data accepted (default
	// relp.DefaultMaxMessageSize).
	MaxMessageSize int
	// Limits are the sessions' connection limits and deadlines, the
	// syslog input's (zero fields: listen's defaults; the idle timeout must
	// be above AckTimeout, or a client whose window is full, waiting for
	// answers and sending nothing, is closed as idle).
	Limits listen.Limits
	// AckTimeout: see relp.Config (default relp.DefaultAckTimeout). It
	// also bounds a write of answers (relp.Config.WriteTimeout).
	AckTimeout time.Duration
	// Software is the relp_software offer (name, version, URL).
	Software []string
}

// RELP is an input of rsyslog's RELP: every syslog frame is answered only
// once its event is handed off (see internal/relp). Connections run on
// the shared connection core (internal/listen): its deadlines, per-source
// limit and eviction apply; this file is only the glue.
type RELP struct {
	cfg   RELPConfig
	log   *slog.Logger
	stats counters
	specs []listenSpec
	peers *relp.PeerCheck // nil: no permitted peers
	srv   *relp.Server
	lis   *listen.Listener

	ctx    context.Context // ends every session at once (after Stop's time)
	cancel context.CancelFunc

	mu       sync.Mutex
	started  bool
	stopping bool
	lns      []net.Listener
	addrs    []net.Addr
	wg       sync.WaitGroup // Serve loops
	stopOnce sync.Once
	stopErr  error
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
	in := &RELP{cfg: cfg, log: orDiscard(log).With("input", cfg.Name)}
	if len(cfg.PermittedPeers) > 0 {
		pc, err := relp.NewPeerCheck(nil, cfg.PermittedPeers)
		if err != nil {
			return nil, fmt.Errorf("input %q: permitted_peers: %w", cfg.Name, err)
		}
		in.peers = pc
	}
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

func (in *RELP) parts() (*relp.Server, *listen.Listener) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.srv, in.lis
}

// Stats returns the input's counters; RELPStats has the protocol's.
func (in *RELP) Stats() Stats {
	s := in.stats.snapshot()
	srv, lis := in.parts()
	if lis != nil {
		addListenStats(&s, lis.Stats())
	}
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
// resend-closes, bad frames by reason, window, ack latency, TLS refusals
// (TLSOther: every failed handshake the permitted-peers check did not
// refuse itself, from the connection core's count).
func (in *RELP) RELPStats() relp.Stats {
	srv, lis := in.parts()
	if srv == nil {
		return relp.Stats{}
	}
	s := srv.Stats()
	if lis != nil {
		var ours uint64
		for r, n := range s.TLSRefused {
			if r != relp.TLSOther {
				ours += n
			}
		}
		if hs := lis.Stats().HandshakeFailures(); hs > ours {
			s.TLSRefused[relp.TLSOther] = hs - ours
		}
	}
	return s
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
	lim := in.cfg.Limits
	// The session bounds its writes itself (ack_timeout) and counts a
	// client that does not read as not_reading.
	lim.WriteTimeout = listen.Off
	lis, err := listen.New(lim, in.log)
	if err != nil {
		return fmt.Errorf("input %q: %w", in.cfg.Name, err)
	}
	in.srv = relp.NewServer(relp.Config{
		MaxMessageSize: in.cfg.MaxMessageSize,
		AckTimeout:     in.cfg.AckTimeout,
		// A client that cannot take its answers for as long as an answer
		// may wait for its hand-off is not reading them.
		WriteTimeout: in.cfg.AckTimeout,
		MaxBatch:     MaxBatch,
		Software:     in.cfg.Software,
		Logger:       in.log,
	}, func(batch []*event.Event) { deliver(h, in.cfg.Name, &in.stats, batch) })
	in.lis = lis
	tlsConf := in.serverTLS()
	for _, sp := range in.specs {
		l, err := net.Listen("tcp", sp.addr)
		if err != nil {
			for _, l := range in.lns {
				l.Close()
			}
			lis.Close()
			return fmt.Errorf("input %q: listen %q: %w", in.cfg.Name, sp.url, err)
		}
		in.lns = append(in.lns, l)
		in.addrs = append(in.addrs, l.Addr())
	}
	for i, l := range in.lns {
		conf := tlsConf
		if in.specs[i].network != "tls" {
			conf = nil
		}
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			lis.Serve(l, conf, in.serve)
		}()
	}
	return nil
}

// serverTLS is the configuration of the tls:// listeners: the
// configured one or, with permitted peers, one that checks client
// certificates against the client CA in force at each handshake and
// counts each refusal by reason.
func (in *RELP) serverTLS() *tls.Config {
	base := in.cfg.TLS
	if base == nil || in.peers == nil {
		return base
	}
	srv := in.srv
	conf := base.Clone()
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cur := base
		if base.GetConfigForClient != nil {
			c, err := base.GetConfigForClient(hello)
			if err != nil {
				return nil, err
			}
			if c != nil {
				cur = c
			}
		}
		c := cur.Clone()
		pc := in.peers.WithRoots(c.ClientCAs)
		// Ask for a certificate and check it ourselves, so each refusal
		// says why.
		c.ClientAuth = tls.RequestClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			err := pc.Verify(cs)
			if err != nil {
				srv.TLSRefused(err) // by reason; the core counts the failed handshake
			}
			return err
		}
		return c, nil
	}
	return conf
}

// serve is the connection core's Handler: one RELP session.
func (in *RELP) serve(c *listen.Conn) {
	if err := in.srv.ServeConn(in.ctx, c); err != nil && !errors.Is(err, relp.ErrShuttingDown) {
		in.log.Debug("relp session ended", "peer", c.Peer(), "err", err)
	}
}

// Stop closes the listeners, lets every session answer what is handed off
// within ctx's time, then closes them with serverclose (the clients resend
// the rest), and waits until every event read has been handed over.
func (in *RELP) Stop(ctx context.Context) error {
	in.stopOnce.Do(func() {
		in.mu.Lock()
		in.stopping = true
		for _, l := range in.lns {
			l.Close()
		}
		srv, lis := in.srv, in.lis
		in.mu.Unlock()
		if srv == nil {
			return
		}
		in.wg.Wait() // the accept loops have returned
		if err := srv.Shutdown(ctx); err != nil {
			in.stopErr = fmt.Errorf("input %q: stop: %w", in.cfg.Name, err)
		}
		in.cancel()
		lis.Close()
		if err := lis.Wait(ctx); err != nil && in.stopErr == nil {
			in.stopErr = fmt.Errorf("input %q: stop: %w", in.cfg.Name, err)
		}
	})
	return in.stopErr
}
