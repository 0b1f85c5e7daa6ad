package relay

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// newSpooledOutput opens the output's spool directory and builds the
// spooled output in front of its socket.
func newSpooledOutput(c config.Output, zc output.ZMQConfig, store *secretStore, log *slog.Logger) (output.Output, error) {
	fsync, ivl, err := spool.ParseFsync(c.Spool.Fsync)
	if err != nil {
		return nil, fmt.Errorf("output %q: spool: %w", c.Name, err)
	}
	full, err := spool.ParseFull(c.Spool.Full)
	if err != nil {
		return nil, fmt.Errorf("output %q: spool: %w", c.Name, err)
	}
	// The ledger keeps events that came over a relay link from entering
	// the spool twice when this relay restarts (see link.Ledger).
	sp, ledger, err := output.OpenLedgerSpool(spool.Options{
		Dir:           c.Spool.Dir,
		MaxBytes:      int64(c.Spool.MaxBytes),
		SegmentBytes:  int64(c.Spool.SegmentBytes),
		Fsync:         fsync,
		FsyncInterval: ivl,
		Full:          full,
		Logger:        log.With("output", c.Name),
	})
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	if free := freeBytes(c.Spool.Dir); free >= 0 && int64(c.Spool.MaxBytes) > free+sp.Stats().Bytes {
		log.Warn("spool max_bytes is above the free space: the disk may fill before the spool does (writes are then retried until space frees up)",
			"output", c.Name, "dir", c.Spool.Dir, "max_bytes", c.Spool.MaxBytes, "free", config.ByteSize(free))
	}
	if c.Ack != nil {
		// An acknowledged PUSH behind the spool: records leave the spool
		// only once a worker acknowledged their batch.
		ap, err := newAckOutput(c, zc.Format, zc.Options.Security, store, log)
		if err != nil {
			sp.Close()
			return nil, err
		}
		o, err := output.NewSpooled(output.SpooledConfig{Name: c.Name, Spool: sp, Sender: ap.(output.Sender), Logger: log})
		if err != nil {
			ap.Close(context.Background())
			sp.Close()
			return nil, err
		}
		o.SetLedger(ledger)
		return spooledAck{o, ap.(ackOutput)}, nil
	}
	o, err := output.NewSpooledPush(zc, sp, log)
	if err != nil {
		sp.Close()
		return nil, err
	}
	o.SetLedger(ledger)
	return o, nil
}

func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Clean(dir), &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

// checkSpoolReload refuses a reload that would leave events behind in a
// spool directory no output reads any more: an output whose spool still
// holds events may change any setting (its replacement reopens the same
// directory and delivers them), but not drop its spool, move it to another
// directory, or go away.
func (r *Relay) checkSpoolReload(want map[string]config.Output) error {
	for name, ro := range r.outputs {
		so, ok := ro.out.(spoolStatser)
		if !ok || ro.cfg.Spool == nil {
			continue
		}
		n := so.SpoolStats().Records
		if n == 0 {
			continue
		}
		oc, kept := want[name]
		switch {
		case !kept:
			return fmt.Errorf("reload: output %q is removed but its spool %s still holds %d events; remove it once relay_spool_records{output=%q} is 0, or keep it", name, ro.cfg.Spool.Dir, n, name)
		case oc.Spool == nil:
			return fmt.Errorf("reload: output %q loses its spool but %s still holds %d events; keep the spool section until relay_spool_records{output=%q} is 0", name, ro.cfg.Spool.Dir, n, name)
		case filepath.Clean(oc.Spool.Dir) != filepath.Clean(ro.cfg.Spool.Dir):
			return fmt.Errorf("reload: output %q moves its spool from %s to %s, but the old one still holds %d events; change dir once relay_spool_records{output=%q} is 0", name, ro.cfg.Spool.Dir, oc.Spool.Dir, n, name)
		}
	}
	return nil
}

// spooledAck is a spooled acknowledged PUSH: the spooled output, with the
// acknowledged sender's counters for the relay_output_ack_* metrics.
type spooledAck struct {
	*output.Spooled
	ack ackOutput
}

func (o spooledAck) AckStats() output.AckStats { return o.ack.AckStats() }
