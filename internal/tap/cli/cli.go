// Package cli is the tap command: it streams or summarises the events of a
// relay, read from its PUB endpoint or its websocket.
package cli

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rsyslog-zmq/relay/internal/broker"
	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/tap"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Exit codes, documented in the help text.
const (
	ExitOK    = 0 // done: --limit reached, --for elapsed, interrupted, or the stream ended
	ExitError = 1 // the source was lost (--no-reconnect) or output failed
	ExitUsage = 2 // bad flags, filter or source URL
	ExitAuth  = 3 // the relay refused the token
)

const usage = `tap: look at a relay's live event stream.

Usage:
  tap [flags] SOURCE          print events
  tap stats [flags] SOURCE    live per-stream table; a summary on Ctrl-C

SOURCE is a relay PUB endpoint (tcp://host:5556, ipc:///path), the relay's
websocket (ws://host:8080, wss://host:8443), or a NATS JetStream stream the
relay writes to (nats://host:4222/STREAM), which can be replayed: --since,
--from-seq or --last, then the tap ends (or follows with --follow). Flags may
follow SOURCE.

Examples:
  tap tcp://127.0.0.1:5556 --stream click --limit 100 --format json
  tap ws://relay:8080 --stream 'web.*' --match severity=err --grep timeout
  tap tcp://relay:5556 --sample 1/100 --for 10m -o sample.jsonl.gz
  tap stats tcp://relay:5556 --unique sd:user@32473.id --top hostname
  tap stats wss://relay:8443 --token-file /etc/relay/tap.token --interval 5s
  tap tcp://relay:5556 --curve-server-key /etc/relay/curve/relay.key --curve-key me.key
  tap nats://nats1:4222/EVENTS --since 1h --stream click -o last-hour.jsonl.gz
  tap nats://nats1:4222/EVENTS --last 100 --format pretty

A PUB output with curve is a CURVE server: name its public certificate (or
Z85 key) with --curve-server-key, and your secret certificate with
--curve-key (relay keygen writes a pair; the relay must list the public
one in allow_dir or allow); without --curve-key tap draws a key pair,
which only a relay with allow_any: true admits.

Output: events on stdout (pretty is coloured on a terminal unless NO_COLOR is
set), notices on stderr. A websocket tap reports the events the relay dropped
for it; a PUB tap cannot see the relay's drops (see relay_output_dropped_total).

Fields (--match, --unique, --top): app-name, msgid, hostname, facility,
severity, sd:ID.param, json:path, regex:EXPR.

Exit codes: 0 done (limit, --for, Ctrl-C); 1 source lost with --no-reconnect
or output error; 2 usage error; 3 token refused.

Flags:
`

// strings is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	stats       bool
	source      string
	streams     stringList
	matches     stringList
	grep        string
	format      string
	limit       int64
	dur         time.Duration
	sample      string
	out         string
	noReconnect bool
	token       string
	tokenFile   string
	unique      string
	top         string
	topK        int
	interval    time.Duration
	verbose     bool
	curve       zmq.CurveSettings
	since       time.Duration
	fromSeq     uint64
	last        uint64
	follow      bool
	creds       string
}

// source is where events come from: a relay (tap.Consumer) or a stream
// (broker.Replay).
type source interface {
	Recv(ctx context.Context) (tap.Message, error)
	Stats() tap.ConsumerStats
	Close() error
}

// Main runs the tap command with args (without the program name) and
// returns the exit code. ctx ends the run like Ctrl-C.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, code, err := parseArgs(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintf(stderr, "tap: %v\nRun tap --help for the usage.\n", err)
		return code
	}
	r, err := newRunner(o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tap: %v\n", err)
		return ExitUsage
	}
	defer r.consumer.Close()
	if o.stats {
		err = r.runStats(ctx)
	} else {
		err = r.runEvents(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tap: %v\n", err)
		if errors.Is(err, tap.ErrUnauthorized) {
			return ExitAuth
		}
		if errors.Is(err, tap.ErrBadFilter) {
			return ExitUsage
		}
		return ExitError
	}
	return ExitOK
}

