// Package ratelog keeps a flood of one kind of trouble (bad frames from a
// client sending junk in a loop, refused connections, failed writes) from
// flooding the log: at most one line a second, and the next line that
// goes through says how many were held back ("suppressed", n). The
// counters that matter are metrics; the log line is the example.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter lets one line a second through. The zero value is ready; it is
// safe for concurrent use.
type Limiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Log logs msg with args at level through l, unless a line went through
// less than a second ago: then it only counts it.
func (r *Limiter) Log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.suppressed = 0
	r.last = now
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.Log(context.Background(), level, msg, args...)
}

// Warner is a Limiter that logs warnings through its own logger.
type Warner struct {
	Logger *slog.Logger
	Limiter
}

// Warn logs a warning, at most one a second (see Limiter.Log).
func (w *Warner) Warn(msg string, args ...any) { w.Log(w.Logger, slog.LevelWarn, msg, args...) }
