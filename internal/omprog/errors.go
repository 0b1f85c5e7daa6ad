package omprog

import "errors"

// ErrNotHandedOff reports that no peer took a message within MaxWait. The
// message was not handed off; rsyslog gets an error line, suspends the
// action and retries the message from its queue.
var ErrNotHandedOff = errors.New("omprog: message not handed off")

// ErrLineTooLong reports a line longer than Options.MaxLine. The line is
// discarded and answered with an error line, never OK: confirming it would
// lose it without rsyslog knowing. rsyslog keeps it in its queue and
// retries it as its action.resumeRetryCount says; set rsyslog's
// maxMessageSize below MaxLine so it never sends one.
var ErrLineTooLong = errors.New("omprog: line too long")

// ErrUnflushed reports that the input ended while the sink still held
// messages it could not push out within Options.CloseTimeout.
var ErrUnflushed = errors.New("omprog: input ended with messages not yet flushed")