func parseArgs(args []string, stderr io.Writer) (*options, int, error) {
	o := &options{}
	if len(args) > 0 && args[0] == "stats" {
		o.stats = true
		args = args[1:]
	}
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.Var(&o.streams, "stream", "stream glob, repeatable (pushed down as subscription prefixes or a websocket query)")
	fs.Var(&o.matches, "match", "field=value, repeatable; all must hold")
	fs.StringVar(&o.grep, "grep", "", "RE2 regexp on the raw message")
	fs.StringVar(&o.format, "format", "", "raw, json or pretty (default: pretty on a terminal, json otherwise)")
	fs.Int64Var(&o.limit, "limit", 0, "stop after N events (0: no limit)")
	fs.DurationVar(&o.dur, "for", 0, "stop after this long, e.g. 30s, 10m (0: no limit)")
	fs.StringVar(&o.sample, "sample", "", "keep one event in N: 1/N or N")
	fs.StringVar(&o.out, "o", "", "write JSON lines to FILE (.gz compresses), with a progress line on a terminal")
	fs.BoolVar(&o.noReconnect, "no-reconnect", false, "exit 1 when the source goes away instead of reconnecting")
	fs.StringVar(&o.token, "token", "", "websocket tap token (prefer --token-file or $TAP_TOKEN)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the websocket tap token")
	fs.StringVar(&o.unique, "unique", "", "stats: count distinct values of FIELD (HyperLogLog)")
	fs.StringVar(&o.top, "top", "", "stats: most frequent values of FIELD")
	fs.IntVar(&o.topK, "k", 3, "stats: how many --top values to show")
	fs.DurationVar(&o.interval, "interval", time.Second, "stats: refresh interval")
	fs.BoolVar(&o.verbose, "v", false, "log reconnects and notices to stderr")
	fs.Var(o.curve.ServerKeyFlag(), "curve-server-key", "CURVE: the relay PUB's public certificate file or Z85 key")
	fs.StringVar(&o.curve.KeyFile, "curve-key", "", "CURVE: our secret certificate (default: a key pair drawn for this run)")
	fs.DurationVar(&o.since, "since", 0, "nats:// only: replay from this long ago, e.g. 1h")
	fs.Uint64Var(&o.fromSeq, "from-seq", 0, "nats:// only: replay from this stream sequence")
	fs.Uint64Var(&o.last, "last", 0, "nats:// only: replay the last N messages of the stream")
	fs.BoolVar(&o.follow, "follow", false, "nats:// only: after the replay, go on with new messages")
	fs.StringVar(&o.creds, "creds", "", "nats:// only: NATS credentials file (user:password@ or a token@ also work in the URL)")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, ExitUsage, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 1 && pos[0] == "stats" && !o.stats {
		return nil, ExitUsage, errors.New("tap stats needs a SOURCE, e.g. tap stats tcp://127.0.0.1:5556")
	}
	if len(pos) > 0 && pos[0] == "stats" && !o.stats {
		o.stats, pos = true, pos[1:]
	}
	if len(pos) != 1 {
		return nil, ExitUsage, fmt.Errorf("want one SOURCE (tcp://host:port or ws://host:port), got %d arguments %q", len(pos), pos)
	}
	o.source = pos[0]
	if !strings.HasPrefix(o.source, "nats://") && (o.since != 0 || o.fromSeq != 0 || o.last != 0 || o.follow || o.creds != "") {
		return nil, ExitUsage, errors.New("--since, --from-seq, --last, --follow and --creds need a nats://host:port/STREAM source")
	}
	if o.since < 0 {
		return nil, ExitUsage, errors.New("--since must not be negative")
	}
	switch o.format {
	case "", "raw", "json", "pretty":
	default:
		return nil, ExitUsage, fmt.Errorf("--format %q: want raw, json or pretty", o.format)
	}
	if o.limit < 0 || o.dur < 0 || o.interval <= 0 || o.topK < 1 {
		return nil, ExitUsage, errors.New("--limit and --for must not be negative, --interval and -k must be positive")
	}
	if o.curve.KeyFile != "" && !o.curve.Client() {
		return nil, ExitUsage, errors.New("--curve-key needs --curve-server-key, the relay's public key")
	}
	if o.curve.Client() && !strings.HasPrefix(o.source, "tcp://") && !strings.HasPrefix(o.source, "ipc://") {
		return nil, ExitUsage, errors.New("--curve-* apply to a PUB source (tcp:// or ipc://); a websocket uses wss:// and --token-file")
	}
	if o.out != "" && o.format != "" && o.format != "json" {
		return nil, ExitUsage, fmt.Errorf("-o writes JSON lines; drop --format %s", o.format)
	}
	return o, ExitOK, nil
}

type runner struct {
	o        *options
	consumer source
	stdout   io.Writer
	stderr   io.Writer
	tty      bool // stdout is a terminal
	color    bool // pretty output in colour
	errTTY   bool
	uniq     event.Field
	top      event.Field
}

