package link

import "errors"

// ErrMalformed marks a link message that breaks the protocol: the session
// is closed (and the peer reconnects).
var ErrMalformed = errors.New("link: malformed message")

// ErrTooLarge marks a batch over the receiving end's limit.
var ErrTooLarge = errors.New("link: batch too large")

// ErrVersion marks a peer speaking another protocol version.
var ErrVersion = errors.New("link: protocol version mismatch")

// ErrRefused is returned when the receiver refuses a session.
var ErrRefused = errors.New("link: session refused")

// ErrClosed is returned by calls on a closed Sender or Receiver.
var ErrClosed = errors.New("link: closed")

// ErrInsecure is returned for a link without TLS (or CURVE) on a
// non-loopback address when allow_insecure is not set.
var ErrInsecure = errors.New("link: neither TLS nor CURVE on a non-loopback address")

// ErrHandoff is passed back when a receiver's outputs could not take a
// batch: the session is closed and the sender sends it again.
var ErrHandoff = errors.New("link: hand-off failed")
