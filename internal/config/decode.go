package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// position is where a key or list item was written.
type position struct{ line, col int }

// decoder walks the YAML node tree itself, instead of yaml.Unmarshal, so
// that every problem keeps its line and column and all are reported.
type decoder struct {
	file  string
	c     *Config
	probs []Problem
	bad   map[string]bool // paths with a decode problem: Validate stays quiet on them
	// failed means the YAML did not parse, so validating the empty result
	// would only add noise.
	failed bool
	// guesses are the keys misspelt keys were probably meant to be; if
	// they are missing, that is already reported as the typo.
	guesses []string
	merged  int  // pairs pulled in by merge keys so far
	tooDeep bool // the merge limit was reported
}

// fieldSet maps the keys a mapping accepts to their decoders.
type fieldSet map[string]func(v *yaml.Node, path string)

func (d *decoder) errAt(n *yaml.Node, path string, sentinel error, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...), Err: sentinel}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
	d.bad[path] = true
}

// isBad reports whether path, or a key containing it, already has a
// decode problem, so Validate does not report the same mistake twice.
func (d *decoder) isBad(path string) bool {
	for {
		if d.bad[path] {
			return true
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return false
		}
		path = path[:i]
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) decode(data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntax(err, data)
			d.failed = true
		}
		return // an empty file: Validate says what is missing
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.errAt(&extra, "", ErrSyntax, "only one YAML document is allowed; remove the second '---' document")
	case !errors.Is(err, io.EOF):
		d.syntax(err, data)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return
	}
	defer func() {
		for _, g := range d.guesses {
			if !d.c.set(g) {
				d.bad[g] = true
			}
		}
	}()
	d.fields(root, "", fieldSet{
		"inputs":        d.inputs,
		"stream":        d.stream,
		"outputs":       d.outputs,
		"http":          d.http,
		"drain_timeout": func(v *yaml.Node, p string) { d.duration(v, p, &d.c.DrainTimeout) },
		"log": func(v *yaml.Node, p string) {
			d.fields(v, p, fieldSet{
				"level":  func(v *yaml.Node, p string) { d.str(v, p, &d.c.Log.Level) },
				"format": func(v *yaml.Node, p string) { d.str(v, p, &d.c.Log.Format) },
			}, nil)
		},
	}, nil)
}

// syntax records a YAML parse error, keeping the line yaml reports. A tab
// in indentation, the usual cause, is pointed at exactly instead: yaml
// reports the line where the enclosing block started.
func (d *decoder) syntax(err error, data []byte) {
	p := Problem{File: d.file, Err: ErrSyntax}
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		indent := len(line) - len(bytes.TrimLeft(line, " \t"))
		col := bytes.IndexByte(line[:indent], '\t')
		if col >= 0 && i+1 >= p.Line && indent < len(line) && line[indent] != '#' {
			p.Line, p.Col = i+1, col+1
			p.Msg = "invalid YAML: a tab in indentation; indent with spaces"
			d.probs = append(d.probs, p)
			return
		}
	}
	p.Msg = "invalid YAML: " + msg + "; check indentation (spaces, not tabs) and quoting"
	d.probs = append(d.probs, p)
}

func (d *decoder) inputs(v *yaml.Node, path string) {
	d.seq(v, path, "input", func(item *yaml.Node, p string) {
		d.c.Inputs = append(d.c.Inputs, Input{})
		d.input(item, p, &d.c.Inputs[len(d.c.Inputs)-1])
	})
}

// Keys of each input type, beyond name, type and max_message_size.
var (
	syslogInputKeys = append([]string{"listen", "tls", "unix_mode", "unix_group"}, streamLimitKeys...)
	// streamLimitKeys are the connection limits of every stream input.
	streamLimitKeys = []string{"max_connections", "max_connections_per_source", "idle_timeout", "handshake_timeout", "first_frame_timeout", "frame_timeout"}
	zmqInputKeys    = []string{"socket", "bind", "connect", "hwm", "plain", "curve", "stream_frame", "max_peers"}
	relpOnlyKeys    = []string{"ack_timeout"}             // relp takes the stream keys of syslog too
	unixOnlyKeys    = []string{"unix_mode", "unix_group"} // syslog's unix sockets, not relp
)

