package input

import "errors"

// ErrListenURL means a syslog listen address is not one of
// tcp://host:port, tls://host:port, udp://host:port or unix:///path.
// (ZeroMQ endpoints are checked by internal/zmq: zmq.ErrEndpoint.)
var ErrListenURL = errors.New("bad listen address")

// ErrNoTLSConfig means a tls:// listen address was given without a TLS
// configuration (server certificate and key).
var ErrNoTLSConfig = errors.New("tls:// listener needs a certificate and key")

// ErrNoListen means an input was configured without any address to listen
// on or connect to.
var ErrNoListen = errors.New("no listen address")

// ErrStarted means Start was called twice, or after Stop.
var ErrStarted = errors.New("input already started")

// ErrSocketInUse means a unix socket path belongs to a live process, or is
// not a socket at all, so it was not removed.
var ErrSocketInUse = errors.New("unix socket path in use")

// ErrTLS wraps every error from LoadTLS: a certificate, key or CA file
// that cannot be read or parsed, or an unknown client-auth mode.
var ErrTLS = errors.New("tls setup")

// ErrTooManyFrames is counted (as malformed) when a ZeroMQ message has more
// than two frames.
var ErrTooManyFrames = errors.New("zeromq message has more than two frames")
