package tap

import (
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// rateCounter counts events per stream while at least one client asked
// for rates (the web page's chart); otherwise Publish skips it.
type rateCounter struct {
	watchers atomic.Int32
	mu       sync.RWMutex
	counts   map[string]*atomic.Uint64
}

func (r *rateCounter) init() { r.counts = map[string]*atomic.Uint64{} }

// maxRateStreams bounds the map against a flood of stream names.
const maxRateStreams = 1024

// addN counts n events of stream.
func (r *rateCounter) addN(stream string, n uint64) {
	r.mu.RLock()
	c := r.counts[stream]
	r.mu.RUnlock()
	if c == nil {
		r.mu.Lock()
		if c = r.counts[stream]; c == nil {
			if len(r.counts) >= maxRateStreams {
				r.mu.Unlock()
				return
			}
			c = new(atomic.Uint64)
			r.counts[stream] = c
		}
		r.mu.Unlock()
	}
	c.Add(n)
}

func (r *rateCounter) snapshot() map[string]uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := make(map[string]uint64, len(r.counts))
	for k, v := range r.counts {
		m[k] = v.Load()
	}
	return m
}

// appendRates encodes a rates notice: events per second per stream over
// the interval between two snapshots.
func appendRates(dst []byte, cur, prev map[string]uint64, ivl time.Duration) []byte {
	names := make([]string, 0, len(cur))
	for k := range cur {
		names = append(names, k)
	}
	slices.Sort(names)
	dst = append(dst, `{"notice":"rates","interval_ms":`...)
	dst = strconv.AppendInt(dst, ivl.Milliseconds(), 10)
	dst = append(dst, `,"streams":{`...)
	for i, k := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		q, _ := json.Marshal(k) // strconv.Quote's \x escapes are not JSON
		dst = append(dst, q...)
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, cur[k]-prev[k], 10)
	}
	return append(dst, "}}"...)
}
