package link

import (
	"context"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// Drain reads sp and sends what it reads until ctx ends or either fails;
// the receiver's acknowledgements go to sp.Ack. It is the spooled output's
// drain loop for a link.
func Drain(ctx context.Context, sp spool.Spool, s *Sender, batch int) error {
	if batch <= 0 {
		batch = DefaultBatchRecords
	}
	ack := func(first, last uint64) {
		if err := sp.Ack(first, last); err != nil {
			s.warn("link: spool ack failed", "first", first, "last", last, "err", err)
		}
	}
	for {
		recs, err := sp.Read(ctx, batch)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			continue
		}
		if err := s.Send(ctx, recs, ack); err != nil {
			return err
		}
	}
}
