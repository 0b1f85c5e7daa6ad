// Package config holds the relay's YAML configuration: strict decoding
// (unknown keys are errors), defaults, and validation that reports every
// problem at once as FILE:LINE:COL: path: what is wrong; what to change.
package config

import (
	_ "embed" // DefaultYAML
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rsyslog-zmq/relay/internal/listen"
)

// DefaultYAML is the configuration the relay runs with when no -c is given.
// It doubles as the commented sample config admins start from.
//
//go:embed default.yaml
var DefaultYAML []byte

// Input types.
const (
	InputSyslog = "syslog" // syslog over tcp, udp, unix datagram or tls
	InputZMQ    = "zmq"    // ZeroMQ PULL, e.g. from omzmq-bridge
	InputRELP   = "relp"   // RELP from rsyslog's omrelp, answered after the durable hand-off
)

// Output types.
const (
	OutputZMQ = "zmq" // ZeroMQ PUSH or PUB
)

// ZeroMQ socket types.
const (
	SocketPull = "pull" // input: fair-queued from connected pushers
	SocketPush = "push" // output: load-balanced to workers, blocks when all are full
	SocketPub  = "pub"  // output: fanned out to subscribers, drops for slow ones
)

// Output formats.
const (
	FormatRaw  = "raw"  // the syslog message exactly as received
	FormatJSON = "json" // one JSON object per event (schema in README)
)

// TLS client authentication modes.
const (
	ClientAuthNone    = "none"    // do not ask for a client certificate
	ClientAuthRequest = "request" // ask, verify against client_ca if one is sent
	ClientAuthRequire = "require" // require a client certificate signed by client_ca
)

