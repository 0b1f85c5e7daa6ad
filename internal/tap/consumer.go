package tap

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Source is a relay PUB endpoint (tcp://host:port, ipc:///path) or a
	// relay's websocket (ws://host:port or wss://…; the path defaults to
	// /v1/tap).
	Source string
	// Filter selects events (nil: all). Stream globs are pushed down as
	// subscription prefixes (PUB) or query parameters (websocket, where the
	// relay applies the whole filter).
	Filter *Filter
	// Raw asks a websocket for the raw syslog messages instead of JSON.
	// Raw messages carry no stream, so Message.Stream is empty.
	Raw bool
	// Token is sent to a websocket as Authorization: Bearer.
	Token string
	// TLS configures wss:// (nil: system roots).
	TLS *tls.Config
	// NoReconnect makes Recv fail once the source goes away instead of
	// reconnecting; the first connection must also succeed within
	// ConnectTimeout.
	NoReconnect bool
	// ConnectTimeout bounds the first connection with NoReconnect (default 5s).
	ConnectTimeout time.Duration
	// ZMQ tunes the SUB socket (security, receive queue…).
	ZMQ zmq.Options
	// Logger receives reconnect notices; nil discards.
	Logger *slog.Logger
}

// ConsumerStats are a Consumer's counters.
type ConsumerStats struct {
	Received   uint64 // events returned by Recv
	Bytes      uint64 // their payload bytes
	Dropped    uint64 // events the relay dropped for this consumer, as it reported them (websocket only), over every connection
	Skipped    uint64 // messages that were not relay events (not [stream, payload], or undecodable), logged at debug level
	Reconnects uint64 // connections re-established after a loss
}

// ErrDisconnected is returned by Recv with NoReconnect once the source is
// gone, or could not be reached.
var ErrDisconnected = errors.New("tap source disconnected")

// Consumer reads events from a relay: the library behind the tap CLI and
// the Go example. Recv is not safe for concurrent use; Stats and Close are.
type Consumer struct {
	cfg    ConsumerConfig
	log    *slog.Logger
	filter *Filter // applied locally (PUB); nil for websockets

	sub     *zmq.Sub
	pending []zmq.Msg
	batch   []zmq.Msg
	started time.Time

	wsURL  string
	wsHdr  http.Header
	dialer websocket.Dialer
	mu     sync.Mutex // guards ws against Close
	ws     *websocket.Conn
	conns  int

	received, bytes, dropped, skipped, reconnects atomic.Uint64
	closed                                        atomic.Bool
}

// NewConsumer validates cfg and starts connecting. For a PUB source the
// connection is made in the background; for a websocket on the first Recv.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	c := &Consumer{cfg: cfg, log: cfg.Logger, started: time.Now()}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Filter == nil {
		cfg.Filter = &Filter{}
		c.cfg.Filter = cfg.Filter
	}
	u, err := url.Parse(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadSource, cfg.Source, err)
	}
	switch u.Scheme {
	case "tcp", "ipc":
		o := cfg.ZMQ
		if o.Logger == nil {
			o.Logger = cfg.Logger
		}
		c.sub = zmq.NewSub(o)
		c.filter = cfg.Filter
		prefixes := cfg.Filter.Prefixes()
		if prefixes == nil {
			prefixes = []string{""}
		}
		for _, p := range prefixes {
			if err := c.sub.Subscribe(p); err != nil {
				c.sub.Close()
				return nil, fmt.Errorf("subscribe %q: %w", p, err)
			}
		}
		if err := c.sub.Dial(cfg.Source); err != nil {
			c.sub.Close()
			return nil, fmt.Errorf("dial %q: %w", cfg.Source, err)
		}
		c.batch = make([]zmq.Msg, 256)
	case "ws", "wss":
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/tap"
		}
		q := u.Query()
		for k, v := range cfg.Filter.Query() {
			q[k] = v
		}
		if cfg.Raw {
			q.Set("format", "raw")
		}
		u.RawQuery = q.Encode()
		c.wsURL = u.String()
		c.wsHdr = http.Header{}
		if cfg.Token != "" {
			c.wsHdr.Set("Authorization", "Bearer "+cfg.Token)
		}
		c.dialer = websocket.Dialer{
			HandshakeTimeout: 5 * time.Second,
			TLSClientConfig:  cfg.TLS,
			ReadBufferSize:   64 << 10,
		}
	default:
		return nil, fmt.Errorf("%w %q: use tcp://host:port or ipc:///path for a relay PUB endpoint, ws:// or wss:// for its websocket", ErrBadSource, cfg.Source)
	}
	return c, nil
}

// Recv returns the next event that passes the filter. It waits until one
// arrives, ctx ends, Close is called (ErrClosed) or, with NoReconnect, the
// source goes away (ErrDisconnected).
func (c *Consumer) Recv(ctx context.Context) (Message, error) {
	if c.sub != nil {
		return c.recvPub(ctx)
	}
	return c.recvWS(ctx)
}

