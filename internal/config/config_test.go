package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// defaultHTTP is the http section a file that leaves it out gets.
func defaultHTTP() HTTP {
	return HTTP{Listen: DefaultHTTPListen, TapMaxClients: DefaultTapMaxClients, TapQueue: DefaultTapQueue,
		TapQueueBytes: DefaultTapQueueBytes, TapWriteTimeout: DefaultTapWriteTimeout, TapPingInterval: DefaultTapPingInterval,
		ReadTimeout: DefaultHTTPReadTimeout, WriteTimeout: DefaultHTTPWriteTimeout, IdleTimeout: DefaultHTTPIdleTimeout,
		MaxHeaderBytes: DefaultHTTPMaxHeaderBytes, MaxConnections: DefaultHTTPMaxConnections}
}

// strip drops what a parse records beside the settings, so configs can be
// compared with ones written out in a test.
func strip(c *Config) *Config {
	cp := *c
	cp.pos = nil
	cp.File = ""
	return &cp
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return c
}

// roundTrip checks that the effective YAML parses back to the same config.
func roundTrip(t *testing.T, c *Config) {
	t.Helper()
	y1, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(y1, c.File)
	if err != nil {
		t.Fatalf("effective YAML does not parse back:\n%v\n--- YAML:\n%s", err, y1)
	}
	y2, err := c2.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y1, y2) {
		t.Fatalf("effective YAML changed on a round trip:\n%s\n--- then:\n%s", y1, y2)
	}
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("want at least 4 good files, got %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c := mustLoad(t, f)
			if c.File != f {
				t.Errorf("File = %q, want %q", c.File, f)
			}
			roundTrip(t, c)
		})
	}
}

// TestIssueExample pins the shape from the issue: it must parse exactly so.
func TestIssueExample(t *testing.T) {
	yes := true
	got := strip(mustLoad(t, "testdata/issue.good.yaml"))
	want := &Config{
		Inputs: []Input{
			{Name: "rsyslog-tcp", Type: InputSyslog, Listen: []string{"tcp://127.0.0.1:10514"},
				MaxConnections: 1024, MaxConnectionsPerSource: 64, IdleTimeout: 5 * time.Minute, HandshakeTimeout: 10 * time.Second,
				FirstFrameTimeout: 10 * time.Second, FrameTimeout: 30 * time.Second, MaxMessageSize: 64 << 10},
			{Name: "from-bridge", Type: InputZMQ, Socket: SocketPull, Bind: []string{"tcp://127.0.0.1:5555"},
				HWM: 1000, MaxMessageSize: 1 << 20, StreamFrame: &yes, MaxPeers: 1024},
		},
		Stream: Stream{From: "app-name", Default: "unknown", MaxLength: 128},
		Outputs: []Output{
			{Name: "workers", Type: OutputZMQ, Socket: SocketPush, Bind: []string{"tcp://127.0.0.1:5557"},
				Streams: []string{"impression", "click"}, Format: FormatRaw, HWM: 10000, MaxMessageSize: 1 << 20, MaxPeers: 1024},
			{Name: "taps", Type: OutputZMQ, Socket: SocketPub, Bind: []string{"tcp://127.0.0.1:5556"},
				Format: FormatRaw, HWM: 1000, MaxMessageSize: 1 << 20, MaxPeers: 1024},
		},
		HTTP:         defaultHTTP(),
		DrainTimeout: 5 * time.Second,
		Log:          Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("issue example:\n got %+v\nwant %+v", got, want)
	}
}

