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
// are still routed correctly, just without the memo.
const MaxCachedStreams = 4096

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

	cache  sync.Map // stream → []int; read-mostly, so lock-free loads
	cached atomic.Int32
}

// NewTable builds a routing table. from is a field spec understood by
// event.ParseField; def is the stream of events that lack the field.
func NewTable(from, def string, targets []Target) (*Table, error) {
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
	return &Table{field: f, def: def, targets: targets}, nil
}

// Targets returns the table's targets, in the order Match indexes them.
func (t *Table) Targets() []Target { return t.targets }

// Stream sets and returns e.Stream. An event that arrived with a stream
// (a two-frame ZeroMQ message) keeps it.
func (t *Table) Stream(e *event.Event) string {
	if e.Stream != "" {
		return e.Stream
	}
	s, ok := t.field.Get(e)
	if !ok || s == "" {
		s = t.def
	}
	e.Stream = s
	return s
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