func (c *Consumer) recvPub(ctx context.Context) (Message, error) {
	for {
		for len(c.pending) > 0 {
			m := c.pending[0]
			c.pending = c.pending[1:]
			if len(m) < 2 {
				c.skipped.Add(1) // not a relay event: [stream, payload]
				continue
			}
			if !c.filter.MatchStream(string(m[0])) {
				continue
			}
			// Without field filters the stream decides: sample before
			// paying for the decode.
			byEvent := c.filter.needsEvent()
			if !byEvent && !c.filter.sampled() {
				continue
			}
			msg, err := Decode(m[0], m[len(m)-1])
			if err != nil {
				c.skipped.Add(1)
				c.log.Debug("tap: undecodable message", "err", err)
				continue
			}
			if byEvent && (!c.filter.MatchEvent(msg.Event()) || !c.filter.sampled()) {
				continue
			}
			c.received.Add(1)
			c.bytes.Add(uint64(len(m[len(m)-1])))
			return msg, nil
		}
		if c.closed.Load() {
			return Message{}, ErrClosed
		}
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if c.cfg.NoReconnect {
			// Poll the socket's health: ZeroMQ reconnects silently.
			rctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
		}
		n, err := c.sub.RecvBatch(rctx, c.batch)
		cancel()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return Message{}, ctx.Err()
			case errors.Is(err, zmq.ErrClosed) || c.closed.Load():
				return Message{}, ErrClosed
			case errors.Is(err, context.DeadlineExceeded):
				st := c.sub.Stats()
				if st.Disconnects > 0 {
					return Message{}, fmt.Errorf("%w: %s went away", ErrDisconnected, c.cfg.Source)
				}
				if st.Connects == 0 && time.Since(c.started) > c.cfg.ConnectTimeout {
					return Message{}, fmt.Errorf("%w: no connection to %s within %v", ErrDisconnected, c.cfg.Source, c.cfg.ConnectTimeout)
				}
				continue
			}
			return Message{}, fmt.Errorf("receive from %s: %w", c.cfg.Source, err)
		}
		c.pending = c.batch[:n]
	}
}

func (c *Consumer) recvWS(ctx context.Context) (Message, error) {
	for {
		ws, err := c.connectWS(ctx)
		if err != nil {
			return Message{}, err
		}
		stop := context.AfterFunc(ctx, func() { ws.SetReadDeadline(time.Now()) })
		_, b, err := ws.ReadMessage()
		stop()
		if err != nil {
			c.dropWS(ws)
			switch {
			case ctx.Err() != nil:
				return Message{}, ctx.Err()
			case c.closed.Load():
				return Message{}, ErrClosed
			case c.cfg.NoReconnect:
				return Message{}, fmt.Errorf("%w: %s: %v", ErrDisconnected, c.cfg.Source, err)
			}
			c.log.Warn("tap: websocket lost, reconnecting", "source", c.cfg.Source, "err", err)
			continue
		}
		if isNotice(b) {
			c.notice(b)
			continue
		}
		msg, err := Decode(nil, b)
		if err != nil {
			c.skipped.Add(1)
			c.log.Debug("tap: undecodable message", "err", err)
			continue
		}
		c.received.Add(1)
		c.bytes.Add(uint64(len(b)))
		return msg, nil
	}
}

func (c *Consumer) notice(b []byte) {
	var n Notice
	if err := json.Unmarshal(b, &n); err != nil {
		return
	}
	if n.Notice == "dropped" {
		// Total restarts with every connection: add the deltas.
		c.dropped.Add(n.Dropped)
		c.log.Warn("tap: the relay dropped events for this tap", "dropped", n.Dropped, "total", n.Total)
	}
}

// connectWS returns the current websocket, dialling (with backoff unless
// NoReconnect) when there is none.
func (c *Consumer) connectWS(ctx context.Context) (*websocket.Conn, error) {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		return ws, nil
	}
	backoff := 100 * time.Millisecond
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
		ws, resp, err := c.dialer.DialContext(dctx, c.wsURL, c.wsHdr)
		cancel()
		if err == nil {
			c.mu.Lock()
			if c.closed.Load() {
				c.mu.Unlock()
				ws.Close()
				return nil, ErrClosed
			}
			c.ws = ws
			if c.conns++; c.conns > 1 {
				c.reconnects.Add(1)
			}
			c.mu.Unlock()
			return ws, nil
		}
		if resp != nil {
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				return nil, fmt.Errorf("%w: %s: give the relay's tap token (--token or --token-file)", ErrUnauthorized, c.cfg.Source)
			case http.StatusBadRequest:
				return nil, fmt.Errorf("%w: %s refused the filter: %s", ErrBadFilter, c.cfg.Source, readBody(resp))
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if c.cfg.NoReconnect {
			return nil, fmt.Errorf("%w: dial %s: %v", ErrDisconnected, c.cfg.Source, err)
		}
		c.log.Debug("tap: dial failed, retrying", "source", c.cfg.Source, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (c *Consumer) dropWS(ws *websocket.Conn) {
	c.mu.Lock()
	if c.ws == ws {
		c.ws = nil
	}
	c.mu.Unlock()
	ws.Close()
}

func readBody(resp *http.Response) string {
	var sb strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	sb.Write(buf[:n])
	return strings.TrimSpace(sb.String())
}

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Received:   c.received.Load(),
		Bytes:      c.bytes.Load(),
		Dropped:    c.dropped.Load(),
		Skipped:    c.skipped.Load(),
		Reconnects: c.reconnects.Load() + c.subReconnects(),
	}
}

func (c *Consumer) subReconnects() uint64 {
	if c.sub == nil {
		return 0
	}
	if n := c.sub.Stats().Connects; n > 1 {
		return n - 1
	}
	return 0
}

// Close disconnects; a blocked Recv returns ErrClosed.
func (c *Consumer) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if c.sub != nil {
		return c.sub.Close()
	}
	c.mu.Lock()
	ws := c.ws
	c.ws = nil
	c.mu.Unlock()
	if ws != nil {
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		return ws.Close()
	}
	return nil
}
