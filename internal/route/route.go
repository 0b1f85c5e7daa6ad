// Package route decides where each event goes: it derives the event's
// stream type from a configured field and matches the stream against each
// output's glob patterns.
//
// A Table is immutable once built; the relay swaps tables atomically on
// reload, so routing never takes a lock on the hot path. Per-stream match
// results are memoised in a bounded cache, because stream sets are small in
// practice but a json: or regex: field can make them unbounded.
package route

import (
	"fmt"
	"path"
	"sync"
	"sync/atomic"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// MaxCachedStreams bounds the memo of per-stream routes. Streams beyond it
// are still routed correctly, just without the memo. With stream names
// bounded in length (WithMaxStreamLen) the memo is bounded in bytes too.
const MaxCachedStreams = 4096

// OverlongStream is the stream of events whose stream name is longer than
// the table's maximum (WithMaxStreamLen).
const OverlongStream = "_overlong"

// Option configures a Table.
type Option func(*Table)

// WithMaxStreamLen bounds stream names to n bytes: an event whose field
// (or stream frame) is longer gets OverlongStream instead, and overlong,
// if not nil, counts it. Stream names become metric labels, route-cache
// keys, rate-feed keys and topic frames; without a bound one event with
// a 60 kB APP-NAME costs that much in each. 0 means no bound.
func WithMaxStreamLen(n int, overlong *atomic.Uint64) Option {
	return func(t *Table) { t.maxLen, t.overlong = n, overlong }
}

// Target is one destination and the streams it takes.
type Target struct {
	// Name identifies the target in errors and metrics.
	Name string
	// Streams are path.Match globs; empty means every stream.
	Streams []string
}

// Table routes events to targets by stream.
type Table struct {
	field   event.Field
	def     string
	targets []Target

	maxLen   int
	overlong *atomic.Uint64

	cache  sync.Map // stream → []int; read-mostly, so lock-free loads
	cached atomic.Int32
}

// NewTable builds a routing table. from is a field spec understood by
// event.ParseField; def is the stream of events that lack the field.
func NewTable(from, def string, targets []Target, opts ...Option) (*Table, error) {
	f, err := event.ParseField(from)
	if err != nil {
		return nil, fmt.Errorf("stream.from: %w", err)
	}
	if def == "" {
		return nil, fmt.Errorf("stream.default: must not be empty; set a name such as \"unknown\"")
	}
	for _, t := range targets {
		for _, g := range t.Streams {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("output %q: stream pattern %q: %w", t.Name, g, err)
			}
		}
	}
	t := &Table{field: f, def: def, targets: targets}
	for _, o := range opts {
		o(t)
	}
	if t.maxLen > 0 && len(def) > t.maxLen {
		return nil, fmt.Errorf("stream.default: %q is longer than the %d-byte limit on stream names; shorten it", def, t.maxLen)
	}
	return t, nil
}

// Targets returns the table's targets, in the order Match indexes them.
func (t *Table) Targets() []Target { return t.targets }

// Stream sets and returns e.Stream. An event that arrived with a stream
// (a two-frame ZeroMQ message) keeps it.
func (t *Table) Stream(e *event.Event) string {
	if e.Stream != "" {
		if t.maxLen > 0 && len(e.Stream) > t.maxLen {
			e.Stream = t.tooLong()
		}
		return e.Stream
	}
	s, ok := t.field.Get(e)
	switch {
	case !ok || s == "":
		s = t.def
	case t.maxLen > 0 && len(s) > t.maxLen:
		s = t.tooLong()
	}
	e.Stream = s
	return s
}

func (t *Table) tooLong() string {
	if t.overlong != nil {
		t.overlong.Add(1)
	}
	return OverlongStream
}

// Match returns the indexes of the targets that take stream. The result is
// shared: callers must not modify it.
func (t *Table) Match(stream string) []int {
	if v, ok := t.cache.Load(stream); ok {
		return v.([]int)
	}
	idx := t.match(stream)
	if t.cached.Load() < MaxCachedStreams {
		if _, loaded := t.cache.LoadOrStore(stream, idx); !loaded {
			t.cached.Add(1)
		}
	}
	return idx
}

func (t *Table) match(stream string) []int {
	idx := []int{}
	for i, tg := range t.targets {
		if Matches(tg.Streams, stream) {
			idx = append(idx, i)
		}
	}
	return idx
}

// Matches reports whether stream matches any of the globs; no globs match
// everything. Patterns were validated when the table was built.
func Matches(globs []string, stream string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, stream); ok {
			return true
		}
	}
	return false
}
