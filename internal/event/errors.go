package event

import "errors"

// ErrBadField reports a field spec ParseField does not accept. The error
// text lists the accepted forms.
var ErrBadField = errors.New("bad field spec")
