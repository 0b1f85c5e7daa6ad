package ackpipe

import "errors"

var (
	// ErrClosed is returned by a Sender's methods after Close.
	ErrClosed = errors.New("ackpipe: sender closed")

	// ErrMalformed reports a header or ack frame that is not this
	// protocol's (wrong length, version or kind). The message is dropped.
	ErrMalformed = errors.New("ackpipe: malformed frame")

	// ErrBatchTooLarge reports a message whose index within its batch is at
	// or beyond ReceiverConfig.MaxBatch; raise MaxBatch to the sender's
	// BatchSize+1 to accept it.
	ErrBatchTooLarge = errors.New("ackpipe: batch index beyond MaxBatch")
)
