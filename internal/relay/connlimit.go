package relay

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimiter caps the HTTP server's connections, so clients that connect
// and sit idle cannot take the file descriptors the syslog inputs need.
// At the cap, a new connection takes the place of the one that has waited
// longest without a request in progress (idle keep-alive, or connected
// and silent); if every connection is busy, the new one is closed at once.
// A scrape thus always gets in, however many idle connections there are.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	open  int
	quiet map[net.Conn]time.Time // connections without a request in progress, since when

	refused, evicted atomic.Uint64
	peak             atomic.Int64
}

func newConnLimiter(l net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: l, max: max, quiet: map[net.Conn]time.Time{}}
}

// Accept returns the next connection within the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l}
		l.mu.Lock()
		if l.open >= l.max {
			victim := l.oldestQuietLocked()
			if victim == nil {
				l.mu.Unlock()
				l.refused.Add(1)
				c.Close()
				continue
			}
			delete(l.quiet, victim)
			l.mu.Unlock()
			l.evicted.Add(1)
			victim.Close() // frees its slot
			l.mu.Lock()
		}
		l.open++
		if int64(l.open) > l.peak.Load() {
			l.peak.Store(int64(l.open))
		}
		l.mu.Unlock()
		return lc, nil
	}
}

func (l *connLimiter) oldestQuietLocked() net.Conn {
	var victim net.Conn
	var since time.Time
	for c, t := range l.quiet {
		if victim == nil || t.Before(since) {
			victim, since = c, t
		}
	}
	return victim
}

// track is the server's ConnState hook: it follows which connections have
// no request in progress. c is what the server holds (a *tls.Conn over a
// limitedConn with TLS); closing it frees the slot.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateNew, http.StateIdle:
		l.quiet[c] = time.Now()
	default: // active, hijacked (a tap: it has its own limits), closed
		delete(l.quiet, c)
	}
}

// stats returns the connections open now, the most open at once, and how
// many were refused and evicted in all.
func (l *connLimiter) stats() (open int, peak int64, refused, evicted uint64) {
	l.mu.Lock()
	open = l.open
	l.mu.Unlock()
	return open, l.peak.Load(), l.refused.Load(), l.evicted.Load()
}

// limitedConn gives its slot back on its first Close.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return err
}