// Defaults applied to keys the file leaves out.
var (
	// DefaultMaxMessageSize caps one syslog message: rsyslog's own default
	// is 8k, and 64 KiB leaves room for large structured (JSON) events.
	DefaultMaxMessageSize ByteSize = 64 << 10
	// MinMaxMessageSize is the smallest max_message_size accepted: RFC 5424
	// requires receivers to take messages of 480 octets.
	MinMaxMessageSize ByteSize = 480
	// MaxMaxMessageSize is the largest max_message_size accepted; above it a
	// single peer could make the relay allocate unbounded memory.
	MaxMaxMessageSize ByteSize = 1 << 30
	// DefaultZMQMaxMessageSize caps one ZeroMQ message from a peer; it
	// matches internal/zmq's default.
	DefaultZMQMaxMessageSize ByteSize = 1 << 20
	// DefaultRELPMaxMessageSize is a RELP input's largest frame: librelp's
	// own default (128 KiB), above rsyslog's default maxMessageSize (8k).
	DefaultRELPMaxMessageSize ByteSize = 128 << 10
	// DefaultRELPAckTimeout is how long a RELP answer may wait for its
	// event's hand-off before the session is closed so omrelp resends;
	// below omrelp's own timeout (90 s) so the relay closes first, cleanly.
	DefaultRELPAckTimeout = 60 * time.Second
	// MaxRELPAckTimeout bounds a relp input's ack_timeout.
	MaxRELPAckTimeout = time.Hour
	// DefaultMaxConnections limits concurrent stream connections per syslog
	// input; at the limit a new connection evicts an idle one.
	DefaultMaxConnections = listen.DefaultMaxConnections
	// DefaultIdleTimeout closes a stream connection silent this long
	// (gracefully; rsyslog reconnects when it next sends).
	DefaultIdleTimeout = listen.DefaultIdleTimeout
	// DefaultHandshakeTimeout bounds a TLS handshake.
	DefaultHandshakeTimeout = listen.DefaultHandshakeTimeout
	// DefaultFirstFrameTimeout bounds the wait for a connection's first
	// complete frame.
	DefaultFirstFrameTimeout = listen.DefaultFirstFrameTimeout
	// DefaultFrameTimeout bounds how long a frame may stay incomplete.
	DefaultFrameTimeout = listen.DefaultFrameTimeout
	// MinStreamTimeout is the shortest stream-connection timeout accepted
	// (0 turns one off): anything shorter cuts off healthy senders.
	MinStreamTimeout = 100 * time.Millisecond
	// DefaultHWM is the ZeroMQ high-water mark (messages queued per peer).
	DefaultHWM = 1000
	// MaxHWM bounds hwm: a receive queue is allocated whole up front, so a
	// typo of a few digits must not take the relay's memory.
	MaxHWM = 1 << 22
	// MaxTapQueue and MaxTapClients bound the tap settings for the same reason.
	MaxTapQueue   = 1 << 20
	MaxTapClients = 1 << 14
	// MaxConnections bounds max_connections.
	MaxConnections = 1 << 20
	// DefaultStreamFrom is the field the stream type is derived from.
	DefaultStreamFrom = "app-name"
	// DefaultStream is the stream of events whose field is missing or empty.
	DefaultStream = "unknown"
	// DefaultFormat is the output message format.
	DefaultFormat = FormatRaw
	// DefaultHTTPListen serves /healthz, /metrics and /v1/tap on loopback only.
	DefaultHTTPListen = "127.0.0.1:8080"
	// DefaultTapMaxClients limits concurrent websocket tap clients.
	DefaultTapMaxClients = 64
	// DefaultTapQueue is the per-tap-client queue in events; a client that
	// falls further behind loses events, never slows the relay.
	DefaultTapQueue = 1024
	// DefaultTapQueueBytes bounds a tap client's queue in bytes as well:
	// events can be up to max_message_size each.
	DefaultTapQueueBytes ByteSize = 4 << 20
	// DefaultTapWriteTimeout closes a tap client whose connection takes no
	// data for this long.
	DefaultTapWriteTimeout = 10 * time.Second
	// DefaultTapPingInterval is how often a tap client is pinged; one that
	// does not answer within tap_ping_interval + tap_write_timeout is closed.
	DefaultTapPingInterval = 5 * time.Second
	// DefaultHTTPReadTimeout bounds reading a whole request (not a tap's
	// websocket, which pings decide).
	DefaultHTTPReadTimeout = 30 * time.Second
	// DefaultHTTPWriteTimeout bounds writing a response, e.g. a scrape.
	DefaultHTTPWriteTimeout = 60 * time.Second
	// DefaultHTTPIdleTimeout closes keep-alive connections idle this long.
	DefaultHTTPIdleTimeout = 60 * time.Second
	// DefaultHTTPMaxHeaderBytes bounds a request's header.
	DefaultHTTPMaxHeaderBytes ByteSize = 16 << 10
	// DefaultHTTPMaxConnections bounds concurrent HTTP connections (taps
	// included), so idle clients cannot take the inputs' file descriptors.
	DefaultHTTPMaxConnections = 256
	// MaxHTTPMaxConnections bounds http.max_connections.
	MaxHTTPMaxConnections = 1 << 16
	// DefaultStreamMaxLength is the longest stream name; longer ones are
	// mapped to OverlongStream. Stream names are metric labels, route-cache
	// keys and topic frames: their length bounds those in bytes.
	DefaultStreamMaxLength = 128
	// MaxStreamMaxLength bounds stream.max_length.
	MaxStreamMaxLength = 4096
	// DefaultUnixMode is the permission of unix:// syslog sockets: the
	// relay's user and group may send, others may not.
	DefaultUnixMode FileMode = 0o660
	// DefaultMaxPeers bounds the peers of a binding ZeroMQ socket.
	DefaultMaxPeers = 1024
	// DefaultDrainTimeout bounds how long shutdown waits to flush queued events.
	DefaultDrainTimeout = 5 * time.Second
	// DefaultAckBatch is events per acknowledged batch (ack.batch).
	DefaultAckBatch = 100
	// MaxAckBatch is the largest ack.batch: internal/ackpipe receivers
	// refuse longer batches by default.
	MaxAckBatch = 1 << 20
	// DefaultAckWindow is the least default ack.window: how many batches
	// may be unacknowledged at once, the one being filled included. The
	// default is AckWindowFor(batch): enough batches for DefaultAckEvents.
	DefaultAckWindow = 16
	// DefaultAckEvents is how many events the default ack.window lets be
	// unacknowledged. The window must cover the ack round trip under load,
	// which is not the network's: a batch's ack waits for the worker and
	// the sink to be scheduled and to work through what is queued before
	// it. Measured (bench/ackpush.sh, 2 cores): at 1–2M events/s a window
	// of 1,600 events kept the output waiting for acks most of the time
	// (round trips of 1.3–2 ms), 16,000 covered it.
	DefaultAckEvents = 16000
	// MaxAckWindow bounds ack.window; MaxAckEvents bounds batch × window,
	// the events an acknowledged output holds in memory.
	MaxAckWindow = 1 << 12
	MaxAckEvents = 1 << 22
	// DefaultAckTimeout is how long a batch may go unacknowledged before
	// it is sent again (ack.timeout).
	DefaultAckTimeout = 5 * time.Second
	// DefaultAckFlush is how long a partly filled batch waits for more
	// events before it is sent (ack.flush).
	DefaultAckFlush = 10 * time.Millisecond
	// DefaultLogLevel is the relay's log level.
	DefaultLogLevel = "info"
	// DefaultLogFormat is the relay's log format.
	DefaultLogFormat = "text"
)