func TestFullFile(t *testing.T) {
	c := mustLoad(t, "testdata/full.good.yaml")
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inputs[0]
	if want := []string{"tls://0.0.0.0:6514", "tcp://[::1]:10514", "udp://*:10514", "unix:///run/relay/syslog.sock"}; !reflect.DeepEqual(in.Listen, want) {
		t.Errorf("listen = %q, want %q", in.Listen, want)
	}
	wantTLS := &TLS{Cert: filepath.Join(dir, "certs/relay.pem"), Key: filepath.Join(dir, "certs/relay.key"),
		ClientCA: filepath.Join(dir, "certs/relay.pem"), ClientAuth: ClientAuthRequest}
	if !reflect.DeepEqual(in.TLS, wantTLS) {
		t.Errorf("tls = %+v, want %+v", in.TLS, wantTLS)
	}
	if in.MaxMessageSize != 128<<10 || in.MaxConnections != 10 || in.MaxConnectionsPerSource != 5 || in.IdleTimeout != 0 ||
		in.HandshakeTimeout != 3*time.Second || in.FirstFrameTimeout != 2*time.Second || in.FrameTimeout != time.Minute {
		t.Errorf("syslog limits = %d %d %d %v %v %v %v", in.MaxMessageSize, in.MaxConnections, in.MaxConnectionsPerSource,
			in.IdleTimeout, in.HandshakeTimeout, in.FirstFrameTimeout, in.FrameTimeout)
	}
	z := c.Inputs[1]
	if z.Socket != SocketPull || len(z.Bind) != 0 || !reflect.DeepEqual(z.Connect, []string{"tcp://bridge1:5555", "ipc:///run/relay/bridge.ipc"}) ||
		z.HWM != 5000 || z.MaxMessageSize != 2<<20 || z.StreamFrame == nil || !*z.StreamFrame ||
		!reflect.DeepEqual(z.Plain, &Plain{Username: "relay", Password: "pw:with:colons"}) {
		t.Errorf("zmq input = %+v", z)
	}
	zb := c.Inputs[2]
	if zb.Socket != SocketPull || zb.Plain.UsersFile != filepath.Join(dir, "users.txt") {
		t.Errorf("zmq bind input = %+v", zb)
	}
	users, err := zb.Plain.Users()
	if err != nil || !reflect.DeepEqual(users, map[string]string{"worker1": "pw1", "worker2": "pw2"}) {
		t.Errorf("users = %v, %v", users, err)
	}
	if c.Stream != (Stream{From: `regex:type=(\w+)`, Default: "other", MaxLength: 64}) {
		t.Errorf("stream = %+v", c.Stream)
	}
	o := c.Outputs[0]
	if !reflect.DeepEqual(o.Bind, []string{"tcp://127.0.0.1:5557"}) || !reflect.DeepEqual(o.Connect, []string{"tcp://w1:5557", "tcp://w2:5557"}) ||
		!reflect.DeepEqual(o.Streams, []string{"impression", "click*", "ad-[0-9]?"}) || o.Format != FormatJSON ||
		o.HWM != 10000 || o.MaxMessageSize != 4096 || o.Heartbeat != 10*time.Second ||
		!reflect.DeepEqual(o.Plain, &Plain{Username: "relay", Password: "secret"}) {
		t.Errorf("push output = %+v", o)
	}
	if o := c.Outputs[1]; o.Type != OutputZMQ || o.Format != FormatRaw || o.HWM != DefaultHWM {
		t.Errorf("pub output defaults = %+v", o)
	}
	h := c.HTTP
	if h.Listen != "[::]:8443" || h.TapTokenFile != filepath.Join(dir, "tap.token") || h.TapMaxClients != 8 || h.TapQueue != 256 ||
		!reflect.DeepEqual(h.TLS, &TLS{Cert: filepath.Join(dir, "certs/relay.pem"), Key: filepath.Join(dir, "certs/relay.key")}) {
		t.Errorf("http = %+v", h)
	}
	if tok, err := h.TapToken(); tok != "s3cret-token" || err != nil {
		t.Errorf("TapToken = %q, %v", tok, err)
	}
	if c.DrainTimeout != 30*time.Second || c.Log != (Log{Level: "debug", Format: "json"}) {
		t.Errorf("top level = %v %+v", c.DrainTimeout, c.Log)
	}
	// The security settings (#21).
	if in.UnixMode != 0o600 || in.UnixGroup != "root" || zb.MaxPeers != 100 || c.Stream.MaxLength != 64 || o.MaxPeers != 10 {
		t.Errorf("unix_mode %s, unix_group %q, max_peers %d/%d, stream.max_length %d", in.UnixMode, in.UnixGroup, zb.MaxPeers, o.MaxPeers, c.Stream.MaxLength)
	}
	if c.Outputs[1].MaxPeers != DefaultMaxPeers {
		t.Errorf("pub output max_peers = %d, want the default", c.Outputs[1].MaxPeers)
	}
	if h.TapQueueBytes != 1<<20 || h.TapWriteTimeout != 3*time.Second || h.TapPingInterval != 2*time.Second ||
		!reflect.DeepEqual(h.AllowedOrigins, []string{"https://dash.example.com"}) || !reflect.DeepEqual(h.AllowedHosts, []string{"relay.example.com"}) ||
		h.ReadTimeout != 5*time.Second || h.WriteTimeout != 20*time.Second || h.IdleTimeout != 30*time.Second ||
		h.MaxHeaderBytes != 8<<10 || h.MaxConnections != 100 {
		t.Errorf("http security settings = %+v", h)
	}
}

func TestDefaultsApplied(t *testing.T) {
	c := mustLoad(t, "testdata/minimal.good.yaml")
	in := c.Inputs[0]
	if in.MaxMessageSize != DefaultMaxMessageSize || in.MaxConnections != DefaultMaxConnections || in.MaxConnectionsPerSource != 64 ||
		in.IdleTimeout != 5*time.Minute || in.HandshakeTimeout != 10*time.Second || in.FirstFrameTimeout != 10*time.Second ||
		in.FrameTimeout != 30*time.Second || in.TLS != nil {
		t.Errorf("syslog input defaults = %+v", in)
	}
	if c.Stream != (Stream{From: DefaultStreamFrom, Default: DefaultStream, MaxLength: DefaultStreamMaxLength}) {
		t.Errorf("stream defaults = %+v", c.Stream)
	}
	if !reflect.DeepEqual(c.HTTP, defaultHTTP()) {
		t.Errorf("http defaults = %+v", c.HTTP)
	}
	if c.DrainTimeout != DefaultDrainTimeout || c.Log != (Log{Level: DefaultLogLevel, Format: DefaultLogFormat}) {
		t.Errorf("top-level defaults = %v %+v", c.DrainTimeout, c.Log)
	}
	if len(c.Outputs) != 0 {
		t.Errorf("outputs = %+v, want none", c.Outputs)
	}
}

