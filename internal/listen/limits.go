package listen

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by New to zero-valued Limits fields.
const (
	// DefaultMaxConnections caps a listener's open connections.
	DefaultMaxConnections = 1024
	// DefaultPerSourceDivisor makes the per-source limit a small fraction
	// of MaxConnections (1024 → 64), and never below MinDefaultPerSource.
	DefaultPerSourceDivisor = 16
	// MinDefaultPerSource is the least default per-source limit (or
	// MaxConnections, when that is smaller).
	MinDefaultPerSource = 8
	// DefaultHandshakeTimeout bounds a TLS handshake, from accept.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultFirstFrameTimeout bounds the wait for a connection's first
	// complete frame, from accept (TLS: from the end of the handshake).
	// rsyslog sends as soon as it connects: it opens a connection only
	// when it has something to send.
	DefaultFirstFrameTimeout = 10 * time.Second
	// DefaultFrameTimeout bounds how long a frame may stay incomplete,
	// counting only time spent waiting for the peer's bytes.
	DefaultFrameTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a connection that sent nothing for this
	// long. rsyslog's omfwd checks its connection before each send (a
	// non-blocking peek that sees our FIN) and reconnects, so a quiet
	// rsyslog closed this way reconnects when it next has something to
	// send, and loses nothing; see the package documentation.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultWriteTimeout bounds one write to a peer (answers, acks) that
	// does not read them.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultCloseGrace is how long a connection closed for being idle
	// (or evicted while idle) is still read after our FIN, so that what a
	// sender wrote before it saw the FIN is delivered, not reset.
	DefaultCloseGrace = 2 * time.Second
)

// Off disables a timeout in Limits (zero means "the default").
const Off time.Duration = -1

// Limits are a listener's connection limits and deadlines. Zero fields
// take the Default… values; a negative timeout (Off) disables it.
type Limits struct {
	// MaxConnections caps open connections. At the cap a new connection
	// evicts one that never sent a complete frame (from the address
	// holding the most of those, the longest idle), else the longest-idle
	// one overall (closed gracefully); only when every connection is busy
	// (none waits for its peer) is it refused.
	// Negative: no cap.
	MaxConnections int
	// MaxPerSource caps open connections from one source address; more
	// are refused. Zero: MaxConnections/DefaultPerSourceDivisor, at least
	// MinDefaultPerSource (or MaxConnections). Negative: no cap.
	MaxPerSource int
	// HandshakeTimeout bounds a TLS handshake, from accept.
	HandshakeTimeout time.Duration
	// FirstFrameTimeout bounds the wait for the first complete frame.
	FirstFrameTimeout time.Duration
	// FrameTimeout bounds how long a frame may stay incomplete while the
	// connection waits for the peer (slowloris).
	FrameTimeout time.Duration
	// IdleTimeout closes a connection whose peer sent nothing for this
	// long (gracefully: FIN, then CloseGrace to read what is in flight).
	IdleTimeout time.Duration
	// WriteTimeout bounds a Write that the peer does not read.
	WriteTimeout time.Duration
	// CloseGrace is how long a gracefully closed connection is still read.
	CloseGrace time.Duration
}

// ErrLimits wraps every error of Limits.Validate.
var ErrLimits = errors.New("invalid listener limits")

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxPerSource == 0 {
		l.MaxPerSource = DefaultPerSource(l.MaxConnections)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&l.FirstFrameTimeout, DefaultFirstFrameTimeout)
	def(&l.FrameTimeout, DefaultFrameTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.CloseGrace, DefaultCloseGrace)
	return l
}

// DefaultPerSource is the per-source limit that goes with maxConns: a
// small fraction of it, so one address can never take the whole listener.
// It is -1 (no cap) when maxConns is.
func DefaultPerSource(maxConns int) int {
	if maxConns < 0 {
		return -1
	}
	return max(maxConns/DefaultPerSourceDivisor, min(maxConns, MinDefaultPerSource))
}

// Validate reports limits that cannot work together. It expects defaults
// applied (WithDefaults).
func (l Limits) Validate() error {
	var errs []error
	if l.MaxConnections > 0 && l.MaxPerSource > l.MaxConnections {
		errs = append(errs, fmt.Errorf("%w: max_connections_per_source %d is above max_connections %d; lower it", ErrLimits, l.MaxPerSource, l.MaxConnections))
	}
	if l.CloseGrace < 0 {
		errs = append(errs, fmt.Errorf("%w: close grace must not be off", ErrLimits))
	}
	return errors.Join(errs...)
}

// on reports whether a timeout is enabled.
func on(d time.Duration) bool { return d > 0 }

// tick is how often the sweeper looks at the connections: an eighth of
// the shortest enabled deadline, between 5 ms and 500 ms, so deadlines
// hold to within about an eighth (early by at most two ticks: the clock's
// step, see Listener.clock).
func (l Limits) tick() time.Duration {
	t := l.CloseGrace
	for _, d := range []time.Duration{l.HandshakeTimeout, l.FirstFrameTimeout, l.FrameTimeout, l.IdleTimeout, l.WriteTimeout} {
		if on(d) && (t <= 0 || d < t) {
			t = d
		}
	}
	return min(max(t/8, 5*time.Millisecond), 500*time.Millisecond)
}
