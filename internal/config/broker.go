package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"
)

// Types of the distributed-log inputs and outputs.
const (
	InputJetStream  = "jetstream" // a NATS JetStream stream, through a durable pull consumer
	OutputJetStream = "jetstream" // a NATS JetStream stream, exactly once by message id
	OutputKafka     = "kafka"     // Kafka topics, at least once with counted redeliveries
)

// Defaults of the broker outputs and input.
var (
	DefaultJetStreamMaxPending          = 4096
	DefaultJetStreamAckTimeout          = 10 * time.Second
	DefaultKafkaCompression             = "zstd"
	DefaultKafkaAcks                    = "all"
	DefaultJetStreamInputAckWait        = time.Minute
	DefaultJetStreamInputMaxAckPending  = 8192
	DefaultJetStreamInputBatch          = 256
	MaxBrokerPending                    = 1 << 20
	DefaultCreateStreamDuplicateWindow  = 2 * time.Hour
	DefaultCreateStreamReplicas         = 3
	MinJetStreamInputAckWait            = time.Second
	DefaultJetStreamInputConsumerPrefix = "relay-"
)

// NATS are the servers and credentials of a NATS connection (jetstream
// inputs and outputs). At most one of creds, nkey, user and token.
type NATS struct {
	Servers  []string   `yaml:"servers"`
	Creds    string     `yaml:"creds,omitempty"`
	NKey     string     `yaml:"nkey,omitempty"`
	User     string     `yaml:"user,omitempty"`
	Password string     `yaml:"password,omitempty"`
	Token    string     `yaml:"token,omitempty"`
	TLS      *ClientTLS `yaml:"tls,omitempty"`
}

// ClientTLS is a client's TLS: the CA that signs the servers, and a
// client certificate if they ask for one.
type ClientTLS struct {
	CA         string `yaml:"ca,omitempty"`
	Cert       string `yaml:"cert,omitempty"`
	Key        string `yaml:"key,omitempty"`
	ServerName string `yaml:"server_name,omitempty"`
}

// JetStreamOutput holds a jetstream output's keys.
type JetStreamOutput struct {
	NATS `yaml:",inline"`
	// Subject is the subject template; {stream} is the event's stream.
	Subject string `yaml:"subject"`
	// CreateStream is the stream created when none takes the subjects.
	CreateStream *CreateStream `yaml:"create_stream,omitempty"`
	// MaxPending bounds the messages published and not yet confirmed.
	MaxPending int `yaml:"max_pending"`
	// AckTimeout bounds the wait for a PubAck before the message is sent
	// again (same id).
	AckTimeout time.Duration `yaml:"ack_timeout"`
}

// CreateStream describes the stream a jetstream output creates.
type CreateStream struct {
	Name            string        `yaml:"name"`
	Subjects        []string      `yaml:"subjects,omitempty"`
	Replicas        int           `yaml:"replicas"`
	MaxAge          time.Duration `yaml:"max_age,omitempty"`
	MaxBytes        ByteSize      `yaml:"max_bytes,omitempty"`
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
}

// KafkaOutput holds a kafka output's keys.
type KafkaOutput struct {
	Brokers []string `yaml:"brokers"`
	// Topic is one topic (the stream is the record key) or a template
	// with {stream}.
	Topic        string     `yaml:"topic"`
	Acks         string     `yaml:"acks"`
	Compression  string     `yaml:"compression"`
	TLS          *ClientTLS `yaml:"tls,omitempty"`
	SASL         *SASL      `yaml:"sasl,omitempty"`
	CreateTopics bool       `yaml:"create_topics,omitempty"`
	MaxPending   int        `yaml:"max_pending"`
}

// SASL are Kafka SASL credentials.
type SASL struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// JetStreamInput holds a jetstream input's keys.
type JetStreamInput struct {
	NATS           `yaml:",inline"`
	Stream         string        `yaml:"stream"`
	Consumer       string        `yaml:"consumer"`
	FilterSubjects []string      `yaml:"filter_subjects,omitempty"`
	AckWait        time.Duration `yaml:"ack_wait"`
	MaxAckPending  int           `yaml:"max_ack_pending"`
	Batch          int           `yaml:"batch"`
}

