package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rsyslog-zmq/relay/internal/omprog"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// settings are everything the command line (and --config) sets.
type settings struct {
	socket         string   // push or pub
	binds          []string // endpoints to bind
	connects       []string // endpoints to connect to
	topic          string   // fixed topic frame, or ""
	topicFromField bool     // topic = first space-separated field
	hwm            int

	confirm       string        // auto, on, off
	confirmWhen   string        // written or queued
	cork          time.Duration // written: hold confirmed writes in a corked socket this long at most; 0: off
	transactions  string        // auto, on, off
	beginMark     string
	commitMark    string
	keepAlive     time.Duration
	maxWait       time.Duration
	maxLine       int
	closeTimeout  time.Duration
	statsInterval time.Duration // log the counters this often; 0: never
	config        string        // settings file re-read on SIGHUP
	logLevel      string
	help          bool
	version       bool
	curve         zmq.CurveSettings // --curve-*; unset: NULL security
}

// endpoints is a repeatable flag.
type endpoints []string

func (e *endpoints) String() string     { return strings.Join(*e, ",") }
func (e *endpoints) Set(v string) error { *e = append(*e, v); return nil }

// relayFlag implements --relay: --socket push --connect ENDPOINT.
type relayFlag struct{ s *settings }

func (r relayFlag) String() string { return "" }
func (r relayFlag) Set(v string) error {
	r.s.socket = "push"
	r.s.connects = append(r.s.connects, v)
	return nil
}

func (s *settings) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("omzmq-bridge", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { _, _ = io.WriteString(out, usage) }
	fs.StringVar(&s.socket, "socket", s.socket, "push or pub")
	fs.Var((*endpoints)(&s.binds), "bind", "endpoint to bind (repeatable)")
	fs.Var((*endpoints)(&s.connects), "connect", "endpoint to connect to (repeatable)")
	fs.Var(relayFlag{s}, "relay", "a relay's ZeroMQ PULL input: --socket push --connect ENDPOINT")
	fs.StringVar(&s.topic, "topic", s.topic, "topic (first frame) of every message")
	fs.BoolVar(&s.topicFromField, "topic-from-field", s.topicFromField, "topic from each line's first space-separated field")
	fs.IntVar(&s.hwm, "hwm", s.hwm, "messages queued per peer")
	fs.StringVar(&s.confirm, "confirm", s.confirm, "auto, on or off: answer rsyslog (confirmMessages)")
	fs.StringVar(&s.confirmWhen, "confirm-when", s.confirmWhen, "written (to a peer's connection) or queued (within the HWM)")
	fs.DurationVar(&s.cork, "cork", s.cork, "written: let confirmed messages wait this long at most in the kernel to leave in batches (0: off)")
	fs.StringVar(&s.transactions, "transactions", s.transactions, "auto, on or off: honour the transaction marks")
	fs.StringVar(&s.beginMark, "begin-mark", s.beginMark, "omprog's beginTransactionMark")
	fs.StringVar(&s.commitMark, "commit-mark", s.commitMark, "omprog's commitTransactionMark")
	fs.DurationVar(&s.keepAlive, "keepalive", s.keepAlive, "longest gap between keep-alive dots while waiting")
	fs.DurationVar(&s.maxWait, "max-wait", s.maxWait, "wait this long for a peer, then answer an error line (-1s: forever)")
	fs.IntVar(&s.maxLine, "max-line", s.maxLine, "largest message accepted, bytes, as the receiver's max_message_size counts it")
	fs.DurationVar(&s.closeTimeout, "close-timeout", s.closeTimeout, "flush time at end of input or on SIGTERM")
	fs.StringVar(&s.config, "config", s.config, "settings file (flags, one per line) re-read on SIGHUP")
	fs.StringVar(&s.logLevel, "log-level", s.logLevel, "debug, info, warn or error")
	fs.DurationVar(&s.statsInterval, "stats-interval", s.statsInterval, "log the counters this often (0: only at exit and on SIGUSR1)")
	fs.BoolVar(&s.help, "help", false, "show the help")
	fs.BoolVar(&s.version, "version", false, "print the version")
	fs.StringVar(&s.curve.KeyFile, "curve-key", s.curve.KeyFile, "CURVE: our secret certificate (NAME.key_secret, from relay keygen)")
	fs.Var(s.curve.ServerKeyFlag(), "curve-server-key", "CURVE client: the server's certificate file or Z85 public key")
	fs.StringVar(&s.curve.AllowDir, "curve-allow-dir", s.curve.AllowDir, "CURVE server: directory of the admitted clients' certificates")
	fs.BoolVar(&s.curve.AllowAny, "curve-allow-any", s.curve.AllowAny, "CURVE server: admit any client (encrypted, not authenticated)")
	return fs
}

