package relay

import (
	"fmt"
	"log/slog"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// newLinkInput builds a link input (the receiving end of a relay link).
func newLinkInput(c config.Input, log *slog.Logger, sec *secretStore) (input.Input, error) {
	lc := input.LinkConfig{
		Name: c.Name, Bind: c.Bind, AllowInsecure: c.AllowInsecure, StateDir: c.StateDir,
		MaxBatch: int(c.MaxBatch), Limits: streamLimits(c),
	}
	if c.TLS != nil {
		// The current certificate, key and client CA at each handshake
		// (SIGHUP re-reads them).
		lc.TLS = sec.inputTLSConfig(c.Name)
	}
	if c.Curve != nil {
		// The CURVE server: its keys from the store at each handshake,
		// the senders it admits from allow/allow_dir.
		zs, err := socketSecurity(nil, c.Curve, true, sec, log, "input", c.Name)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", c.Name, err)
		}
		lc.Security = zs
	}
	return input.NewLink(lc, log)
}

// newLinkOutput builds a link output: its spool and its sender. Its TLS
// certificate, key and CA, or its CURVE keys, come from sec at each
// connection, so a reload that re-reads the files applies them to the
// next session.
func newLinkOutput(c config.Output, log *slog.Logger, sec *secretStore) (output.Output, error) {
	if c.Spool == nil {
		return nil, fmt.Errorf("output %q: a link output needs a spool", c.Name)
	}
	fsync, ivl, err := spool.ParseFsync(c.Spool.Fsync)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	full, err := spool.ParseFull(c.Spool.Full)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	comp, err := link.ParseCompression(c.Compression)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	sc := link.SenderConfig{
		Connect: c.Connect, AllowInsecure: c.AllowInsecure, Compression: comp,
		MaxBatch: int(c.MaxBatch), MaxWindow: int64(c.Window), Heartbeat: c.Heartbeat,
		HeartbeatTimeout: 5 * c.Heartbeat, Failback: c.Failback,
	}
	if c.LinkTLS != nil {
		sc.TLSFunc = sec.linkClientTLS(c.Name)
	}
	if c.Curve != nil {
		sc.Security = zmq.CurveClientFunc(sec.curveKeys("output", c.Name))
	}
	return output.NewLink(output.LinkConfig{
		Name: c.Name,
		Spool: spool.Options{Dir: c.Spool.Dir, MaxBytes: int64(c.Spool.MaxBytes), SegmentBytes: int64(c.Spool.SegmentBytes),
			Fsync: fsync, FsyncInterval: ivl, Full: full},
		Sender: sc,
	}, log)
}
