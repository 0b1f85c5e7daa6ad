package listen

import "errors"

// Reason is why a listener closed or refused a connection.
type Reason uint8

// Reasons. The zero Reason means the listener did not close the connection
// (the peer did, the protocol did, or the listener is shutting down).
const (
	None Reason = iota
	// HandshakeTimeout: the TLS handshake did not finish within
	// HandshakeTimeout (half-open TLS).
	HandshakeTimeout
	// HandshakeError: the TLS handshake failed (bad client certificate,
	// not TLS at all, …).
	HandshakeError
	// FirstFrameTimeout: no complete frame within FirstFrameTimeout of
	// the connection's start (idle flood).
	FirstFrameTimeout
	// FrameTimeout: a frame stayed incomplete for FrameTimeout of waiting
	// for the peer (slowloris).
	FrameTimeout
	// IdleTimeout: the peer sent nothing for IdleTimeout (closed
	// gracefully).
	IdleTimeout
	// WriteTimeout: a write to the peer made no progress for WriteTimeout
	// (the peer does not read).
	WriteTimeout
	// EvictedUnframed: evicted at MaxConnections to let a new connection
	// in; it had never sent a complete frame.
	EvictedUnframed
	// EvictedIdle: evicted at MaxConnections; it had sent frames and was
	// the longest idle (closed gracefully).
	EvictedIdle
	// PerSourceLimit: refused, its source address had MaxPerSource open.
	PerSourceLimit
	// MaxConnections: refused, MaxConnections were open and every one was
	// busy (none waiting for its peer), so none could be evicted.
	MaxConnections

	// NumReasons is the number of Reasons, None included.
	NumReasons = iota
)

var reasonNames = [NumReasons]string{
	None:              "none",
	HandshakeTimeout:  "handshake_timeout",
	HandshakeError:    "handshake_error",
	FirstFrameTimeout: "first_frame_timeout",
	FrameTimeout:      "frame_timeout",
	IdleTimeout:       "idle_timeout",
	WriteTimeout:      "write_timeout",
	EvictedUnframed:   "evicted_unframed",
	EvictedIdle:       "evicted_idle",
	PerSourceLimit:    "per_source_limit",
	MaxConnections:    "max_connections",
}

// String is the reason's metric label, e.g. "first_frame_timeout".
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Refused reports whether the reason refuses a new connection (it was
// never served) rather than closing one that was.
func (r Reason) Refused() bool { return r == PerSourceLimit || r == MaxConnections }

// graceful reports whether a connection closed for r is first shut down
// for writing and read for CloseGrace: it has sent frames, and a sender
// may have written more before it sees our FIN.
func (r Reason) graceful() bool { return r == IdleTimeout || r == EvictedIdle }

// waitsForPeer reports whether r is a deadline on waiting for the peer's
// bytes: one that unread bytes in the socket show has not passed.
func (r Reason) waitsForPeer() bool {
	return r == FirstFrameTimeout || r == FrameTimeout || r == IdleTimeout
}

// Reasons lists every Reason but None, in order.
func Reasons() []Reason {
	rs := make([]Reason, 0, NumReasons-1)
	for r := None + 1; r < NumReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// ErrClosed is wrapped by the read and write errors of a connection the
// listener closed (a deadline, an eviction). The listener has counted and
// logged it: the protocol need not.
var ErrClosed = errors.New("connection closed by the listener")

// CloseError is the error a Conn's Read or Write returns once the listener
// has closed it.
type CloseError struct {
	Reason Reason
	Err    error // the underlying network error
}

func (e *CloseError) Error() string {
	return "connection closed by the listener: " + e.Reason.String()
}

// Unwrap makes errors.Is match ErrClosed and the network error.
func (e *CloseError) Unwrap() []error { return []error{ErrClosed, e.Err} }
