package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinels carried by Problem.Err, so callers can test an *Error with
// errors.Is for a class of problem.
var (
	// ErrSyntax means the file is not valid YAML.
	ErrSyntax = errors.New("invalid YAML")
	// ErrUnknownKey means a key the relay does not know: usually a typo.
	ErrUnknownKey = errors.New("unknown key")
	// ErrType means a value of the wrong kind (a list where a string goes…).
	ErrType = errors.New("wrong type")
	// ErrRequired means a required key is missing.
	ErrRequired = errors.New("missing required key")
	// ErrDuplicate means a name, key or endpoint that must be unique is repeated.
	ErrDuplicate = errors.New("duplicate")
	// ErrInvalid means a value outside what the key accepts.
	ErrInvalid = errors.New("invalid value")
	// ErrFile means a file the config names cannot be used.
	ErrFile = errors.New("unusable file")
	// ErrInsecureTap means /v1/tap would be open to the network without a token.
	ErrInsecureTap = errors.New("insecure tap")
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	File string // config file name as given to Load or Parse; may be empty
	Line int    // 1-based; 0 when unknown (e.g. a Config built in code)
	Col  int    // 1-based; 0 when unknown
	Path string // key path, e.g. "outputs[1].socket"; empty for the whole file
	Msg  string // what is wrong; what to change
	Err  error  // one of the Err… sentinels
}

// String formats the problem as FILE:LINE:COL: path: message, leaving out
// the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, "%d:", p.Col)
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a configuration, in file order.
type Error struct {
	Problems []Problem
}

func newError(probs []Problem) *Error {
	sort.SliceStable(probs, func(i, j int) bool {
		a, b := probs[i], probs[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0 // positioned problems first
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return &Error{Problems: probs}
}

// Error returns one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems' sentinels, so errors.Is(err, ErrUnknownKey)
// reports whether any problem is an unknown key.
func (e *Error) Unwrap() []error {
	var errs []error
	seen := map[error]bool{}
	for _, p := range e.Problems {
		if p.Err != nil && !seen[p.Err] {
			seen[p.Err] = true
			errs = append(errs, p.Err)
		}
	}
	return errs
}
