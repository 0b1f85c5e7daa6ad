package tap

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// Limits on a filter, checked when it is built: a tap's filter runs for
// every event it is offered, so its cost must be bounded before the first
// event (the review's 900 KB glob made each event cost milliseconds).
const (
	// MaxStreams is the most stream globs in one filter.
	MaxStreams = 32
	// MaxGlobLen is the longest stream glob, in bytes; stream names are
	// at most 128 bytes by default (stream.max_length).
	MaxGlobLen = 256
	// MaxMatches is the most field=value conditions in one filter.
	MaxMatches = 16
	// MaxMatchLen is the longest field=value condition, in bytes.
	MaxMatchLen = 1024
	// MaxGrepLen is the longest grep expression, in bytes.
	MaxGrepLen = 1024
	// MaxRegexInsts bounds a compiled grep (or regex: field) program: the
	// time to match one byte grows with it. (?:.{0,1000})+z compiles to
	// some 3000 instructions and cost 156 ms per 8 KB event.
	MaxRegexInsts = 1000
	// MaxGrepInput is how much of an event grep looks at: its first
	// 64 KiB (the syslog inputs' default max_message_size), so one match
	// costs at most MaxRegexInsts steps per byte of that.
	MaxGrepInput = 64 << 10
)

// Filter selects events by stream glob, field values, a regexp on the raw
// message and a sampling rate. The hub and the CLI apply the same Filter;
// the CLI also pushes its stream globs down to the source (Prefixes,
// Query). Build one with NewFilter or ParseQuery. A Filter is not safe for
// concurrent use: it counts events for sampling.
type Filter struct {
	Streams []string // globs (path.Match syntax); empty means every stream
	Match   []Match  // every one must hold
	Grep    *regexp.Regexp
	Sample  int // keep one event in Sample; 0 and 1 keep all

	globs []glob
	seen  uint64
}

// Match is one --match field=value condition.
type Match struct {
	Spec  string // the field, as event.ParseField reads it
	Value string
	Field event.Field
}

// NewFilter compiles the parts of a Filter. Every error wraps ErrBadFilter
// and names the offending argument.
func NewFilter(streams, matches []string, grep string, sample int) (*Filter, error) {
	f := &Filter{Sample: sample}
	if sample < 0 {
		return nil, fmt.Errorf("%w: sample %d: want a positive N for one event in N", ErrBadFilter, sample)
	}
	if len(streams) > MaxStreams {
		return nil, fmt.Errorf("%w: %d stream globs: the limit is %d; use a glob that covers several", ErrBadFilter, len(streams), MaxStreams)
	}
	if len(matches) > MaxMatches {
		return nil, fmt.Errorf("%w: %d match conditions: the limit is %d", ErrBadFilter, len(matches), MaxMatches)
	}
	for _, s := range streams {
		g, err := compileGlob(s)
		if err != nil {
			return nil, err
		}
		f.Streams = append(f.Streams, s)
		f.globs = append(f.globs, g)
	}
	for _, m := range matches {
		mm, err := ParseMatch(m)
		if err != nil {
			return nil, err
		}
		f.Match = append(f.Match, mm)
	}
	if grep != "" {
		if len(grep) > MaxGrepLen {
			return nil, fmt.Errorf("%w: grep of %d bytes: the limit is %d", ErrBadFilter, len(grep), MaxGrepLen)
		}
		if err := checkRegexCost(grep); err != nil {
			return nil, fmt.Errorf("%w: grep %q: %v", ErrBadFilter, grep, err)
		}
		re, err := regexp.Compile(grep)
		if err != nil {
			return nil, fmt.Errorf("%w: grep %q: %v", ErrBadFilter, grep, err)
		}
		f.Grep = re
	}
	return f, nil
}

// checkRegexCost refuses a regular expression whose compiled program has
// more than MaxRegexInsts instructions: Go's matcher is linear in the
// input, but the factor is the program's size, and counted repetitions
// (.{0,1000}) multiply it.
func checkRegexCost(expr string) error {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return err
	}
	if n := len(prog.Inst); n > MaxRegexInsts {
		return fmt.Errorf("compiles to %d instructions, the limit is %d; avoid large counted repetitions such as {0,1000}", n, MaxRegexInsts)
	}
	return nil
}

// ParseMatch reads "field=value", e.g. "app-name=nginx" or
// "sd:user@1.id=42". The value may contain '='.
func ParseMatch(s string) (Match, error) {
	if len(s) > MaxMatchLen {
		return Match{}, fmt.Errorf("%w: match of %d bytes: the limit is %d", ErrBadFilter, len(s), MaxMatchLen)
	}
	spec, value, ok := strings.Cut(s, "=")
	if !ok || spec == "" {
		return Match{}, fmt.Errorf("%w: match %q: want field=value, e.g. app-name=nginx", ErrBadFilter, s)
	}
	if expr, ok := strings.CutPrefix(spec, "regex:"); ok {
		if err := checkRegexCost(expr); err != nil {
			return Match{}, fmt.Errorf("%w: match %q: %v", ErrBadFilter, s, err)
		}
	}
	fld, err := event.ParseField(spec)
	if err != nil {
		return Match{}, fmt.Errorf("%w: match %q: %v", ErrBadFilter, s, err)
	}
	return Match{Spec: spec, Value: value, Field: fld}, nil
}

