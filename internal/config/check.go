package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Redacted replaces passwords in YAML output, so an effective config can
// be shown or logged without leaking credentials.
const Redacted = "<redacted>"

// YAML returns the effective configuration, defaults filled in and paths
// resolved, with PLAIN passwords replaced by Redacted. `relay check` prints
// it so admins see what the relay will actually run with; it parses back
// to the same configuration.
func (c *Config) YAML() ([]byte, error) {
	cp := *c
	cp.Inputs = append([]Input(nil), c.Inputs...)
	cp.Outputs = append([]Output(nil), c.Outputs...)
	redact := func(p **Plain) {
		if *p != nil && (*p).Password != "" {
			q := **p
			q.Password = Redacted
			*p = &q
		}
	}
	for i := range cp.Inputs {
		redact(&cp.Inputs[i].Plain)
	}
	for i := range cp.Outputs {
		redact(&cp.Outputs[i].Plain)
	}
	var doc yaml.Node
	if err := doc.Encode(&cp); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := cp.brokerNodes(&doc); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return out, nil
}

// Summary describes in a few lines what the configuration makes the relay
// do, for `relay check` and the startup log.
func (c *Config) Summary() string {
	var b strings.Builder
	for _, in := range c.Inputs {
		switch in.Type {
		case InputSyslog:
			fmt.Fprintf(&b, "input %s: syslog on %s%s\n", in.Name, strings.Join(in.Listen, ", "), in.streamSummary())
		case InputZMQ:
			fmt.Fprintf(&b, "input %s: zmq %s %s%s\n", in.Name, in.Socket, endpoints(in.Bind, in.Connect), curveSummary(in.Curve))
		case InputRELP:
			auth := ""
			if in.TLS != nil && len(in.TLS.PermittedPeers) > 0 {
				auth = ", permitted peers " + strings.Join(in.TLS.PermittedPeers, ", ")
			}
			fmt.Fprintf(&b, "input %s: relp on %s, answered after the hand-off (ack_timeout %v)%s%s\n", in.Name, strings.Join(in.Listen, ", "), in.AckTimeout, auth, in.streamSummary())
		case InputLink:
			sec := "no tls"
			if in.TLS != nil {
				sec = "mutual tls"
			}
			if in.Curve != nil {
				sec = strings.TrimPrefix(curveSummary(in.Curve), ", ")
			}
			fmt.Fprintf(&b, "input %s: link on %s, %s, state %s\n", in.Name, strings.Join(in.Bind, ", "), sec, in.StateDir)
		case InputJetStream:
			if j := in.JetStream; j != nil {
				fmt.Fprintf(&b, "input %s: jetstream %s stream %s, durable consumer %s, acked after the hand-off (ack_wait %v)\n", in.Name, strings.Join(j.Servers, ","), j.Stream, j.Consumer, j.AckWait)
			}
		}
	}
	fmt.Fprintf(&b, "stream: from %s, default %q\n", c.Stream.From, c.Stream.Default)
	for _, o := range c.Outputs {
		if o.isBroker() {
			b.WriteString(brokerSummary(&o))
			continue
		}
		streams := "all streams"
		if len(o.Streams) > 0 {
			streams = "streams " + strings.Join(o.Streams, ", ")
		}
		if o.Type == OutputLink {
			fmt.Fprintf(&b, "output %s: %s, %s\n", o.Name, linkSummary(o), streams)
			continue
		}
		fmt.Fprintf(&b, "output %s: zmq %s %s%s, %s, format %s", o.Name, o.Socket, endpoints(o.Bind, o.Connect), curveSummary(o.Curve), streams, o.Format)
		if o.Spool != nil {
			fmt.Fprintf(&b, ", spool %s (max %s, fsync %s, full: %s)", o.Spool.Dir, o.Spool.MaxBytes, o.Spool.Fsync, o.Spool.Full)
		}
		b.WriteString("\n")
		if a := o.Ack; a != nil {
			fmt.Fprintf(&b, "output %s: acknowledged, acks %s; batch %d, window %d (at most %d events held), resent after %v, partial batches sent after %v\n",
				o.Name, endpoints(a.Bind, a.Connect), a.Batch, a.Window, a.Batch*a.Window, a.Timeout, a.Flush)
		}
	}
	if c.HTTP.Listen == "" {
		b.WriteString("http: disabled\n")
	} else {
		scheme, tap := "http", "no token"
		if c.HTTP.TLS != nil {
			scheme = "https"
		}
		if c.HTTP.TapTokenFile != "" {
			tap = "token required"
		}
		fmt.Fprintf(&b, "http: %s://%s (/healthz, /metrics, /v1/tap: %s)\n", scheme, c.HTTP.Listen, tap)
	}
	return b.String()
}

func endpoints(bind, connect []string) string {
	var parts []string
	if len(bind) > 0 {
		parts = append(parts, "bind "+strings.Join(bind, ", "))
	}
	if len(connect) > 0 {
		parts = append(parts, "connect "+strings.Join(connect, ", "))
	}
	return strings.Join(parts, ", ")
}

// MarshalYAML writes a stream input's zero timeouts explicitly: a written
// 0 turns a timeout off, while a missing key takes its default, so the
// effective YAML must say 0 to parse back to the same configuration.
func (in Input) MarshalYAML() (any, error) {
	type plain Input
	var n yaml.Node
	if err := n.Encode(plain(in)); err != nil {
		return nil, err
	}
	if in.Type != InputSyslog && in.Type != InputRELP && in.Type != InputLink {
		return &n, nil
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{
		{"idle_timeout", in.IdleTimeout},
		{"handshake_timeout", in.HandshakeTimeout},
		{"first_frame_timeout", in.FirstFrameTimeout},
		{"frame_timeout", in.FrameTimeout},
	} {
		if t.d == 0 {
			n.Content = append(n.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t.key},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: "0"})
		}
	}
	return &n, nil
}

// streamSummary describes a stream input's connection limits, when it has
// TCP or TLS listeners.
func (in Input) streamSummary() string {
	stream := false
	for _, u := range in.Listen {
		if strings.HasPrefix(u, "tcp://") || strings.HasPrefix(u, "tls://") {
			stream = true
		}
	}
	if !stream {
		return ""
	}
	d := func(v time.Duration) string {
		if v == 0 {
			return "off"
		}
		return v.String()
	}
	return fmt.Sprintf("; at most %d connections (then the longest idle is evicted), %d per address, first frame within %s, frames complete within %s, idle %s",
		in.MaxConnections, in.MaxConnectionsPerSource, d(in.FirstFrameTimeout), d(in.FrameTimeout), d(in.IdleTimeout))
}

// curveSummary names a socket's CURVE role and, for a server, whom it
// admits.
func curveSummary(c *Curve) string {
	switch {
	case c == nil:
		return ""
	case c.Client():
		return ", CURVE client"
	case c.AllowAny:
		return ", CURVE server admitting ANY client"
	}
	var who []string
	if c.AllowDir != "" {
		who = append(who, "certificates in "+c.AllowDir)
	}
	if len(c.Allow) > 0 {
		who = append(who, fmt.Sprintf("%d listed keys", len(c.Allow)))
	}
	return ", CURVE server admitting " + strings.Join(who, " and ")
}