// Config is the relay's whole configuration.
type Config struct {
	Inputs  []Input  `yaml:"inputs"`
	Stream  Stream   `yaml:"stream"`
	Outputs []Output `yaml:"outputs"`
	HTTP    HTTP     `yaml:"http"`
	// DrainTimeout bounds the flush of queued events on shutdown; 0 means
	// do not wait.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	Log          Log           `yaml:"log"`

	// File is the name the config was parsed from ("" for Default); it
	// prefixes error positions and anchors relative paths.
	File string `yaml:"-"`

	// pos maps a key path (e.g. "outputs[1].socket") to where it was written,
	// so Validate can point at the line of a problem.
	pos map[string]position
}

// Input is one source of events.
type Input struct {
	// Name identifies the input in logs, metrics and events; unique.
	Name string `yaml:"name"`
	// Type is InputSyslog, InputZMQ or InputRELP.
	Type string `yaml:"type"`

	// Listen holds syslog listen URLs: tcp://host:port, udp://host:port,
	// tls://host:port, unix:///path (datagram). See ParseListen.
	Listen []string `yaml:"listen,omitempty"`
	// TLS is required for tls:// listen URLs.
	TLS *TLS `yaml:"tls,omitempty"`
	// MaxConnections limits concurrent stream connections (syslog); at
	// the limit a new one evicts the longest-idle connection.
	MaxConnections int `yaml:"max_connections,omitempty"`
	// MaxConnectionsPerSource limits concurrent stream connections from
	// one address; more are refused (default max_connections/16, at least 8).
	MaxConnectionsPerSource int `yaml:"max_connections_per_source,omitempty"`
	// IdleTimeout closes a stream connection silent for this long; 0: never.
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty"`
	// AckTimeout is how long a RELP answer may wait for its event's
	// hand-off before the session is closed with serverclose (relp).
	AckTimeout time.Duration `yaml:"ack_timeout,omitempty"`
	// HandshakeTimeout bounds a TLS handshake; 0: never.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout,omitempty"`
	// FirstFrameTimeout closes a stream connection that sent no complete
	// frame this long after it opened; 0: never.
	FirstFrameTimeout time.Duration `yaml:"first_frame_timeout,omitempty"`
	// FrameTimeout closes a stream connection whose frame stays incomplete
	// this long (time waiting for the peer); 0: never.
	FrameTimeout time.Duration `yaml:"frame_timeout,omitempty"`

	// Socket is SocketPull (zmq).
	Socket string `yaml:"socket,omitempty"`
	// Bind and Connect are ZeroMQ endpoints; exactly one is set (zmq).
	Bind    []string `yaml:"bind,omitempty"`
	Connect []string `yaml:"connect,omitempty"`
	// HWM is the receive high-water mark in messages (zmq).
	HWM int `yaml:"hwm,omitempty"`
	// Plain enables ZeroMQ PLAIN authentication: server side on bind,
	// client side on connect (zmq).
	Plain *Plain `yaml:"plain,omitempty"`
	// Curve enables ZeroMQ CURVE (zmq); see Curve.
	Curve *Curve `yaml:"curve,omitempty"`
	// StreamFrame (default true) lets a two-frame message [stream, event],
	// as omzmq-bridge --topic sends it, set the event's stream; false
	// ignores the first frame and derives the stream as for syslog (zmq).
	StreamFrame *bool `yaml:"stream_frame,omitempty"`

	// UnixMode is the permission of the input's unix:// sockets (default
	// DefaultUnixMode); UnixGroup, a group name or id, their group (default:
	// the relay's) (syslog).
	UnixMode  FileMode `yaml:"unix_mode,omitempty"`
	UnixGroup string   `yaml:"unix_group,omitempty"`
	// MaxPeers limits the peers of a binding socket; more are refused (zmq).
	MaxPeers int `yaml:"max_peers,omitempty"`

	// MaxMessageSize caps one message; larger ones are counted and dropped.
	MaxMessageSize ByteSize `yaml:"max_message_size"`

	// StateDir holds what a link input knows of its senders (link).
	StateDir string `yaml:"state_dir,omitempty"`
	// AllowInsecure lets a link without tls bind a non-loopback address (link).
	AllowInsecure bool `yaml:"allow_insecure,omitempty"`
	// MaxBatch is the largest uncompressed batch a link input takes (link).
	MaxBatch ByteSize `yaml:"max_batch,omitempty"`
	// JetStream holds a jetstream input's keys (broker.go).
	JetStream *JetStreamInput `yaml:"-"`
}

