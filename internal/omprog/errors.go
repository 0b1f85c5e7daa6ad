package omprog

import "errors"

// ErrNotHandedOff reports that no peer took a message within MaxWait. The
// message was not handed off; rsyslog gets an error line, suspends the
// action and retries the message from its queue.
var ErrNotHandedOff = errors.New("omprog: message not handed off")

// ErrLineTooLong reports a line longer than Options.MaxLine. The line is
// discarded (and confirmed, so rsyslog does not retry it forever); raise
// MaxLine or lower rsyslog's maxMessageSize.
var ErrLineTooLong = errors.New("omprog: line too long")