// typeOf returns the type key of mapping v, or "".
func (d *decoder) typeOf(v *yaml.Node, path string) string {
	m := resolve(v)
	if m == nil || m.Kind != yaml.MappingNode {
		return ""
	}
	for _, kv := range d.pairs(m, path, false) {
		if kv.k.Value == "type" && resolve(kv.v).Kind == yaml.ScalarNode {
			return resolve(kv.v).Value
		}
	}
	return ""
}

// brokerHint explains a key that does not apply to a broker input or
// output.
func brokerHint(typ, what string, others ...string) func(string) string {
	return func(key string) string {
		for _, k := range others {
			if k == key {
				return fmt.Sprintf("%q does not apply to a %s %s; remove it or change type", key, typ, what)
			}
		}
		return ""
	}
}

var zmqOutputKeys = []string{"socket", "bind", "connect", "hwm", "max_message_size", "heartbeat", "max_peers", "plain", "ack"}

func (d *decoder) natsFields(fs fieldSet, n *NATS) {
	fs["servers"] = func(v *yaml.Node, p string) { d.strs(v, p, &n.Servers) }
	fs["creds"] = func(v *yaml.Node, p string) { d.str(v, p, &n.Creds) }
	fs["nkey"] = func(v *yaml.Node, p string) { d.str(v, p, &n.NKey) }
	fs["user"] = func(v *yaml.Node, p string) { d.str(v, p, &n.User) }
	fs["password"] = func(v *yaml.Node, p string) { d.str(v, p, &n.Password) }
	fs["token"] = func(v *yaml.Node, p string) { d.str(v, p, &n.Token) }
	fs["tls"] = func(v *yaml.Node, p string) {
		n.TLS = &ClientTLS{}
		d.clientTLS(v, p, n.TLS)
	}
}

func (d *decoder) clientTLS(v *yaml.Node, path string, t *ClientTLS) {
	d.fields(v, path, fieldSet{
		"ca":          func(v *yaml.Node, p string) { d.str(v, p, &t.CA) },
		"cert":        func(v *yaml.Node, p string) { d.str(v, p, &t.Cert) },
		"key":         func(v *yaml.Node, p string) { d.str(v, p, &t.Key) },
		"server_name": func(v *yaml.Node, p string) { d.str(v, p, &t.ServerName) },
	}, nil)
}

// brokerOutput decodes a jetstream or kafka output.
func (d *decoder) brokerOutput(v *yaml.Node, path string, o *Output, typ string) {
	fs := fieldSet{
		"name":    func(v *yaml.Node, p string) { d.str(v, p, &o.Name) },
		"type":    func(v *yaml.Node, p string) { d.str(v, p, &o.Type) },
		"streams": func(v *yaml.Node, p string) { d.strs(v, p, &o.Streams) },
		"format":  func(v *yaml.Node, p string) { d.str(v, p, &o.Format) },
		"spool":   func(v *yaml.Node, p string) { d.spool(v, p, o) },
	}
	switch typ {
	case OutputJetStream:
		j := &JetStreamOutput{}
		o.JetStream = j
		d.natsFields(fs, &j.NATS)
		fs["subject"] = func(v *yaml.Node, p string) { d.str(v, p, &j.Subject) }
		fs["max_pending"] = func(v *yaml.Node, p string) { d.integer(v, p, &j.MaxPending) }
		fs["ack_timeout"] = func(v *yaml.Node, p string) { d.duration(v, p, &j.AckTimeout) }
		fs["create_stream"] = func(v *yaml.Node, p string) {
			cs := &CreateStream{}
			j.CreateStream = cs
			d.fields(v, p, fieldSet{
				"name":             func(v *yaml.Node, p string) { d.str(v, p, &cs.Name) },
				"subjects":         func(v *yaml.Node, p string) { d.strs(v, p, &cs.Subjects) },
				"replicas":         func(v *yaml.Node, p string) { d.integer(v, p, &cs.Replicas) },
				"max_age":          func(v *yaml.Node, p string) { d.duration(v, p, &cs.MaxAge) },
				"max_bytes":        func(v *yaml.Node, p string) { d.size(v, p, &cs.MaxBytes) },
				"duplicate_window": func(v *yaml.Node, p string) { d.duration(v, p, &cs.DuplicateWindow) },
			}, nil)
		}
	case OutputKafka:
		k := &KafkaOutput{}
		o.Kafka = k
		fs["brokers"] = func(v *yaml.Node, p string) { d.strs(v, p, &k.Brokers) }
		fs["topic"] = func(v *yaml.Node, p string) { d.str(v, p, &k.Topic) }
		fs["acks"] = func(v *yaml.Node, p string) { d.str(v, p, &k.Acks) }
		fs["compression"] = func(v *yaml.Node, p string) { d.str(v, p, &k.Compression) }
		fs["create_topics"] = func(v *yaml.Node, p string) { d.boolean(v, p, &k.CreateTopics) }
		fs["max_pending"] = func(v *yaml.Node, p string) { d.integer(v, p, &k.MaxPending) }
		fs["tls"] = func(v *yaml.Node, p string) {
			k.TLS = &ClientTLS{}
			d.clientTLS(v, p, k.TLS)
		}
		fs["sasl"] = func(v *yaml.Node, p string) {
			k.SASL = &SASL{}
			d.fields(v, p, fieldSet{
				"mechanism": func(v *yaml.Node, p string) { d.str(v, p, &k.SASL.Mechanism) },
				"username":  func(v *yaml.Node, p string) { d.str(v, p, &k.SASL.Username) },
				"password":  func(v *yaml.Node, p string) { d.str(v, p, &k.SASL.Password) },
			}, nil)
		}
	}
	d.fields(v, path, fs, brokerHint(typ, "output", zmqOutputKeys...))
}

