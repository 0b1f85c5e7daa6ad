package frame

import "errors"

// ErrOversize reports a frame longer than the reader's maximum length. The
// frame was skipped without being buffered; call Next again for the next one.
// Raise the reader's maxLen (the relay's max_message_size) to at least the
// sender's maxMessageSize if this happens with well-behaved senders.
var ErrOversize = errors.New("frame exceeds the maximum message length")

// ErrMalformed reports a frame that cannot be delimited or decoded: an
// octet count with too many digits, or a rsyslog compressed frame that does
// not inflate. The reader resynchronises at the next LF or '<'; call Next
// again for the next frame.
var ErrMalformed = errors.New("malformed syslog frame")
