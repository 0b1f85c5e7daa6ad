package tap

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// Defaults for HubConfig's zero values.
const (
	DefaultMaxClients   = 64
	DefaultQueueLen     = 4096
	DefaultQueueBytes   = 4 << 20
	DefaultWriteTimeout = 10 * time.Second
	DefaultPingInterval = 5 * time.Second
	// DefaultFilterCPU is the share of one core that all clients' filters
	// may use together (stream globs, field matches, grep); a client over
	// its part skips events (counted as dropped) until it is back under.
	DefaultFilterCPU = 0.25
)

// noticeEvery is how often a client hears about its drops (coalesced) and,
// with rates=1, about stream rates.
const noticeEvery = time.Second

// coalesce is how long a client's writer lets a slow stream gather before
// it writes again: the latency a tap adds, traded for fewer syscalls.
const coalesce = time.Millisecond

// maxStreamMemo bounds a client's memo of which streams its globs take.
const maxStreamMemo = 1024

// HubConfig configures a Hub.
type HubConfig struct {
	Token      string // required from clients when not empty; SetToken replaces it
	MaxClients int    // concurrent taps; beyond it the hub answers 503 (default 64)
	QueueLen   int    // events queued per client before they are dropped (default 4096)
	// QueueBytes bounds a client's queue in bytes as well: raw bytes plus
	// 256 per event (default 4 MiB).
	QueueBytes int64
	// WriteTimeout closes a client whose connection takes nothing for
	// this long (default 10s, <0: none).
	WriteTimeout time.Duration
	// PingInterval is how often clients are pinged; a client that sends
	// nothing (no pong) within PingInterval+WriteTimeout is closed
	// (default 5s, <0: no pings, no read deadline).
	PingInterval time.Duration
	// AllowedOrigins are web origins (scheme://host[:port]) whose pages
	// may connect besides the hub's own (same Host); "*" allows any.
	// Requests without an Origin header (not from a browser) are allowed.
	AllowedOrigins []string
	// FilterCPU is the share of one core all clients' filters may use
	// together (default DefaultFilterCPU, <0: unlimited).
	FilterCPU float64
}

// HubStats is a counters snapshot for the relay's /metrics.
type HubStats struct {
	Clients int    // connected now
	Sent    uint64 // events written to clients, in all
	Dropped uint64 // events a client lost: its queue was full, or its filter over its CPU share
	// Throttled is the part of Dropped skipped because a client's filter
	// was over its CPU share.
	Throttled uint64
	// OriginRefused counts upgrades refused for a foreign Origin.
	OriginRefused uint64
	// TimedOut counts clients closed because they stopped reading (write
	// deadline) or answering pings.
	TimedOut uint64
}

// Hub fans events out to websocket taps. The router calls PublishBatch
// for every batch: the hub copies it once and each client's queue takes a
// reference (a lock and an append per client, whatever the batch holds and
// whatever the client's filter); each client's own goroutine filters,
// encodes and writes. A slow, stalled or expensive client loses events
// (counted, and told in-band) and never costs the relay more than that.
type Hub struct {
	cfg      HubConfig
	log      *slog.Logger
	upgrader websocket.Upgrader
	token    atomic.Pointer[string]

	active  atomic.Int32              // len(*clients): Publish's fast path
	clients atomic.Pointer[[]*client] // copy on write under mu
	rates   rateCounter               // counts per stream while a client wants rates
	mu      sync.Mutex                // guards writes to clients, and closed
	closed  bool
	closing atomic.Bool  // closed, readable without mu
	slots   atomic.Int32 // connections admitted, including those still upgrading
	sent    atomic.Uint64
	dropped atomic.Uint64
	// throttled, originRefused and timedOut: see HubStats.
	throttled, originRefused, timedOut atomic.Uint64
	refusedLog                         atomic.Int64 // unix ns of the last origin-refused log line
	wg                                 sync.WaitGroup
}

// NewHub returns a Hub; mount Handler at /v1/tap and WebHandler at /.
// log may be nil.
func NewHub(cfg HubConfig, log *slog.Logger) *Hub {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.FilterCPU == 0 {
		cfg.FilterCPU = DefaultFilterCPU
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, log: log}
	h.SetToken(cfg.Token)
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 5 * time.Second,
		// serveTap checks the origin first and answers with the reason;
		// this is the same check, should the upgrader be reached otherwise.
		CheckOrigin: h.originAllowed,
	}
	h.clients.Store(&[]*client{})
	h.rates.init()
	return h
}

