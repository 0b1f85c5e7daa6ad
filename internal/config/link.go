package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The relay link (type: link): an output that sends spooled events to
// another relay, and the input that takes them, exactly once.
const (
	InputLink  = "link"
	OutputLink = "link"
)

// Link defaults and bounds.
var (
	DefaultLinkHeartbeat            = time.Second
	DefaultLinkMaxBatch    ByteSize = 4 << 20
	DefaultLinkWindow      ByteSize = 64 << 20
	DefaultLinkFailback             = 30 * time.Second
	DefaultLinkCompression          = "zstd"
	MinLinkMaxBatch        ByteSize = 64 << 10
	MaxLinkMaxBatch        ByteSize = 64 << 20
	MinLinkWindow          ByteSize = 1 << 20
	MaxLinkWindow          ByteSize = 1 << 30
)

// LinkTLS is a link output's client TLS: the CA that signs the receivers'
// certificates, this relay's certificate and key (the receiver verifies
// them), and the name the receiver's certificate must carry.
type LinkTLS struct {
	CA         string `yaml:"ca,omitempty"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ServerName string `yaml:"server_name,omitempty"`
}

// ClientConfig loads the files into a TLS client configuration. Without
// ServerName, each endpoint's host is checked.
func (t *LinkTLS) ClientConfig() (*tls.Config, error) {
	certPEM, err := readSmall(t.Cert, maxPEMFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readSmall(t.Key, maxPEMFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load %q and %q: %w; both must be PEM and the key must match the certificate", t.Cert, t.Key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		caPEM, err := readSmall(t.CA, maxPEMFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%q holds no PEM certificate; ca must be the CA certificate that signs the receivers' certificates", t.CA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (d *decoder) linkTLS(v *yaml.Node, path string, t *LinkTLS) {
	d.fields(v, path, fieldSet{
		"ca":          func(v *yaml.Node, p string) { d.str(v, p, &t.CA) },
		"cert":        func(v *yaml.Node, p string) { d.str(v, p, &t.Cert) },
		"key":         func(v *yaml.Node, p string) { d.str(v, p, &t.Key) },
		"server_name": func(v *yaml.Node, p string) { d.str(v, p, &t.ServerName) },
	}, nil)
}

// linkInputKeys are the keys only a link input takes.
var linkInputKeys = []string{"state_dir", "allow_insecure", "max_batch"}

func (c *Config) linkInputDefaults(p string, in *Input) {
	c.streamDefaults(p, in)
	if !c.set(p+".max_batch") && in.MaxBatch == 0 {
		in.MaxBatch = DefaultLinkMaxBatch
	}
	if !c.set(p+".max_message_size") && in.MaxMessageSize == 0 {
		in.MaxMessageSize = DefaultZMQMaxMessageSize
	}
	c.tlsDefaults(p, in)
}

func (c *Config) linkOutputDefaults(p string, o *Output) {
	if !c.set(p+".heartbeat") && o.Heartbeat == 0 {
		o.Heartbeat = DefaultLinkHeartbeat
	}
	if !c.set(p+".compression") && o.Compression == "" {
		o.Compression = DefaultLinkCompression
	}
	if !c.set(p+".max_batch") && o.MaxBatch == 0 {
		o.MaxBatch = DefaultLinkMaxBatch
	}
	if !c.set(p+".window") && o.Window == 0 {
		o.Window = DefaultLinkWindow
	}
	if !c.set(p+".failback") && o.Failback == 0 {
		o.Failback = DefaultLinkFailback
	}
}

// linkInput checks a link input.
func (k *checker) linkInput(p string, in *Input) {
	if len(in.Bind) == 0 {
		k.add(p+".bind", ErrRequired, "bind is required for a link input; e.g. bind: [tcp://0.0.0.0:6000]")
	}
	secure := in.TLS != nil || in.Curve != nil
	for i, ep := range in.Bind {
		ip := k.item(p+".bind", i, len(in.Bind))
		addr, ok := strings.CutPrefix(ep, "tcp://")
		if !ok {
			k.add(ip, ErrInvalid, "%q: a link binds tcp://host:port, e.g. tcp://0.0.0.0:6000", ep)
			continue
		}
		hp, err := hostPort(addr, true)
		if err != nil {
			k.add(ip, ErrInvalid, "%q: %v", ep, err)
			continue
		}
		k.bind(ip, "tcp", hp, ep)
		host, _, _ := net.SplitHostPort(hp)
		if !secure && !in.AllowInsecure && !isLoopback(host) {
			k.add(ip, ErrInvalid, "%q is not a loopback address and the link has neither tls nor curve: senders would be neither verified nor encrypted; set tls {cert, key, client_ca} or curve {key_file, allow_dir}, bind 127.0.0.1, or set allow_insecure: true on a network you trust", ep)
		}
	}
	if in.StateDir == "" {
		k.add(p+".state_dir", ErrRequired, "state_dir is required: where the link input keeps, durably, what each sender has handed off, e.g. state_dir: /var/lib/relay/link/%s", in.Name)
	} else if err := checkSpoolDir(in.StateDir); err != nil {
		k.add(p+".state_dir", ErrFile, "%v", err)
	}
	if in.TLS != nil {
		k.tls(p+".tls", in.TLS, true)
		if in.TLS.ClientCA == "" {
			k.add(p+".tls.client_ca", ErrRequired, "client_ca is required on a link input: the receiver verifies every sending relay's certificate against it")
		}
	}
	if in.MaxBatch < MinLinkMaxBatch || in.MaxBatch > MaxLinkMaxBatch {
		k.add(p+".max_batch", ErrInvalid, "%s is out of range; use %s to %s (default %s), the same as the senders'", in.MaxBatch, MinLinkMaxBatch, MaxLinkMaxBatch, DefaultLinkMaxBatch)
	}
	k.streamLimits(p, in)
}

// linkOutput checks a link output.
func (k *checker) linkOutput(p string, o *Output) {
	if o.Socket != "" || len(o.Bind) > 0 || o.Plain != nil {
		k.add(p, ErrInvalid, "socket, bind and plain do not apply to a link output; it connects to link inputs (connect: [tcp://relay.dc2:6000])")
	}
	if len(o.Connect) == 0 {
		k.add(p+".connect", ErrRequired, "connect is required for a link output: the receiving relays' link inputs, tried in order, e.g. connect: [tcp://relay-a.dc2:6000, tcp://relay-b.dc2:6000]")
	}
	for i, ep := range o.Connect {
		ip := k.item(p+".connect", i, len(o.Connect))
		addr, ok := strings.CutPrefix(ep, "tcp://")
		if !ok {
			k.add(ip, ErrInvalid, "%q: a link connects to tcp://host:port", ep)
			continue
		}
		hp, err := hostPort(addr, false)
		if err != nil {
			k.add(ip, ErrInvalid, "%q: %v", ep, err)
			continue
		}
		host, _, _ := net.SplitHostPort(hp)
		if o.LinkTLS == nil && o.Curve == nil && !o.AllowInsecure && !isLoopback(host) {
			k.add(ip, ErrInvalid, "%q is not a loopback address and the link has neither tls nor curve: events would cross the network unencrypted to a receiver nobody verified; set tls {ca, cert, key, server_name} or curve {key_file, server_key_file}, or allow_insecure: true on a network you trust", ep)
		}
	}
	if o.Spool == nil {
		k.add(p+".spool", ErrRequired, "a link output needs a spool: events are kept on disk until the receiving relay has handed them off; e.g. spool: {dir: /var/lib/relay/spool/%s}", o.Name)
	}
	if t := o.LinkTLS; t != nil {
		for _, f := range []struct{ key, path string }{{"cert", t.Cert}, {"key", t.Key}} {
			if f.path == "" {
				k.add(p+".tls."+f.key, ErrRequired, "%s is required: the receiver verifies this relay's certificate", f.key)
			} else if err := checkFile(f.path); err != nil {
				k.add(p+".tls."+f.key, ErrFile, "%v", err)
			}
		}
		if t.CA != "" {
			if err := checkFile(t.CA); err != nil {
				k.add(p+".tls.ca", ErrFile, "%v", err)
			}
		}
		if !k.hasProblem(p + ".tls") {
			if _, err := t.ClientConfig(); err != nil {
				k.add(p+".tls", ErrFile, "%v", err)
			}
		}
	}
	switch o.Compression {
	case "zstd", "s2", "none":
	default:
		k.add(p+".compression", ErrInvalid, "%q is not a compression; use zstd (best ratio), s2 (least CPU) or none", o.Compression)
	}
	if o.Heartbeat < 100*time.Millisecond {
		k.add(p+".heartbeat", ErrInvalid, "%v is too short; use at least 100ms (default %v): a dead link is noticed after 5 heartbeats", o.Heartbeat, DefaultLinkHeartbeat)
	}
	if o.MaxBatch < MinLinkMaxBatch || o.MaxBatch > MaxLinkMaxBatch {
		k.add(p+".max_batch", ErrInvalid, "%s is out of range; use %s to %s (default %s)", o.MaxBatch, MinLinkMaxBatch, MaxLinkMaxBatch, DefaultLinkMaxBatch)
	}
	if o.Window < MinLinkWindow || o.Window > MaxLinkWindow {
		k.add(p+".window", ErrInvalid, "%s is out of range; use %s to %s (default %s)", o.Window, MinLinkWindow, MaxLinkWindow, DefaultLinkWindow)
	}
	if o.Failback < time.Second {
		k.add(p+".failback", ErrInvalid, "%v is too short; use at least 1s (default %v)", o.Failback, DefaultLinkFailback)
	}
}

// linkSummary describes a link output for relay check.
func linkSummary(o Output) string {
	sec := "no tls"
	if o.Curve != nil {
		sec = strings.TrimPrefix(curveSummary(o.Curve), ", ")
	}
	if o.LinkTLS != nil {
		sec = "tls"
		if o.LinkTLS.ServerName != "" {
			sec += " (server_name " + o.LinkTLS.ServerName + ")"
		}
	}
	s := fmt.Sprintf("link to %s, %s, compression %s", strings.Join(o.Connect, " then "), sec, o.Compression)
	if o.Spool != nil {
		s += fmt.Sprintf(", spool %s (max %s, fsync %s)", o.Spool.Dir, o.Spool.MaxBytes, o.Spool.Fsync)
	}
	return s
}
