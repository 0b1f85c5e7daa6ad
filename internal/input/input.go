package input

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/listen"
)

// MaxBatch is the most events an input hands to its Handler at once.
const MaxBatch = 256

// MaxStreamBatch is the most events a syslog TCP/TLS connection hands to
// its Handler at once. A batch ends as soon as the socket has no more data
// ready, so it grows past MaxBatch only when data waited in the kernel
// while the Handler blocked: behind a spooled output, whose Write returns
// once the batch is fsync'd, one connection then gets one fsync per 4096
// events instead of per 256 (measured: 0.19x of the relay without a spool
// with 256, 0.53x with 4096). It bounds, with maxBatchBytes, what a kill -9
// can take from a connection beyond the kernel's socket buffers.
const MaxStreamBatch = 4096

// maxBatchBytes caps the payload bytes of one batch, so a run of large
// messages is handed over before it piles up in memory.
const maxBatchBytes = 1 << 20

// Handler receives batches of events from an input. It may block: that is
// backpressure, and the input stops reading (TCP flow control reaches
// rsyslog). The batch slice is reused after Handler returns; the events
// are not, and belong to the Handler.
//
// Calls come from many goroutines at once (one per connection or socket).
type Handler func(batch []*event.Event)

// Input is one configured listener group.
type Input interface {
	// Name is the input's configured name, stamped on every event.
	Name() string
	// Start sets up every listener before it returns, then serves in
	// goroutines, calling h with batches of events.
	Start(h Handler) error
	// Addrs returns the bound addresses (port 0 resolved), for tests.
	Addrs() []net.Addr
	// Stop stops accepting, closes connections and waits until every event
	// already read has been handed to the Handler, or ctx is done.
	Stop(ctx context.Context) error
	// Stats returns a snapshot of the input's counters.
	Stats() Stats
}

// Stats are an input's counters. All are totals since Start except
// Connections, which is the number open now.
type Stats struct {
	Received  uint64 // events handed to the Handler
	Bytes     uint64 // payload bytes of those events
	Malformed uint64 // frames that could not be framed, ZeroMQ messages with too many frames
	Oversize  uint64 // messages over the size limit, discarded

	Connections        int64  // connections (ZeroMQ: peers) open now
	ConnectionsTotal   uint64 // connections accepted
	ConnectionsRefused uint64 // connections refused (per-source limit, or max_connections with every connection busy)
	HandshakeErrors    uint64 // failed TLS (ZeroMQ: ZMTP) handshakes
	ReadErrors         uint64 // connections ended by an error other than EOF or shutdown
	KernelDrops        uint64 // UDP datagrams the kernel dropped (receive buffer full)
	SocketDrops        uint64 // ZeroMQ messages read from a peer but dropped by the socket (it was closing)
	// CurveRefused counts ZeroMQ CURVE handshakes refused and CURVE
	// connections dropped, by reason (zmq.CurveReasons); nil without CURVE.
	CurveRefused map[string]uint64

	// HandlerBlocked is the total time spent inside the Handler: how long
	// this input was held back by backpressure.
	HandlerBlocked time.Duration

	// Closed counts the stream connections that internal/listen closed or
	// refused, by listen.Reason (deadlines, limits, evictions); the
	// refusals are also in ConnectionsRefused, the TLS handshake failures
	// in HandshakeErrors.
	Closed [listen.NumReasons]uint64
}

// counters are the live, atomically updated form of Stats.
type counters struct {
	received, bytes, malformed, oversize atomic.Uint64
	readErrors, kernelDrops              atomic.Uint64
	blockedNanos                         atomic.Int64
	// Handler calls in progress, so a stall shows while it lasts, not only
	// once it ends: their count and the sum of their start times.
	active, activeSince atomic.Int64
	reported            atomic.Int64 // keeps HandlerBlocked monotonic
}

// blocked is the time spent in the Handler, including calls still running.
func (c *counters) blocked() time.Duration {
	now := time.Now().UnixNano()
	b := c.blockedNanos.Load() + c.active.Load()*now - c.activeSince.Load()
	for {
		last := c.reported.Load()
		if b <= last {
			return time.Duration(last)
		}
		if c.reported.CompareAndSwap(last, b) {
			return time.Duration(b)
		}
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		Received:       c.received.Load(),
		Bytes:          c.bytes.Load(),
		Malformed:      c.malformed.Load(),
		Oversize:       c.oversize.Load(),
		ReadErrors:     c.readErrors.Load(),
		KernelDrops:    c.kernelDrops.Load(),
		HandlerBlocked: c.blocked(),
	}
}

// deliver stamps a batch and hands it to h, accounting for the time h
// blocks. One clock reading per batch: events read together share it.
func deliver(h Handler, name string, c *counters, batch []*event.Event) {
	if len(batch) == 0 {
		return
	}
	now := time.Now()
	var n int
	for _, e := range batch {
		e.Input = name
		e.Received = now
		n += len(e.Raw)
	}
	c.handOver(h, batch, n, now)
}

// handOver hands batch, of n payload bytes, to h (from now on), counting
// its events and bytes and the time h blocks.
func (c *counters) handOver(h Handler, batch []*event.Event, n int, now time.Time) {
	start := now.UnixNano()
	c.activeSince.Add(start)
	c.active.Add(1)
	h(batch)
	c.active.Add(-1)
	c.activeSince.Add(-start)
	c.blockedNanos.Add(time.Now().UnixNano() - start)
	c.received.Add(uint64(len(batch)))
	c.bytes.Add(uint64(n))
}

// addListenStats fills the connection counters of a stream input from
// its connection core's.
func addListenStats(st *Stats, ls listen.Stats) {
	st.Connections = ls.Open
	st.ConnectionsTotal = ls.Accepted
	st.ConnectionsRefused = ls.Refused()
	st.HandshakeErrors = ls.HandshakeFailures()
	st.Closed = ls.Closed
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// waitGroup waits for wg, or returns ctx's error once ctx is done first
// (the goroutines then go on and finish on their own).
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
