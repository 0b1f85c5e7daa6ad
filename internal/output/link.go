package output

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// LinkConfig configures a link output: a disk spool drained by a link
// sender to other relays' link inputs.
type LinkConfig struct {
	Name   string
	Spool  spool.Options
	Sender link.SenderConfig // Name, ID, Sent and Logger are filled in here
}

// Link is the link output: a spooled output (Write appends and returns;
// an event's hand-off is released once the spool has it durably) whose
// Sender is a link.Sender, so records leave the spool only once the
// receiving relay acknowledged them. The spool's directory is the
// sender's identity (link-id in it).
type Link struct {
	*Spooled
	snd *link.Sender
}

// OpenLedgerSpool opens the disk spool of opt with a link.Ledger in its
// directory, wired as the spool's Recovered and BeforeDelete hooks: the
// spool of any output that may take events from a link input.
func OpenLedgerSpool(opt spool.Options) (*spool.Disk, *link.Ledger, error) {
	ledger, err := link.OpenLedger(opt.Dir)
	if err != nil {
		return nil, nil, err
	}
	opt.Recovered, opt.BeforeDelete = ledger.Recovered, ledger.Save
	sp, err := spool.Open(opt)
	if err != nil {
		return nil, nil, err
	}
	return sp, ledger, nil
}

// NewLink opens the spool and starts connecting and draining.
func NewLink(cfg LinkConfig, log *slog.Logger) (*Link, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Spool.Logger = log.With("output", cfg.Name)
	sp, ledger, err := OpenLedgerSpool(cfg.Spool)
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
	o, err := NewSpooled(SpooledConfig{Name: cfg.Name, Spool: sp, Sender: snd, ReadBatch: link.DefaultBatchRecords, Logger: log})
	if err != nil {
		snd.Close(context.Background())
		sp.Close()
		return nil, err
	}
	o.SetLedger(ledger)
	log.Info("link output started", "output", cfg.Name, "sender", id.String(), "spool", cfg.Spool.Dir)
	return &Link{Spooled: o, snd: snd}, nil
}

// LinkStats returns the sender's counters.
func (l *Link) LinkStats() link.SenderStats { return l.snd.Stats() }

// Stats implements Output: as a spooled output's, with the receiving
// relay as its one peer while connected.
func (l *Link) Stats() Stats {
	st := l.Spooled.Stats()
	if l.snd.Stats().Connected {
		st.Peers = 1
	}
	return st
}

var (
	_ Output = (*Link)(nil)
	_ Sender = (*link.Sender)(nil)
)
