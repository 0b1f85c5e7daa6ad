package zmq

import (
	"log/slog"
	"time"
)

// Msg is one ZeroMQ message: its frames in order. A socket's Send takes
// ownership: the caller must not modify the frames afterwards, because PUB
// shares them read-only between subscribers and PUSH may still be writing
// them. A received Msg belongs to the caller; its frames may share one
// backing array with other received frames (see doc.go).
type Msg [][]byte

// Options configures a socket. The zero value is usable: every zero field
// takes the default documented beside it.
type Options struct {
	HWM              int           // per-peer send queue, messages (default 1000)
	RecvHWM          int           // receive queue of PULL/SUB, messages (default 1000)
	MaxMsgSize       int64         // largest message accepted from a peer, bytes (default 1 MiB), as MsgSize counts it; checked before allocating
	MaxFrames        int           // most frames in a message from a peer (default DefaultMaxFrames)
	MaxPeers         int           // most peers at once, handshakes included; more are refused at accept (default DefaultMaxPeers, <0: no limit)
	HandshakeTimeout time.Duration // default 5s, both sides
	ReconnectMin     time.Duration // Dial backoff start (default 100ms)
	ReconnectMax     time.Duration // Dial backoff cap (default 5s)
	HeartbeatIvl     time.Duration // 0: never send PINGs (PINGs from peers are always answered)
	HeartbeatTimeout time.Duration // drop a peer silent for this long once PINGs are sent (default 3*HeartbeatIvl)
	Security         Security      // nil means NULL
	Identity         string
	Logger           *slog.Logger // nil: discard
}

// Defaults for the zero fields of Options.
const (
	DefaultHWM              = 1000
	DefaultRecvHWM          = 1000
	DefaultMaxMsgSize       = 1 << 20
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultReconnectMin     = 100 * time.Millisecond
	DefaultReconnectMax     = 5 * time.Second
	// DefaultMaxFrames bounds the frames of one received message: the
	// relay's messages have one or two, and each costs a slice header.
	DefaultMaxFrames = 256
	// DefaultMaxPeers bounds the peers of one socket, so a flood of
	// connections cannot take every file descriptor.
	DefaultMaxPeers = 1024
)

// handshakeFrameLimit bounds every frame a peer may send before the
// handshake completes, so zmq4 never allocates a size a peer claims.
// ZMTP handshake commands (READY, HELLO, WELCOME, INITIATE, ERROR) carry
// metadata and credentials: a few hundred bytes in practice.
const handshakeFrameLimit = 64 << 10

// maxPendingHandshakes bounds accepted connections still in their
// handshake, so a flood of silent clients cannot exhaust file descriptors.
const maxPendingHandshakes = 512

func (o Options) withDefaults() Options {
	if o.HWM <= 0 {
		o.HWM = DefaultHWM
	}
	if o.RecvHWM <= 0 {
		o.RecvHWM = DefaultRecvHWM
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = DefaultMaxMsgSize
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = DefaultMaxFrames
	}
	if o.MaxPeers == 0 {
		o.MaxPeers = DefaultMaxPeers
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = DefaultReconnectMin
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = DefaultReconnectMax
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.HeartbeatIvl > 0 && o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 3 * o.HeartbeatIvl
	}
	if o.Security == nil {
		o.Security = nullSecurity{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