func defaultSettings() settings {
	return settings{
		socket: "push", hwm: 1000, confirm: "auto", confirmWhen: "written", cork: time.Millisecond, transactions: "auto",
		beginMark: omprog.DefaultBeginMark, commitMark: omprog.DefaultCommitMark,
		keepAlive: omprog.DefaultKeepAlive, maxWait: omprog.DefaultMaxWait,
		maxLine: zmq.DefaultMaxMsgSize, closeTimeout: omprog.DefaultCloseTimeout,
		logLevel: "info", statsInterval: 5 * time.Minute,
	}
}

// parseSettings reads the command line, then the --config file if any:
// the file's values win, and endpoints it names replace the command
// line's.
func parseSettings(args []string, out io.Writer) (settings, error) {
	s := defaultSettings()
	if err := s.flagSet(out).Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.help = true
			return s, nil
		}
		return s, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if s.help || s.version {
		return s, nil
	}
	if s.config != "" {
		if err := s.readFile(s.config); err != nil {
			return s, err
		}
	}
	return s, s.validate()
}

// readFile applies a settings file: flags as on the command line, any
// number per line, '#' starts a comment.
func (s *settings) readFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: read settings file: %w", ErrUsage, err)
	}
	var args []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		args = append(args, strings.Fields(line)...)
	}
	f := *s
	f.binds, f.connects = nil, nil
	fs := f.flagSet(io.Discard)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: settings file %s: %w", ErrUsage, path, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: settings file %s: unexpected %q", ErrUsage, path, fs.Arg(0))
	}
	if len(f.binds)+len(f.connects) == 0 {
		f.binds, f.connects = s.binds, s.connects
	}
	f.config = s.config // a file cannot point elsewhere
	*s = f
	return nil
}

func (s *settings) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.socket != "push" && s.socket != "pub" {
		bad("--socket %q: want push or pub", s.socket)
	}
	if len(s.binds)+len(s.connects) == 0 {
		bad("no endpoint: give --bind, --connect or --relay (e.g. --relay tcp://127.0.0.1:5555)")
	}
	for _, ep := range append(append([]string(nil), s.binds...), s.connects...) {
		if !strings.HasPrefix(ep, "tcp://") && !strings.HasPrefix(ep, "ipc://") {
			bad("endpoint %q: want tcp://host:port or ipc:///path", ep)
		}
	}
	if s.topic != "" && s.topicFromField {
		bad("--topic and --topic-from-field exclude each other")
	}
	if s.hwm <= 0 {
		bad("--hwm %d: want a positive number of messages", s.hwm)
	}
	for name, v := range map[string]string{"--confirm": s.confirm, "--transactions": s.transactions} {
		if v != "auto" && v != "on" && v != "off" {
			bad("%s %q: want auto, on or off", name, v)
		}
	}
	if s.confirmWhen != "written" && s.confirmWhen != "queued" {
		bad("--confirm-when %q: want written or queued", s.confirmWhen)
	}
	if s.statsInterval < 0 {
		bad("--stats-interval %v: want a duration, or 0 for none", s.statsInterval)
	}
	if s.cork < 0 || s.cork > 100*time.Millisecond {
		bad("--cork %v: want 0 (off) up to 100ms", s.cork)
	}
	if s.beginMark == "" || s.commitMark == "" || s.beginMark == s.commitMark {
		bad("--begin-mark and --commit-mark must be set and differ")
	}
	if s.keepAlive <= 0 {
		bad("--keepalive %v: want a positive duration below omprog's confirmTimeout", s.keepAlive)
	}
	if s.maxWait == 0 {
		bad("--max-wait 0: want a duration, or -1s to wait forever")
	}
	if s.maxLine <= 0 {
		bad("--max-line %d: want a positive number of bytes", s.maxLine)
	}
	if s.closeTimeout <= 0 {
		bad("--close-timeout %v: want a positive duration below omprog's closeTimeout", s.closeTimeout)
	}
	if _, err := parseLevel(s.logLevel); err != nil {
		bad("%v", err)
	}
	if s.curve.Enabled() {
		if _, err := s.curve.Security(nil); err != nil {
			bad("--curve-*: %v", err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrUsage, errors.Join(errs...))
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// txMode maps the --transactions value.
func (s *settings) txMode() omprog.Tx {
	switch s.transactions {
	case "on":
		return omprog.TxOn
	case "off":
		return omprog.TxOff
	}
	return omprog.TxAuto
}
