package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/relp"
)

// checker collects validation problems with the positions the decoder
// recorded.
type checker struct {
	c     *Config
	probs []Problem
	// bound maps "network port" to what binds that port, to catch two
	// sockets fighting over one address before the relay starts.
	bound map[string][]binder
}

func (k *checker) add(p string, sentinel error, format string, args ...any) {
	line, col := k.c.lookup(p)
	k.probs = append(k.probs, Problem{File: k.c.File, Line: line, Col: col, Path: p, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

// lookup returns where path, or the nearest key containing it, was written.
func (c *Config) lookup(p string) (line, col int) {
	for {
		if pos, ok := c.pos[p]; ok {
			return pos.line, pos.col
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return 0, 0
		}
		p = p[:i]
	}
}

// Validate checks the configuration and its settings against each other,
// and that the files it names are usable. The error, if any, is an *Error
// listing every problem.
func (c *Config) Validate() error {
	k := &checker{c: c, bound: map[string][]binder{}}
	if len(c.Inputs) == 0 {
		k.add("inputs", ErrRequired, "at least one input is required; e.g. inputs: [{name: rsyslog, type: syslog, listen: tcp://127.0.0.1:10514}]")
	}
	names := map[string]int{}
	for i := range c.Inputs {
		p := fmt.Sprintf("inputs[%d]", i)
		k.name(p, c.Inputs[i].Name, "inputs", names, i)
		k.input(p, &c.Inputs[i])
	}
	k.stream()
	names = map[string]int{}
	spoolDirs := map[string]string{}
	for i := range c.Outputs {
		p := fmt.Sprintf("outputs[%d]", i)
		k.name(p, c.Outputs[i].Name, "outputs", names, i)
		k.output(p, &c.Outputs[i])
		if c.Outputs[i].Spool != nil {
			k.spool(p+".spool", &c.Outputs[i], spoolDirs)
		}
	}
	k.http()
	if len(c.Outputs) == 0 && c.HTTP.Listen == "" && len(c.Inputs) > 0 {
		k.add("outputs", ErrRequired, "no output and http.listen is empty, so events would go nowhere; add an output or set http.listen for taps")
	}
	if c.DrainTimeout < 0 {
		k.add("drain_timeout", ErrInvalid, "%v is negative; use 0 to not wait, or e.g. 5s", c.DrainTimeout)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		k.add("log.level", ErrInvalid, "%q is not a log level; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		k.add("log.format", ErrInvalid, "%q is not a log format; use text or json", c.Log.Format)
	}
	if len(k.probs) > 0 {
		return newError(k.probs)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (k *checker) name(p, name, list string, seen map[string]int, i int) {
	switch {
	case name == "":
		k.add(p+".name", ErrRequired, "name is required; it labels logs and metrics")
	case !nameRE.MatchString(name):
		k.add(p+".name", ErrInvalid, "%q is not a valid name; use up to 64 letters, digits, '-', '_' or '.', starting with a letter or digit", name)
	default:
		if j, dup := seen[name]; dup {
			k.add(p+".name", ErrDuplicate, "%q is already the name of %s[%d]; names must be unique", name, list, j)
		} else {
			seen[name] = i
		}
	}
}

func (k *checker) input(p string, in *Input) {
	switch in.Type {
	case InputSyslog:
		k.size(p+".max_message_size", in.MaxMessageSize, DefaultMaxMessageSize)
		k.syslogInput(p, in)
	case InputZMQ:
		k.size(p+".max_message_size", in.MaxMessageSize, DefaultZMQMaxMessageSize)
		k.zmqInput(p, in)
	case InputRELP:
		k.size(p+".max_message_size", in.MaxMessageSize, DefaultRELPMaxMessageSize)
		k.relpInput(p, in)
	case InputLink:
		k.linkInput(p, in)
		k.linkCurve(p, in.Curve, in.TLS != nil, true)
	case InputJetStream:
		k.jetstreamInput(p, in)
	case "":
		k.add(p+".type", ErrRequired, "type is required; use syslog, relp, zmq, link or jetstream")
	default:
		k.add(p+".type", ErrInvalid, "%q is not an input type; use syslog, relp, zmq, link or jetstream", in.Type)
	}
	if in.Type != InputRELP {
		if in.AckTimeout != 0 {
			k.add(p+".ack_timeout", ErrInvalid, "ack_timeout applies only to relp inputs; remove it or change type")
		}
		if in.TLS != nil && len(in.TLS.PermittedPeers) > 0 {
			k.add(p+".tls.permitted_peers", ErrInvalid, "permitted_peers applies only to relp inputs; use client_ca with client_auth: require here")
		}
	}
}

// relpInput checks a RELP input: TCP or TLS listeners, and permitted peers
// that can actually be checked.
func (k *checker) relpInput(p string, in *Input) {
	if len(in.Listen) == 0 {
		k.add(p+".listen", ErrRequired, "listen is required for a relp input; e.g. listen: tcp://127.0.0.1:2514")
	}
	usesTLS := false
	for i, s := range in.Listen {
		lp := k.item(p+".listen", i, len(in.Listen))
		l, err := ParseListen(s)
		if err != nil {
			k.add(lp, ErrInvalid, "%v", err)
			continue
		}
		switch l.Scheme {
		case SchemeTLS:
			usesTLS = true
		case SchemeTCP:
		default:
			k.add(lp, ErrInvalid, "%q: RELP runs over TCP; use tcp://host:port or tls://host:port", s)
			continue
		}
		k.bind(lp, "tcp", l.Address, s)
	}
	switch {
	case usesTLS && in.TLS == nil:
		k.add(p+".tls", ErrRequired, "a tls:// listen URL needs tls: {cert: FILE, key: FILE}")
	case !usesTLS && in.TLS != nil:
		k.add(p+".tls", ErrInvalid, "tls is set but no listen URL uses tls://; change the scheme to tls:// or remove tls")
	case in.TLS != nil:
		k.tls(p+".tls", in.TLS, true)
		if len(in.TLS.PermittedPeers) > 0 {
			if in.TLS.ClientCA == "" {
				k.add(p+".tls.permitted_peers", ErrRequired, "permitted_peers needs client_ca, the PEM file of the CA that signs client certificates")
			} else if in.TLS.ClientAuth != ClientAuthRequire {
				k.add(p+".tls.client_auth", ErrInvalid, "%q with permitted_peers would let clients without a certificate in; use require (the default with client_ca)", in.TLS.ClientAuth)
			}
			for i, pp := range in.TLS.PermittedPeers {
				if err := relp.CheckPeerPattern(pp); err != nil {
					k.add(k.item(p+".tls.permitted_peers", i, len(in.TLS.PermittedPeers)), ErrInvalid, "%v", err)
				}
			}
		}
	}
	k.streamLimits(p, in)
	if in.AckTimeout <= 0 || in.AckTimeout > MaxRELPAckTimeout {
		k.add(p+".ack_timeout", ErrInvalid, "%v is out of range; use 1s to %v (default %v, below omrelp's 90 s timeout)", in.AckTimeout, MaxRELPAckTimeout, DefaultRELPAckTimeout)
	} else if in.IdleTimeout > 0 && in.IdleTimeout <= in.AckTimeout {
		// A client whose window is full waits for our answers without
		// sending: idle would close it before ack_timeout could.
		k.add(p+".idle_timeout", ErrInvalid, "%v is not above ack_timeout %v: a client waiting for answers sends nothing and would be closed as idle; raise it or use 0", in.IdleTimeout, in.AckTimeout)
	}
	if in.Socket != "" || len(in.Bind) > 0 || len(in.Connect) > 0 || in.HWM != 0 || in.Plain != nil || in.StreamFrame != nil {
		k.add(p, ErrInvalid, "socket, bind, connect, hwm, plain and stream_frame apply only to zmq inputs; remove them or change type")
	}
}

func (k *checker) syslogInput(p string, in *Input) {
	if len(in.Listen) == 0 {
		k.add(p+".listen", ErrRequired, "listen is required for a syslog input; e.g. listen: tcp://127.0.0.1:10514")
	}
	usesTLS := false
	for i, s := range in.Listen {
		lp := k.item(p+".listen", i, len(in.Listen))
		l, err := ParseListen(s)
		if err != nil {
			k.add(lp, ErrInvalid, "%v", err)
			continue
		}
		network := "tcp"
		switch l.Scheme {
		case SchemeTLS:
			usesTLS = true
		case SchemeUDP:
			network = "udp"
		case SchemeUnix:
			network = "unix"
		}
		k.bind(lp, network, l.Address, s)
	}
	switch {
	case usesTLS && in.TLS == nil:
		k.add(p+".tls", ErrRequired, "a tls:// listen URL needs tls: {cert: FILE, key: FILE}")
	case !usesTLS && in.TLS != nil:
		k.add(p+".tls", ErrInvalid, "tls is set but no listen URL uses tls://; change the scheme to tls:// or remove tls")
	case in.TLS != nil:
		k.tls(p+".tls", in.TLS, true)
	}
	k.streamLimits(p, in)
	k.unixSocket(p, in)
	if in.Socket != "" || len(in.Bind) > 0 || len(in.Connect) > 0 || in.HWM != 0 || in.Plain != nil || in.Curve != nil || in.StreamFrame != nil || in.MaxPeers != 0 {
		k.add(p, ErrInvalid, "socket, bind, connect, hwm, plain, curve, stream_frame and max_peers apply only to zmq inputs; remove them or change type")
	}
}

// streamLimits checks the connection limits of a stream input (syslog;
// RELP and link inputs too) at p.
func (k *checker) streamLimits(p string, in *Input) {
	k.between(p+".max_connections", in.MaxConnections, 1, MaxConnections, DefaultMaxConnections)
	if in.MaxConnections >= 1 {
		k.between(p+".max_connections_per_source", in.MaxConnectionsPerSource, 1, in.MaxConnections, listen.DefaultPerSource(in.MaxConnections))
	}
	for _, t := range []struct {
		key      string
		d, def   time.Duration
		protects string
	}{
		{"idle_timeout", in.IdleTimeout, DefaultIdleTimeout, "connections nobody uses"},
		{"handshake_timeout", in.HandshakeTimeout, DefaultHandshakeTimeout, "half-open TLS handshakes"},
		{"first_frame_timeout", in.FirstFrameTimeout, DefaultFirstFrameTimeout, "connections that never send (idle floods)"},
		{"frame_timeout", in.FrameTimeout, DefaultFrameTimeout, "frames sent a byte at a time (slowloris)"},
	} {
		switch {
		case t.d < 0:
			k.add(p+"."+t.key, ErrInvalid, "%v is negative; use 0 to turn it off, or e.g. %v (the default; it protects against %s)", t.d, t.def, t.protects)
		case t.d > 0 && t.d < MinStreamTimeout:
			k.add(p+"."+t.key, ErrInvalid, "%v is too short and would cut off healthy senders; use at least %v (default %v)", t.d, MinStreamTimeout, t.def)
		}
	}
}

// hasStreamLimits reports whether any stream-connection key is set.
func (in *Input) hasStreamLimits() bool {
	return in.MaxConnections != 0 || in.MaxConnectionsPerSource != 0 || in.IdleTimeout != 0 ||
		in.HandshakeTimeout != 0 || in.FirstFrameTimeout != 0 || in.FrameTimeout != 0
}

func (k *checker) zmqInput(p string, in *Input) {
	if in.Socket != SocketPull {
		k.add(p+".socket", ErrInvalid, "%q is not an input socket type; use pull", in.Socket)
	}
	switch {
	case len(in.Bind) > 0 && len(in.Connect) > 0:
		k.add(p+".connect", ErrInvalid, "a zmq input either binds or connects; remove bind or connect")
	case len(in.Bind) == 0 && len(in.Connect) == 0:
		k.add(p+".bind", ErrRequired, "bind or connect is required for a zmq input; e.g. bind: tcp://127.0.0.1:5555")
	}
	k.endpoints(p+".bind", in.Bind, true)
	k.endpoints(p+".connect", in.Connect, false)
	k.hwm(p+".hwm", in.HWM)
	if in.Plain != nil {
		k.plain(p+".plain", in.Plain, len(in.Bind) > 0, len(in.Connect) > 0)
	}
	if in.Curve != nil {
		k.curve(p+".curve", in.Curve, in.Plain)
	}
	k.maxPeers(p, in.MaxPeers, len(in.Bind) > 0)
	if len(in.Listen) > 0 || in.TLS != nil || in.hasStreamLimits() || in.UnixMode != 0 || in.UnixGroup != "" {
		k.add(p, ErrInvalid, "listen, tls, max_connections, max_connections_per_source, the *_timeout keys, unix_mode and unix_group apply only to syslog inputs; remove them or change type")
	}
}

// maxPeers checks a ZeroMQ socket's max_peers, which only a binding
// socket uses.
func (k *checker) maxPeers(p string, n int, binds bool) {
	switch {
	case binds:
		k.between(p+".max_peers", n, 1, MaxConnections, DefaultMaxPeers)
	case n != 0:
		k.add(p+".max_peers", ErrInvalid, "max_peers limits the peers of a binding socket; remove it or add bind")
	}
}

// unixSocket checks unix_mode and unix_group, which apply to unix://
// listen URLs.
func (k *checker) unixSocket(p string, in *Input) {
	if !in.hasUnix() {
		if in.UnixMode != 0 || in.UnixGroup != "" {
			k.add(p+".unix_mode", ErrInvalid, "unix_mode and unix_group apply to unix:// listen URLs; remove them or add one")
		}
		return
	}
	if in.UnixMode&^0o777 != 0 {
		k.add(p+".unix_mode", ErrInvalid, "%s is not a permission; use octal bits up to 0777, e.g. 0660", in.UnixMode)
	}
	if in.UnixMode&0o222 == 0 {
		k.add(p+".unix_mode", ErrInvalid, "%s lets nobody send; give the owner or group write permission, e.g. 0660", in.UnixMode)
	}
	if in.UnixGroup != "" {
		if _, err := LookupGroup(in.UnixGroup); err != nil {
			k.add(p+".unix_group", ErrInvalid, "%v", err)
		}
	}
}

// item names element i of a list key; a key written as one string keeps
// its own name so the message points at it.
func (k *checker) item(p string, i, n int) string {
	ip := fmt.Sprintf("%s[%d]", p, i)
	if _, ok := k.c.pos[ip]; ok || k.c.pos == nil || n > 1 {
		return ip
	}
	return p
}

func (k *checker) endpoints(p string, eps []string, bind bool) {
	for i, ep := range eps {
		ip := k.item(p, i, len(eps))
		if err := checkZMQEndpoint(ep, bind); err != nil {
			k.add(ip, ErrInvalid, "%v", err)
			continue
		}
		if bind {
			network, addr, _ := strings.Cut(ep, "://")
			if network == "tcp" {
				addr, _ = hostPort(addr, true)
			} else {
				network = "unix" // an ipc socket is a file like a syslog unix socket
			}
			k.bind(ip, network, addr, ep)
		}
	}
}

// bind records that path binds addr and reports a second binder of it:
// the same address, or the same port when either side is a wildcard host
// (0.0.0.0, ::, empty), which the kernel refuses too. Port 0 binds are
// exempt: each gets its own free port.
func (k *checker) bind(p, network, addr, written string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil { // a unix or ipc path
		host, port = addr, ""
	} else if port == "0" {
		return
	}
	key := network + " " + port
	for _, b := range k.bound[key] {
		if b.host == host || (port != "" && (wildcard(b.host) || wildcard(host))) {
			k.add(p, ErrDuplicate, "%s is already bound by %s; every address can be bound once", written, b.path)
			return
		}
	}
	k.bound[key] = append(k.bound[key], binder{host, p})
}

// binder is a host (or socket path) bound on a port, and the key binding it.
type binder struct{ host, path string }

func wildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

func (k *checker) hwm(p string, n int) {
	k.between(p, n, 1, MaxHWM, DefaultHWM)
}

// between checks lo <= n <= hi for a count.
func (k *checker) between(p string, n, lo, hi, def int) {
	switch {
	case n < lo:
		k.add(p, ErrInvalid, "%d is too small; use at least %d (default %d)", n, lo, def)
	case n > hi:
		k.add(p, ErrInvalid, "%d is too large; use at most %d (default %d)", n, hi, def)
	}
}

func (k *checker) size(p string, s, def ByteSize) {
	if s < MinMaxMessageSize || s > MaxMaxMessageSize {
		k.add(p, ErrInvalid, "%d bytes is out of range; use %d bytes to %s (default %s)", int64(s), int64(MinMaxMessageSize), MaxMaxMessageSize, def)
	}
}

func (k *checker) tls(p string, t *TLS, client bool) {
	for _, f := range []struct{ key, path string }{{"cert", t.Cert}, {"key", t.Key}} {
		if f.path == "" {
			k.add(p+"."+f.key, ErrRequired, "%s is required: the PEM file of the server's %s", f.key, map[string]string{"cert": "certificate chain", "key": "private key"}[f.key])
		} else if err := checkFile(f.path); err != nil {
			k.add(p+"."+f.key, ErrFile, "%v", err)
		}
	}
	if !k.hasProblem(p) {
		if _, err := t.ServerConfig(); err != nil {
			k.add(p+".cert", ErrFile, "%v", err)
		} else {
			k.secret(p+".key", t.Key)
		}
	}
	if !client {
		if t.ClientCA != "" || t.ClientAuth != "" {
			k.add(p, ErrInvalid, "client_ca and client_auth are not supported here; use tap_token_file")
		}
		return
	}
	if t.ClientCA != "" {
		if err := checkFile(t.ClientCA); err != nil {
			k.add(p+".client_ca", ErrFile, "%v", err)
		}
	}
	switch t.ClientAuth {
	case ClientAuthNone:
	case ClientAuthRequest, ClientAuthRequire:
		if t.ClientCA == "" {
			k.add(p+".client_auth", ErrRequired, "client_auth: %s needs client_ca, the PEM file of the CA that signs client certificates", t.ClientAuth)
		}
	default:
		k.add(p+".client_auth", ErrInvalid, "%q is not a client_auth mode; use none, request or require", t.ClientAuth)
	}
}

// hasProblem reports whether a problem was already found at or under p.
func (k *checker) hasProblem(p string) bool {
	for _, pr := range k.probs {
		if pr.Path == p || strings.HasPrefix(pr.Path, p+".") {
			return true
		}
	}
	return false
}

// plain checks PLAIN credentials for the sides the socket plays.
func (k *checker) plain(p string, pl *Plain, server, client bool) {
	if client && pl.Username == "" {
		k.add(p+".username", ErrRequired, "username is required to connect with PLAIN")
	}
	if server && !client && pl.Username == "" && pl.UsersFile == "" {
		k.add(p, ErrRequired, "a binding socket needs username and password, or users_file, to check clients against")
	}
	if len(pl.Username) > 255 || len(pl.Password) > 255 {
		k.add(p, ErrInvalid, "PLAIN username and password are limited to 255 bytes each")
	}
	if pl.UsersFile != "" {
		if !server {
			k.add(p+".users_file", ErrInvalid, "users_file only applies when binding; remove it or add bind")
		} else if _, err := pl.Users(); err != nil {
			k.add(p+".users_file", ErrFile, "%v", err)
		} else {
			k.secret(p+".users_file", pl.UsersFile)
		}
	}
}

func (k *checker) stream() {
	if err := checkStreamFrom(k.c.Stream.From); err != nil {
		k.add("stream.from", ErrInvalid, "%v", err)
	}
	if k.c.Stream.Default == "" {
		k.add("stream.default", ErrInvalid, "the default stream must not be empty; e.g. default: %s", DefaultStream)
	}
	k.between("stream.max_length", k.c.Stream.MaxLength, 1, MaxStreamMaxLength, DefaultStreamMaxLength)
	if l := k.c.Stream.MaxLength; l > 0 && len(k.c.Stream.Default) > l {
		k.add("stream.default", ErrInvalid, "%q is longer than stream.max_length (%d bytes); shorten it or raise max_length", k.c.Stream.Default, l)
	}
}

func (k *checker) output(p string, o *Output) {
	if o.Type == OutputLink {
		k.linkOutput(p, o)
		k.linkCurve(p, o.Curve, o.LinkTLS != nil, false)
		return
	}
	if o.isBroker() {
		k.brokerOutput(p, o)
		return
	}
	if o.Type != OutputZMQ {
		k.add(p+".type", ErrInvalid, "%q is not an output type; use zmq, link, jetstream or kafka", o.Type)
	}
	if o.LinkTLS != nil || o.Compression != "" || o.AllowInsecure || o.MaxBatch != 0 || o.Window != 0 || o.Failback != 0 {
		k.add(p, ErrInvalid, "tls, compression, allow_insecure, max_batch, window and failback apply to link outputs only; remove them or set type: link")
	}
	switch o.Socket {
	case SocketPush, SocketPub:
	case "":
		k.add(p+".socket", ErrRequired, "socket is required; use push (workers, never drops) or pub (taps, drops for slow subscribers)")
	default:
		k.add(p+".socket", ErrInvalid, "%q is not a socket type; use push or pub", o.Socket)
	}
	if len(o.Bind) == 0 && len(o.Connect) == 0 {
		k.add(p+".bind", ErrRequired, "an output needs at least one endpoint; set bind or connect (or both), e.g. bind: tcp://127.0.0.1:5557")
	}
	k.endpoints(p+".bind", o.Bind, true)
	k.endpoints(p+".connect", o.Connect, false)
	for i, s := range o.Streams {
		if _, err := path.Match(s, ""); err != nil {
			k.add(k.item(p+".streams", i, len(o.Streams)), ErrInvalid, "%q is not a valid pattern; use * for any run of characters, ? for one, [a-z] for a class, \\ to quote", s)
		}
	}
	switch o.Format {
	case FormatRaw, FormatJSON:
	default:
		k.add(p+".format", ErrInvalid, "%q is not a format; use raw or json", o.Format)
	}
	k.hwm(p+".hwm", o.HWM)
	k.size(p+".max_message_size", o.MaxMessageSize, DefaultZMQMaxMessageSize)
	if o.Heartbeat < 0 {
		k.add(p+".heartbeat", ErrInvalid, "%v is negative; use 0 for no heartbeats, or e.g. 10s", o.Heartbeat)
	}
	if o.Plain != nil {
		k.plain(p+".plain", o.Plain, len(o.Bind) > 0, len(o.Connect) > 0)
	}
	k.maxPeers(p, o.MaxPeers, len(o.Bind) > 0)
	if o.Curve != nil {
		k.curve(p+".curve", o.Curve, o.Plain)
	}
	if o.Ack != nil {
		k.ack(p+".ack", o)
	}
}

// ack checks an acknowledged PUSH output's ack section.
func (k *checker) ack(p string, o *Output) {
	a := o.Ack
	if o.Socket == SocketPub {
		k.add(p, ErrInvalid, "ack applies only to push outputs: a PUB does not wait for anyone; remove ack or use socket: push")
	}
	if len(a.Bind) == 0 && len(a.Connect) == 0 {
		k.add(p+".bind", ErrRequired, "acks need an endpoint of their own; set bind (workers or the sink connect to it) or connect, e.g. bind: tcp://127.0.0.1:5558")
	}
	k.endpoints(p+".bind", a.Bind, true)
	k.endpoints(p+".connect", a.Connect, false)
	k.between(p+".batch", a.Batch, 1, MaxAckBatch, DefaultAckBatch)
	k.between(p+".window", a.Window, 1, MaxAckWindow, DefaultAckWindow)
	if a.Batch > 0 && a.Window > 0 && a.Batch <= MaxAckBatch && a.Window <= MaxAckWindow && a.Batch*a.Window > MaxAckEvents {
		k.add(p+".window", ErrInvalid, "batch × window = %d events held in memory; keep it at most %d", a.Batch*a.Window, MaxAckEvents)
	}
	if a.Timeout <= 0 {
		k.add(p+".timeout", ErrInvalid, "%v: a batch must be resent after some time; use e.g. %v (default)", a.Timeout, DefaultAckTimeout)
	}
	switch {
	case a.Flush <= 0:
		k.add(p+".flush", ErrInvalid, "%v: a partly filled batch must be sent after some time; use e.g. %v (default)", a.Flush, DefaultAckFlush)
	case a.Timeout > 0 && a.Flush >= a.Timeout:
		k.add(p+".flush", ErrInvalid, "%v is not below timeout %v: a batch would be resent before it was sent; use e.g. %v", a.Flush, a.Timeout, DefaultAckFlush)
	}
}

func (k *checker) http() {
	h := &k.c.HTTP
	if h.Listen == "" {
		return // disabled: nothing else matters
	}
	if err := checkHTTPListen(h.Listen); err != nil {
		k.add("http.listen", ErrInvalid, "%v", err)
	} else {
		host, port, _ := net.SplitHostPort(h.Listen)
		k.bind("http.listen", "tcp", net.JoinHostPort(host, port), h.Listen)
		if h.TapTokenFile == "" && !h.AllowInsecureTap && !isLoopback(host) {
			k.add("http.listen", ErrInsecureTap, "%q would serve /v1/tap to the network without a token; set http.tap_token_file, listen on 127.0.0.1, or set http.allow_insecure_tap: true", h.Listen)
		}
	}
	if h.TLS != nil {
		k.tls("http.tls", h.TLS, false)
	}
	if h.TapTokenFile != "" {
		if _, err := h.TapToken(); err != nil {
			k.add("http.tap_token_file", ErrFile, "%v", err)
		} else {
			k.secret("http.tap_token_file", h.TapTokenFile)
		}
	}
	k.between("http.tap_max_clients", h.TapMaxClients, 1, MaxTapClients, DefaultTapMaxClients)
	k.between("http.tap_queue", h.TapQueue, 1, MaxTapQueue, DefaultTapQueue)
	if h.TapQueueBytes < 64<<10 || h.TapQueueBytes > MaxMaxMessageSize {
		k.add("http.tap_queue_bytes", ErrInvalid, "%d bytes is out of range; use 64KiB to %s (default %s)", int64(h.TapQueueBytes), MaxMaxMessageSize, DefaultTapQueueBytes)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"http.tap_write_timeout", h.TapWriteTimeout}, {"http.tap_ping_interval", h.TapPingInterval},
		{"http.read_timeout", h.ReadTimeout}, {"http.write_timeout", h.WriteTimeout}, {"http.idle_timeout", h.IdleTimeout},
	} {
		if d.v < 0 {
			k.add(d.key, ErrInvalid, "%v is negative; use 0 for none, or e.g. 30s", d.v)
		}
	}
	if h.MaxHeaderBytes < 1<<10 || h.MaxHeaderBytes > 1<<20 {
		k.add("http.max_header_bytes", ErrInvalid, "%d bytes is out of range; use 1KiB to 1MiB (default %s)", int64(h.MaxHeaderBytes), DefaultHTTPMaxHeaderBytes)
	}
	k.between("http.max_connections", h.MaxConnections, 1, MaxHTTPMaxConnections, DefaultHTTPMaxConnections)
	if h.MaxConnections > 0 && h.MaxConnections <= h.TapMaxClients {
		k.add("http.max_connections", ErrInvalid, "%d leaves no connection for /metrics and /healthz once %d taps are connected; make it larger than tap_max_clients", h.MaxConnections, h.TapMaxClients)
	}
	for i, o := range h.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			k.add(k.item("http.allowed_origins", i, len(h.AllowedOrigins)), ErrInvalid, "%v", err)
		}
	}
	for i, host := range h.AllowedHosts {
		if host != "*" && (host == "" || strings.ContainsAny(host, "/: \t") || strings.Contains(host, "://")) {
			k.add(k.item("http.allowed_hosts", i, len(h.AllowedHosts)), ErrInvalid, "%q is not a host name; write the name clients put in the URL, without scheme or port, e.g. relay.example.com (or * for any)", host)
		}
	}
}

// checkOrigin validates one http.allowed_origins entry: "*" or
// scheme://host[:port], as browsers send it in the Origin header.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%q is not a web origin; write scheme://host[:port], e.g. https://dashboard.example.com (or * for any)", o)
	}
	return nil
}

var streamFields = []string{"app-name", "msgid", "hostname", "facility", "severity"}

// checkStreamFrom validates a stream.from spec the way internal/event's
// ParseField reads it, without importing it.
func checkStreamFrom(s string) error {
	for _, f := range streamFields {
		if s == f {
			return nil
		}
	}
	kind, arg, ok := strings.Cut(s, ":")
	if ok {
		switch kind {
		case "sd":
			// The SD-ID ends at the last '.', as internal/event reads it.
			dot := strings.LastIndexByte(arg, '.')
			if dot <= 0 || dot == len(arg)-1 {
				return fmt.Errorf("%q needs an SD-ID and a parameter name; write sd:ID.param, e.g. sd:origin@32473.ip", s)
			}
			if !sdName(arg[:dot]) || !sdName(arg[dot+1:]) {
				return fmt.Errorf("%q: an SD-ID or parameter name is printable ASCII without space, '=', ']' or '\"'", s)
			}
			return nil
		case "json":
			for _, key := range strings.Split(arg, ".") {
				if key == "" {
					return fmt.Errorf("%q needs a field name, with dots only between nested keys; write json:field or json:outer.inner", s)
				}
			}
			return nil
		case "regex":
			re, err := regexp.Compile(arg)
			if err != nil {
				return fmt.Errorf("%q: %v", s, err)
			}
			if re.NumSubexp() < 1 {
				return fmt.Errorf("%q has no capture group; wrap the part that names the stream in (...), e.g. regex:type=(\\w+)", s)
			}
			return nil
		}
	}
	msg := fmt.Sprintf("%q is not a stream field; use app-name, msgid, hostname, facility, severity, sd:ID.param, json:field or regex:EXPR", s)
	if best := closest(s, streamFields); best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Errorf("%s", msg)
}

// sdName reports whether s is a valid RFC 5424 SD-NAME.
func sdName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '=' || c == ']' || c == '"' {
			return false
		}
	}
	return s != ""
}