// TLS holds server-side TLS settings; paths are resolved against the
// config file's directory.
type TLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca,omitempty"`
	// ClientAuth is ClientAuthNone, ClientAuthRequest or ClientAuthRequire;
	// it defaults to require when ClientCA is set, none otherwise.
	ClientAuth string `yaml:"client_auth,omitempty"`
	// PermittedPeers (relp inputs) are the names a client certificate
	// must carry, as rsyslog's tls.authMode="name" and tls.permittedPeer:
	// a subjectAltName dNSName or else the subject's CN, '*' standing for
	// a domain component or its start or end. Needs client_ca.
	PermittedPeers []string `yaml:"permitted_peers,omitempty"`
}

// Plain holds ZeroMQ PLAIN credentials. A connecting socket sends
// Username/Password; a binding socket accepts Username/Password and every
// user:password line of UsersFile.
type Plain struct {
	Username  string `yaml:"username,omitempty"`
	Password  string `yaml:"password,omitempty"`
	UsersFile string `yaml:"users_file,omitempty"`
}

// Stream says how the stream type of an event is derived.
type Stream struct {
	// From is app-name, msgid, hostname, facility, severity, sd:ID.param,
	// json:field or regex:EXPR (its first capture group is the stream).
	From string `yaml:"from"`
	// Default is the stream of events where From yields nothing.
	Default string `yaml:"default"`
	// MaxLength is the longest stream name in bytes; events with a longer
	// one get OverlongStream (counted).
	MaxLength int `yaml:"max_length"`
}