func (d *decoder) input(v *yaml.Node, path string, in *Input) {
	if d.typeOf(v, path) == InputJetStream {
		d.jetstreamInput(v, path, in)
		return
	}
	all := fieldSet{
		"name":             func(v *yaml.Node, p string) { d.str(v, p, &in.Name) },
		"type":             func(v *yaml.Node, p string) { d.str(v, p, &in.Type) },
		"max_message_size": func(v *yaml.Node, p string) { d.size(v, p, &in.MaxMessageSize) },
		"listen":           func(v *yaml.Node, p string) { d.strs(v, p, &in.Listen) },
		"tls": func(v *yaml.Node, p string) {
			in.TLS = &TLS{}
			d.tls(v, p, in.TLS, true)
		},
		"max_connections":            func(v *yaml.Node, p string) { d.integer(v, p, &in.MaxConnections) },
		"max_connections_per_source": func(v *yaml.Node, p string) { d.integer(v, p, &in.MaxConnectionsPerSource) },
		"idle_timeout":               func(v *yaml.Node, p string) { d.duration(v, p, &in.IdleTimeout) },
		"handshake_timeout":          func(v *yaml.Node, p string) { d.duration(v, p, &in.HandshakeTimeout) },
		"first_frame_timeout":        func(v *yaml.Node, p string) { d.duration(v, p, &in.FirstFrameTimeout) },
		"frame_timeout":              func(v *yaml.Node, p string) { d.duration(v, p, &in.FrameTimeout) },
		"unix_mode":                  func(v *yaml.Node, p string) { d.fileMode(v, p, &in.UnixMode) },
		"unix_group":                 func(v *yaml.Node, p string) { d.str(v, p, &in.UnixGroup) },
		"max_peers":                  func(v *yaml.Node, p string) { d.integer(v, p, &in.MaxPeers) },
		"ack_timeout":                func(v *yaml.Node, p string) { d.duration(v, p, &in.AckTimeout) },
		"socket":                     func(v *yaml.Node, p string) { d.str(v, p, &in.Socket) },
		"bind":                       func(v *yaml.Node, p string) { d.strs(v, p, &in.Bind) },
		"connect":                    func(v *yaml.Node, p string) { d.strs(v, p, &in.Connect) },
		"hwm":                        func(v *yaml.Node, p string) { d.integer(v, p, &in.HWM) },
		"plain": func(v *yaml.Node, p string) {
			in.Plain = &Plain{}
			d.plain(v, p, in.Plain)
		},
		"curve": func(v *yaml.Node, p string) {
			in.Curve = &Curve{}
			d.curve(v, p, in.Curve)
		},
		"stream_frame": func(v *yaml.Node, p string) {
			var b bool
			d.boolean(v, p, &b)
			in.StreamFrame = &b
		},
		"state_dir":      func(v *yaml.Node, p string) { d.str(v, p, &in.StateDir) },
		"allow_insecure": func(v *yaml.Node, p string) { d.boolean(v, p, &in.AllowInsecure) },
		"max_batch":      func(v *yaml.Node, p string) { d.size(v, p, &in.MaxBatch) },
	}
	// Keys of the other input type are refused by name, so a syslog input
	// with "bind:" says why instead of just "unknown key".
	typ := ""
	if m := resolve(v); m != nil && m.Kind == yaml.MappingNode {
		for _, kv := range d.pairs(m, path, false) {
			if kv.k.Value == "type" && resolve(kv.v).Kind == yaml.ScalarNode {
				typ = resolve(kv.v).Value
			}
		}
	}
	var other []string
	switch typ {
	case InputSyslog:
		other = append(append(append([]string(nil), zmqInputKeys...), relpOnlyKeys...), linkInputKeys...)
	case InputZMQ:
		other = append(append(append([]string(nil), syslogInputKeys...), relpOnlyKeys...), linkInputKeys...)
	case InputRELP:
		other = append(append(append([]string(nil), zmqInputKeys...), unixOnlyKeys...), linkInputKeys...)
	case InputLink:
		other = append(append([]string{"listen", "socket", "connect", "hwm", "plain", "stream_frame"}, relpOnlyKeys...), unixOnlyKeys...)
	}
	for _, k := range other {
		delete(all, k)
	}
	d.fields(v, path, all, func(key string) string {
		for _, k := range other {
			if k == key {
				return fmt.Sprintf("%q does not apply to a %s input; remove it or change type", key, typ)
			}
		}
		return ""
	})
}

