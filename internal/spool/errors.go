package spool

import "errors"

// ErrClosed is returned by calls on a closed spool, and passed to durable
// callbacks whose records the spool could not make durable before Close.
var ErrClosed = errors.New("spool: closed")

// ErrDropped is wrapped in the error passed to a durable callback when
// full: drop_newest left some of the appended records out.
var ErrDropped = errors.New("spool: records dropped, spool full")

// ErrTooLarge is returned by Append for a batch or a record that can never
// fit: bigger than MaxBytes (or its pending share), or than MaxRecordBytes.
var ErrTooLarge = errors.New("spool: too large for this spool")

// ErrLocked is returned by Open when another process holds the directory.
var ErrLocked = errors.New("spool: directory in use by another process")

// ErrVersion is returned by Open for a directory written in a format this
// build does not read.
var ErrVersion = errors.New("spool: unsupported format version")

// ErrCorrupt marks a frame, segment header or cursor file that fails its
// checks.
var ErrCorrupt = errors.New("spool: corrupt data")