// SetToken replaces the token new clients must send ("" for none); the
// relay calls it when a reload re-reads the token file. Connected clients
// keep their connection.
func (h *Hub) SetToken(tok string) { h.token.Store(&tok) }

// Publish offers ev to every client. It never blocks: with no client it
// costs one atomic load. ev must not be modified after it is published.
func (h *Hub) Publish(ev *event.Event) { h.PublishBatch([]*event.Event{ev}) }

// PublishBatch offers evs to every client, the way the router calls it.
// It never blocks and never looks at a client's filter: with no client it
// costs one atomic load; otherwise one copy of the batch's pointers, then
// per client a lock and an append of a reference. A queue that is full
// takes the prefix that fits (in events and bytes) and the rest is
// dropped, counted for the client and the hub. evs may be reused by the
// caller once PublishBatch returns; the events must not be modified.
func (h *Hub) PublishBatch(evs []*event.Event) {
	if h.active.Load() == 0 || len(evs) == 0 {
		return
	}
	if h.rates.watchers.Load() > 0 {
		for i := 0; i < len(evs); {
			j := i + 1
			for j < len(evs) && evs[j].Stream == evs[i].Stream {
				j++
			}
			h.rates.addN(evs[i].Stream, uint64(j-i))
			i = j
		}
	}
	var b *batch // made once, when a client has room
	for _, c := range *h.clients.Load() {
		n := 0
		// Until the batch is made, a full queue is found out without
		// making it; once it is, push alone tells.
		if b != nil || !c.q.full() {
			if b == nil {
				b = newBatch(evs)
			}
			n = c.q.push(b)
		}
		if n < len(evs) {
			c.drop(uint64(len(evs) - n))
		}
	}
}

// drop counts events the client lost.
func (c *client) drop(n uint64) {
	c.dropped.Add(n)
	c.hub.dropped.Add(n)
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{
		Clients:       int(h.active.Load()),
		Sent:          h.sent.Load(),
		Dropped:       h.dropped.Load(),
		Throttled:     h.throttled.Load(),
		OriginRefused: h.originRefused.Load(),
		TimedOut:      h.timedOut.Load(),
	}
}

// Close disconnects every client and waits for their goroutines. New
// connections are refused with 503 afterwards.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.closing.Store(true)
	cs := *h.clients.Load()
	h.mu.Unlock()
	for _, c := range cs {
		c.stop(websocket.CloseGoingAway, "relay shutting down")
	}
	h.wg.Wait()
}

// Handler serves the websocket tap; the relay mounts it at /v1/tap.
func (h *Hub) Handler() http.Handler { return http.HandlerFunc(h.serveTap) }

