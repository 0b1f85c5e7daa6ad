package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ratelog"
)

// Handler serves one connection: it reads frames (calling Conn.Frame for
// each) until the peer closes or Read fails, then returns. The listener
// closes the connection after it returns.
type Handler func(c *Conn)

// Stats are a listener's counters.
type Stats struct {
	Open     int64  // connections open now (served, or closing gracefully)
	Accepted uint64 // connections served (refused ones are not)
	// Closed counts connections the listener closed or refused, by
	// Reason (index None is unused).
	Closed [NumReasons]uint64
}

// Refused is the number of connections refused (never served).
func (s Stats) Refused() uint64 { return s.Closed[PerSourceLimit] + s.Closed[MaxConnections] }

// HandshakeFailures is the number of TLS handshakes that failed or timed out.
func (s Stats) HandshakeFailures() uint64 {
	return s.Closed[HandshakeTimeout] + s.Closed[HandshakeError]
}

// Listener is the connection core shared by the stream inputs: it accepts
// on any number of net.Listeners, enforces Limits, does the TLS handshake
// and runs a Handler per connection.
type Listener struct {
	lim   Limits
	log   *slog.Logger
	epoch time.Time
	// clock is nanoseconds since epoch (at least 1, so 0 can mean
	// "unset"), advanced by the sweeper every tick: readers take the time
	// with one atomic load. A sweep advances it by at most maxStep: time
	// the sweeper itself was held up (the process short of CPU) counts
	// against no peer, and a stamp taken from a clock left stale by a late
	// sweeper is never older than the truth by more than maxStep.
	clock    atomic.Int64
	lastReal int64 // the sweeper's: real time (l.now) at the last advance
	maxStep  int64

	mu       sync.Mutex // guards the fields below and every Conn's state and idx
	closed   bool
	lns      []net.Listener
	live     []*Conn
	draining map[*Conn]struct{}
	perSrc   map[netip.Addr]*source
	parked   map[uint64]*Conn // by Conn.parkID: waiting, without a goroutine, for the peer to send
	nextID   uint64
	seq      uint64 // accept order, for ties of the coarse clock
	epfd     int    // the parking epoll set; -1: none
	wakeR    int    // the pipe that wakes the parking goroutine at Close; -1: none
	wakeW    int

	wg        sync.WaitGroup
	stop      chan struct{}
	sweepOnce sync.Once
	stopOnce  sync.Once
	victims   []action // the sweeper's scratch

	// The sweeper's record of the flood it is in, if any: closes by the
	// listener since memory was last given back, and the clock at the last.
	floodCloses uint64
	floodLast   int64
	floodSeen   uint64

	open      atomic.Int64
	accepted  atomic.Uint64
	closedBy  [NumReasons]atomic.Uint64
	logs      [NumReasons]ratelog.Limiter
	acceptLog ratelog.Limiter
}

type action struct {
	c *Conn
	r Reason // None: the end of a graceful close's grace
}

// New returns a listener with lim (defaults applied). log may be nil.
func New(lim Limits, log *slog.Logger) (*Listener, error) {
	lim = lim.WithDefaults()
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		lim:      lim,
		log:      log,
		epoch:    time.Now(),
		draining: map[*Conn]struct{}{},
		perSrc:   map[netip.Addr]*source{},
		parked:   map[uint64]*Conn{},
		epfd:     -1,
		wakeR:    -1,
		wakeW:    -1,
		stop:     make(chan struct{}),
		maxStep:  int64(2 * lim.tick()),
	}
	l.clock.Store(1)
	return l, nil
}

// Limits returns the limits in force, defaults applied.
func (l *Listener) Limits() Limits { return l.lim }

// Stats returns a snapshot of the counters.
func (l *Listener) Stats() Stats {
	s := Stats{Open: l.open.Load(), Accepted: l.accepted.Load()}
	for r := range s.Closed {
		s.Closed[r] = l.closedBy[r].Load()
	}
	return s
}

func (l *Listener) now() int64 { return int64(time.Since(l.epoch)) + 1 }

// Serve accepts connections on ln until ln or the listener is closed, and
// runs h for each in its own goroutine once the peer has sent something
// (the client speaks first); with tlsConf the TLS handshake is done
// first. Every Serve of a listener shares its limits. It returns nil once
// ln is closed.
func (l *Listener) Serve(ln net.Listener, tlsConf *tls.Config, h Handler) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		ln.Close()
		return nil
	}
	l.lns = append(l.lns, ln)
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	l.sweepOnce.Do(func() {
		l.lastReal = l.now()
		l.clock.Store(l.lastReal)
		l.mu.Lock()
		if !l.closed {
			l.startParking()
		}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.sweep()
	})
	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off rather than
			// spin, and keep serving the connections we have.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.acceptLog.Log(l.log, slog.LevelWarn, "accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.stop:
			}
			continue
		}
		backoff = 0
		l.admit(raw, tlsConf, h)
	}
}