// TestLinkInputStreamLimits: a link input takes the connection limits of
// the other stream inputs, with their defaults, and a written 0 turns a
// timeout off through the effective YAML too. (The keys were accepted
// before, but only max_connections and idle_timeout reached the listener,
// and a written 0 there meant the default.)
func TestLinkInputStreamLimits(t *testing.T) {
	c, err := Parse([]byte(`
inputs:
  - {name: l, type: link, bind: [tcp://127.0.0.1:6000], state_dir: /tmp/relay-config-test/link/l, idle_timeout: 0, frame_timeout: 5s}
outputs: [{name: o, socket: pub, bind: "tcp://127.0.0.1:0"}]
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inputs[0]
	if in.MaxConnections != DefaultMaxConnections || in.MaxConnectionsPerSource != 64 || in.IdleTimeout != 0 ||
		in.HandshakeTimeout != DefaultHandshakeTimeout || in.FirstFrameTimeout != DefaultFirstFrameTimeout || in.FrameTimeout != 5*time.Second {
		t.Errorf("link input limits = %+v", in)
	}
	roundTrip(t, c)
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(y, []byte("idle_timeout: 0")) {
		t.Errorf("the effective YAML loses the written idle_timeout 0 (it would come back as the default):\n%s", y)
	}
}

// TestLinkClientAuthWrittenEmpty: an empty client_auth written on a link
// input is refused as on any other input, not replaced by the default.
func TestLinkClientAuthWrittenEmpty(t *testing.T) {
	_, err := Parse([]byte(`
inputs:
  - {name: l, type: link, bind: [tcp://127.0.0.1:6000], state_dir: /tmp/relay-config-test/link/l, tls: {cert: testdata/certs/relay.pem, key: testdata/certs/relay.key, client_ca: testdata/certs/relay.pem, client_auth: ""}}
outputs: [{name: o, socket: pub, bind: "tcp://127.0.0.1:0"}]
`), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), `inputs[0].tls.client_auth: "" is not a client_auth mode; use none, request or require`) {
		t.Fatalf("want the written empty client_auth refused, got %v", err)
	}
}

// TestExplicitZeroKept: written values that equal a type's zero value are
// kept, not replaced by defaults.
func TestExplicitZeroKept(t *testing.T) {
	c, err := Parse([]byte(`
inputs: [{name: in, type: syslog, listen: "udp://127.0.0.1:514"}]
outputs: [{name: o, socket: pub, bind: "tcp://127.0.0.1:0"}]
http: {listen: ""}
drain_timeout: 0
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "" || c.DrainTimeout != 0 {
		t.Errorf("http.listen = %q, drain_timeout = %v; want both off", c.HTTP.Listen, c.DrainTimeout)
	}
	_, err = Parse([]byte(`
inputs: [{name: in, type: syslog, listen: "udp://127.0.0.1:514", max_connections: 0}]
outputs: [{name: o, socket: pub, bind: "tcp://127.0.0.1:0", hwm: 0}]
`), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), "x.yaml:2:66: inputs[0].max_connections: 0 is too small") ||
		!strings.Contains(err.Error(), "x.yaml:3:61: outputs[0].hwm: 0 is too small") {
		t.Fatalf("explicit zeros must be refused, not defaulted; got:\n%v", err)
	}
}

func TestAnchors(t *testing.T) {
	c := mustLoad(t, "testdata/anchors.good.yaml")
	want := []Output{
		{Name: "clicks", Type: OutputZMQ, Socket: SocketPush, Connect: []string{"tcp://w1:5557"}, Streams: []string{"click"},
			Format: FormatRaw, HWM: 50, MaxMessageSize: DefaultZMQMaxMessageSize},
		{Name: "views", Type: OutputZMQ, Socket: SocketPush, Connect: []string{"tcp://w2:5557"},
			Format: FormatRaw, HWM: 60, MaxMessageSize: DefaultZMQMaxMessageSize},
	}
	if !reflect.DeepEqual(c.Outputs, want) {
		t.Errorf("outputs with merge keys:\n got %+v\nwant %+v", c.Outputs, want)
	}
	if c.HTTP.Listen != "" {
		t.Errorf("http.listen = %q, want disabled", c.HTTP.Listen)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config does not validate:\n%v", err)
	}
	if len(c.Inputs) != 1 || c.Inputs[0].Type != InputSyslog ||
		!reflect.DeepEqual(c.Inputs[0].Listen, []string{"tcp://127.0.0.1:10514", "udp://127.0.0.1:10514"}) {
		t.Errorf("default inputs = %+v", c.Inputs)
	}
	if c.Stream != (Stream{From: "app-name", Default: "unknown", MaxLength: DefaultStreamMaxLength}) {
		t.Errorf("default stream = %+v", c.Stream)
	}
	if len(c.Outputs) != 1 || c.Outputs[0].Socket != SocketPub || !reflect.DeepEqual(c.Outputs[0].Bind, []string{"tcp://127.0.0.1:5556"}) {
		t.Errorf("default outputs = %+v", c.Outputs)
	}
	if c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("default http.listen = %q", c.HTTP.Listen)
	}
	if n := bytes.Count(DefaultYAML, []byte("\n#")); n < 5 {
		t.Errorf("default.yaml has %d comment lines; it is the sample admins read", n)
	}
	roundTrip(t, c)
}

// badFiles lists, for each testdata/*.bad.yaml, every problem expected:
// its LINE:COL (or LINE, or nothing), key path and a part of the message.
var badFiles = map[string][]struct{ pos, path, msg string }{
	"syntax.bad.yaml":  {{"4:1", "", "invalid YAML: a tab in indentation; indent with spaces"}},
	"syntax2.bad.yaml": {{"2", "", "invalid YAML: did not find expected ',' or ']'"}},
	"syntax3.bad.yaml": {{"2", "", "invalid YAML: found unexpected end of stream"}},
	"empty.bad.yaml":   {{"", "inputs", "at least one input is required"}},
	"nowhere.bad.yaml": {{"", "outputs", "events would go nowhere; add an output or set http.listen"}},
	"dupkey.bad.yaml": {
		{"5:5", "inputs[0].name", "key is already set on line 2; remove one of them"},
		{"7:1", "outputs", "key is already set on line 6"},
	},
	"unknown.bad.yaml": {
		{"4:5", "inputs[0].lisen", `unknown key; did you mean "listen"?`},
		{"5:5", "inputs[0].bind", `"bind" does not apply to a syslog input; remove it or change type`},
		{"9:5", "inputs[1].listen", `"listen" does not apply to a zmq input`},
		{"11:3", "stream.form", `did you mean "from"?`},
		{"16:5", "outputs[0].stream", `did you mean "streams"?`},
		{"17:1", "htpp", `did you mean "http"?`},
		{"20:54", "http.tls.client_ca", "the HTTP server does not check client certificates; use tap_token_file"},
		{"21:1", "zzzzzzzzzz", "unknown key; valid keys: drain_timeout, http, inputs, log, outputs, stream"},
	},
	"types.bad.yaml": {
		{"4:13", "inputs[0].listen", "must be a string or a list of strings, not a mapping"},
		{"5:23", "inputs[0].max_message_size", `"64k" is not a size; write a number of bytes or a number with KiB`},
		{"6:22", "inputs[0].max_connections", `"many" is not a whole number`},
		{"7:19", "inputs[0].idle_timeout", `"5" is not a duration; write a number with a unit`},
		{"10:34", "inputs[1].bind[1]", "must be a string, not a list"},
		{"11:19", "inputs[1].stream_frame", `"yes" is not a boolean; use true or false`},
		{"12:10", "inputs[1].hwm", `"1.5" is not a whole number`},
		{"13:10", "outputs", "must be a list, not a mapping; start each output with '- name: …'"},
		{"14:7", "http", "must be a mapping of keys, not a string"},
		{"15:16", "drain_timeout", "a list is not a duration"},
	},
	"link.bad.yaml": {
		{"2:5", "inputs[0].state_dir", "state_dir is required"},
		{"4:12", "inputs[0].bind[0]", `"tcp://0.0.0.0:6000" is not a loopback address and the link has neither tls nor curve`},
		{"5:5", "inputs[0].listen", `"listen" does not apply to a link input; remove it or change type`},
		{"10:5", "inputs[1].tls.client_ca", "client_ca is required on a link input"},
		{"12:5", "outputs[0].spool", "a link output needs a spool"},
		{"14:15", "outputs[0].connect[0]", `"tcp://relay-a.dc2:6000" is not a loopback address and the link has neither tls nor curve`},
		{"14:39", "outputs[0].connect[1]", `"127.0.0.1:6000": a link connects to tcp://host:port`},
		{"15:5", "outputs[0].compression", `"lz4" is not a compression; use zstd (best ratio), s2 (least CPU) or none`},
		{"16:5", "outputs[0].heartbeat", "10ms is too short"},
		{"17:5", "outputs[1]", "tls, compression, allow_insecure, max_batch, window and failback apply to link outputs only"},
	},
	"values.bad.yaml": {
		{"3:5", "inputs[0].type", `"sylog" is not an input type; use syslog, relp, zmq, link or jetstream`},
		{"6:5", "inputs[1].socket", `"push" is not an input socket type; use pull`},
		{"8:5", "inputs[1].hwm", "0 is too small; use at least 1 (default 1000)"},
		{"9:5", "inputs[1].max_message_size", "100 bytes is out of range; use 480 bytes to 1GiB (default 1MiB)"},
		{"12:5", "outputs[0].type", `"zeromq" is not an output type; use zmq`},
		{"13:5", "outputs[0].socket", `"pusj" is not a socket type; use push or pub`},
		{"15:5", "outputs[0].format", `"xml" is not a format; use raw or json`},
		{"16:5", "outputs[0].hwm", "-1 is too small"},
		{"17:5", "outputs[0].heartbeat", "-1s is negative"},
		{"18:5", "outputs[0].max_message_size", "2147483648 bytes is out of range"},
		{"19:21", "outputs[0].streams[1]", `"bad[" is not a valid pattern`},
		{"19:29", "outputs[0].streams[2]", `"a\\" is not a valid pattern`},
		{"21:3", "http.tap_max_clients", "0 is too small; use at least 1 (default 64)"},
		{"22:3", "http.tap_queue", "-5 is too small; use at least 1 (default 1024)"},
		{"23:1", "drain_timeout", "-1s is negative"},
		{"24:7", "log.level", `"verbose" is not a log level; use debug, info, warn or error`},
		{"24:23", "log.format", `"logfmt" is not a log format; use text or json`},
	},
	"security.bad.yaml": {
		{"5:5", "inputs[0].unix_mode", "unix_mode and unix_group apply to unix:// listen URLs"},
		{"9:16", "inputs[1].unix_mode", `"0999" is not a file mode; write octal permission bits, e.g. 0660`},
		{"13:5", "inputs[2].unix_mode", "0444 lets nobody send"},
		{"14:5", "inputs[2].unix_group", `group "no-such-group-xyz" does not exist`},
		{"18:5", "inputs[3].max_peers", "max_peers limits the peers of a binding socket; remove it or add bind"},
		{"20:3", "stream.max_length", "0 is too small; use at least 1 (default 128)"},
		{"25:5", "outputs[0].max_peers", "0 is too small; use at least 1 (default 1024)"},
		{"27:3", "http.tap_queue_bytes", "1024 bytes is out of range; use 64KiB to 1GiB (default 4MiB)"},
		{"28:3", "http.tap_write_timeout", "-1s is negative"},
		{"29:3", "http.idle_timeout", "-5s is negative"},
		{"30:3", "http.max_header_bytes", "100 bytes is out of range; use 1KiB to 1MiB (default 16KiB)"},
		{"31:3", "http.max_connections", "10 leaves no connection for /metrics and /healthz once 64 taps are connected"},
		{"32:21", "http.allowed_origins[0]", `"evil.example" is not a web origin; write scheme://host[:port]`},
		{"32:59", "http.allowed_origins[2]", `"ftp://x" is not a web origin`},
		{"33:19", "http.allowed_hosts[0]", `"http://relay.example.com" is not a host name`},
	},
	"limits.bad.yaml": {
		{"6:5", "inputs[0].max_connections_per_source", "101 is too large; use at most 100 (default 8)"},
		{"7:5", "inputs[0].idle_timeout", "-5m0s is negative; use 0 to turn it off, or e.g. 5m0s (the default; it protects against connections nobody uses)"},
		{"8:5", "inputs[0].handshake_timeout", "10ms is too short and would cut off healthy senders; use at least 100ms (default 10s)"},
		{"9:5", "inputs[0].first_frame_timeout", "1ns is too short"},
		{"10:5", "inputs[0].frame_timeout", "-1s is negative; use 0 to turn it off, or e.g. 30s (the default; it protects against frames sent a byte at a time (slowloris))"},
		{"14:5", "inputs[1].first_frame_timeout", `"first_frame_timeout" does not apply to a zmq input; remove it or change type`},
		{"19:5", "inputs[2].frame_timeout", "-1s is negative; use 0 to turn it off"},
	},
	"endpoints.bad.yaml": {
		{"5:9", "inputs[0].listen[0]", `"127.0.0.1:10514" has no scheme; write tcp://127.0.0.1:10514, udp://127.0.0.1:10514`},
		{"6:9", "inputs[0].listen[1]", `scheme "http" is not supported; use tcp, udp, tls or unix`},
		{"7:9", "inputs[0].listen[2]", "not host:port; write tcp://host:port"},
		{"8:9", "inputs[0].listen[3]", `port "99999" is not a number from 1 to 65535`},
		{"9:9", "inputs[0].listen[4]", "the socket path is empty; write unix:///path/to/socket"},
		{"10:9", "inputs[0].listen[5]", "a path or query does not belong here"},
		{"13:15", "inputs[1].connect[0]", "connect needs a host, not *"},
		{"13:31", "inputs[1].connect[1]", "port 0 is only valid when binding"},
		{"13:52", "inputs[1].connect[2]", `transport "inproc" is not supported; use tcp://host:port or ipc:///path`},
		{"13:66", "inputs[1].connect[3]", `"localhost:5555" has no scheme; write tcp://localhost:5555`},
		{"13:84", "inputs[1].connect[4]", "connect needs a host; write tcp://host:port"},
		{"17:12", "outputs[0].bind[0]", `port "abc" is not a number`},
		{"17:33", "outputs[0].bind[1]", "the socket path is empty"},
		{"17:41", "outputs[0].bind[2]", `transport "udp" is not supported`},
		{"19:3", "http.listen", "write host:port without http://, e.g. 127.0.0.1:8080; use http.tls for HTTPS"},
	},
	"names.bad.yaml": {
		{"2:5", "inputs[0].name", "name is required"},
		{"7:5", "inputs[2].name", `"in" is already the name of inputs[1]; names must be unique`},
		{"9:5", "inputs[2].bind", "tcp://127.0.0.1:10515 is already bound by inputs[1].listen[0]; every address can be bound once"},
		{"10:5", "inputs[3].name", `"has space" is not a valid name`},
		{"12:5", "inputs[3].listen", "tls://127.0.0.1:10514 is already bound by inputs[0].listen"},
		{"18:5", "outputs[1].name", `"o" is already the name of outputs[0]`},
		{"20:12", "outputs[1].bind[0]", "tcp://127.0.0.1:5556 is already bound by outputs[0].bind"},
		{"22:3", "http.listen", "127.0.0.1:5556 is already bound by outputs[0].bind"},
	},
	"stream.bad.yaml": {
		{"4:3", "stream.from", `"regex:type=\\w+" has no capture group; wrap the part that names the stream in (...)`},
		{"5:3", "stream.default", "the default stream must not be empty"},
	},
	"stream2.bad.yaml": {{"4:3", "stream.from", `"appname" is not a stream field; use app-name, msgid, hostname, facility, severity, sd:ID.param, json:field or regex:EXPR (did you mean "app-name"?)`}},
	"stream3.bad.yaml": {
		{"3:10", "stream.from", `"sd:origin" needs an SD-ID and a parameter name; write sd:ID.param`},
		{"4:1", "", "only one YAML document is allowed"},
	},
	"tls.bad.yaml": {
		{"2:5", "inputs[0].tls", "a tls:// listen URL needs tls: {cert: FILE, key: FILE}"},
		{"8:5", "inputs[1].tls.key", "key is required"},
		{"9:7", "inputs[1].tls.cert", `certs/missing.pem" does not exist; fix the path (relative paths are relative to the config file's directory)`},
		{"10:7", "inputs[1].tls.client_auth", "client_auth: require needs client_ca"},
		{"15:7", "inputs[2].tls.cert", `certs/junk.pem" and "`},
		{"21:7", "inputs[3].tls.cert", "private key does not match public key; both must be PEM and the key must match the certificate"},
		{"23:7", "inputs[3].tls.client_ca", `certs" is not a regular file`},
		{"24:7", "inputs[3].tls.client_auth", `"maybe" is not a client_auth mode; use none, request or require`},
		{"28:5", "inputs[4].tls", "tls is set but no listen URL uses tls://"},
	},
	"tap.bad.yaml": {
		{"4:3", "http.listen", `"0.0.0.0:8080" would serve /v1/tap to the network without a token; set http.tap_token_file, listen on 127.0.0.1, or set http.allow_insecure_tap: true`},
		{"5:3", "http.tls.key", "key is required"},
	},
	"token.bad.yaml": {{"5:3", "http.tap_token_file", `empty.token" is empty`}},
	"relp.bad.yaml": {
		{"4:5", "inputs[0].listen", `"udp://127.0.0.1:2514": RELP runs over TCP; use tcp://host:port or tls://host:port`},
		{"8:5", "inputs[1].ack_timeout", "-1s is out of range; use 1s to 1h0m0s"},
		{"12:7", "inputs[1].tls.permitted_peers", "permitted_peers needs client_ca"},
		{"20:7", "inputs[2].tls.client_auth", `"request" with permitted_peers would let clients without a certificate in; use require`},
		{"21:25", "inputs[2].tls.permitted_peers[0]", `"w*b.example.com": '*' may stand for a whole domain component or its start or end only`},
		{"25:5", "inputs[3].ack_timeout", `"ack_timeout" does not apply to a syslog input; remove it or change type`},
		{"29:5", "inputs[4].bind", `"bind" does not apply to a relp input; remove it or change type`},
		{"33:5", "inputs[5].idle_timeout", "30s is not above ack_timeout 1m0s"},
	},
	"plain.bad.yaml": {
		{"5:5", "inputs[0].plain.username", "username is required to connect with PLAIN"},
		{"5:26", "inputs[0].plain.users_file", "users_file only applies when binding"},
		{"9:5", "inputs[1].plain", "a binding socket needs username and password, or users_file"},
		{"15:7", "outputs[0].plain.users_file", "users.bad.txt:2: want user:password"},
	},
}

func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	for _, f := range files {
		if _, ok := badFiles[filepath.Base(f)]; !ok {
			t.Errorf("%s has no entry in badFiles", f)
		}
	}
	for name, want := range badFiles {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join("testdata", name)
			_, err := Load(f)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load(%s) = %v, want *Error", f, err)
			}
			if len(cerr.Problems) != len(want) {
				t.Errorf("%d problems, want %d:\n%v", len(cerr.Problems), len(want), err)
			}
			for i, w := range want {
				if i >= len(cerr.Problems) {
					break
				}
				p := cerr.Problems[i]
				prefix := f + ":"
				if w.pos != "" {
					prefix += w.pos + ":"
				}
				prefix += " "
				if w.path != "" {
					prefix += w.path + ": "
				}
				if s := p.String(); !strings.HasPrefix(s, prefix) || !strings.Contains(s[len(prefix):], w.msg) {
					t.Errorf("problem %d:\n got %s\nwant %s…%s", i, s, prefix, w.msg)
				}
				if p.Err == nil {
					t.Errorf("problem %d has no sentinel: %s", i, p)
				}
			}
		})
	}
}