// ParseSample reads a sampling rate written "N" or "1/N". Empty means 1.
func ParseSample(s string) (int, error) {
	if s == "" {
		return 1, nil
	}
	n := strings.TrimPrefix(s, "1/")
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%w: sample %q: want N or 1/N with N >= 1", ErrBadFilter, s)
	}
	return v, nil
}

// ParseQuery builds a Filter from websocket query parameters: stream
// (repeatable), match (repeatable), grep and sample.
func ParseQuery(q url.Values) (*Filter, error) {
	sample, err := ParseSample(q.Get("sample"))
	if err != nil {
		return nil, err
	}
	return NewFilter(q["stream"], q["match"], q.Get("grep"), sample)
}

// Query encodes f as websocket query parameters, the inverse of ParseQuery.
func (f *Filter) Query() url.Values {
	q := url.Values{}
	for _, s := range f.Streams {
		q.Add("stream", s)
	}
	for _, m := range f.Match {
		q.Add("match", m.Spec+"="+m.Value)
	}
	if f.Grep != nil {
		q.Set("grep", f.Grep.String())
	}
	if f.Sample > 1 {
		q.Set("sample", strconv.Itoa(f.Sample))
	}
	return q
}

// MatchStream reports whether stream matches one of the globs.
func (f *Filter) MatchStream(stream string) bool {
	if len(f.globs) == 0 {
		return true
	}
	for i := range f.globs {
		if f.globs[i].match(stream) {
			return true
		}
	}
	return false
}

// MatchEvent reports whether e passes the field matches and the regexp.
// It does not look at the stream or sample.
func (f *Filter) MatchEvent(e *event.Event) bool {
	for _, m := range f.Match {
		v, ok := m.Field.Get(e)
		if !ok || v != m.Value {
			return false
		}
	}
	if f.Grep == nil {
		return true
	}
	raw := e.Raw
	if len(raw) > MaxGrepInput {
		raw = raw[:MaxGrepInput]
	}
	return f.Grep.Match(raw)
}

// needsEvent reports whether MatchEvent looks at the event at all.
func (f *Filter) needsEvent() bool { return len(f.Match) > 0 || f.Grep != nil }

// Keep applies the whole filter: stream, matches, regexp, then sampling
// among the events that passed.
func (f *Filter) Keep(e *event.Event) bool {
	if !f.MatchStream(e.Stream) || !f.MatchEvent(e) {
		return false
	}
	return f.sampled()
}

// sampled keeps the first of every Sample events, so a sampled tap sees a
// deterministic 1/N of its matches.
func (f *Filter) sampled() bool {
	if f.Sample <= 1 {
		return true
	}
	f.seen++
	return (f.seen-1)%uint64(f.Sample) == 0
}

// Prefixes returns the ZeroMQ subscription prefixes that cover the stream
// globs: each glob's literal part before its first metacharacter. A nil
// result means subscribe to everything. The prefixes over-select (click
// also covers clicks), so MatchStream must still run on what arrives.
func (f *Filter) Prefixes() []string {
	if len(f.Streams) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range f.Streams {
		p := literalPrefix(s)
		if p == "" {
			return nil // one glob wants every stream
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// literalPrefix is the part of glob before its first metacharacter.
func literalPrefix(glob string) string {
	if i := strings.IndexAny(glob, `*?[\`); i >= 0 {
		return glob[:i]
	}
	return glob
}

// glob is a compiled stream glob with fast paths for the common shapes:
// a literal name, "prefix*" and "*".
type glob struct {
	kind    byte // 'l' literal, 'p' prefix*, 'a' any, 'g' general
	pattern string
}

func compileGlob(s string) (glob, error) {
	if s == "" {
		return glob{}, fmt.Errorf("%w: empty stream glob: give a stream name or a glob like web.*", ErrBadFilter)
	}
	if len(s) > MaxGlobLen {
		return glob{}, fmt.Errorf("%w: stream glob of %d bytes: the limit is %d", ErrBadFilter, len(s), MaxGlobLen)
	}
	if _, err := path.Match(s, ""); err != nil {
		return glob{}, fmt.Errorf("%w: stream glob %q: %v", ErrBadFilter, s, err)
	}
	lit := literalPrefix(s)
	switch {
	case s == "*":
		return glob{kind: 'a'}, nil
	case lit == s:
		return glob{kind: 'l', pattern: s}, nil
	case lit+"*" == s:
		return glob{kind: 'p', pattern: lit}, nil
	}
	return glob{kind: 'g', pattern: s}, nil
}

func (g *glob) match(s string) bool {
	switch g.kind {
	case 'a':
		return !strings.Contains(s, "/")
	case 'l':
		return s == g.pattern
	case 'p':
		return strings.HasPrefix(s, g.pattern) && !strings.Contains(s[len(g.pattern):], "/")
	}
	ok, _ := path.Match(g.pattern, s)
	return ok
}