func (d *decoder) tls(v *yaml.Node, path string, t *TLS, client bool) {
	fs := fieldSet{
		"cert": func(v *yaml.Node, p string) { d.str(v, p, &t.Cert) },
		"key":  func(v *yaml.Node, p string) { d.str(v, p, &t.Key) },
	}
	if client {
		fs["client_ca"] = func(v *yaml.Node, p string) { d.str(v, p, &t.ClientCA) }
		fs["client_auth"] = func(v *yaml.Node, p string) { d.str(v, p, &t.ClientAuth) }
		fs["permitted_peers"] = func(v *yaml.Node, p string) { d.strs(v, p, &t.PermittedPeers) }
	}
	d.fields(v, path, fs, func(key string) string {
		if !client && strings.HasPrefix(key, "client_") {
			return fmt.Sprintf("%q is not supported here: the HTTP server does not check client certificates; use tap_token_file", key)
		}
		return ""
	})
}

func (d *decoder) plain(v *yaml.Node, path string, pl *Plain) {
	d.fields(v, path, fieldSet{
		"username":   func(v *yaml.Node, p string) { d.str(v, p, &pl.Username) },
		"password":   func(v *yaml.Node, p string) { d.str(v, p, &pl.Password) },
		"users_file": func(v *yaml.Node, p string) { d.str(v, p, &pl.UsersFile) },
	}, nil)
}

func (d *decoder) stream(v *yaml.Node, path string) {
	d.fields(v, path, fieldSet{
		"from":       func(v *yaml.Node, p string) { d.str(v, p, &d.c.Stream.From) },
		"default":    func(v *yaml.Node, p string) { d.str(v, p, &d.c.Stream.Default) },
		"max_length": func(v *yaml.Node, p string) { d.integer(v, p, &d.c.Stream.MaxLength) },
	}, nil)
}

func (d *decoder) outputs(v *yaml.Node, path string) {
	d.seq(v, path, "output", func(item *yaml.Node, p string) {
		d.c.Outputs = append(d.c.Outputs, Output{})
		o := &d.c.Outputs[len(d.c.Outputs)-1]
		if t := d.typeOf(item, p); t == OutputJetStream || t == OutputKafka {
			d.brokerOutput(item, p, o, t)
			return
		}
		d.fields(item, p, fieldSet{
			"name":             func(v *yaml.Node, p string) { d.str(v, p, &o.Name) },
			"type":             func(v *yaml.Node, p string) { d.str(v, p, &o.Type) },
			"socket":           func(v *yaml.Node, p string) { d.str(v, p, &o.Socket) },
			"bind":             func(v *yaml.Node, p string) { d.strs(v, p, &o.Bind) },
			"connect":          func(v *yaml.Node, p string) { d.strs(v, p, &o.Connect) },
			"streams":          func(v *yaml.Node, p string) { d.strs(v, p, &o.Streams) },
			"format":           func(v *yaml.Node, p string) { d.str(v, p, &o.Format) },
			"hwm":              func(v *yaml.Node, p string) { d.integer(v, p, &o.HWM) },
			"max_message_size": func(v *yaml.Node, p string) { d.size(v, p, &o.MaxMessageSize) },
			"heartbeat":        func(v *yaml.Node, p string) { d.duration(v, p, &o.Heartbeat) },
			"max_peers":        func(v *yaml.Node, p string) { d.integer(v, p, &o.MaxPeers) },
			"plain": func(v *yaml.Node, p string) {
				o.Plain = &Plain{}
				d.plain(v, p, o.Plain)
			},
			"ack": func(v *yaml.Node, p string) {
				o.Ack = &Ack{}
				d.ack(v, p, o.Ack)
			},
			"spool": func(v *yaml.Node, p string) { d.spool(v, p, o) },
			"tls": func(v *yaml.Node, p string) {
				o.LinkTLS = &LinkTLS{}
				d.linkTLS(v, p, o.LinkTLS)
			},
			"compression":    func(v *yaml.Node, p string) { d.str(v, p, &o.Compression) },
			"allow_insecure": func(v *yaml.Node, p string) { d.boolean(v, p, &o.AllowInsecure) },
			"max_batch":      func(v *yaml.Node, p string) { d.size(v, p, &o.MaxBatch) },
			"window":         func(v *yaml.Node, p string) { d.size(v, p, &o.Window) },
			"failback":       func(v *yaml.Node, p string) { d.duration(v, p, &o.Failback) },
			"curve": func(v *yaml.Node, p string) {
				o.Curve = &Curve{}
				d.curve(v, p, o.Curve)
			},
		}, nil)
	})
}

