package tap

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// Defaults for HubConfig's zero values.
const (
	DefaultMaxClients = 64
	DefaultQueueLen   = 4096
)

// noticeEvery is how often a client hears about its drops (coalesced) and,
// with rates=1, about stream rates.
const noticeEvery = time.Second

// coalesce is how long a client's writer lets a slow stream gather before
// it writes again: the latency a tap adds, traded for fewer syscalls.
const coalesce = time.Millisecond

// HubConfig configures a Hub.
type HubConfig struct {
	Token      string // required from clients when not empty
	MaxClients int    // concurrent taps; beyond it the hub answers 503 (default 64)
	QueueLen   int    // events queued per client before they are dropped (default 4096)
}

// HubStats is a counters snapshot for the relay's /metrics.
type HubStats struct {
	Clients int    // connected now
	Sent    uint64 // events written to clients, in all
	Dropped uint64 // events dropped because a client's queue was full, in all
}

// Hub fans events out to websocket taps. The router calls Publish for every
// event; each client has its own bounded queue and writer goroutine, so a
// slow or stalled client loses events (counted, and told in-band) and never
// slows the relay or the other clients.
type Hub struct {
	cfg      HubConfig
	log      *slog.Logger
	upgrader websocket.Upgrader

	active  atomic.Int32              // len(*clients): Publish's fast path
	clients atomic.Pointer[[]*client] // copy on write under mu
	rates   rateCounter               // counts per stream while a client wants rates
	mu      sync.Mutex                // guards writes to clients, and closed
	closed  bool
	closing atomic.Bool  // closed, readable without mu
	slots   atomic.Int32 // connections admitted, including those still upgrading
	sent    atomic.Uint64
	dropped atomic.Uint64
	wg      sync.WaitGroup
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
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, log: log}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 5 * time.Second,
		// Browsers send Origin; the token, not the origin, is the access
		// control, and the web page may be served under another name.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	h.clients.Store(&[]*client{})
	h.rates.init()
	return h
}

// Publish offers ev to every client. It never blocks: with no client it
// costs one atomic load; otherwise a stream check and a non-blocking
// enqueue per client, dropping (and counting) when a queue is full. The
// client's goroutine applies the rest of its filter and encodes the event
// later, so ev must not be modified after it is published.
func (h *Hub) Publish(ev *event.Event) { h.PublishBatch([]*event.Event{ev}) }

// PublishBatch is Publish for each of evs, in order, the way the router
// calls it (one code path for both): each client's queue is locked once per run of events its stream
// globs take (once per batch for a tap on every stream) rather than once
// per event, and a queue that fills takes the prefix that fits and drops
// the rest, counted exactly as Publish counts them.
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
	for _, c := range *h.clients.Load() {
		if len(c.filter.globs) == 0 {
			c.offer(evs)
			continue
		}
		// A batch is mostly runs of one stream: match each run once.
		var last string
		lastOK, start := false, -1
		for i, ev := range evs {
			if i == 0 || ev.Stream != last {
				last, lastOK = ev.Stream, c.filter.MatchStream(ev.Stream)
			}
			switch {
			case lastOK && start < 0:
				start = i
			case !lastOK && start >= 0:
				c.offer(evs[start:i])
				start = -1
			}
		}
		if start >= 0 {
			c.offer(evs[start:])
		}
	}
}

// offer queues what fits of evs and counts the rest as dropped.
func (c *client) offer(evs []*event.Event) {
	if n := c.q.pushMany(evs); n < len(evs) {
		d := uint64(len(evs) - n)
		c.dropped.Add(d)
		c.hub.dropped.Add(d)
	}
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{
		Clients: int(h.active.Load()),
		Sent:    h.sent.Load(),
		Dropped: h.dropped.Load(),
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
		q:      newEvQueue(h.cfg.QueueLen),
		done:   make(chan struct{}),
		peer:   r.RemoteAddr,
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
	if err := bw.conn.Flush(); err != nil { // the handshake response
		ws.Close() // the goroutines below fail at once and clean up
	}
	h.log.Info("tap client connected", "peer", c.peer, "filter", f.Query().Encode(), "raw", raw)
	go c.readLoop()
	go c.writeLoop()
}

func (h *Hub) authorized(r *http.Request) bool {
	if h.cfg.Token == "" {
		return true
	}
	tok := r.URL.Query().Get("token")
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			tok = strings.TrimSpace(t)
		}
	}
	return subtle.ConstantTimeCompare([]byte(tok), []byte(h.cfg.Token)) == 1
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
	filter *Filter // MatchStream is read by Publish; the rest only by writeLoop
	raw    bool
	rates  bool
	// prevRates is the rate counters' baseline when the client registered.
	prevRates map[string]uint64
	peer      string

	q        *evQueue
	dropped  atomic.Uint64
	done     chan struct{}
	stopOnce sync.Once
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

// readLoop reads (and discards) what the client sends, so control frames
// are answered and a disconnect is noticed.
func (c *client) readLoop() {
	defer c.hub.wg.Done()
	c.ws.SetReadLimit(4096)
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			c.stop(websocket.CloseNormalClosure, "")
			return
		}
	}
}

// writeLoop filters, encodes and writes the queued events, and the notices.
// It takes the whole queue at once and flushes the connection after each
// batch, so a busy tap costs one write syscall per batch rather than per
// event.
func (c *client) writeLoop() {
	defer c.hub.wg.Done()
	defer c.hub.remove(c)
	tick := time.NewTicker(noticeEvery)
	defer tick.Stop()
	var (
		buf       []byte
		reported  uint64
		prevRates map[string]uint64
		lastTick  = time.Now()
		batch     = make([]*event.Event, 0, c.q.max)
		pause     = time.NewTimer(coalesce)
	)
	defer pause.Stop()
	prevRates = c.prevRates
	fail := func(err error) {
		c.hub.log.Debug("tap client write failed", "peer", c.peer, "err", err)
		c.stop(websocket.CloseInternalServerErr, "write failed")
	}
	for {
		select {
		case <-c.done:
			return
		case <-c.q.wake:
			batch = c.q.take(batch)
			var sent uint64
			for _, ev := range batch {
				if !c.filter.MatchEvent(ev) || !c.filter.sampled() {
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
			c.hub.sent.Add(sent)
			if err := c.bc.Flush(); err != nil {
				fail(err)
				return
			}
			if len(batch) < c.q.max/16 {
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
		case now := <-tick.C:
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