// Output is one ZeroMQ destination of events.
type Output struct {
	// Name identifies the output in logs and metrics; unique.
	Name string `yaml:"name"`
	// Type is OutputZMQ.
	Type string `yaml:"type"`
	// Socket is SocketPush or SocketPub.
	Socket string `yaml:"socket"`
	// Bind and Connect are ZeroMQ endpoints; at least one, both allowed.
	Bind    []string `yaml:"bind,omitempty"`
	Connect []string `yaml:"connect,omitempty"`
	// Streams are path.Match globs of the streams sent here; empty: all.
	Streams []string `yaml:"streams,omitempty"`
	// Format is FormatRaw or FormatJSON.
	Format string `yaml:"format"`
	// HWM is the per-peer send high-water mark in messages.
	HWM int `yaml:"hwm"`
	// MaxMessageSize caps a message accepted from a peer.
	MaxMessageSize ByteSize `yaml:"max_message_size"`
	// Plain enables PLAIN: client side for Connect, server side for Bind.
	Plain *Plain `yaml:"plain,omitempty"`
	// Curve enables ZeroMQ CURVE; see Curve.
	Curve *Curve `yaml:"curve,omitempty"`
	// Heartbeat is the ZMTP PING interval; 0: no PINGs.
	Heartbeat time.Duration `yaml:"heartbeat,omitempty"`
	// MaxPeers limits the peers of a binding socket; more are refused.
	MaxPeers int `yaml:"max_peers,omitempty"`
	// Spool, if set, puts a disk spool in front of the socket (push only).
	Spool *Spool `yaml:"spool,omitempty"`
	// JetStream and Kafka hold the keys of jetstream and kafka outputs
	// (broker.go).
	JetStream *JetStreamOutput `yaml:"-"`
	Kafka     *KafkaOutput     `yaml:"-"`
	// Ack makes a PUSH output acknowledged: events go out in numbered
	// batches and are held until a worker or a sink acknowledges them.
	Ack *Ack `yaml:"ack,omitempty"`
	// LinkTLS is a link output's client TLS (link).
	LinkTLS *LinkTLS `yaml:"tls,omitempty"`
	// Compression is zstd, s2 or none (link).
	Compression string `yaml:"compression,omitempty"`
	// AllowInsecure lets a link without tls connect to a non-loopback address (link).
	AllowInsecure bool `yaml:"allow_insecure,omitempty"`
	// MaxBatch bounds one batch before compression (link).
	MaxBatch ByteSize `yaml:"max_batch,omitempty"`
	// Window bounds the bytes sent and not yet acknowledged (link).
	Window ByteSize `yaml:"window,omitempty"`
	// Failback is how often a link on a later connect address tries the
	// earlier ones (link).
	Failback time.Duration `yaml:"failback,omitempty"`
}

// Ack configures an acknowledged PUSH output (internal/ackpipe's wire
// format: a 20-byte header frame before each event, a 16-byte ack frame
// per batch). Acks arrive on their own PULL socket, bound or connected.
type Ack struct {
	// Bind and Connect are the ack socket's endpoints; at least one.
	Bind    []string `yaml:"bind,omitempty"`
	Connect []string `yaml:"connect,omitempty"`
	// Batch is events per batch; Window how many batches may be
	// unacknowledged at once (the one being filled included). At most
	// Batch × Window events are held; then the output blocks.
	Batch  int `yaml:"batch"`
	Window int `yaml:"window"`
	// Timeout sends a batch again, to any worker, when it is not
	// acknowledged for this long.
	Timeout time.Duration `yaml:"timeout"`
	// Flush sends a partly filled batch this long after its first event.
	Flush time.Duration `yaml:"flush"`
}

