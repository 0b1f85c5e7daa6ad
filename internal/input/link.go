package input

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// LinkConfig configures a link input: the receiving end of another
// relay's link output.
type LinkConfig struct {
	Name          string
	Bind          []string // tcp://host:port
	TLS           *tls.Config
	Security      zmq.Security // the ZMTP mechanism (CURVE); nil: NULL
	AllowInsecure bool
	StateDir      string
	MaxBatch      int
	// Limits are the sessions' connection limits and deadlines, those of
	// the syslog and RELP inputs (zero fields: listen's defaults).
	Limits listen.Limits
}

// Link is a link input. Its events keep what the sending relay gave them
// (raw bytes, stream, original input, peer, received time), so the router
// routes them by their stream without deriving it again.
type Link struct {
	name string
	r    *link.Receiver
	c    counters
}

// NewLink opens the link input's state; nothing listens until Start.
func NewLink(cfg LinkConfig, log *slog.Logger) (*Link, error) {
	lim := cfg.Limits
	r, err := link.NewReceiver(link.ReceiverConfig{
		Name: cfg.Name, Listen: cfg.Bind, TLS: cfg.TLS, Security: cfg.Security, AllowInsecure: cfg.AllowInsecure,
		StateDir: cfg.StateDir, MaxBatch: cfg.MaxBatch, Limits: lim, Logger: orDiscard(log),
	})
	if err != nil {
		return nil, err
	}
	return &Link{name: cfg.Name, r: r}, nil
}

// Name implements Input.
func (l *Link) Name() string { return l.name }

// Start implements Input.
func (l *Link) Start(h Handler) error {
	// Not deliver: the events keep the input and received time the
	// sending relay gave them.
	return l.r.Start(func(batch []*event.Event) {
		var n int
		for _, e := range batch {
			n += len(e.Raw)
		}
		l.c.handOver(h, batch, n, time.Now())
	})
}

// Addrs implements Input.
func (l *Link) Addrs() []net.Addr { return l.r.Addrs() }

// Stop implements Input: no new sessions; what was read is handed off.
func (l *Link) Stop(ctx context.Context) error { return l.r.Stop(ctx) }

// Stats implements Input.
func (l *Link) Stats() Stats {
	s := l.c.snapshot()
	rs := l.r.Stats()
	addListenStats(&s, rs.Listener)
	s.Connections = rs.Sessions
	s.Malformed = rs.Malformed
	return s
}

// LinkStats returns the receiver's own counters (sessions, duplicates
// suppressed, marks, refusals).
func (l *Link) LinkStats() link.ReceiverStats { return l.r.Stats() }

var _ Input = (*Link)(nil)
