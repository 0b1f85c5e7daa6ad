package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Sender delivers records drained from a spool. Send blocks while the
// destination has no room (backpressure). It calls ack(first, last) for
// seq ranges once the destination has confirmed them: written to a peer's
// connection (plain PUSH), acked by a worker (acked PUSH), by a receiving
// relay (link), by a broker. It never acks what is not confirmed; what it
// cannot deliver it keeps (bounded window, in memory) and resends. Acks may
// come from another goroutine. Send returns an error only when ctx ends or
// the Sender is closed; the records it did not take stay unacknowledged in
// the spool, which delivers them again after a restart.
type Sender interface {
	Send(ctx context.Context, recs []spool.Record, ack func(first, last uint64)) error
	// Close flushes what was taken within ctx's time, then stops.
	Close(ctx context.Context) error
}

// SentMarker is a Sender that marks records Sent in its spool just before
// they go on the wire (spool.Spool.Sent), so that after a crash exactly
// those are counted as redelivered. NewSpooled hands it the spool's Sent
// before the drain starts.
type SentMarker interface {
	SetSpoolSent(sent func(rs ...spool.Range) error)
}

// SpooledConfig configures a spooled output.
type SpooledConfig struct {
	Name   string
	Spool  spool.Spool // a disk spool (Durable): the relay's spooled outputs
	Sender Sender
	// ReadBatch is how many records the drain loop reads at once
	// (default 1024).
	ReadBatch int
	Logger    *slog.Logger
}

// Spooled is an output with a spool in front of its destination. Write
// appends the batch to the spool. For events with a hand-off (RELP, link,
// JetStream inputs) it returns once they are queued there and releases
// each hand-off when the spool reports its record durable: the input
// waits for the hand-off, not for Write, so one connection pipelines. For
// events without one (plain TCP/UDP syslog, ZeroMQ input: nothing tells
// their sender anything) Write itself returns only once their records are
// durable under the spool's fsync policy, so that a kill -9 of the relay
// loses at most the batch each connection is reading, never what is queued
// for the spool's committer. Concurrent Writes still share one fsync
// (the spool's group commit). A drain loop reads from the spool and hands
// records to the Sender, whose acknowledgements let the spool drop them.
type Spooled struct {
	name   string
	sp     spool.Spool
	snd    Sender
	batch  int
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	appended atomic.Uint64
	failed   atomic.Uint64 // events the spool did not take (closed, too large)
	bmu      sync.Mutex
	blocked  time.Duration
	waiting  int64
	startSum int64
	closeMu  sync.Once
	closeErr error
	// ledger, if set, keeps events that came over a relay link from
	// entering this spool twice (see link.Ledger).
	ledger *link.Ledger
}

// SetLedger makes the output's appends idempotent for events that came
// over a relay link (their Meta is the sender's id and sequence): one the
// spool holds, or delivered, is not appended again. Its Recovered and Save
// must be the spool's Options.Recovered and BeforeDelete. Call it before
// the first Write.
func (o *Spooled) SetLedger(l *link.Ledger) { o.ledger = l }

// LedgerSkipped is how many events the ledger kept out (0 without one).
func (o *Spooled) LedgerSkipped() uint64 {
	if o.ledger == nil {
		return 0
	}
	return o.ledger.Skipped()
}