// HTTP configures the relay's HTTP server: /healthz, /metrics, /v1/tap.
type HTTP struct {
	// Listen is host:port; "" disables the server.
	Listen string `yaml:"listen"`
	// TapTokenFile holds the bearer token /v1/tap requires; "" means none.
	TapTokenFile string `yaml:"tap_token_file,omitempty"`
	// TLS serves HTTPS (cert and key only).
	TLS *TLS `yaml:"tls,omitempty"`
	// AllowInsecureTap permits /v1/tap without a token on a non-loopback address.
	AllowInsecureTap bool `yaml:"allow_insecure_tap,omitempty"`
	// TapMaxClients limits concurrent tap clients.
	TapMaxClients int `yaml:"tap_max_clients"`
	// TapQueue is the per-client queue in events.
	TapQueue int `yaml:"tap_queue"`
	// TapQueueBytes bounds the per-client queue in bytes too.
	TapQueueBytes ByteSize `yaml:"tap_queue_bytes"`
	// TapWriteTimeout closes a tap client that takes no data for this
	// long; TapPingInterval is how often it is pinged (a client that does
	// not answer within both is closed). 0: off.
	TapWriteTimeout time.Duration `yaml:"tap_write_timeout"`
	TapPingInterval time.Duration `yaml:"tap_ping_interval"`
	// AllowedOrigins are the web origins (scheme://host[:port]) whose
	// pages may open /v1/tap besides the relay's own pages; "*" is any.
	AllowedOrigins []string `yaml:"allowed_origins,omitempty"`
	// AllowedHosts are the names the server answers to in the Host header
	// besides IP addresses, localhost and the machine's hostname; "*" is
	// any. Other names are refused, which stops DNS rebinding.
	AllowedHosts []string `yaml:"allowed_hosts,omitempty"`
	// ReadTimeout bounds reading a request, WriteTimeout writing a
	// response, IdleTimeout a keep-alive connection's wait for the next
	// request; 0: none. Tap websockets are bounded by the tap settings.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
	// MaxConnections limits concurrent HTTP connections, taps included.
	MaxConnections int `yaml:"max_connections"`
}

// Log configures the relay's own logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w; check the -c path", err)
	}
	return Parse(data, path)
}

// Default returns the embedded default configuration (DefaultYAML).
func Default() *Config {
	c, err := Parse(DefaultYAML, "")
	if err != nil {
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
}

// Parse decodes data strictly, applies defaults, resolves relative paths
// against filename's directory and validates. On failure the error is an
// *Error listing every problem found.
func Parse(data []byte, filename string) (*Config, error) {
	c := &Config{File: filename, pos: map[string]position{}}
	d := &decoder{file: filename, c: c, bad: map[string]bool{}}
	d.decode(data)
	c.ApplyDefaults()
	dir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		dir = filepath.Dir(filename)
	}
	c.resolvePaths(dir)
	probs := d.probs
	if d.failed {
		return nil, newError(probs)
	}
	if err := c.Validate(); err != nil {
		for _, p := range err.(*Error).Problems {
			if !d.isBad(p.Path) {
				probs = append(probs, p)
			}
		}
	}
	if len(probs) > 0 {
		return nil, newError(probs)
	}
	return c, nil
}