// admit applies the per-source and global limits to a new connection:
// refuse it, or evict another to make room, then serve it.
func (l *Listener) admit(raw net.Conn, tlsConf *tls.Config, h Handler) {
	c := newConn(l, raw, l.clock.Load())
	if tlsConf != nil {
		// Set before anyone else can see c: the sweeper reads them.
		c.tc = tls.Server(&c.side, tlsConf)
		c.handshaking.Store(true)
	}
	var victim *Conn
	var vr, refused Reason
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		hardClose(raw)
		return
	case l.lim.MaxPerSource > 0 && c.src.IsValid() && l.perSrc[c.src] != nil && l.perSrc[c.src].live >= l.lim.MaxPerSource:
		refused = PerSourceLimit
	case l.lim.MaxConnections > 0 && len(l.live) >= l.lim.MaxConnections:
		victim, vr = l.victimLocked()
		if victim == nil {
			refused = MaxConnections
		} else {
			l.unliveLocked(victim, vr)
		}
	}
	parked := false
	if refused == None {
		l.addLocked(c)
		l.wg.Add(1)
		l.open.Add(1)
		parked = l.parkLocked(c, h)
	}
	l.mu.Unlock()
	if refused != None {
		l.closedBy[refused].Add(1)
		l.logReason(refused, c, nil)
		hardClose(raw)
		return
	}
	if victim != nil {
		l.closeConn(victim, vr, nil)
	}
	l.accepted.Add(1)
	if !parked {
		go l.serve(c, h)
	}
}

// victimLocked picks the connection to evict: one that never sent a
// complete frame, from the address holding the most such connections
// (a flood's, not a sender that just connected), the longest idle of
// those (ties of the coarse clock: the first accepted); else the
// longest-idle one overall. Only connections waiting for
// their peer are idle (one busy with its Handler is making progress).
// nil: none can be evicted.
func (l *Listener) victimLocked() (*Conn, Reason) {
	var unframed, idle *Conn
	var ku, ki int64
	var wu int32
	for _, c := range l.live {
		ws := c.waitSince.Load()
		if !c.framed.Load() {
			k := ws
			if k == 0 {
				k = 1 << 62 // busy (a handshake): the last choice
			}
			w := int32(1)
			if c.srcN != nil {
				w = c.srcN.unframed.Load()
			}
			if unframed == nil || w > wu || w == wu && (k < ku || k == ku && c.seq < unframed.seq) {
				unframed, ku, wu = c, k, w
			}
			continue
		}
		if ws != 0 && c.writeSince.Load() == 0 && (idle == nil || ws < ki || ws == ki && c.seq < idle.seq) {
			idle, ki = c, ws
		}
	}
	switch {
	case unframed != nil:
		return unframed, EvictedUnframed
	case idle != nil:
		return idle, EvictedIdle
	}
	return nil, None
}

// source counts a source address's live connections.
type source struct {
	live     int          // guarded by l.mu
	unframed atomic.Int32 // of them, those that have not sent a complete frame
}

func (l *Listener) addLocked(c *Conn) {
	l.seq++
	c.seq = l.seq
	c.state = stLive
	c.idx = len(l.live)
	l.live = append(l.live, c)
	if c.src.IsValid() {
		sc := l.perSrc[c.src]
		if sc == nil {
			sc = &source{}
			l.perSrc[c.src] = sc
		}
		sc.live++
		sc.unframed.Add(1)
		c.srcN = sc
		c.unframedHeld.Store(true)
	}
}

// unliveLocked stops counting c against the limits: it is being closed,
// gracefully (draining) when r says so.
func (l *Listener) unliveLocked(c *Conn, r Reason) {
	if c.state != stLive {
		return
	}
	last := len(l.live) - 1
	l.live[c.idx] = l.live[last]
	l.live[c.idx].idx = c.idx
	l.live[last] = nil
	l.live = l.live[:last]
	c.idx = -1
	if sc := c.srcN; sc != nil {
		c.releaseUnframed()
		if sc.live--; sc.live == 0 {
			delete(l.perSrc, c.src)
		}
	}
	c.state = stGone
	if r.graceful() {
		c.state = stDraining
		c.drainUntil.Store(l.clock.Load() + int64(l.lim.CloseGrace))
		l.draining[c] = struct{}{}
	}
}