func (d *decoder) ack(v *yaml.Node, path string, a *Ack) {
	d.fields(v, path, fieldSet{
		"bind":    func(v *yaml.Node, p string) { d.strs(v, p, &a.Bind) },
		"connect": func(v *yaml.Node, p string) { d.strs(v, p, &a.Connect) },
		"batch":   func(v *yaml.Node, p string) { d.integer(v, p, &a.Batch) },
		"window":  func(v *yaml.Node, p string) { d.integer(v, p, &a.Window) },
		"timeout": func(v *yaml.Node, p string) { d.duration(v, p, &a.Timeout) },
		"flush":   func(v *yaml.Node, p string) { d.duration(v, p, &a.Flush) },
	}, nil)
}

func (d *decoder) http(v *yaml.Node, path string) {
	h := &d.c.HTTP
	d.fields(v, path, fieldSet{
		"listen":         func(v *yaml.Node, p string) { d.str(v, p, &h.Listen) },
		"tap_token_file": func(v *yaml.Node, p string) { d.str(v, p, &h.TapTokenFile) },
		"tls": func(v *yaml.Node, p string) {
			h.TLS = &TLS{}
			d.tls(v, p, h.TLS, false)
		},
		"allow_insecure_tap": func(v *yaml.Node, p string) { d.boolean(v, p, &h.AllowInsecureTap) },
		"tap_max_clients":    func(v *yaml.Node, p string) { d.integer(v, p, &h.TapMaxClients) },
		"tap_queue":          func(v *yaml.Node, p string) { d.integer(v, p, &h.TapQueue) },
		"tap_queue_bytes":    func(v *yaml.Node, p string) { d.size(v, p, &h.TapQueueBytes) },
		"tap_write_timeout":  func(v *yaml.Node, p string) { d.duration(v, p, &h.TapWriteTimeout) },
		"tap_ping_interval":  func(v *yaml.Node, p string) { d.duration(v, p, &h.TapPingInterval) },
		"allowed_origins":    func(v *yaml.Node, p string) { d.strs(v, p, &h.AllowedOrigins) },
		"allowed_hosts":      func(v *yaml.Node, p string) { d.strs(v, p, &h.AllowedHosts) },
		"read_timeout":       func(v *yaml.Node, p string) { d.duration(v, p, &h.ReadTimeout) },
		"write_timeout":      func(v *yaml.Node, p string) { d.duration(v, p, &h.WriteTimeout) },
		"idle_timeout":       func(v *yaml.Node, p string) { d.duration(v, p, &h.IdleTimeout) },
		"max_header_bytes":   func(v *yaml.Node, p string) { d.size(v, p, &h.MaxHeaderBytes) },
		"max_connections":    func(v *yaml.Node, p string) { d.integer(v, p, &h.MaxConnections) },
	}, nil)
}

