package input

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/ratelog"
)

// Defaults applied by NewSyslog to zero-valued SyslogConfig fields. The
// connection limits and deadlines of TCP and TLS listeners are
// internal/listen's (listen.Limits, listen.Default…).
const (
	DefaultMaxMessageSize = 64 << 10
	DefaultReadBuffer     = 8 << 20
	DefaultUnixMode       = 0o660
	// DefaultMaxConnections and DefaultHandshakeTimeout are listen's, for
	// the inputs that name them.
	DefaultMaxConnections   = listen.DefaultMaxConnections
	DefaultHandshakeTimeout = listen.DefaultHandshakeTimeout
)

// SyslogConfig configures a syslog input.
type SyslogConfig struct {
	Name string
	// Listen holds one or more of tcp://host:port, tls://host:port,
	// udp://host:port and unix:///path (a unix datagram socket).
	Listen []string
	// TLS is the server configuration for tls:// listeners; see LoadTLS.
	TLS *tls.Config
	// MaxMessageSize is the largest message accepted, in bytes; larger
	// ones are discarded and counted (default DefaultMaxMessageSize).
	MaxMessageSize int
	// Limits are the TCP and TLS listeners' connection limits and
	// deadlines, shared by all of them (zero fields: listen's defaults).
	Limits listen.Limits
	// ReadBuffer is SO_RCVBUF for datagram sockets (default
	// DefaultReadBuffer); bigger rides out longer bursts without drops.
	ReadBuffer int
	// UnixMode is the permission of unix:// sockets (default
	// DefaultUnixMode: the relay's user and group may send, others not);
	// UnixGID their group (0: the relay's).
	UnixMode os.FileMode
	UnixGID  int
}

// Syslog is an input of syslog messages over TCP, TLS, UDP and unix
// datagram sockets.
type Syslog struct {
	cfg   SyslogConfig
	log   *slog.Logger
	warn  ratelog.Warner
	stats counters
	specs []listenSpec
	core  *listen.Listener // TCP and TLS connections

	h         Handler
	mu        sync.Mutex // guards the fields below
	started   bool
	stopping  bool
	streams   []streamListener
	packets   []net.PacketConn
	unixPaths []string
	addrs     []net.Addr // in Listen order
	wg        sync.WaitGroup
	stopOnce  sync.Once
	stopErr   error
}

// streamListener is a bound TCP listener; tls marks one whose connections
// speak TLS (the core does the handshake, never in the accept loop).
type streamListener struct {
	ln  net.Listener
	tls bool
}

var _ Input = (*Syslog)(nil)

type listenSpec struct {
	url     string // as configured, for messages
	network string // tcp, tls, udp, unixgram
	addr    string
}

// NewSyslog checks cfg and returns an input ready to Start.
func NewSyslog(cfg SyslogConfig, log *slog.Logger) (*Syslog, error) {
	if len(cfg.Listen) == 0 {
		return nil, fmt.Errorf("input %q: %w: set listen to tcp://host:port, tls://host:port, udp://host:port or unix:///path", cfg.Name, ErrNoListen)
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.UnixMode == 0 {
		cfg.UnixMode = DefaultUnixMode
	}
	s := &Syslog{cfg: cfg, log: orDiscard(log).With("input", cfg.Name)}
	s.warn.Logger = s.log
	core, err := listen.New(cfg.Limits, s.log)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", cfg.Name, err)
	}
	s.core = core
	s.cfg.Limits = core.Limits()
	for _, u := range cfg.Listen {
		sp, err := parseListen(u)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", cfg.Name, err)
		}
		if sp.network == "tls" && cfg.TLS == nil {
			return nil, fmt.Errorf("input %q: listen %q: %w", cfg.Name, u, ErrNoTLSConfig)
		}
		s.specs = append(s.specs, sp)
	}
	return s, nil
}

func parseListen(u string) (listenSpec, error) {
	scheme, rest, ok := strings.Cut(u, "://")
	bad := func(why string) error {
		return fmt.Errorf("listen %q: %w: %s (want tcp://host:port, tls://host:port, udp://host:port or unix:///path)", u, ErrListenURL, why)
	}
	if !ok {
		return listenSpec{}, bad("no scheme")
	}
	switch scheme {
	case "tcp", "tls", "udp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return listenSpec{}, bad(err.Error())
		}
		if host == "*" {
			host = ""
		}
		return listenSpec{url: u, network: scheme, addr: net.JoinHostPort(host, port)}, nil
	case "unix", "unixgram":
		if rest == "" {
			return listenSpec{}, bad("empty path")
		}
		return listenSpec{url: u, network: "unixgram", addr: rest}, nil
	default:
		return listenSpec{}, bad("unknown scheme " + scheme)
	}
}