// TestIssueErrorFormat pins the error format given in the issue.
func TestIssueErrorFormat(t *testing.T) {
	data := []byte(`inputs:
  - name: in
    type: syslog
    listen: tcp://127.0.0.1:10514
outputs:
  - name: taps
    type: zmq
    socket: pub
    bind: tcp://127.0.0.1:5556
  - name: workers
    type: zmq
    socket: pusj
    bind: tcp://127.0.0.1:5557
`)
	_, err := Parse(data, "relay.yaml")
	want := `relay.yaml:12:5: outputs[1].socket: "pusj" is not a socket type; use push or pub`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestErrorsIs(t *testing.T) {
	for f, sentinels := range map[string][]error{
		"unknown.bad.yaml":   {ErrUnknownKey},
		"types.bad.yaml":     {ErrType},
		"names.bad.yaml":     {ErrRequired, ErrDuplicate, ErrInvalid},
		"tls.bad.yaml":       {ErrFile, ErrRequired},
		"tap.bad.yaml":       {ErrInsecureTap},
		"syntax.bad.yaml":    {ErrSyntax},
		"security.bad.yaml":  {ErrInvalid, ErrType},
		"limits.bad.yaml":    {ErrInvalid},
		"endpoints.bad.yaml": {ErrInvalid},
	} {
		_, err := Load(filepath.Join("testdata", f))
		for _, s := range sentinels {
			if !errors.Is(err, s) {
				t.Errorf("%s: errors.Is(err, %v) = false", f, s)
			}
		}
	}
	_, err := Load("testdata/syntax.bad.yaml")
	if errors.Is(err, ErrInsecureTap) {
		t.Errorf("syntax.bad.yaml matches ErrInsecureTap")
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such.yaml")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "testdata/no-such.yaml") {
		t.Fatalf("Load of a missing file = %v; want fs.ErrNotExist naming the path", err)
	}
}

// TestRelativeToConfigDir: files are found next to the config whatever the
// working directory.
func TestRelativeToConfigDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "relay")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"relay.pem", "relay.key"} {
		b, err := os.ReadFile(filepath.Join("testdata/certs", f))
		if err != nil {
			t.Fatal(err)
		}
		write(f, string(b))
	}
	write("token", "abc\n")
	write("relay.yaml", `
inputs:
  - name: in
    type: syslog
    listen: tls://127.0.0.1:6514
    tls: {cert: relay.pem, key: ./relay.key}
http:
  listen: 0.0.0.0:8080
  tap_token_file: token
`)
	c := mustLoad(t, filepath.Join(dir, "relay.yaml"))
	if c.Inputs[0].TLS.Cert != filepath.Join(dir, "relay.pem") || c.Inputs[0].TLS.Key != filepath.Join(dir, "relay.key") ||
		c.HTTP.TapTokenFile != filepath.Join(dir, "token") {
		t.Errorf("paths not resolved against %s: %+v %+v", dir, c.Inputs[0].TLS, c.HTTP)
	}
	if tok, err := c.HTTP.TapToken(); tok != "abc" || err != nil {
		t.Errorf("TapToken = %q, %v", tok, err)
	}
}