// jetstreamInput decodes a jetstream input.
func (d *decoder) jetstreamInput(v *yaml.Node, path string, in *Input) {
	j := &JetStreamInput{}
	in.JetStream = j
	fs := fieldSet{
		"name":            func(v *yaml.Node, p string) { d.str(v, p, &in.Name) },
		"type":            func(v *yaml.Node, p string) { d.str(v, p, &in.Type) },
		"stream":          func(v *yaml.Node, p string) { d.str(v, p, &j.Stream) },
		"consumer":        func(v *yaml.Node, p string) { d.str(v, p, &j.Consumer) },
		"filter_subjects": func(v *yaml.Node, p string) { d.strs(v, p, &j.FilterSubjects) },
		"ack_wait":        func(v *yaml.Node, p string) { d.duration(v, p, &j.AckWait) },
		"max_ack_pending": func(v *yaml.Node, p string) { d.integer(v, p, &j.MaxAckPending) },
		"batch":           func(v *yaml.Node, p string) { d.integer(v, p, &j.Batch) },
	}
	d.natsFields(fs, &j.NATS)
	d.fields(v, path, fs, brokerHint(InputJetStream, "input", append(append([]string(nil), syslogInputKeys...), zmqInputKeys...)...))
}

// brokerDefaults fills a broker output's or input's defaults.
func (c *Config) brokerOutputDefaults(p string, o *Output) {
	if j := o.JetStream; j != nil {
		if !c.set(p+".max_pending") && j.MaxPending == 0 {
			j.MaxPending = DefaultJetStreamMaxPending
		}
		if !c.set(p+".ack_timeout") && j.AckTimeout == 0 {
			j.AckTimeout = DefaultJetStreamAckTimeout
		}
		if cs := j.CreateStream; cs != nil {
			if !c.set(p+".create_stream.replicas") && cs.Replicas == 0 {
				cs.Replicas = DefaultCreateStreamReplicas
			}
			if !c.set(p+".create_stream.duplicate_window") && cs.DuplicateWindow == 0 {
				cs.DuplicateWindow = DefaultCreateStreamDuplicateWindow
			}
		}
	}
	if k := o.Kafka; k != nil {
		if !c.set(p+".acks") && k.Acks == "" {
			k.Acks = DefaultKafkaAcks
		}
		if !c.set(p+".compression") && k.Compression == "" {
			k.Compression = DefaultKafkaCompression
		}
		if !c.set(p+".max_pending") && k.MaxPending == 0 {
			k.MaxPending = DefaultJetStreamMaxPending
		}
	}
}

func (c *Config) jetstreamInputDefaults(p string, in *Input) {
	j := in.JetStream
	if j == nil {
		return
	}
	if !c.set(p+".consumer") && j.Consumer == "" {
		j.Consumer = DefaultJetStreamInputConsumerPrefix + in.Name
	}
	if !c.set(p+".ack_wait") && j.AckWait == 0 {
		j.AckWait = DefaultJetStreamInputAckWait
	}
	if !c.set(p+".max_ack_pending") && j.MaxAckPending == 0 {
		j.MaxAckPending = DefaultJetStreamInputMaxAckPending
	}
	if !c.set(p+".batch") && j.Batch == 0 {
		j.Batch = DefaultJetStreamInputBatch
	}
}

