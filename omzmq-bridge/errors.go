package main

import "errors"

// ErrUsage reports a bad command line or settings file (exit status 2).
var ErrUsage = errors.New("usage")

// ErrDroppedOnReload fails the commit after a reload closed the old socket
// with messages still unsent, so rsyslog retries the transaction.
var ErrDroppedOnReload = errors.New("messages unsent when the socket was replaced on SIGHUP")

// ErrTooLarge refuses a line whose ZeroMQ message (with its topic frame)
// is over --max-line: the receiver would refuse it and drop the
// connection, losing what followed it too.
var ErrTooLarge = errors.New("message larger than --max-line")
