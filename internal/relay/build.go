package relay

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// newInput builds (but does not start) the input c describes. Its TLS
// and PLAIN credentials come from sec at each handshake, so a reload that
// re-reads the files applies them to its new connections.
func newInput(c config.Input, log *slog.Logger, sec *secretStore) (input.Input, error) {
	switch c.Type {
	case config.InputSyslog:
		sc := input.SyslogConfig{
			Name:           c.Name,
			Listen:         c.Listen,
			MaxMessageSize: int(c.MaxMessageSize),
			Limits:         streamLimits(c),
			UnixMode:       os.FileMode(c.UnixMode),
		}
		if c.UnixGroup != "" {
			gid, err := config.LookupGroup(c.UnixGroup)
			if err != nil {
				return nil, fmt.Errorf("input %q: unix_group: %w", c.Name, err)
			}
			sc.UnixGID = gid
		}
		if c.TLS != nil {
			sc.TLS = sec.inputTLSConfig(c.Name)
		}
		return input.NewSyslog(sc, log)
	case config.InputRELP:
		rc := input.RELPConfig{
			Name:           c.Name,
			Listen:         c.Listen,
			MaxMessageSize: int(c.MaxMessageSize),
			Limits:         streamLimits(c),
			AckTimeout:     c.AckTimeout,
		}
		if c.TLS != nil {
			// As for syslog: the current certificate, key and client CA at
			// each handshake (SIGHUP re-reads them).
			rc.TLS = sec.inputTLSConfig(c.Name)
			rc.PermittedPeers = c.TLS.PermittedPeers
		}
		return input.NewRELP(rc, log)
	case config.InputJetStream:
		return newJetStreamInput(c, log)
	case config.InputZMQ:
		zsec, err := socketSecurity(c.Plain, c.Curve, len(c.Bind) > 0, sec, log, "input", c.Name)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", c.Name, err)
		}
		return input.NewZMQ(input.ZMQConfig{
			Name:           c.Name,
			Bind:           c.Bind,
			Connect:        c.Connect,
			HWM:            c.HWM,
			MaxMessageSize: int64(c.MaxMessageSize),
			MaxPeers:       c.MaxPeers,
			Security:       zsec,
			StreamFrame:    c.StreamFrame == nil || *c.StreamFrame,
		}, log)
	case config.InputLink:
		return newLinkInput(c, log, sec)
	}
	return nil, fmt.Errorf("input %q: type %q is not supported; use syslog, relp, zmq, link or jetstream", c.Name, c.Type)
}

// streamLimits are the connection limits of a stream input (syslog, and
// RELP and link inputs alike). The config has applied its defaults, so a
// zero timeout was written as 0: off.
func streamLimits(c config.Input) listen.Limits {
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return listen.Off
		}
		return d
	}
	return listen.Limits{
		MaxConnections:    c.MaxConnections,
		MaxPerSource:      c.MaxConnectionsPerSource,
		IdleTimeout:       off(c.IdleTimeout),
		HandshakeTimeout:  off(c.HandshakeTimeout),
		FirstFrameTimeout: off(c.FirstFrameTimeout),
		FrameTimeout:      off(c.FrameTimeout),
	}
}

// newOutput builds the output c describes and sets up its endpoints.
func newOutput(c config.Output, log *slog.Logger, sec *secretStore) (output.Output, error) {
	if c.Type == config.OutputLink {
		return newLinkOutput(c, log, sec)
	}
	if c.Type == config.OutputJetStream || c.Type == config.OutputKafka {
		return newBrokerOutput(c, log)
	}
	format, err := output.ParseFormat(c.Format)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	zsec, err := socketSecurity(c.Plain, c.Curve, len(c.Bind) > 0, sec, log, "output", c.Name)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	if c.Ack != nil && c.Spool == nil {
		return newAckOutput(c, format, zsec, sec, log)
	}
	zc := output.ZMQConfig{
		Name:    c.Name,
		Socket:  c.Socket,
		Bind:    c.Bind,
		Connect: c.Connect,
		Format:  format,
		Options: zmq.Options{
			HWM:          c.HWM,
			MaxMsgSize:   int64(c.MaxMessageSize),
			MaxPeers:     c.MaxPeers,
			HeartbeatIvl: c.Heartbeat,
			Security:     zsec,
		},
	}
	if c.Spool != nil {
		return newSpooledOutput(c, zc, sec, log)
	}
	return output.NewZMQ(zc, log)
}

// newAckOutput builds an acknowledged PUSH output. The ack socket plays
// its own side of PLAIN: server when it binds (the output's users, from
// store), client when it connects; under CURVE it is secured like the
// output, with its keys and role.
func newAckOutput(c config.Output, format output.Format, sec zmq.Security, store *secretStore, log *slog.Logger) (output.Output, error) {
	ackSec := sec
	if c.Curve == nil {
		ackSec = plainSecurity(c.Plain, len(c.Ack.Bind) > 0, store, "output", c.Name)
	}
	return output.NewAckPush(output.AckPushConfig{
		Name:       c.Name,
		Bind:       c.Bind,
		Connect:    c.Connect,
		AckBind:    c.Ack.Bind,
		AckConnect: c.Ack.Connect,
		Format:     format,
		Batch:      c.Ack.Batch,
		Window:     c.Ack.Window,
		Timeout:    c.Ack.Timeout,
		Flush:      c.Ack.Flush,
		Options: zmq.Options{
			HWM:          c.HWM,
			MaxMsgSize:   int64(c.MaxMessageSize),
			MaxPeers:     c.MaxPeers,
			HeartbeatIvl: c.Heartbeat,
			Security:     sec,
		},
		AckOptions: zmq.Options{HeartbeatIvl: c.Heartbeat, Security: ackSec},
	}, log)
}

// socketSecurity is the mechanism a socket's config names: CURVE, PLAIN
// or (nil) NULL.
func socketSecurity(p *config.Plain, c *config.Curve, server bool, sec *secretStore, log *slog.Logger, kind, name string) (zmq.Security, error) {
	if c != nil {
		// The keys come from the secret store at each handshake (a
		// reload re-reads them); the allow_dir follows its directory.
		if c.Client() {
			return zmq.CurveClientFunc(sec.curveKeys(kind, name)), nil
		}
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		allow, err := c.Settings().Authorizers(log.With(kind, name))
		if err != nil {
			return nil, fmt.Errorf("curve: %w", err)
		}
		return zmq.CurveServerFunc(sec.curveKeys(kind, name), allow...), nil
	}
	return plainSecurity(p, server, sec, kind, name), nil
}

// plainSecurity maps a PLAIN section onto the socket's side: a binding
// socket checks credentials against the users sec holds for it (re-read
// on reload), a connecting one presents them.
func plainSecurity(p *config.Plain, server bool, sec *secretStore, kind, name string) zmq.Security {
	switch {
	case p == nil:
		return nil
	case !server:
		return zmq.PlainClient(p.Username, p.Password)
	}
	return sec.plainServer(kind, name)
}