func (c *Config) resolveBrokerPaths(abs func(*string)) {
	tlsAbs := func(t *ClientTLS) {
		if t != nil {
			abs(&t.CA)
			abs(&t.Cert)
			abs(&t.Key)
		}
	}
	natsAbs := func(n *NATS) {
		abs(&n.Creds)
		abs(&n.NKey)
		tlsAbs(n.TLS)
	}
	for i := range c.Outputs {
		if j := c.Outputs[i].JetStream; j != nil {
			natsAbs(&j.NATS)
		}
		if k := c.Outputs[i].Kafka; k != nil {
			tlsAbs(k.TLS)
		}
	}
	for i := range c.Inputs {
		if j := c.Inputs[i].JetStream; j != nil {
			natsAbs(&j.NATS)
		}
	}
}

var (
	// A subject token: no spaces, no wildcards (the template's {stream}
	// is checked before).
	subjectTokenRE = regexp.MustCompile(`^[^\s.*>]+$`)
	streamNameRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	kafkaTopicRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
)

// checkSubject checks a subject, or a filter when wild.
func checkSubject(s string, wild bool) error {
	if s == "" {
		return fmt.Errorf("empty subject")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if wild && (t == "*" || (t == ">" && i == len(toks)-1)) {
			continue
		}
		if !subjectTokenRE.MatchString(t) {
			return fmt.Errorf("%q is not a valid subject: tokens are separated by single dots and hold no spaces, '*' or '>'%s", s,
				map[bool]string{true: " (except * as a token and > as the last)", false: ""}[wild])
		}
	}
	return nil
}

// checkNATSServer checks a NATS server URL: nats://host:port, tls://…,
// or host:port.
func checkNATSServer(s string) error {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a valid server URL: %v; write nats://host:4222", s, err)
	}
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return fmt.Errorf("%q: scheme %q is not supported; use nats://host:4222 (or tls://host:4222)", s, u.Scheme)
	}
	if u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q is not a server URL; write nats://host:4222", s)
	}
	if strings.Contains(u.Host, ":") {
		_, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return fmt.Errorf("%q: %v; write nats://host:4222", s, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: bad port %q; write nats://host:4222", s, port)
		}
	}
	return nil
}

func (k *checker) clientTLS(p string, t *ClientTLS) {
	if t == nil {
		return
	}
	for _, f := range []struct{ key, path string }{{"ca", t.CA}, {"cert", t.Cert}, {"key", t.Key}} {
		if f.path != "" {
			if err := checkFile(f.path); err != nil {
				k.add(p+"."+f.key, ErrFile, "%v", err)
			}
		}
	}
	if (t.Cert == "") != (t.Key == "") {
		k.add(p, ErrRequired, "cert and key go together: set both for a client certificate, or neither")
	}
	if k.hasProblem(p) {
		return
	}
	if _, err := t.Config(); err != nil {
		k.add(p, ErrFile, "%v", err)
	} else if t.Key != "" {
		k.secret(p+".key", t.Key)
	}
}