func TestInsecureTapRule(t *testing.T) {
	for _, tc := range []struct {
		listen, token string
		allow, ok     bool
	}{
		{"127.0.0.1:8080", "", false, true},
		{"[::1]:8080", "", false, true},
		{"localhost:8080", "", false, true},
		{"0.0.0.0:8080", "", false, false},
		{":8080", "", false, false},
		{"[::]:8080", "", false, false},
		{"10.1.2.3:8080", "", false, false},
		{"relay.example.com:8080", "", false, false},
		{"0.0.0.0:8080", "", true, true},
		{"0.0.0.0:8080", "tap.token", false, true},
	} {
		data := fmt.Sprintf("inputs: [{name: in, type: syslog, listen: 'udp://127.0.0.1:514'}]\nhttp: {listen: %q, tap_token_file: %q, allow_insecure_tap: %v}\n",
			tc.listen, tc.token, tc.allow)
		_, err := Parse([]byte(data), "testdata/x.yaml")
		if ok := err == nil; ok != tc.ok {
			t.Errorf("listen %s token %q allow %v: err = %v, want ok=%v", tc.listen, tc.token, tc.allow, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInsecureTap) {
			t.Errorf("listen %s: %v is not ErrInsecureTap", tc.listen, err)
		}
	}
}

// TestValidateInCode: a Config built in code validates after
// ApplyDefaults, and its problems carry paths but no positions.
func TestValidateInCode(t *testing.T) {
	c := &Config{
		Inputs:  []Input{{Name: "in", Type: InputZMQ, Connect: []string{"tcp://127.0.0.1:5555"}}},
		Outputs: []Output{{Name: "o", Socket: SocketPush, Bind: []string{"tcp://127.0.0.1:0"}}},
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Inputs[0].Socket != SocketPull || c.Inputs[0].HWM != DefaultHWM || c.Outputs[0].Type != OutputZMQ || c.HTTP.Listen != "" {
		t.Errorf("ApplyDefaults in code: %+v", c)
	}
	c.Outputs[0].Format = "xml"
	err := c.Validate()
	if err == nil || err.Error() != `outputs[0].format: "xml" is not a format; use raw or json` {
		t.Fatalf("got %v", err)
	}
}

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		in, scheme, addr, err string
	}{
		{"tcp://127.0.0.1:10514", SchemeTCP, "127.0.0.1:10514", ""},
		{"udp://*:514", SchemeUDP, ":514", ""},
		{"tls://:6514", SchemeTLS, ":6514", ""},
		{"tcp://[::1]:0", SchemeTCP, "[::1]:0", ""},
		{"tcp://[fe80::1%eth0]:514", SchemeTCP, "[fe80::1%eth0]:514", ""},
		{"tcp://relay.example.com:514", SchemeTCP, "relay.example.com:514", ""},
		{"unix:///run/relay.sock", SchemeUnix, "/run/relay.sock", ""},
		{"unix://relay.sock", SchemeUnix, "relay.sock", ""},
		{"unix:///" + strings.Repeat("x", 200), "", "", "longer than the 107"},
		{"tcp://bad host:514", "", "", `host "bad host" is not a host name`},
		{"tcp://-x:514", "", "", `host "-x" is not a host name`},
		{"relp://127.0.0.1:2514", "", "", `scheme "relp" is not supported`},
		{"tcp://127.0.0.1:-1", "", "", "is not a number"},
	} {
		l, err := ParseListen(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseListen(%q) = %v, want error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || l != (Listener{URL: tc.in, Scheme: tc.scheme, Address: tc.addr}) {
			t.Errorf("ParseListen(%q) = %+v, %v", tc.in, l, err)
		}
	}
}

func TestCheckZMQEndpoint(t *testing.T) {
	for _, tc := range []struct {
		ep   string
		bind bool
		err  string
	}{
		{"tcp://127.0.0.1:5556", true, ""},
		{"tcp://*:5556", true, ""},
		{"tcp://127.0.0.1:0", true, ""},
		{"tcp://w1:5557", false, ""},
		{"tcp://[::1]:5557", false, ""},
		{"ipc:///run/relay.ipc", true, ""},
		{"ipc:///run/relay.ipc", false, ""},
		{"tcp://*:5556", false, "connect needs a host, not *"},
		{"tcp://w1:0", false, "port 0 is only valid when binding"},
		{"tcp://w1", false, "not host:port"},
		{"pgm://eth0;239.1.1.1:5555", true, `transport "pgm" is not supported`},
		{"w1:5557", false, "has no scheme; write tcp://w1:5557"},
	} {
		err := checkZMQEndpoint(tc.ep, tc.bind)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("checkZMQEndpoint(%q, bind=%v) = %v, want %q", tc.ep, tc.bind, err, tc.err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"65536", 65536, true},
		{"64KiB", 64 << 10, true},
		{"64 kib", 64 << 10, true},
		{"1MiB", 1 << 20, true},
		{"2GiB", 2 << 30, true},
		{"64KB", 64000, true},
		{"1MB", 1000000, true},
		{"100B", 100, true},
		{"64k", 0, false},
		{"1.5MiB", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"99999999999GiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, s := range []ByteSize{480, 64 << 10, 1 << 20, 3 << 30, 1000} {
		if back, err := ParseSize(s.String()); err != nil || back != s {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s.String(), back, err, s)
		}
	}
}

func TestCheckStreamFrom(t *testing.T) {
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{"app-name", true}, {"msgid", true}, {"hostname", true}, {"facility", true}, {"severity", true},
		{"sd:origin@32473.software", true}, {"sd:meta.sequenceId", true},
		{"json:type", true}, {"json:event.kind", true},
		{`regex:type=(\w+)`, true}, {`regex:(?:a|b)=(\w+)`, true},
		{"sd:origin", false}, {"sd:.x", false}, {"json:", false},
		{"regex:(a)(b)", true}, {"sd:a.b.c", true}, {"json:a..b", false}, {"json:.a", false}, {"sd:a b.c", false},
		{"regex:no-group", false}, {"regex:(", false},
		{"programname", false}, {"", false}, {"APP-NAME", false},
	} {
		if err := checkStreamFrom(tc.spec); (err == nil) != tc.ok {
			t.Errorf("checkStreamFrom(%q) = %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}

func TestYAMLRedactsPasswords(t *testing.T) {
	c := mustLoad(t, "testdata/full.good.yaml")
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(y, []byte("secret")) || bytes.Contains(y, []byte("pw:with:colons")) || !bytes.Contains(y, []byte(Redacted)) {
		t.Errorf("effective YAML leaks a password or lacks %s:\n%s", Redacted, y)
	}
	if c.Outputs[0].Plain.Password != "secret" {
		t.Errorf("YAML modified the config: password = %q", c.Outputs[0].Plain.Password)
	}
}

func TestSummary(t *testing.T) {
	s := mustLoad(t, "testdata/issue.good.yaml").Summary()
	for _, want := range []string{
		"input rsyslog-tcp: syslog on tcp://127.0.0.1:10514; at most 1024 connections (then the longest idle is evicted), 64 per address, first frame within 10s, frames complete within 30s, idle 5m0s\n",
		"input from-bridge: zmq pull bind tcp://127.0.0.1:5555\n",
		`stream: from app-name, default "unknown"` + "\n",
		"output workers: zmq push bind tcp://127.0.0.1:5557, streams impression, click, format raw\n",
		"output taps: zmq pub bind tcp://127.0.0.1:5556, all streams, format raw\n",
		"http: http://127.0.0.1:8080 (/healthz, /metrics, /v1/tap: no token)\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func TestLogLevel(t *testing.T) {
	for lvl, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "": "INFO"} {
		if got := (Log{Level: lvl}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", lvl, got, want)
		}
	}
}

// TestMergeBomb: nested merge keys that would expand exponentially are
// refused with a message instead of being expanded.
func TestMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {hwm: 1}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "x-%d: &a%d {<<: [*a%d, *a%d, *a%d, *a%d]}\n", i, i, i-1, i-1, i-1, i-1)
	}
	b.WriteString("inputs: [{name: in, type: syslog, listen: 'udp://127.0.0.1:514'}]\n")
	b.WriteString("outputs:\n  - <<: *a39\n    name: o\n    socket: pub\n    bind: tcp://127.0.0.1:1\n")
	_, err := Parse([]byte(b.String()), "bomb.yaml")
	if err == nil || !strings.Contains(err.Error(), "merge keys nest too deep or expand too much") {
		t.Fatalf("got %v", err)
	}
}

// TestDefaultYAMLMentionsEveryKey keeps the sample complete: admins learn
// the keys from it.
func TestDefaultYAMLMentionsEveryKey(t *testing.T) {
	for _, key := range []string{
		"inputs", "name", "type", "listen", "tls", "cert", "key", "client_ca", "client_auth",
		"max_message_size", "max_connections", "idle_timeout", "socket", "bind", "connect", "hwm",
		"plain", "username", "password", "users_file", "stream_frame",
		"stream", "from", "default", "outputs", "streams", "format", "heartbeat",
		"http", "tap_token_file", "allow_insecure_tap", "tap_max_clients", "tap_queue",
		"drain_timeout", "log", "level",
	} {
		if !bytes.Contains(DefaultYAML, []byte(key+":")) {
			t.Errorf("default.yaml does not mention %q", key)
		}
	}
}

// TestUpperBounds: counts that size up-front allocations are capped.
func TestUpperBounds(t *testing.T) {
	_, err := Parse([]byte(`
inputs: [{name: z, type: zmq, bind: "tcp://127.0.0.1:0", hwm: 1000000000}]
outputs: [{name: o, socket: pub, bind: ""}]
http: {tap_queue: 2000000000, tap_max_clients: 100000}
`), "x.yaml")
	for _, want := range []string{
		"x.yaml:2:58: inputs[0].hwm: 1000000000 is too large; use at most 4194304 (default 1000)",
		"x.yaml:3:34: outputs[0].bind: empty endpoint; write tcp://host:port or ipc:///path",
		"x.yaml:4:8: http.tap_queue: 2000000000 is too large; use at most 1048576 (default 1024)",
		"x.yaml:4:31: http.tap_max_clients: 100000 is too large; use at most 16384 (default 64)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %s\ngot:\n%v", want, err)
		}
	}
}