// kv is one key/value pair of a mapping.
type kv struct{ k, v *yaml.Node }

// pairs returns a mapping's pairs with YAML merge keys (<<: *anchor)
// expanded; keys written in the mapping win over merged ones. With report,
// repeated keys and non-string keys are problems.
func (d *decoder) pairs(n *yaml.Node, path string, report bool) []kv {
	return d.pairsDepth(n, path, report, 0)
}

// maxMergeDepth and maxMerged bound merge-key expansion: nested merges of
// aliases can otherwise grow exponentially ("billion laughs").
const (
	maxMergeDepth = 8
	maxMerged     = 10000
)

func (d *decoder) pairsDepth(n *yaml.Node, path string, report bool, depth int) []kv {
	var own, merged []kv
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			if report {
				d.errAt(k, path, ErrType, "a key must be a plain string, not a %s", kindName(k))
			}
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(resolve(v), path, report, depth+1)...)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			if report {
				d.errAt(k, join(path, k.Value), ErrDuplicate, "key is already set on line %d; remove one of them", prev.Line)
			}
			continue
		}
		seen[k.Value] = k
		own = append(own, kv{k, v})
	}
	for _, m := range merged {
		if _, dup := seen[m.k.Value]; !dup {
			seen[m.k.Value] = m.k
			own = append(own, m)
		}
	}
	return own
}

func (d *decoder) mergePairs(v *yaml.Node, path string, report bool, depth int) []kv {
	if depth > maxMergeDepth || d.merged > maxMerged {
		if !d.tooDeep { // reported even while scanning: dropping keys silently would change the config
			d.tooDeep = true
			d.errAt(v, path, ErrInvalid, "merge keys nest too deep or expand too much; write the keys out")
		}
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		d.merged += len(v.Content) / 2
		return d.pairsDepth(v, path, false, depth)
	case yaml.SequenceNode:
		var out []kv
		for _, m := range v.Content {
			out = append(out, d.mergePairs(resolve(m), path, report, depth)...)
		}
		return out
	}
	if report {
		d.errAt(v, path, ErrType, "'<<' merges a mapping, not a %s; write <<: *anchor", kindName(v))
	}
	return nil
}

// fields decodes mapping v at path: each key must be in fs. hint, if not
// nil, may explain an unknown key better than a spelling suggestion.
func (d *decoder) fields(v *yaml.Node, path string, fs fieldSet, hint func(key string) string) {
	v = resolve(v)
	if v.Kind != yaml.MappingNode {
		d.errAt(v, path, ErrType, "must be a mapping of keys, not a %s", kindName(v))
		return
	}
	for _, p := range d.pairs(v, path, true) {
		key := p.k.Value
		kp := join(path, key)
		fn, ok := fs[key]
		if !ok && path == "" && strings.HasPrefix(key, "x-") {
			continue // extension keys hold anchors to share, as in compose files
		}
		if !ok {
			msg := ""
			if hint != nil {
				msg = hint(key)
			}
			if msg == "" {
				var guess string
				msg, guess = suggest(key, keys(fs))
				msg = "unknown key; " + msg
				if guess != "" {
					d.guesses = append(d.guesses, join(path, guess))
				}
			}
			d.errAt(p.k, kp, ErrUnknownKey, "%s", msg)
			continue
		}
		val := resolve(p.v)
		if isNull(val) {
			continue // "key:" with no value reads as absent: the default applies
		}
		d.c.pos[kp] = position{p.k.Line, p.k.Column}
		fn(val, kp)
	}
}

// seq decodes a list, calling item for each element.
func (d *decoder) seq(v *yaml.Node, path, what string, item func(v *yaml.Node, path string)) {
	if v.Kind != yaml.SequenceNode {
		d.errAt(v, path, ErrType, "must be a list, not a %s; start each %s with '- name: …'", kindName(v), what)
		return
	}
	for i, it := range v.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.c.pos[p] = position{it.Line, it.Column}
		item(resolve(it), p)
	}
}

