package tap

import "errors"

// ErrBadFilter is the parent of every filter error: a bad glob, field,
// regexp, format or sample rate. The websocket answers it with 400.
var ErrBadFilter = errors.New("bad tap filter")

// ErrUnauthorized means the hub has a token and the request did not carry it.
var ErrUnauthorized = errors.New("tap token missing or wrong")

// ErrForbiddenOrigin means a web page from an origin the hub does not
// allow tried to open the tap; the websocket answers it with 403.
var ErrForbiddenOrigin = errors.New("tap refused for this web origin")

// ErrTooManyClients means the hub already serves MaxClients taps.
var ErrTooManyClients = errors.New("too many tap clients")

// ErrClosed is returned by a Consumer or Hub used after Close.
var ErrClosed = errors.New("tap closed")

// ErrBadSource means a tap source URL has a scheme other than tcp, ipc,
// ws or wss.
var ErrBadSource = errors.New("bad tap source")