// ApplyDefaults fills keys that were not written (or, for a Config built
// in code, are zero) with the Default… values. Zero durations and an
// empty http.listen are left alone: they mean "off".
func (c *Config) ApplyDefaults() {
	for i := range c.Inputs {
		in := &c.Inputs[i]
		p := fmt.Sprintf("inputs[%d]", i)
		switch in.Type {
		case InputSyslog:
			if !c.set(p+".max_message_size") && in.MaxMessageSize == 0 {
				in.MaxMessageSize = DefaultMaxMessageSize
			}
			c.streamDefaults(p, in)
			if !c.set(p+".unix_mode") && in.UnixMode == 0 && in.hasUnix() {
				in.UnixMode = DefaultUnixMode
			}
			c.tlsDefaults(p, in)
		case InputRELP:
			if !c.set(p+".max_message_size") && in.MaxMessageSize == 0 {
				in.MaxMessageSize = DefaultRELPMaxMessageSize
			}
			c.streamDefaults(p, in)
			if !c.set(p+".ack_timeout") && in.AckTimeout == 0 {
				in.AckTimeout = DefaultRELPAckTimeout
			}
			c.tlsDefaults(p, in)
		case InputLink:
			c.linkInputDefaults(p, in)
		case InputJetStream:
			c.jetstreamInputDefaults(p, in)
		case InputZMQ:
			if !c.set(p+".socket") && in.Socket == "" {
				in.Socket = SocketPull
			}
			if !c.set(p+".max_message_size") && in.MaxMessageSize == 0 {
				in.MaxMessageSize = DefaultZMQMaxMessageSize
			}
			if in.StreamFrame == nil {
				t := true
				in.StreamFrame = &t
			}
			if !c.set(p+".hwm") && in.HWM == 0 {
				in.HWM = DefaultHWM
			}
			if !c.set(p+".max_peers") && in.MaxPeers == 0 && len(in.Bind) > 0 {
				in.MaxPeers = DefaultMaxPeers
			}
		}
	}
	if !c.set("stream.from") && c.Stream.From == "" {
		c.Stream.From = DefaultStreamFrom
	}
	if !c.set("stream.default") && c.Stream.Default == "" {
		c.Stream.Default = DefaultStream
	}
	if !c.set("stream.max_length") && c.Stream.MaxLength == 0 {
		c.Stream.MaxLength = DefaultStreamMaxLength
	}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		p := fmt.Sprintf("outputs[%d]", i)
		if !c.set(p+".type") && o.Type == "" {
			o.Type = OutputZMQ
		}
		if !c.set(p+".format") && o.Format == "" {
			o.Format = DefaultFormat
		}
		if !c.set(p+".hwm") && o.HWM == 0 {
			o.HWM = DefaultHWM
		}
		if !c.set(p+".max_message_size") && o.MaxMessageSize == 0 {
			o.MaxMessageSize = DefaultZMQMaxMessageSize
		}
		if !c.set(p+".max_peers") && o.MaxPeers == 0 && len(o.Bind) > 0 {
			o.MaxPeers = DefaultMaxPeers
		}
		if o.Spool != nil {
			c.spoolDefaults(p+".spool", o.Spool)
		}
		c.brokerOutputDefaults(p, o)
		if a := o.Ack; a != nil {
			if !c.set(p+".ack.batch") && a.Batch == 0 {
				a.Batch = DefaultAckBatch
			}
			if !c.set(p+".ack.window") && a.Window == 0 {
				a.Window = AckWindowFor(a.Batch)
			}
			if !c.set(p+".ack.timeout") && a.Timeout == 0 {
				a.Timeout = DefaultAckTimeout
			}
			if !c.set(p+".ack.flush") && a.Flush == 0 {
				a.Flush = DefaultAckFlush
			}
		}
		if o.Type == OutputLink {
			c.linkOutputDefaults(p, o)
		}
	}
	if c.pos != nil && !c.set("http.listen") {
		// Only a parsed file gets the default address: in code, the zero
		// HTTP means "no server".
		c.HTTP.Listen = DefaultHTTPListen
	}
	if !c.set("http.tap_max_clients") && c.HTTP.TapMaxClients == 0 {
		c.HTTP.TapMaxClients = DefaultTapMaxClients
	}
	if !c.set("http.tap_queue") && c.HTTP.TapQueue == 0 {
		c.HTTP.TapQueue = DefaultTapQueue
	}
	if !c.set("http.tap_queue_bytes") && c.HTTP.TapQueueBytes == 0 {
		c.HTTP.TapQueueBytes = DefaultTapQueueBytes
	}
	if !c.set("http.max_header_bytes") && c.HTTP.MaxHeaderBytes == 0 {
		c.HTTP.MaxHeaderBytes = DefaultHTTPMaxHeaderBytes
	}
	if !c.set("http.max_connections") && c.HTTP.MaxConnections == 0 {
		c.HTTP.MaxConnections = DefaultHTTPMaxConnections
	}
	// Timeouts: written 0 means none, as for drain_timeout; in code, a
	// zero HTTP gets them too, since no timeout is the hole they close.
	for _, d := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"http.tap_write_timeout", &c.HTTP.TapWriteTimeout, DefaultTapWriteTimeout},
		{"http.tap_ping_interval", &c.HTTP.TapPingInterval, DefaultTapPingInterval},
		{"http.read_timeout", &c.HTTP.ReadTimeout, DefaultHTTPReadTimeout},
		{"http.write_timeout", &c.HTTP.WriteTimeout, DefaultHTTPWriteTimeout},
		{"http.idle_timeout", &c.HTTP.IdleTimeout, DefaultHTTPIdleTimeout},
	} {
		if !c.set(d.key) && *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.pos != nil && !c.set("drain_timeout") {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if !c.set("log.level") && c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if !c.set("log.format") && c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
}

// hasUnix reports whether a listen URL of in is a unix socket.
func (in *Input) hasUnix() bool {
	for _, l := range in.Listen {
		if strings.HasPrefix(l, SchemeUnix+"://") {
			return true
		}
	}
	return false
}

// tlsDefaults fills a server TLS section's client_auth: require when it
// names a client_ca, none otherwise.
func (c *Config) tlsDefaults(p string, in *Input) {
	if in.TLS != nil && in.TLS.ClientAuth == "" && !c.set(p+".tls.client_auth") {
		in.TLS.ClientAuth = ClientAuthNone
		if in.TLS.ClientCA != "" {
			in.TLS.ClientAuth = ClientAuthRequire
		}
	}
}

// streamDefaults fills the stream-connection keys of a stream input
// (syslog; RELP and link inputs too) at p. Written zeros stay: they turn
// a timeout off.
func (c *Config) streamDefaults(p string, in *Input) {
	if !c.set(p+".max_connections") && in.MaxConnections == 0 {
		in.MaxConnections = DefaultMaxConnections
	}
	if !c.set(p+".max_connections_per_source") && in.MaxConnectionsPerSource == 0 {
		in.MaxConnectionsPerSource = listen.DefaultPerSource(in.MaxConnections)
	}
	for _, t := range []struct {
		key string
		d   *time.Duration
		def time.Duration
	}{
		{"idle_timeout", &in.IdleTimeout, DefaultIdleTimeout},
		{"handshake_timeout", &in.HandshakeTimeout, DefaultHandshakeTimeout},
		{"first_frame_timeout", &in.FirstFrameTimeout, DefaultFirstFrameTimeout},
		{"frame_timeout", &in.FrameTimeout, DefaultFrameTimeout},
	} {
		if !c.set(p+"."+t.key) && *t.d == 0 {
			*t.d = t.def
		}
	}
}

// set reports whether the file wrote the key at path.
func (c *Config) set(path string) bool {
	_, ok := c.pos[path]
	return ok
}

// resolvePaths makes relative file paths relative to dir, the config
// file's directory made absolute, so the relay works whatever its working
// directory and the effective YAML stands on its own.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	tlsPaths := func(t *TLS) {
		if t != nil {
			abs(&t.Cert)
			abs(&t.Key)
			abs(&t.ClientCA)
		}
	}
	for i := range c.Inputs {
		tlsPaths(c.Inputs[i].TLS)
		if c.Inputs[i].Plain != nil {
			abs(&c.Inputs[i].Plain.UsersFile)
		}
		abs(&c.Inputs[i].StateDir)
		c.Inputs[i].Curve.resolvePaths(abs)
	}
	for i := range c.Outputs {
		if c.Outputs[i].Plain != nil {
			abs(&c.Outputs[i].Plain.UsersFile)
		}
		if c.Outputs[i].Spool != nil {
			abs(&c.Outputs[i].Spool.Dir)
		}
		if t := c.Outputs[i].LinkTLS; t != nil {
			abs(&t.CA)
			abs(&t.Cert)
			abs(&t.Key)
		}
		c.Outputs[i].Curve.resolvePaths(abs)
	}
	tlsPaths(c.HTTP.TLS)
	abs(&c.HTTP.TapTokenFile)
	c.resolveBrokerPaths(abs)
}

// AckWindowFor is the default ack.window for batches of batch events:
// enough batches for DefaultAckEvents events in flight, at least
// DefaultAckWindow and at most MaxAckWindow.
func AckWindowFor(batch int) int {
	if batch <= 0 {
		batch = DefaultAckBatch
	}
	return min(max((DefaultAckEvents+batch-1)/batch, DefaultAckWindow), MaxAckWindow)
}