// serve runs one connection: the TLS handshake, then the Handler.
func (l *Listener) serve(c *Conn, h Handler) {
	defer l.done(c)
	if c.tc != nil {
		err := c.tc.Handshake()
		c.handshaking.Store(false)
		if err != nil {
			l.drop(c, HandshakeError, err)
			return
		}
		// The handshake's bytes were no frame.
		c.partial, c.waited = false, 0
		c.start.Store(l.clock.Load())
	}
	h(c)
}

// done releases a connection whose goroutine ends.
func (l *Listener) done(c *Conn) {
	c.raw.Close()
	l.mu.Lock()
	l.unliveLocked(c, None)
	delete(l.draining, c)
	c.state = stGone
	l.mu.Unlock()
	l.open.Add(-1)
	l.wg.Done()
}

// drop closes a live connection for r, unless it is closed already (then
// r is not counted: the first reason stands).
func (l *Listener) drop(c *Conn, r Reason, err error) {
	l.mu.Lock()
	live := c.state == stLive && !l.closed
	l.unliveLocked(c, r)
	l.mu.Unlock()
	if live {
		l.closeConn(c, r, err)
	}
}

// closeConn counts, logs and carries out the listener's decision to close
// c for r. The caller has taken c out of the live set.
func (l *Listener) closeConn(c *Conn, r Reason, err error) {
	if !c.reason.CompareAndSwap(0, uint32(r)) {
		return
	}
	l.closedBy[r].Add(1)
	l.logReason(r, c, err)
	if l.unparkForClose(c) {
		// No goroutine serves it (its peer never sent): release it here.
		hardClose(c.raw)
		l.done(c)
		return
	}
	if !r.graceful() {
		hardClose(c.raw)
		return
	}
	// Graceful: FIN now, so a sender sees the close before its next
	// send; read what it wrote before that until the grace ends. TLS too
	// gets a bare FIN, no close_notify: rsyslog's gtls driver checks the
	// connection with a peek at the raw socket, and the alert's bytes
	// would look like a live connection, while the FIN reads as closed.
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.raw.Close()
	}
}

// hardClose closes with a reset (SO_LINGER 0): nothing is kept for a peer
// we are refusing or dropping, and no TIME_WAIT is left behind.
func hardClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// sweep enforces the deadlines every tick, and advances the clock.
func (l *Listener) sweep() {
	defer l.wg.Done()
	t := time.NewTicker(l.lim.tick())
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := l.advance()
		acts := l.victims[:0]
		l.mu.Lock()
		for _, c := range l.live {
			if r := l.expired(c, now); r != None && !(r.waitsForPeer() && c.inputPending()) {
				acts = append(acts, action{c, r})
			}
		}
		for c := range l.draining {
			if now >= c.drainUntil.Load() {
				acts = append(acts, action{c, None})
			}
		}
		for _, a := range acts {
			if a.r == None {
				delete(l.draining, a.c)
				a.c.state = stGone
			} else {
				l.unliveLocked(a.c, a.r)
			}
		}
		l.mu.Unlock()
		for i, a := range acts {
			if a.r == None {
				hardClose(a.c.raw) // the grace is over
			} else {
				l.closeConn(a.c, a.r, nil)
			}
			acts[i] = action{}
		}
		l.victims = acts[:0]
		l.afterFlood(now)
	}
}

// advance moves the clock on by the real time since the last advance,
// but by no more than maxStep: when the sweeper runs late, the process was
// short of CPU, and its readers (stamping the stale clock, or not yet
// scheduled to read what arrived) were no more waiting for their peers
// than the sweeper was. Counting that time would close connections whose
// peers did send in time.
func (l *Listener) advance() int64 {
	real := l.now()
	d := min(real-l.lastReal, l.maxStep)
	l.lastReal = real
	now := l.clock.Load() + d
	l.clock.Store(now)
	return now
}

// Memory after a flood: connections that come and go by the thousand
// leave their goroutine stacks and buffers as garbage, and with little
// allocation afterwards the runtime would take minutes to collect it and
// give it back. Once a flood of at least floodCloses connections closed by
// the listener has been quiet for floodQuiet, the memory is given back at
// once (one forced collection, at most once per floodQuiet per process).
const (
	floodCloses = 256
	floodQuiet  = 5 * time.Second
)

// lastRelease is when memory was last given back, process-wide.
var lastRelease atomic.Int64

func (l *Listener) afterFlood(now int64) {
	var total uint64
	for r := range l.closedBy {
		total += l.closedBy[r].Load()
	}
	if total != l.floodSeen {
		l.floodCloses += total - l.floodSeen
		l.floodSeen = total
		l.floodLast = now
		return
	}
	if l.floodCloses < floodCloses || now-l.floodLast < int64(floodQuiet) {
		return
	}
	l.floodCloses = 0
	last := lastRelease.Load()
	wall := time.Now().UnixNano()
	if wall-last < int64(floodQuiet) || !lastRelease.CompareAndSwap(last, wall) {
		return
	}
	l.log.Info("connection flood over; returning its memory to the OS")
	debug.FreeOSMemory()
}