// Config loads the CA and client certificate into a TLS client
// configuration (TLS 1.2 or later).
func (t *ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		caPEM, err := readSmall(t.CA, maxPEMFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%q holds no PEM certificate; ca must be the CA certificate that signs the servers", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
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
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (k *checker) nats(p string, n *NATS) {
	if len(n.Servers) == 0 {
		k.add(p+".servers", ErrRequired, "servers is required; e.g. servers: [nats://n1:4222, nats://n2:4222, nats://n3:4222]")
	}
	for i, s := range n.Servers {
		if err := checkNATSServer(s); err != nil {
			k.add(k.item(p+".servers", i, len(n.Servers)), ErrInvalid, "%v", err)
		}
	}
	kinds := 0
	for _, set := range []bool{n.Creds != "", n.NKey != "", n.User != "", n.Token != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		k.add(p, ErrInvalid, "creds, nkey, user/password and token exclude each other; keep the one the server expects")
	}
	if n.Password != "" && n.User == "" {
		k.add(p+".password", ErrRequired, "password needs user")
	}
	for _, f := range []struct{ key, path string }{{"creds", n.Creds}, {"nkey", n.NKey}} {
		if f.path != "" {
			if err := checkNATSCredsFile(f.key, f.path); err != nil {
				k.add(p+"."+f.key, ErrFile, "%v", err)
			} else {
				k.secret(p+"."+f.key, f.path)
			}
		}
	}
	k.clientTLS(p+".tls", n.TLS)
}

// checkNATSCredsFile reads a creds file (a user JWT and its nkey seed) or
// an nkey seed file and parses it as the NATS client will at connect, so
// that an unreadable or wrong file is found offline, not by a refused
// connection.
func checkNATSCredsFile(key, path string) error {
	b, err := readSmall(path, 64<<10)
	if err != nil {
		return err
	}
	if key == "creds" {
		// ParseDecoratedJWT takes a file without its markers as a bare
		// JWT: a JWT has three dot-separated parts.
		if jwt, err := nkeys.ParseDecoratedJWT(b); err != nil || strings.Count(jwt, ".") != 2 || strings.ContainsAny(jwt, " \n") {
			return fmt.Errorf("%q holds no user JWT; creds must be the .creds file `nsc generate creds` writes (a JWT and a seed)", path)
		}
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("%q holds no nkey seed (%v); %s must hold the user's seed (SU…)", path, err, key)
	}
	kp.Wipe()
	return nil
}

// subjectCovers reports whether filter (with * and > wildcards) takes
// every subject subj stands for (subj may hold * for {stream}).
func subjectCovers(filter, subj string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subj, ".")
	for i, ft := range f {
		if ft == ">" {
			return i < len(s)
		}
		if i >= len(s) || (ft != "*" && ft != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

// brokerOutput checks a jetstream or kafka output.
func (k *checker) brokerOutput(p string, o *Output) {
	if o.Spool == nil {
		k.add(p+".spool", ErrRequired, "a %s output needs a spool: it keeps the events through an outage of the brokers and gives each a stable id; e.g. spool: {dir: /var/lib/relay/spool/%s, max_bytes: 20GiB}", o.Type, o.Name)
	}
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
	if j := o.JetStream; j != nil {
		k.nats(p, &j.NATS)
		if j.Subject == "" {
			k.add(p+".subject", ErrRequired, "subject is required; e.g. subject: \"events.{stream}\" ({stream} is the event's stream)")
		} else if err := checkSubject(strings.ReplaceAll(j.Subject, "{stream}", "x"), false); err != nil {
			k.add(p+".subject", ErrInvalid, "%v; {stream} stands for the event's stream", err)
		} else if rest := strings.ReplaceAll(j.Subject, "{stream}", ""); strings.ContainsAny(rest, "{}") {
			k.add(p+".subject", ErrInvalid, "%q: {stream} is the only placeholder (the event's stream); check the braces", j.Subject)
		}
		k.between(p+".max_pending", j.MaxPending, 1, MaxBrokerPending, DefaultJetStreamMaxPending)
		if j.AckTimeout < 100*time.Millisecond {
			k.add(p+".ack_timeout", ErrInvalid, "%v is too short; use e.g. %v (a publish not confirmed by then is sent again, with the same id)", j.AckTimeout, DefaultJetStreamAckTimeout)
		}
		if cs := j.CreateStream; cs != nil {
			cp := p + ".create_stream"
			if !streamNameRE.MatchString(cs.Name) {
				k.add(cp+".name", ErrInvalid, "%q is not a stream name; use letters, digits, '-' and '_', e.g. EVENTS", cs.Name)
			}
			covered, bad := false, false
			wild := strings.ReplaceAll(j.Subject, "{stream}", "*")
			for i, s := range cs.Subjects {
				if err := checkSubject(s, true); err != nil {
					k.add(k.item(cp+".subjects", i, len(cs.Subjects)), ErrInvalid, "%v", err)
					bad = true
				}
				covered = covered || subjectCovers(s, wild)
			}
			if len(cs.Subjects) > 0 && j.Subject != "" && !covered && !bad {
				k.add(cp+".subjects", ErrInvalid, "%v do not take the output's subject %q: the stream made would not store its events; add %q (or leave subjects out)",
					cs.Subjects, j.Subject, wild)
			}
			if cs.Replicas < 1 || cs.Replicas > 5 {
				k.add(cp+".replicas", ErrInvalid, "%d replicas: use 1 to 5 (3 keeps acknowledged events through the loss of a server)", cs.Replicas)
			}
			if cs.DuplicateWindow < 0 || cs.MaxAge < 0 || cs.MaxBytes < 0 {
				k.add(cp, ErrInvalid, "duplicate_window, max_age and max_bytes must not be negative")
			} else if cs.MaxAge > 0 && cs.DuplicateWindow > cs.MaxAge {
				k.add(cp+".duplicate_window", ErrInvalid, "%v is longer than max_age %v; the server refuses that", cs.DuplicateWindow, cs.MaxAge)
			}
		}
	}
	if kc := o.Kafka; kc != nil {
		if len(kc.Brokers) == 0 {
			k.add(p+".brokers", ErrRequired, "brokers is required; e.g. brokers: [k1:9092, k2:9092, k3:9092]")
		}
		for i, b := range kc.Brokers {
			host, port, err := net.SplitHostPort(b)
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				k.add(k.item(p+".brokers", i, len(kc.Brokers)), ErrInvalid, "%q is not host:port; write e.g. kafka1:9092", b)
			}
		}
		t := strings.ReplaceAll(kc.Topic, "{stream}", "x")
		switch {
		case kc.Topic == "":
			k.add(p+".topic", ErrRequired, "topic is required; one topic (the stream is the record key) or a template such as \"events.{stream}\"")
		case !kafkaTopicRE.MatchString(t) || t == "." || t == "..":
			k.add(p+".topic", ErrInvalid, "%q is not a topic name: letters, digits, '.', '_' and '-', at most 249 ({stream} stands for the stream)", kc.Topic)
		}
		if kc.Acks != "all" {
			k.add(p+".acks", ErrInvalid, "acks %q: only all is supported: the idempotent producer, which keeps retries from duplicating, needs acks from every in-sync replica", kc.Acks)
		}
		switch kc.Compression {
		case "none", "gzip", "snappy", "lz4", "zstd":
		default:
			k.add(p+".compression", ErrInvalid, "%q is not a compression; use zstd, lz4, snappy, gzip or none", kc.Compression)
		}
		k.between(p+".max_pending", kc.MaxPending, 1, MaxBrokerPending, DefaultJetStreamMaxPending)
		k.clientTLS(p+".tls", kc.TLS)
		if s := kc.SASL; s != nil {
			switch strings.ToUpper(s.Mechanism) {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				k.add(p+".sasl.mechanism", ErrInvalid, "%q is not a SASL mechanism; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
			}
			if s.Username == "" || s.Password == "" {
				k.add(p+".sasl", ErrRequired, "sasl needs username and password")
			}
		}
	}
}

// jetstreamInput checks a jetstream input.
func (k *checker) jetstreamInput(p string, in *Input) {
	j := in.JetStream
	if j == nil {
		k.add(p, ErrRequired, "a jetstream input needs servers and stream")
		return
	}
	k.nats(p, &j.NATS)
	if j.Stream == "" {
		k.add(p+".stream", ErrRequired, "stream is required: the JetStream stream (or its mirror) to read, e.g. stream: EVENTS")
	} else if !streamNameRE.MatchString(j.Stream) {
		k.add(p+".stream", ErrInvalid, "%q is not a stream name; use letters, digits, '-' and '_'", j.Stream)
	}
	if !streamNameRE.MatchString(j.Consumer) {
		k.add(p+".consumer", ErrInvalid, "%q is not a consumer name; use letters, digits, '-' and '_'", j.Consumer)
	}
	for i, s := range j.FilterSubjects {
		if err := checkSubject(s, true); err != nil {
			k.add(k.item(p+".filter_subjects", i, len(j.FilterSubjects)), ErrInvalid, "%v", err)
		}
	}
	if j.AckWait < MinJetStreamInputAckWait {
		k.add(p+".ack_wait", ErrInvalid, "%v is too short; use at least %v (default %v): a message not acked by then is delivered again", j.AckWait, MinJetStreamInputAckWait, DefaultJetStreamInputAckWait)
	}
	k.between(p+".max_ack_pending", j.MaxAckPending, 1, MaxBrokerPending, DefaultJetStreamInputMaxAckPending)
	k.between(p+".batch", j.Batch, 1, 1<<16, DefaultJetStreamInputBatch)
}

// brokerSummary is the `relay check` line of a broker output.
func brokerSummary(o *Output) string {
	streams := "all streams"
	if len(o.Streams) > 0 {
		streams = "streams " + strings.Join(o.Streams, ", ")
	}
	var b strings.Builder
	if j := o.JetStream; j != nil {
		fmt.Fprintf(&b, "output %s: jetstream %s subject %s, %s, format %s, window %d", o.Name, strings.Join(j.Servers, ","), j.Subject, streams, o.Format, j.MaxPending)
		if cs := j.CreateStream; cs != nil {
			fmt.Fprintf(&b, ", creates stream %s (R%d, duplicate window %v) if missing", cs.Name, cs.Replicas, cs.DuplicateWindow)
		}
	}
	if kc := o.Kafka; kc != nil {
		fmt.Fprintf(&b, "output %s: kafka %s topic %s, %s, format %s, acks %s, %s, window %d", o.Name, strings.Join(kc.Brokers, ","), kc.Topic, streams, o.Format, kc.Acks, kc.Compression, kc.MaxPending)
	}
	if o.Spool != nil {
		fmt.Fprintf(&b, ", spool %s (max %s, fsync %s, full: %s)", o.Spool.Dir, o.Spool.MaxBytes, o.Spool.Fsync, o.Spool.Full)
	}
	b.WriteString("\n")
	return b.String()
}

// isBroker reports whether o is a jetstream or kafka output.
func (o *Output) isBroker() bool { return o.Type == OutputJetStream || o.Type == OutputKafka }

// The effective YAML of broker inputs and outputs: their keys, and none of
// the zmq keys they refuse, so that `relay check`'s output parses back.
type (
	jetstreamOutputYAML struct {
		Name             string   `yaml:"name"`
		Type             string   `yaml:"type"`
		Streams          []string `yaml:"streams,omitempty"`
		Format           string   `yaml:"format"`
		Spool            *Spool   `yaml:"spool,omitempty"`
		*JetStreamOutput `yaml:",inline"`
	}
	kafkaOutputYAML struct {
		Name         string   `yaml:"name"`
		Type         string   `yaml:"type"`
		Streams      []string `yaml:"streams,omitempty"`
		Format       string   `yaml:"format"`
		Spool        *Spool   `yaml:"spool,omitempty"`
		*KafkaOutput `yaml:",inline"`
	}
	jetstreamInputYAML struct {
		Name            string `yaml:"name"`
		Type            string `yaml:"type"`
		*JetStreamInput `yaml:",inline"`
	}
)

func redactNATS(n NATS) NATS {
	if n.Password != "" {
		n.Password = Redacted
	}
	if n.Token != "" {
		n.Token = Redacted
	}
	return n
}

// brokerNodes replaces the nodes of broker inputs and outputs in doc (the
// encoded config) with their own encoding.
func (c *Config) brokerNodes(doc *yaml.Node) error {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	seq := func(key string) *yaml.Node {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key && root.Content[i+1].Kind == yaml.SequenceNode {
				return root.Content[i+1]
			}
		}
		return nil
	}
	replace := func(s *yaml.Node, i int, v any) error {
		if s == nil || i >= len(s.Content) {
			return nil
		}
		var n yaml.Node
		if err := n.Encode(v); err != nil {
			return err
		}
		s.Content[i] = &n
		return nil
	}
	outs := seq("outputs")
	for i := range c.Outputs {
		o := &c.Outputs[i]
		var err error
		switch {
		case o.JetStream != nil:
			j := *o.JetStream
			j.NATS = redactNATS(j.NATS)
			err = replace(outs, i, jetstreamOutputYAML{o.Name, o.Type, o.Streams, o.Format, o.Spool, &j})
		case o.Kafka != nil:
			k := *o.Kafka
			if k.SASL != nil {
				s := *k.SASL
				s.Password = Redacted
				k.SASL = &s
			}
			err = replace(outs, i, kafkaOutputYAML{o.Name, o.Type, o.Streams, o.Format, o.Spool, &k})
		}
		if err != nil {
			return err
		}
	}
	ins := seq("inputs")
	for i := range c.Inputs {
		if j := c.Inputs[i].JetStream; j != nil {
			jj := *j
			jj.NATS = redactNATS(jj.NATS)
			if err := replace(ins, i, jetstreamInputYAML{c.Inputs[i].Name, c.Inputs[i].Type, &jj}); err != nil {
				return err
			}
		}
	}
	return nil
}