func (d *decoder) str(v *yaml.Node, path string, dst *string) {
	if v.Kind != yaml.ScalarNode {
		d.errAt(v, path, ErrType, "must be a string, not a %s", kindName(v))
		return
	}
	*dst = v.Value
}

// strs accepts one string or a list of strings.
func (d *decoder) strs(v *yaml.Node, path string, dst *[]string) {
	switch v.Kind {
	case yaml.ScalarNode:
		*dst = []string{v.Value}
		return
	case yaml.SequenceNode:
		out := make([]string, 0, len(v.Content))
		for i, it := range v.Content {
			it = resolve(it)
			p := fmt.Sprintf("%s[%d]", path, i)
			d.c.pos[p] = position{it.Line, it.Column}
			if it.Kind != yaml.ScalarNode || isNull(it) {
				d.errAt(it, p, ErrType, "must be a string, not a %s", kindName(it))
				d.bad[path] = true // the list is not what was meant: no "missing" follow-ups
				continue
			}
			out = append(out, it.Value)
		}
		*dst = out
		return
	}
	d.errAt(v, path, ErrType, "must be a string or a list of strings, not a %s", kindName(v))
}

func (d *decoder) integer(v *yaml.Node, path string, dst *int) {
	var n int
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&n) != nil {
		d.errAt(v, path, ErrType, "%s is not a whole number; write e.g. 1000", describe(v))
		return
	}
	*dst = n
}

func (d *decoder) boolean(v *yaml.Node, path string, dst *bool) {
	var b bool
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		d.errAt(v, path, ErrType, "%s is not a boolean; use true or false", describe(v))
		return
	}
	*dst = b
}

// duration accepts Go durations ("5s", "1m30s") and a bare 0.
func (d *decoder) duration(v *yaml.Node, path string, dst *time.Duration) {
	if v.Kind == yaml.ScalarNode {
		if v.ShortTag() == "!!int" && v.Value == "0" {
			*dst = 0
			return
		}
		if v.ShortTag() == "!!str" {
			if t, err := time.ParseDuration(strings.TrimSpace(v.Value)); err == nil {
				*dst = t
				return
			}
		}
	}
	d.errAt(v, path, ErrType, "%s is not a duration; write a number with a unit, e.g. 500ms, 5s or 1m", describe(v))
}

func (d *decoder) size(v *yaml.Node, path string, dst *ByteSize) {
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!int":
			var n int64
			if v.Decode(&n) == nil {
				*dst = ByteSize(n)
				return
			}
		case "!!str":
			s, err := ParseSize(v.Value)
			if err != nil {
				d.errAt(v, path, ErrType, "%v", err)
				return
			}
			*dst = s
			return
		}
	}
	d.errAt(v, path, ErrType, "%s is not a size; write a number of bytes or e.g. 64KiB", describe(v))
}

// fileMode accepts an octal permission: 0660 (YAML reads the leading 0 as
// octal) or "0660".
func (d *decoder) fileMode(v *yaml.Node, path string, dst *FileMode) {
	if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!str") {
		text := strings.TrimPrefix(strings.TrimSpace(v.Value), "0o")
		if m, err := ParseFileMode(text); err == nil {
			*dst = m
			return
		}
	}
	d.errAt(v, path, ErrType, "%s is not a file mode; write octal permission bits, e.g. 0660", describe(v))
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "string"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// describe quotes a scalar for a message, or names the node's kind.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func keys(fs fieldSet) []string {
	out := make([]string, 0, len(fs))
	for k := range fs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest proposes the closest valid key for a typo, or lists them all.
func suggest(got string, valid []string) (msg, guess string) {
	if guess = closest(got, valid); guess != "" {
		return fmt.Sprintf("did you mean %q?", guess), guess
	}
	return "valid keys: " + strings.Join(valid, ", "), ""
}

// closest returns the word of valid within two edits of got, or "".
func closest(got string, valid []string) string {
	best, bestD := "", 3
	for _, v := range valid {
		if dist := editDistance(strings.ToLower(got), v); dist < bestD {
			best, bestD = v, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance, capped for long inputs since
// it only serves suggestions.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