func (h *Hub) serveTap(w http.ResponseWriter, r *http.Request) {
	if h.closing.Load() {
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	if !h.originAllowed(r) {
		http.Error(w, fmt.Sprintf("%v: a page from %s may not read this relay's tap; the relay's own page may, and http.allowed_origins lists others",
			ErrForbiddenOrigin, r.Header.Get("Origin")), http.StatusForbidden)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tap"`)
		http.Error(w, "tap token missing or wrong: send Authorization: Bearer TOKEN or ?token=TOKEN", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	f, err := ParseQuery(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw := false
	switch q.Get("format") {
	case "", "json":
	case "raw":
		raw = true
	default:
		http.Error(w, fmt.Sprintf("%v: format %q: want json or raw", ErrBadFilter, q.Get("format")), http.StatusBadRequest)
		return
	}
	if n := h.slots.Add(1); int(n) > h.cfg.MaxClients {
		h.slots.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("%v: %d taps connected, the limit is %d", ErrTooManyClients, n-1, h.cfg.MaxClients), http.StatusServiceUnavailable)
		return
	}
	bw := &bufferedHijacker{ResponseWriter: w}
	ws, err := h.upgrader.Upgrade(bw, r, nil)
	if err != nil {
		h.slots.Add(-1)
		return // the upgrader has answered the client
	}
	c := &client{
		hub:    h,
		ws:     ws,
		bc:     bw.conn,
		filter: f,
		raw:    raw,
		rates:  q.Get("rates") == "1",
		q:      newEvQueue(h.cfg.QueueLen, h.cfg.QueueBytes),
		done:   make(chan struct{}),
		peer:   r.RemoteAddr,
	}
	if len(f.globs) > 0 {
		c.memo = map[string]bool{}
	}
	if c.rates {
		// The baseline is taken before registering: every event published
		// once the client is visible counts in its first rates notice.
		c.prevRates = h.rates.snapshot()
	}
	// Register before the client sees the handshake response, so every
	// event published after its dial returns reaches it.
	if !h.add(c) {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "relay shutting down"), time.Now().Add(time.Second))
		c.bc.Flush()
		ws.Close()
		h.slots.Add(-1)
		return
	}
	if h.cfg.WriteTimeout > 0 {
		_ = c.bc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	}
	if err := bw.conn.Flush(); err != nil { // the handshake response
		ws.Close() // the goroutines below fail at once and clean up
	}
	h.log.Info("tap client connected", "peer", c.peer, "filter", f.Query().Encode(), "raw", raw)
	go c.readLoop()
	go c.writeLoop()
}

// originAllowed reports whether a request may open the tap: requests
// without an Origin (not made by a browser: the tap CLI, curl), from the
// same origin (the relay's own page: Origin's host is the Host asked
// for), or from one of AllowedOrigins. Any other web page would otherwise
// read the stream through its visitors' browsers.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range h.cfg.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	h.originRefused.Add(1)
	now := time.Now().UnixNano()
	if last := h.refusedLog.Load(); now-last >= int64(time.Second) && h.refusedLog.CompareAndSwap(last, now) {
		h.log.Warn("tap refused: a web page from another origin tried to connect", "origin", origin, "host", r.Host,
			"peer", r.RemoteAddr, "refused_total", h.originRefused.Load())
	}
	return false
}

func (h *Hub) authorized(r *http.Request) bool {
	want := *h.token.Load()
	if want == "" {
		return true
	}
	tok := r.URL.Query().Get("token")
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			tok = strings.TrimSpace(t)
		}
	}
	return subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

func (h *Hub) add(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	old := *h.clients.Load()
	cs := make([]*client, len(old), len(old)+1)
	copy(cs, old)
	cs = append(cs, c)
	h.clients.Store(&cs)
	h.active.Store(int32(len(cs)))
	if c.rates {
		h.rates.watchers.Add(1)
	}
	h.wg.Add(2) // readLoop and writeLoop; under mu so Close's Wait sees it
	return true
}

func (h *Hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.clients.Load()
	cs := make([]*client, 0, len(old))
	for _, o := range old {
		if o != c {
			cs = append(cs, o)
		}
	}
	if len(cs) == len(old) {
		return
	}
	h.clients.Store(&cs)
	h.active.Store(int32(len(cs)))
	h.slots.Add(-1)
	if c.rates {
		h.rates.watchers.Add(-1)
	}
}

// client is one websocket tap.
type client struct {
	hub    *Hub
	ws     *websocket.Conn
	bc     *bufferedConn
	filter *Filter // only writeLoop uses it
	raw    bool
	rates  bool
	// prevRates is the rate counters' baseline when the client registered.
	prevRates map[string]uint64
	peer      string

	q        *evQueue
	dropped  atomic.Uint64
	done     chan struct{}
	stopOnce sync.Once

	// writeLoop's own: which streams the globs take (bounded), and the
	// filter's CPU budget.
	memo   map[string]bool
	budget cpuBudget
}

// stop ends the client: a close frame if possible, then the connection,
// which unblocks a writer stuck on a stalled peer.
func (c *client) stop(code int, text string) {
	c.stopOnce.Do(func() {
		close(c.done)
		// A writer blocked on a stalled peer holds the connection; the
		// deadline frees it so the close frame and Close cannot hang.
		_ = c.bc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(100*time.Millisecond))
		_ = c.bc.Flush()
		_ = c.ws.Close()
	})
}

