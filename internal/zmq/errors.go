package zmq

import "errors"

var (
	// ErrClosed is returned by operations on a socket after Close.
	ErrClosed = errors.New("zmq: socket closed")

	// ErrEndpoint reports an endpoint that is not "tcp://host:port" or
	// "ipc:///path".
	ErrEndpoint = errors.New("zmq: invalid endpoint (want tcp://host:port, tcp://*:port or ipc:///path)")

	// ErrOversize reports a message from a peer larger than
	// Options.MaxMsgSize; the peer is disconnected.
	ErrOversize = errors.New("zmq: message exceeds MaxMsgSize")

	// ErrHandshakeFrame reports a frame during the handshake larger than
	// the handshake limit (64 KiB); the peer is disconnected.
	ErrHandshakeFrame = errors.New("zmq: handshake frame too large")

	// ErrMalformed reports a byte stream that is not valid ZMTP framing.
	ErrMalformed = errors.New("zmq: malformed ZMTP frame")

	// ErrAuth reports credentials refused by a PLAIN server.
	ErrAuth = errors.New("zmq: authentication failed")

	// ErrPeerError reports an ERROR command received from the peer.
	ErrPeerError = errors.New("zmq: peer sent ERROR")

	// ErrHeartbeatTimeout reports a peer silent past HeartbeatTimeout.
	ErrHeartbeatTimeout = errors.New("zmq: peer heartbeat timed out")

	// ErrHandshakePanic reports a handshake that made zmq4 panic on
	// hostile input; it is contained and counted as a handshake failure.
	ErrHandshakePanic = errors.New("zmq: handshake aborted on invalid peer data")

	// ErrTooManySubscriptions is returned by Sub.Subscribe for a new prefix
	// once the socket has maxSubscriptions distinct ones, or their bytes
	// would pass MaxSubscriptionBytes.
	ErrTooManySubscriptions = errors.New("zmq: too many distinct subscriptions (4096, or 64 KiB of prefixes); subscribe to a shorter common prefix")

	// ErrTooManyHandshakes reports an accepted connection closed at once
	// because too many handshakes were already in progress.
	ErrTooManyHandshakes = errors.New("zmq: too many pending handshakes")
)

var (
	// ErrCurve reports a CURVE handshake refused or a CURVE connection
	// dropped; the *CurveError in the chain says why (Stats.Curve counts it).
	ErrCurve = errors.New("zmq: CURVE refused")

	// ErrZ85 reports text that is not valid Z85 (ZeroMQ RFC 32).
	ErrZ85 = errors.New("zmq: invalid Z85")

	// ErrCurveCert reports a CURVE certificate file that cannot be used.
	ErrCurveCert = errors.New("zmq: invalid CURVE certificate")
)