// NewSpooled starts the drain loop of a spooled output.
func NewSpooled(cfg SpooledConfig) (*Spooled, error) {
	if !cfg.Spool.Durable() {
		return nil, fmt.Errorf("output %q: a spooled output needs a disk spool", cfg.Name)
	}
	if cfg.ReadBatch <= 0 {
		cfg.ReadBatch = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	o := &Spooled{name: cfg.Name, sp: cfg.Spool, snd: cfg.Sender, batch: cfg.ReadBatch,
		log: cfg.Logger.With("output", cfg.Name), done: make(chan struct{})}
	if m, ok := cfg.Sender.(SentMarker); ok {
		m.SetSpoolSent(cfg.Spool.Sent)
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	go o.drain()
	return o, nil
}

// Name returns the output's name.
func (o *Spooled) Name() string { return o.name }

// Write appends the batch to the spool. While the spool is full (full:
// block) it waits for room, bounded by ctx: backpressure, as a PUSH
// without room. The hand-offs of the events are released when their
// records are durable (or with the error that kept them from it). If any
// event of the batch has no hand-off, Write returns only once the batch is
// durable (fsync: always, a fdatasync covers it; interval, at most one
// interval later; never, once write(2) put it in the segment file), or
// with the error that keeps it from being durable, or when ctx ends (the
// records stay in the spool and become durable later).
func (o *Spooled) Write(ctx context.Context, batch []*event.Event) error {
	if o.ledger != nil {
		batch = o.ledger.Unseen(batch)
		if len(batch) == 0 {
			return nil
		}
	}
	recs := make([]spool.Record, len(batch))
	var durable chan error // set when Write must wait for the records to be durable
	for i, e := range batch {
		recs[i] = spool.Record{Raw: e.Raw, Stream: e.Stream, Input: e.Input, Peer: e.Peer, Received: e.Received, Meta: e.Meta}
		if e.Handoff() == nil && durable == nil {
			durable = make(chan error, 1)
		}
		e.Hold()
	}
	evs := slices.Clone(batch) // the batch slice may be reused once Write returns
	start := time.Now()
	o.bmu.Lock()
	o.waiting++
	o.startSum += start.UnixNano()
	o.bmu.Unlock()
	err := o.sp.Append(ctx, recs, func(err error) {
		if errors.Is(err, spool.ErrDropped) {
			// full: drop_newest is the admin's choice to lose rather than
			// wait: what was dropped counts as handed off (and is counted
			// in the spool's DroppedNewest).
			err = nil
		}
		if o.ledger != nil && err == nil {
			o.ledger.DurableEvents(evs)
		}
		for _, e := range evs {
			e.Release(err)
		}
		if durable != nil {
			durable <- err
		}
	})
	end := time.Now()
	o.bmu.Lock()
	o.waiting--
	o.startSum -= start.UnixNano()
	o.blocked += end.Sub(start)
	o.bmu.Unlock()
	if err != nil {
		o.failed.Add(uint64(len(batch)))
		for _, e := range batch {
			e.Release(err)
		}
		return fmt.Errorf("output %q: %d events not spooled: %w", o.name, len(batch), err)
	}
	if o.ledger != nil {
		o.ledger.AppendedEvents(batch)
	}
	o.appended.Add(uint64(len(batch)))
	if durable == nil {
		return nil
	}
	// Not counted as blocked: the time an fsync takes is not backpressure
	// (RelayOutputBlocked would fire on every busy spooled output).
	select {
	case err = <-durable:
		if err != nil {
			// ErrClosed: the spool closed before the fsync; the records may
			// still be in the file, and the next start delivers them.
			return fmt.Errorf("output %q: %d events spooled, not known durable: %w", o.name, len(batch), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("output %q: %d events spooled, not yet durable: %w", o.name, len(batch), ctx.Err())
	}
}

// drain reads from the spool and sends, until Close.
func (o *Spooled) drain() {
	defer close(o.done)
	ack := func(first, last uint64) {
		if err := o.sp.Ack(first, last); err != nil && !errors.Is(err, spool.ErrClosed) {
			o.log.Warn("spool ack failed", "err", err)
		}
	}
	for {
		recs, err := o.sp.Read(o.ctx, o.batch)
		if err != nil {
			if o.ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return
			}
			o.log.Error("spool read failed", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err := o.snd.Send(o.ctx, recs, ack); err != nil {
			if o.ctx.Err() != nil {
				return
			}
			o.log.Error("spooled send failed; the records stay in the spool for the next start", "err", err)
		}
	}
}

// Close waits, within ctx, until the spool is drained (every record
// acknowledged by the Sender), then stops the drain loop, closes the
// Sender and the spool. What was not delivered by then stays in the spool
// directory: the next start (or the output a reload puts in its place)
// delivers it.
func (o *Spooled) Close(ctx context.Context) error {
	o.closeMu.Do(func() {
		t := time.NewTicker(5 * time.Millisecond)
		for o.sp.Stats().Records > 0 && ctx.Err() == nil {
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
		t.Stop()
		left := o.sp.Stats().Records
		o.cancel()
		<-o.done
		// The sender's queue was drained or the time is up: do not wait
		// longer. What it had not written stays unacknowledged in the spool.
		sctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if ctx.Err() == nil {
			sctx, cancel = context.WithCancel(ctx)
		}
		err := o.snd.Close(sctx)
		cancel()
		if err2 := o.sp.Close(); err2 != nil {
			err = errors.Join(err, err2)
		}
		if left > 0 {
			o.log.Info("spooled output closed with events left in its spool; the next start delivers them", "events", left)
		}
		if err != nil {
			o.closeErr = fmt.Errorf("output %q: %w", o.name, err)
		}
	})
	return o.closeErr
}

// SpoolStats returns the spool's counters.
func (o *Spooled) SpoolStats() spool.Stats { return o.sp.Stats() }

// Socket returns the Sender's socket counters, if it has a socket.
func (o *Spooled) Socket() zmq.Stats {
	if s, ok := o.snd.(interface{ Socket() zmq.Stats }); ok {
		return s.Socket()
	}
	return zmq.Stats{}
}

// Addrs returns the Sender's bound addresses, if it has any (tests).
func (o *Spooled) Addrs() []net.Addr {
	if s, ok := o.snd.(interface{ Addrs() []net.Addr }); ok {
		return s.Addrs()
	}
	return nil
}

// Stats returns the output's counters: Sent is what the destination
// confirmed (the spool's acknowledged records), Queued what the spool holds.
func (o *Spooled) Stats() Stats {
	ss := o.sp.Stats()
	so := o.Socket()
	o.bmu.Lock()
	blocked := o.blocked + time.Duration(o.waiting*time.Now().UnixNano()-o.startSum)
	o.bmu.Unlock()
	st := Stats{
		Sent:    ss.Acked,
		Dropped: o.failed.Load() + ss.DroppedNewest + ss.DroppedOldest,
		Blocked: blocked,
		Queued:  int(ss.Records),
		Peers:   so.Peers,
	}
	return st
}