func newRunner(o *options, stdout, stderr io.Writer) (*runner, error) {
	sample, err := tap.ParseSample(o.sample)
	if err != nil {
		return nil, err
	}
	f, err := tap.NewFilter(o.streams, o.matches, o.grep, sample)
	if err != nil {
		return nil, err
	}
	r := &runner{o: o, stdout: stdout, stderr: stderr, tty: isTTY(stdout), errTTY: isTTY(stderr)}
	r.color = r.tty && os.Getenv("NO_COLOR") == "" // https://no-color.org
	if o.format == "" {
		o.format = "json"
		if r.tty && o.out == "" {
			o.format = "pretty"
		}
	}
	if o.unique != "" {
		if r.uniq, err = event.ParseField(o.unique); err != nil {
			return nil, fmt.Errorf("--unique: %w", err)
		}
	}
	if o.top != "" {
		if r.top, err = event.ParseField(o.top); err != nil {
			return nil, fmt.Errorf("--top: %w", err)
		}
	}
	token := o.token
	if token == "" {
		token = os.Getenv("TAP_TOKEN")
	}
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	lvl := slog.LevelWarn // the relay's drop notices and reconnections: at most one line a second
	if o.verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	var zo zmq.Options
	if o.curve.Client() {
		if zo.Security, err = o.curve.Security(log); err != nil {
			return nil, err
		}
		if o.curve.KeyFile == "" {
			// Else a relay that lists its clients refuses us with "it does
			// not admit our key", and the user never gave one.
			fmt.Fprintln(stderr, "tap: no --curve-key: using a key pair drawn for this run, which only a relay with allow_any: true admits; "+
				"otherwise pass --curve-key with your secret certificate (relay keygen NAME writes NAME.key_secret) and have NAME.key put in the relay's allow_dir")
		}
	}
	if strings.HasPrefix(o.source, "nats://") {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.consumer, err = broker.NewReplay(ctx, broker.ReplayConfig{
			Source: o.source, Since: o.since, FromSeq: o.fromSeq, Last: o.last, Follow: o.follow,
			Filter: f, Creds: o.creds, Logger: log,
		})
		return r, err
	}
	r.consumer, err = tap.NewConsumer(tap.ConsumerConfig{
		ZMQ:         zo,
		Source:      o.source,
		Filter:      f,
		Raw:         o.format == "raw" && !o.stats && o.out == "",
		Token:       token,
		NoReconnect: o.noReconnect,
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// runEvents prints (or writes to -o) events until the limit, the duration,
// ctx or an error.
func (r *runner) runEvents(ctx context.Context) error {
	if r.o.dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.o.dur)
		defer cancel()
	}
	var (
		w      = bufio.NewWriterSize(r.stdout, 64<<10)
		closer func() error
	)
	format := r.o.format
	if r.o.out != "" {
		f, err := os.Create(r.o.out)
		if err != nil {
			return fmt.Errorf("-o: %w", err)
		}
		var dst io.Writer = f
		var gz *gzip.Writer
		if strings.HasSuffix(r.o.out, ".gz") {
			gz = gzip.NewWriter(f)
			dst = gz
		}
		w = bufio.NewWriterSize(dst, 64<<10)
		format = "json"
		closer = func() error {
			if gz != nil {
				if err := gz.Close(); err != nil {
					f.Close()
					return err
				}
			}
			return f.Close()
		}
	}
	var (
		mu      sync.Mutex // guards w against the flusher
		n       int64
		buf     []byte
		done    = make(chan struct{})
		flushed sync.WaitGroup
	)
	// Flush at least every 200ms so a slow stream shows up promptly, and
	// draw the progress line.
	flushed.Add(1)
	go func() {
		defer flushed.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		start, last, lastN := time.Now(), time.Now(), int64(0)
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mu.Lock()
				w.Flush()
				cur := n
				mu.Unlock()
				if r.o.out != "" && r.errTTY && now.Sub(last) >= time.Second {
					st := r.consumer.Stats()
					fmt.Fprintf(r.stderr, "\r\033[K%d events  %.0f/s  %s  drops %d  %s",
						cur, float64(cur-lastN)/now.Sub(last).Seconds(), human(st.Bytes), st.Dropped, now.Sub(start).Round(time.Second))
					last, lastN = now, cur
				}
			}
		}
	}()
	var runErr error
	for r.o.limit == 0 || n < r.o.limit {
		m, err := r.consumer.Recv(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, broker.ErrEnd) {
				runErr = err
			}
			break
		}
		buf = buf[:0]
		switch format {
		case "raw":
			if m.Raw != nil {
				buf = append(buf, m.Raw...)
			} else {
				buf = append(buf, m.Event().Raw...)
			}
		case "json":
			if m.JSON != nil {
				buf = append(buf, m.JSON...)
			} else {
				buf = m.Event().AppendJSON(buf)
			}
		case "pretty":
			buf = appendPretty(buf, m.Event(), r.color)
		}
		buf = append(buf, '\n')
		mu.Lock()
		_, err = w.Write(buf)
		n++
		mu.Unlock()
		if err != nil {
			runErr = fmt.Errorf("write: %w", err)
			break
		}
	}
	close(done)
	flushed.Wait()
	if err := w.Flush(); err != nil && runErr == nil {
		runErr = fmt.Errorf("write: %w", err)
	}
	if closer != nil {
		if err := closer(); err != nil && runErr == nil {
			runErr = fmt.Errorf("-o: %w", err)
		}
	}
	if r.o.out != "" {
		st := r.consumer.Stats()
		if r.errTTY {
			fmt.Fprint(r.stderr, "\r\033[K")
		}
		fmt.Fprintf(r.stderr, "tap: wrote %d events to %s (relay-reported drops %d, skipped %d)\n", n, r.o.out, st.Dropped, st.Skipped)
	}
	return runErr
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func human(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}