// readDeadline is how long a client may stay silent: a ping interval for
// the ping to go out, and a write timeout for the pong to come back.
func (c *client) readDeadline() time.Time {
	return time.Now().Add(c.hub.cfg.PingInterval + max(c.hub.cfg.WriteTimeout, 0))
}

// readLoop reads (and discards) what the client sends, so control frames
// are answered and a disconnect is noticed. With pings on, a client that
// sends nothing, not even a pong, within readDeadline is closed.
func (c *client) readLoop() {
	defer c.hub.wg.Done()
	c.ws.SetReadLimit(4096)
	pings := c.hub.cfg.PingInterval > 0
	if pings {
		_ = c.ws.SetReadDeadline(c.readDeadline())
		c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(c.readDeadline()) })
	}
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				c.timedOut("no pong")
			}
			c.stop(websocket.CloseNormalClosure, "")
			return
		}
		if pings {
			_ = c.ws.SetReadDeadline(c.readDeadline())
		}
	}
}

// timedOut counts and logs a client closed for not reading or answering.
func (c *client) timedOut(why string) {
	select {
	case <-c.done:
		return // closed for another reason first
	default:
	}
	c.hub.timedOut.Add(1)
	c.hub.log.Info("tap client closed: it stopped reading", "peer", c.peer, "why", why)
}

// streamOK reports whether the client's stream globs take stream,
// memoised per stream (at most maxStreamMemo of them). A glob match that
// is not memoised is timed against the client's CPU share; with the share
// used up, the stream is not matched and throttled says so.
func (c *client) streamOK(stream string) (ok, throttled bool) {
	if ok, seen := c.memo[stream]; seen {
		return ok, false
	}
	start := time.Now()
	if !c.budget.allow(start) {
		return false, true
	}
	ok = c.filter.MatchStream(stream)
	c.budget.spend(time.Since(start))
	if len(c.memo) < maxStreamMemo {
		c.memo[stream] = ok
	}
	return ok, false
}

