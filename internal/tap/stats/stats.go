// Package stats keeps per-stream statistics for `tap stats`: counts and
// bytes for rates, the number of distinct values of a field with
// HyperLogLog, and the most frequent values of a field with Space-Saving.
package stats

import (
	"slices"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"
)

// Stream is one stream's running statistics. It is not safe for
// concurrent use.
type Stream struct {
	Name   string
	Events uint64
	Bytes  uint64
	Drops  uint64 // when the source reports them per stream

	unique *hyperloglog.Sketch // nil without --unique
	top    *TopK               // nil without --top

	// the previous sample, for rates
	lastEvents, lastBytes uint64
	lastAt                time.Time
	rate, byteRate        float64
}

// Set is the statistics of every stream seen, keyed by name.
type Set struct {
	streams   map[string]*Stream
	unique    bool
	topK      int
	start     time.Time
	lastTick  time.Time
	maxStream int
}

// NewSet returns an empty Set. With unique, each stream counts distinct
// values (Add's uniq argument); with topK > 0 it keeps the topK most
// frequent values of Add's top argument.
func NewSet(unique bool, topK int) *Set {
	now := time.Now()
	return &Set{streams: map[string]*Stream{}, unique: unique, topK: topK, start: now, lastTick: now, maxStream: 10000}
}

// Add counts one event of stream with size bytes. uniq and top are the
// values of the --unique and --top fields; hasUniq/hasTop false when the
// event lacks them.
func (s *Set) Add(stream string, size int, uniq string, hasUniq bool, top string, hasTop bool) {
	st := s.streams[stream]
	if st == nil {
		if len(s.streams) >= s.maxStream {
			stream = "(other)"
			if st = s.streams[stream]; st != nil {
				goto have
			}
		}
		st = &Stream{Name: stream, lastAt: s.lastTick}
		if s.unique {
			st.unique = hyperloglog.New16() // 0.4% standard error; 64 KiB per stream
		}
		if s.topK > 0 {
			st.top = NewTopK(s.topK * 8) // more counters than shown: better top-k accuracy
		}
		s.streams[stream] = st
	}
have:
	st.Events++
	st.Bytes += uint64(size)
	if hasUniq && st.unique != nil {
		st.unique.Insert([]byte(uniq))
	}
	if hasTop && st.top != nil {
		st.top.Add(top)
	}
}

// Tick computes the rates since the previous Tick.
func (s *Set) Tick(now time.Time) {
	for _, st := range s.streams {
		dt := now.Sub(st.lastAt).Seconds()
		if dt <= 0 {
			continue
		}
		st.rate = float64(st.Events-st.lastEvents) / dt
		st.byteRate = float64(st.Bytes-st.lastBytes) / dt
		st.lastEvents, st.lastBytes, st.lastAt = st.Events, st.Bytes, now
	}
	s.lastTick = now
}

// Row is one stream's figures for display.
type Row struct {
	Stream      string
	Events      uint64
	Bytes       uint64
	Rate        float64 // events/s over the last interval
	ByteRate    float64 // bytes/s over the last interval
	Drops       uint64
	Unique      uint64  // HyperLogLog estimate; 0 without --unique
	Top         []Count // most frequent values, at most topK
	AvgRate     float64 // events/s since the start
	AvgByteRate float64 // bytes/s since the start
}

// Rows returns every stream, busiest first (then by name).
func (s *Set) Rows(now time.Time) []Row {
	rows := make([]Row, 0, len(s.streams))
	el := now.Sub(s.start).Seconds()
	for _, st := range s.streams {
		r := Row{Stream: st.Name, Events: st.Events, Bytes: st.Bytes, Rate: st.rate, ByteRate: st.byteRate, Drops: st.Drops}
		if el > 0 {
			r.AvgRate, r.AvgByteRate = float64(st.Events)/el, float64(st.Bytes)/el
		}
		if st.unique != nil {
			r.Unique = st.unique.Estimate()
		}
		if st.top != nil {
			r.Top = st.top.Top(s.topK)
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b Row) int {
		if a.Events != b.Events {
			if a.Events > b.Events {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Stream, b.Stream)
	})
	return rows
}
