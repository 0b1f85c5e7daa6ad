package relay

import (
	"crypto/subtle"
	"fmt"
	"log/slog"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// newInput builds (but does not start) the input c describes.
func newInput(c config.Input, log *slog.Logger) (input.Input, error) {
	switch c.Type {
	case config.InputSyslog:
		sc := input.SyslogConfig{
			Name:           c.Name,
			Listen:         c.Listen,
			MaxMessageSize: int(c.MaxMessageSize),
			MaxConnections: c.MaxConnections,
			IdleTimeout:    c.IdleTimeout,
		}
		if c.TLS != nil {
			t, err := c.TLS.ServerConfig()
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", c.Name, err)
			}
			sc.TLS = t
		}
		return input.NewSyslog(sc, log)
	case config.InputZMQ:
		sec, err := plainSecurity(c.Plain, len(c.Bind) > 0)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", c.Name, err)
		}
		return input.NewZMQ(input.ZMQConfig{
			Name:           c.Name,
			Bind:           c.Bind,
			Connect:        c.Connect,
			HWM:            c.HWM,
			MaxMessageSize: int64(c.MaxMessageSize),
			Security:       sec,
			StreamFrame:    c.StreamFrame == nil || *c.StreamFrame,
		}, log)
	}
	return nil, fmt.Errorf("input %q: type %q is not supported; use syslog or zmq", c.Name, c.Type)
}

// newOutput builds the output c describes and sets up its endpoints.
func newOutput(c config.Output, log *slog.Logger) (output.Output, error) {
	format, err := output.ParseFormat(c.Format)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	sec, err := plainSecurity(c.Plain, len(c.Bind) > 0)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", c.Name, err)
	}
	if c.Ack != nil {
		return newAckOutput(c, format, sec, log)
	}
	return output.NewZMQ(output.ZMQConfig{
		Name:    c.Name,
		Socket:  c.Socket,
		Bind:    c.Bind,
		Connect: c.Connect,
		Format:  format,
		Options: zmq.Options{
			HWM:          c.HWM,
			MaxMsgSize:   int64(c.MaxMessageSize),
			HeartbeatIvl: c.Heartbeat,
			Security:     sec,
		},
	}, log)
}

// newAckOutput builds an acknowledged PUSH output. The ack socket plays
// its own side of PLAIN: server when it binds, client when it connects.
func newAckOutput(c config.Output, format output.Format, sec zmq.Security, log *slog.Logger) (output.Output, error) {
	ackSec, err := plainSecurity(c.Plain, len(c.Ack.Bind) > 0)
	if err != nil {
		return nil, fmt.Errorf("output %q: ack: %w", c.Name, err)
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
			HeartbeatIvl: c.Heartbeat,
			Security:     sec,
		},
		AckOptions: zmq.Options{HeartbeatIvl: c.Heartbeat, Security: ackSec},
	}, log)
}

// plainSecurity maps a PLAIN section onto the socket's side: a binding
// socket checks credentials, a connecting one presents them.
func plainSecurity(p *config.Plain, server bool) (zmq.Security, error) {
	if p == nil {
		return nil, nil
	}
	if !server {
		return zmq.PlainClient(p.Username, p.Password), nil
	}
	users, err := p.Users()
	if err != nil {
		return nil, fmt.Errorf("plain: %w", err)
	}
	return zmq.PlainServer(func(user, pass string) bool {
		want, ok := users[user]
		return ok && subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1
	}), nil
}