// expired returns the deadline c has passed, or None. Only time spent
// waiting for the peer counts, except for the TLS handshake: a Handler
// held up by backpressure is never closed for it.
func (l *Listener) expired(c *Conn, now int64) Reason {
	lim := &l.lim
	if c.handshaking.Load() {
		if on(lim.HandshakeTimeout) && now-c.start.Load() > int64(lim.HandshakeTimeout) {
			return HandshakeTimeout
		}
		return None
	}
	if ws := c.writeSince.Load(); ws != 0 && on(lim.WriteTimeout) && now-ws > int64(lim.WriteTimeout) {
		return WriteTimeout
	}
	ws := c.waitSince.Load()
	if ws == 0 {
		return None
	}
	if on(lim.FirstFrameTimeout) && !c.framed.Load() && now-c.start.Load() > int64(lim.FirstFrameTimeout) {
		return FirstFrameTimeout
	}
	if pa := c.partialAt.Load(); pa != 0 && on(lim.FrameTimeout) && now-pa > int64(lim.FrameTimeout) {
		return FrameTimeout
	}
	if on(lim.IdleTimeout) && now-ws > int64(lim.IdleTimeout) {
		return IdleTimeout
	}
	return None
}

// logReason writes the reason's rate-limited log line.
func (l *Listener) logReason(r Reason, c *Conn, err error) {
	lim := &l.lim
	level := slog.LevelWarn
	var msg string
	args := []any{"reason", r.String(), "peer", c.peer}
	switch r {
	case HandshakeTimeout:
		msg = "tls handshake not finished in time; connection closed"
		args = append(args, "handshake_timeout", lim.HandshakeTimeout)
	case HandshakeError:
		msg = "tls handshake failed; connection closed"
	case FirstFrameTimeout:
		msg = "no complete frame in time; connection closed"
		args = append(args, "first_frame_timeout", lim.FirstFrameTimeout)
	case FrameTimeout:
		msg = "frame left incomplete (slowloris?); connection closed"
		args = append(args, "frame_timeout", lim.FrameTimeout)
	case IdleTimeout:
		level = slog.LevelInfo
		msg = "idle connection closed; a sender reconnects when it next sends"
		args = append(args, "idle_timeout", lim.IdleTimeout)
	case WriteTimeout:
		msg = "peer does not read; connection closed"
		args = append(args, "write_timeout", lim.WriteTimeout)
	case EvictedUnframed:
		msg = "max_connections reached: evicted a connection that never sent a frame"
		args = append(args, "max_connections", lim.MaxConnections)
	case EvictedIdle:
		msg = "max_connections reached: evicted the longest-idle connection"
		args = append(args, "max_connections", lim.MaxConnections)
	case PerSourceLimit:
		msg = "connection refused: max_connections_per_source reached"
		args = append(args, "max_connections_per_source", lim.MaxPerSource)
	case MaxConnections:
		msg = "connection refused: max_connections reached and every connection is busy"
		args = append(args, "max_connections", lim.MaxConnections)
	default:
		return
	}
	if err != nil {
		args = append(args, "err", err)
	}
	args = append(args, "total", l.closedBy[r].Load())
	l.logs[r].Log(l.log, level, msg, args...)
}

// Close stops accepting (it closes every net.Listener given to Serve) and
// closes every connection. Handlers see their reads fail and return; Wait
// waits for them. Safe to call more than once.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.wakeParkingLocked()
	lns := l.lns
	conns := append([]*Conn(nil), l.live...)
	for c := range l.draining {
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.state, c.idx = stGone, -1
	}
	var parked []*Conn
	for id, c := range l.parked {
		parked = append(parked, c)
		c.parkID = 0
		delete(l.parked, id)
	}
	clear(l.live)
	l.live = l.live[:0]
	clear(l.draining)
	clear(l.perSrc)
	l.mu.Unlock()
	l.stopOnce.Do(func() { close(l.stop) })
	var errs []error
	for _, ln := range lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close %s: %w", ln.Addr(), err))
		}
	}
	for _, c := range conns {
		c.raw.Close()
	}
	for _, c := range parked {
		l.done(c) // no goroutine serves it
	}
	return errors.Join(errs...)
}

// Wait waits until every Serve has returned and every Handler has, or ctx
// is done (the goroutines then finish on their own).
func (l *Listener) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