// writeLoop filters, encodes and writes the queued events, and the
// notices and pings. It takes the whole queue at once and flushes the
// connection after each batch, so a busy tap costs one write syscall per
// batch rather than per event. Every write is bounded by WriteTimeout:
// a client that stops reading is closed and its slot freed.
func (c *client) writeLoop() {
	defer c.hub.wg.Done()
	defer c.hub.remove(c)
	tick := time.NewTicker(noticeEvery)
	defer tick.Stop()
	var pingC <-chan time.Time
	if c.hub.cfg.PingInterval > 0 {
		ping := time.NewTicker(c.hub.cfg.PingInterval)
		defer ping.Stop()
		pingC = ping.C
	}
	var (
		buf       []byte
		reported  uint64
		prevRates map[string]uint64
		lastTick  = time.Now()
		items     []span
		pause     = time.NewTimer(coalesce)
		globs     = len(c.filter.globs) > 0
		perEvent  = c.filter.needsEvent()
		// the last stream seen and whether the globs take it
		lastStream            string
		lastOK, lastThrottled bool
	)
	defer pause.Stop()
	prevRates = c.prevRates
	c.budget.init(c.hub, time.Now())
	fail := func(err error) {
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			c.timedOut("write deadline")
		}
		c.hub.log.Debug("tap client write failed", "peer", c.peer, "err", err)
		c.stop(websocket.CloseInternalServerErr, "write failed")
	}
	deadline := func() {
		if wt := c.hub.cfg.WriteTimeout; wt > 0 {
			_ = c.bc.SetWriteDeadline(time.Now().Add(wt))
		}
	}
	for {
		select {
		case <-c.done:
			return
		case <-c.q.wake:
			items = c.q.take(items)
			deadline()
			var sent, skipped uint64
			taken := 0
			for _, it := range items {
				evs := it.events()
				taken += len(evs)
				for i := 0; i < len(evs); i++ {
					ev := evs[i]
					if globs && (ev.Stream != lastStream || lastThrottled) {
						lastStream = ev.Stream
						lastOK, lastThrottled = c.streamOK(ev.Stream)
					}
					if globs && !lastOK {
						// Skip the run of this stream: the batch is mostly
						// runs, and their names are shared strings.
						j := i
						for j+1 < len(evs) && evs[j+1].Stream == ev.Stream {
							j++
						}
						if lastThrottled {
							skipped += uint64(j - i + 1)
						}
						i = j
						continue
					}
					if perEvent {
						// Matches and grep cost per event: their time counts
						// against the client's CPU share; over it, the rest
						// is skipped.
						start := time.Now()
						if !c.budget.allow(start) {
							skipped += uint64(len(evs) - i)
							break
						}
						ok := c.filter.MatchEvent(ev)
						c.budget.spend(time.Since(start))
						if !ok {
							continue
						}
					}
					if !c.filter.sampled() {
						continue
					}
					msg := ev.Raw // writeText copies it
					if !c.raw {
						buf = ev.AppendJSON(buf[:0])
						msg = buf
					}
					if err := c.bc.writeText(msg); err != nil {
						fail(err)
						return
					}
					sent++
				}
			}
			if skipped > 0 {
				c.drop(skipped)
				c.hub.throttled.Add(skipped)
			}
			c.hub.sent.Add(sent)
			if err := c.bc.Flush(); err != nil {
				fail(err)
				return
			}
			if taken < c.q.max/16 {
				// A trickle: let events gather for a moment, so a tap
				// costs at most ~1000 wake-ups and writes a second
				// instead of one per event. Big batches mean a busy
				// stream; then there is no pause, so the queue does not
				// overflow.
				pause.Reset(coalesce)
				select {
				case <-c.done:
					return
				case <-pause.C:
				}
			}
		case <-pingC:
			deadline()
			if err := c.bc.writeControl(opPing, nil); err != nil {
				fail(err)
				return
			}
			if err := c.bc.Flush(); err != nil {
				fail(err)
				return
			}
		case now := <-tick.C:
			deadline()
			if d := c.dropped.Load(); d != reported {
				buf = fmt.Appendf(buf[:0], `{"notice":"dropped","dropped":%d,"total":%d}`, d-reported, d)
				reported = d
				if err := c.bc.writeText(buf); err != nil {
					fail(err)
					return
				}
			}
			if c.rates {
				cur := c.hub.rates.snapshot()
				buf = appendRates(buf[:0], cur, prevRates, now.Sub(lastTick))
				prevRates = cur
				if err := c.bc.writeText(buf); err != nil {
					fail(err)
					return
				}
			}
			lastTick = now
			if err := c.bc.Flush(); err != nil {
				fail(err)
				return
			}
		}
	}
}

// cpuBudget is a token bucket of filter time: a client may spend its share
// of Hub.cfg.FilterCPU (split between the connected clients), with a
// burst of one second of it; while the bucket is empty its events are
// skipped. Time is measured on the wall clock, so a client also pays for
// the moments it was preempted: the budget errs on the relay's side.
type cpuBudget struct {
	hub    *Hub
	tokens time.Duration
	last   time.Time
}

func (b *cpuBudget) init(h *Hub, now time.Time) {
	b.hub, b.last = h, now
	b.tokens = b.burst()
}

func (b *cpuBudget) share() float64 {
	return b.hub.cfg.FilterCPU / float64(max(b.hub.active.Load(), 1))
}

func (b *cpuBudget) burst() time.Duration {
	return time.Duration(b.share() * float64(time.Second))
}

// allow refills the bucket up to now and reports whether it has time left.
func (b *cpuBudget) allow(now time.Time) bool {
	if b.hub.cfg.FilterCPU < 0 {
		return true
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.tokens+time.Duration(b.share()*float64(el)), b.burst())
		b.last = now
	}
	return b.tokens > 0
}

// spend takes d from the bucket; it may go below zero (one event's work is
// not interrupted), and then stays empty until refilled past zero.
func (b *cpuBudget) spend(d time.Duration) { b.tokens -= d }

// opPing is the websocket ping opcode (RFC 6455 5.5.2), with FIN set.
const opPing = 0x89

// writeControl writes one control frame (unmasked, payload < 126 bytes)
// under the connection's lock.
func (c *bufferedConn) writeControl(op byte, payload []byte) error {
	var hdr [2]byte
	hdr[0], hdr[1] = op, byte(len(payload))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write(hdr[:])
	_, err := c.w.Write(payload)
	return err
}