// TestSelfReferencingAnchors: yaml lets an alias point into its own
// anchor; the walk must neither loop nor panic.
func TestSelfReferencingAnchors(t *testing.T) {
	for _, doc := range []string{
		"inputs: &a [*a]\n",
		"inputs: [{name: in, type: syslog, listen: &l [*l]}]\n",
		"x-m: &m {<<: [*m, *m], hwm: 1}\noutputs: [{<<: *m, name: o, socket: pub, bind: 'tcp://127.0.0.1:1'}]\n",
		"&r {inputs: *r}\n",
	} {
		_, err := Parse([]byte(doc), "self.yaml")
		var cerr *Error
		if !errors.As(err, &cerr) {
			t.Errorf("%q: got %v, want *Error", doc, err)
		}
	}
}

func TestBindConflicts(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		clash bool
	}{
		{"tcp://127.0.0.1:5556", "tcp://127.0.0.1:5556", true},
		{"tcp://*:5556", "tcp://127.0.0.1:5556", true},
		{"tcp://0.0.0.0:5556", "tcp://[::1]:5556", true},
		{"tcp://127.0.0.1:5556", "tcp://127.0.0.2:5556", false},
		{"tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557", false},
		{"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", false},
		{"ipc:///tmp/a.ipc", "ipc:///tmp/a.ipc", true},
		{"ipc:///tmp/a.ipc", "ipc:///tmp/b.ipc", false},
		{"ipc:///tmp/a.ipc", "ipc://@a.ipc", false},
	} {
		data := fmt.Sprintf("inputs: [{name: in, type: syslog, listen: 'udp://127.0.0.1:514'}]\noutputs:\n  - {name: a, socket: pub, bind: %q}\n  - {name: b, socket: pub, bind: %q}\n", tc.a, tc.b)
		_, err := Parse([]byte(data), "x.yaml")
		want := fmt.Sprintf("x.yaml:4:28: outputs[1].bind: %s is already bound by outputs[0].bind", tc.b)
		if clash := err != nil && strings.Contains(err.Error(), want); clash != tc.clash || (!tc.clash && err != nil) {
			t.Errorf("%s then %s: err = %v, want clash=%v", tc.a, tc.b, err, tc.clash)
		}
	}
	// A syslog TCP listener and the HTTP server share the TCP port space;
	// UDP does not.
	_, err := Parse([]byte("inputs: [{name: in, type: syslog, listen: ['tcp://:8080', 'udp://127.0.0.1:8081']}]\nhttp: {listen: '127.0.0.1:8080'}\noutputs: [{name: o, socket: pub, bind: 'tcp://127.0.0.1:8081'}]\n"), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), "http.listen: 127.0.0.1:8080 is already bound by inputs[0].listen[0]") || strings.Contains(err.Error(), "outputs[0]") {
		t.Errorf("got %v", err)
	}
	_, err = Parse([]byte("inputs: [{name: in, type: syslog, listen: 'unix:///tmp/relay.sock'}]\noutputs: [{name: o, socket: pub, bind: 'ipc:///tmp/relay.sock'}]\n"), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), "outputs[0].bind: ipc:///tmp/relay.sock is already bound by inputs[0].listen") {
		t.Errorf("unix and ipc on one path: got %v", err)
	}
}