// Name returns the configured input name.
func (s *Syslog) Name() string { return s.cfg.Name }

// Stats returns a snapshot of the input's counters.
func (s *Syslog) Stats() Stats {
	st := s.stats.snapshot()
	addListenStats(&st, s.core.Stats())
	return st
}

// Addrs returns the bound addresses, in the order of SyslogConfig.Listen.
func (s *Syslog) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// Start binds every listener, then serves in goroutines. If any listener
// fails, the ones already bound are closed and the error says which.
func (s *Syslog) Start(h Handler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopping {
		return fmt.Errorf("input %q: %w", s.cfg.Name, ErrStarted)
	}
	s.started = true
	s.h = h
	for _, sp := range s.specs {
		if err := s.bind(sp); err != nil {
			s.closeAllLocked()
			return fmt.Errorf("input %q: %w", s.cfg.Name, err)
		}
	}
	for _, sl := range s.streams {
		var tc *tls.Config
		if sl.tls {
			tc = s.cfg.TLS
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.core.Serve(sl.ln, tc, s.serveConn)
		}()
	}
	for _, p := range s.packets {
		s.wg.Add(1)
		go s.serveDgram(p)
	}
	return nil
}

func (s *Syslog) bind(sp listenSpec) error {
	switch sp.network {
	case "tcp", "tls":
		l, err := net.Listen("tcp", sp.addr)
		if err != nil {
			return fmt.Errorf("listen %q: %w", sp.url, err)
		}
		s.streams = append(s.streams, streamListener{ln: l, tls: sp.network == "tls"})
		s.addrs = append(s.addrs, l.Addr())
	case "udp":
		c, err := net.ListenPacket("udp", sp.addr)
		if err != nil {
			return fmt.Errorf("listen %q: %w", sp.url, err)
		}
		s.setupDgram(c.(*net.UDPConn), true)
		s.packets = append(s.packets, c)
		s.addrs = append(s.addrs, c.LocalAddr())
	case "unixgram":
		if err := removeStaleSocket(sp.addr); err != nil {
			return fmt.Errorf("listen %q: %w", sp.url, err)
		}
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sp.addr, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("listen %q: %w", sp.url, err)
		}
		// The socket is created with the umask's permissions (often
		// 0755, 0777 under umask 0: any local user could inject events);
		// set the configured ones before reading anything from it.
		if err := s.secureUnix(sp.addr); err != nil {
			c.Close()
			os.Remove(sp.addr)
			return fmt.Errorf("listen %q: %w", sp.url, err)
		}
		s.setupDgram(c, false)
		s.packets = append(s.packets, c)
		s.addrs = append(s.addrs, c.LocalAddr())
		s.unixPaths = append(s.unixPaths, sp.addr)
	}
	return nil
}

// secureUnix gives a unix socket file the configured mode and group.
func (s *Syslog) secureUnix(path string) error {
	if s.cfg.UnixGID > 0 {
		if err := os.Chown(path, -1, s.cfg.UnixGID); err != nil {
			return fmt.Errorf("set the group of %s to %d: %w; the relay's user must be in that group", path, s.cfg.UnixGID, err)
		}
	}
	if err := os.Chmod(path, s.cfg.UnixMode.Perm()); err != nil {
		return fmt.Errorf("set the mode of %s to %#o: %w", path, s.cfg.UnixMode.Perm(), err)
	}
	return nil
}

// removeStaleSocket removes a unix socket file left by a process that is
// gone. A live socket, or a path that is not a socket, is left alone.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%w: %s is not a socket; remove it or choose another path", ErrSocketInUse, path)
	}
	c, err := net.Dial("unixgram", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s has a live reader; stop it or choose another path", ErrSocketInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("probe %s: %w", path, err)
	}
	return os.Remove(path)
}

func (s *Syslog) closeAllLocked() {
	for _, sl := range s.streams {
		sl.ln.Close() // the core closes those it serves too
	}
	for _, p := range s.packets {
		p.Close()
	}
	for _, p := range s.unixPaths {
		os.Remove(p)
	}
	s.unixPaths = nil
}

// Stop closes the listeners and connections, then waits until every event
// already read has been handed to the Handler, or ctx is done. It is safe
// to call more than once.
func (s *Syslog) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		s.closeAllLocked()
		s.mu.Unlock()
		s.core.Close()
		err := s.core.Wait(ctx)
		if err == nil {
			err = waitGroup(ctx, &s.wg)
		}
		if err != nil {
			s.stopErr = fmt.Errorf("input %q: stop: %w", s.cfg.Name, err)
		}
	})
	return s.stopErr
}
