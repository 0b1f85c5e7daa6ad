package relp

import (
	"errors"
	"fmt"
	"strconv"
)

// Reason names why a frame or a session was refused. It labels the
// relay_relp_bad_frames_total metric, so the set is small and fixed.
type Reason string

// Reasons a frame cannot be parsed (FrameError.Reason).
const (
	// ReasonTxnr: the transaction number is not 1 to 9 digits followed by a space.
	ReasonTxnr Reason = "txnr"
	// ReasonCommand: the command is not 1 to 32 letters followed by a space.
	ReasonCommand Reason = "command"
	// ReasonDatalen: DATALEN is not 1 to 9 digits, or is not followed by a
	// space (data) or the LF trailer (no data).
	ReasonDatalen Reason = "datalen"
	// ReasonOversize: DATALEN is larger than the reader's limit.
	ReasonOversize Reason = "oversize"
	// ReasonTrailer: the byte after DATA is not the LF trailer.
	ReasonTrailer Reason = "trailer"
	// ReasonTruncated: the connection ended inside a frame.
	ReasonTruncated Reason = "truncated"
)

// Reasons a well-formed frame breaks the session protocol.
const (
	// ReasonBeforeOpen: a first frame that is not "open" (junk, or a
	// syslog frame before the session was opened).
	ReasonBeforeOpen Reason = "before_open"
	// ReasonSequence: a transaction number other than the next one.
	ReasonSequence Reason = "txnr_sequence"
	// ReasonSecondOpen: "open" on a session that is already open.
	ReasonSecondOpen Reason = "second_open"
	// ReasonOffers: an "open" whose offers are unusable (no relp_version,
	// or no syslog command).
	ReasonOffers Reason = "offers"
	// ReasonUnknownCommand: a command the relay does not serve (rsp,
	// starttls, hints, anything else).
	ReasonUnknownCommand Reason = "unknown_command"
	// ReasonNotReading: the client did not read our answers within the
	// write timeout (its receive window stayed full).
	ReasonNotReading Reason = "not_reading"
)

// Reasons lists every Reason, for metrics that export zeros.
var Reasons = reasons[:]

var reasons = [...]Reason{
	ReasonTxnr, ReasonCommand, ReasonDatalen, ReasonOversize, ReasonTrailer, ReasonTruncated,
	ReasonBeforeOpen, ReasonSequence, ReasonSecondOpen, ReasonOffers, ReasonUnknownCommand,
	ReasonNotReading,
}

// Sentinel errors a FrameError wraps, one per parse Reason.
var (
	// ErrBadTxnr means the frame's TXNR is not a number of 1 to 9 digits.
	ErrBadTxnr = errors.New("relp: bad transaction number")
	// ErrBadCommand means the frame's command is not 1 to 32 letters.
	ErrBadCommand = errors.New("relp: bad command")
	// ErrBadDatalen means DATALEN is not a number of 1 to 9 digits, or what
	// follows it is neither a space nor the trailer.
	ErrBadDatalen = errors.New("relp: bad data length")
	// ErrOversize means DATALEN exceeds the limit (max_message_size). The
	// data was not read: the stream cannot be resynchronised.
	ErrOversize = errors.New("relp: frame larger than the limit")
	// ErrNoTrailer means the byte after the data is not LF.
	ErrNoTrailer = errors.New("relp: missing LF trailer")
	// ErrTruncated means the connection ended inside a frame.
	ErrTruncated = errors.New("relp: connection ended inside a frame")
)

// FrameError is a frame the Reader cannot parse. Every one ends the
// session: RELP has no resynchronisation point. Txnr is the frame's
// transaction number when it was read before the problem (> 0), so the
// server can answer that frame with a 500; 0 otherwise.
type FrameError struct {
	Reason Reason
	Txnr   int
	Err    error // the sentinel (ErrBadTxnr…), possibly wrapping an I/O error
	Detail string
}

func (e *FrameError) Error() string {
	s := e.Err.Error()
	if e.Txnr > 0 {
		s += " (txnr " + strconv.Itoa(e.Txnr) + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *FrameError) Unwrap() error { return e.Err }

func frameErr(r Reason, txnr int, sentinel error, format string, args ...any) *FrameError {
	return &FrameError{Reason: r, Txnr: txnr, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

// ErrNotHandedOff is what a session reports when the relay could not hand
// an event off (an output failed it): the frame is not answered, and the
// session is closed with serverclose so the client sends it again.
var ErrNotHandedOff = errors.New("relp: event not handed off")

// ErrAckTimeout means the answer to a frame waited longer than the ack
// timeout: the session is closed with serverclose so the client sends the
// unanswered frames again (to this relay, or to its failover action).
var ErrAckTimeout = errors.New("relp: no hand-off within the ack timeout")

// ErrShuttingDown ends sessions when the server shuts down.
var ErrShuttingDown = errors.New("relp: server shutting down")
