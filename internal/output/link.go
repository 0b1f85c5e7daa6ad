package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// LinkConfig configures a link output: a disk spool drained by a link
// sender to other relays' link inputs.
type LinkConfig struct {
	Name   string
	Spool  spool.Options
	Sender link.SenderConfig // ID and Sent are filled in from the spool
}

// Link is the link output. Write appends to the spool and returns; an
// event's hand-off is released once the spool has it durably (fsync'd).
// A drain goroutine sends the spool to the receiver, which acknowledges
// what it has handed off; only then are records acknowledged in the spool.
type Link struct {
	name   string
	sp     *spool.Disk
	snd    *link.Sender
	ledger *link.Ledger
	cancel context.CancelFunc
	done   chan struct{}
	log    *slog.Logger

	sent, dropped atomic.Uint64
	closeOnce     sync.Once
}

// NewLink opens the spool (its directory is the sender's identity) and
// starts connecting and draining.
func NewLink(cfg LinkConfig, log *slog.Logger) (*Link, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Spool.Logger = log.With("output", cfg.Name)
	// Events that came over a link from another relay carry their origin:
	// the ledger keeps this spool from taking one twice (see link.Ledger).
	ledger, err := link.OpenLedger(cfg.Spool.Dir)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	cfg.Spool.Recovered, cfg.Spool.BeforeDelete = ledger.Recovered, ledger.Save
	sp, err := spool.Open(cfg.Spool)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	id, err := link.LoadID(cfg.Spool.Dir)
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	sc := cfg.Sender
	sc.Name, sc.ID, sc.Logger = cfg.Name, id, log
	sc.Sent = func(r spool.Range) error { return sp.Sent(r) }
	snd, err := link.NewSender(sc)
	if err != nil {
		sp.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{name: cfg.Name, sp: sp, snd: snd, ledger: ledger, cancel: cancel, done: make(chan struct{}), log: log}
	go func() {
		defer close(l.done)
		err := link.Drain(ctx, sp, snd, link.DefaultBatchRecords)
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, spool.ErrClosed) && !errors.Is(err, link.ErrClosed) {
			log.Error("link output: drain stopped", "output", cfg.Name, "err", err)
		}
	}()
	log.Info("link output started", "output", cfg.Name, "sender", id.String(), "spool", cfg.Spool.Dir)
	return l, nil
}

// Name implements Output.
func (l *Link) Name() string { return l.name }

// Write appends the batch to the spool. It blocks while the spool is full
// (full: block), which is backpressure to the inputs.
func (l *Link) Write(ctx context.Context, batch []*event.Event) error {
	if len(batch) == 0 {
		return nil
	}
	recs := make([]spool.Record, 0, len(batch))
	held := make([]*event.Event, 0, len(batch))
	for _, e := range batch {
		if e.Meta != nil && l.ledger.Have(e.Meta) {
			continue // this spool has it: a resend after the receiver's crash
		}
		recs = append(recs, spool.Record{Raw: e.Raw, Stream: e.Stream, Input: e.Input, Peer: e.Peer, Received: e.Received, Meta: e.Meta})
		e.Hold()
		held = append(held, e)
	}
	if len(recs) == 0 {
		return nil
	}
	err := l.sp.Append(ctx, recs, func(err error) {
		for _, e := range held {
			if err == nil && e.Meta != nil {
				l.ledger.Durable(e.Meta)
			}
			e.Release(err)
		}
		if err != nil {
			l.dropped.Add(uint64(len(held)))
		}
	})
	if err != nil {
		for _, e := range held {
			e.Release(err)
		}
		l.dropped.Add(uint64(len(held)))
		return fmt.Errorf("output %q: spool: %w", l.name, err)
	}
	for _, e := range held {
		if e.Meta != nil {
			l.ledger.Appended(e.Meta)
		}
	}
	l.sent.Add(uint64(len(held)))
	return nil
}

// Close stops draining, waits (within ctx) for the batches in flight to be
// acknowledged, and closes the spool; what is not acknowledged stays there.
func (l *Link) Close(ctx context.Context) error {
	var err error
	l.closeOnce.Do(func() {
		l.cancel()
		<-l.done
		err = l.snd.Close(ctx)
		if cerr := l.sp.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	})
	return err
}

// Stats implements Output: Sent counts events taken into the spool,
// Queued the records not yet acknowledged by the receiver.
func (l *Link) Stats() Stats {
	st := Stats{Sent: l.sent.Load(), Dropped: l.dropped.Load(), Queued: int(l.sp.Stats().Records)}
	if l.snd.Stats().Connected {
		st.Peers = 1
	}
	return st
}

// LinkStats returns the sender's counters.
func (l *Link) LinkStats() link.SenderStats { return l.snd.Stats() }

// SpoolStats returns the spool's counters.
func (l *Link) SpoolStats() spool.Stats { return l.sp.Stats() }

var _ Output = (*Link)(nil)
