package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// Headers every JetStream message carries besides Nats-Msg-Id: where the
// event came from, so consumers that filter by subject still see it.
const (
	HeaderStream   = "Relay-Stream"
	HeaderInput    = "Relay-Input"
	HeaderPeer     = "Relay-Peer"
	HeaderReceived = "Relay-Received" // RFC 3339 with nanoseconds, UTC
)

// Defaults of a JetStream output.
const (
	DefaultMaxPending   = 4096
	DefaultAckTimeout   = 10 * time.Second
	DefaultRetryMax     = 5 * time.Second
	DefaultStartTimeout = 5 * time.Second
	// MinDuplicateWindow is the shortest duplicate window the output
	// accepts without a warning: a restart of the relay or a leader
	// election must fit in it.
	MinDuplicateWindow = time.Minute
)

// NATSAuth holds the credentials of a NATS connection; at most one kind
// is set (relay check says so).
type NATSAuth struct {
	Creds    string // a .creds file (JWT and seed)
	NKey     string // a file holding an nkey seed
	User     string
	Password string
	Token    string
}

// StreamSpec is the stream a JetStream output creates when none takes its
// subjects.
type StreamSpec struct {
	Name     string
	Subjects []string
	Replicas int
	MaxAge   time.Duration
	MaxBytes int64
	// Duplicates is the duplicate window (default 2 minutes on the server).
	Duplicates time.Duration
}

// JetStreamConfig configures a JetStream output.
type JetStreamConfig struct {
	Name    string
	Servers []string
	// Subject is the subject template: {stream} is replaced by the
	// event's stream (characters a subject token cannot hold become '_').
	Subject string
	// Create, if set, is the stream to create when no stream takes the
	// subjects (at start, and again if it is deleted while running).
	Create *StreamSpec
	Auth   NATSAuth
	TLS    *tls.Config
	// JSON sends each event as the relay's JSON object instead of the raw
	// syslog message.
	JSON bool
	// MaxPending bounds the messages published and not yet confirmed
	// (default 4096).
	MaxPending int
	// AckTimeout bounds the wait for one PubAck before the message is sent
	// again (default 10s).
	AckTimeout time.Duration
	// RetryMax caps the backoff between retries (default 5s).
	RetryMax time.Duration
	// StartTimeout is how long New waits for a first connection to check
	// the stream (default 5s). A server that is not reachable by then does
	// not stop the start: the spool takes the events meanwhile.
	StartTimeout time.Duration
	// SpoolID is the spool's identity (SpoolID), the prefix of message ids.
	SpoolID string
	// MsgID, if set, gives a record's message id instead (e.g. the link's
	// origin id of a relayed event). It must be stable across restarts.
	MsgID func(r *spool.Record) string
	// Sent, if set, is the spool's Sent: called just before records go on
	// the wire, so that a crash counts exactly the records that may have
	// been stored as redelivered.
	Sent func(rs ...spool.Range) error
	// OldestUnacked is when the oldest record still in the spool was
	// received: after a restart, records that old may be sent again, and
	// the duplicate window must reach back that far.
	OldestUnacked time.Time
	Logger        *slog.Logger
}

// JetStreamStats are a JetStream output's counters.
type JetStreamStats struct {
	Published  uint64 // publish attempts (first attempts and retries)
	Confirmed  uint64 // messages the stream confirmed (PubAck), duplicates included
	Duplicates uint64 // PubAcks that said duplicate: suppressed by the stream
	Resent     uint64 // attempts after a failed one, with the same message id
	// Failed counts failed attempts by cause: publishes, and for auth
	// also connections the server refused.
	Failed map[string]uint64
	// BeyondWindow counts messages sent again longer after their first
	// attempt than the stream's duplicate window: each may be stored twice.
	BeyondWindow uint64
	Pending      int // published or waiting for a retry, not confirmed
	Connected    bool
	Reconnects   uint64
}

// Failure causes of a JetStream publish.
const (
	CauseDisconnected = "disconnected" // the connection broke with the publish in flight
	CauseTimeout      = "timeout"      // no PubAck within ack_timeout
	CauseNoStream     = "no_stream"    // no stream (or no stream leader) answered for the subject
	CauseStreamFull   = "stream_full"  // the stream is at its limits and discards new messages
	CauseTooLarge     = "too_large"    // bigger than the server's max_payload or the stream's max_msg_size
	CauseAuth         = "auth"         // credentials refused or not allowed to publish
	CauseUnconfirmed  = "unconfirmed_duplicate"
	CauseOther        = "error"
)

// JetStream is the JetStream output's Sender.
type JetStream struct {
	cfg JetStreamConfig
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	sem chan struct{} // one token per message in flight

	mu sync.Mutex
	// open counts the records published and not confirmed: on the wire,
	// waiting for a retry or for a no-responders retry.
	open       int
	flights    map[uint64]*jsMsg // attempts on the wire, by reply token
	token      uint64            // the last reply token given
	batches    []jsBatch         // tokens by deadline, for the sweep
	sweepGrain time.Duration
	retry      []*jsMsg
	acks       *acks         // confirmed seqs, handed to the spool
	idle       chan struct{} // closed when open becomes 0

	replyPrefix string
	sub         *nats.Subscription
	sweepWake   chan struct{}

	subjects map[string]string // stream → subject (Send's goroutine only)

	wakeRetry chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	causes                *causes
	bo                    backoff
	published, confirmed  atomic.Uint64
	duplicates, resent    atomic.Uint64
	reconnects            atomic.Uint64
	createMu              sync.Mutex
	lastCreate            time.Time
	windowWarned, checked atomic.Bool
	started               atomic.Bool
	window                atomic.Int64 // the stream's duplicate window, when known
	denied                atomic.Int64 // when the server last refused a publish (permissions), unix nanoseconds
	beyondWindow          atomic.Uint64
}

// ErrNoStream is returned by NewJetStream when no stream takes the
// output's subjects and create_stream is not set.
var ErrNoStream = errors.New("no JetStream stream takes the subjects")

// ErrRefused is returned by NewJetStream when the server refuses the
// credentials.
var ErrRefused = errors.New("NATS server refused the connection")

// NATSOptions are the connection options of cfg's auth and TLS.
func NATSOptions(name string, auth NATSAuth, tc *tls.Config) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("relay " + name)}
	switch {
	case auth.Creds != "":
		opts = append(opts, nats.UserCredentials(auth.Creds))
	case auth.NKey != "":
		o, err := nats.NkeyOptionFromSeed(auth.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", auth.NKey, err)
		}
		opts = append(opts, o)
	case auth.User != "":
		opts = append(opts, nats.UserInfo(auth.User, auth.Password))
	case auth.Token != "":
		opts = append(opts, nats.Token(auth.Token))
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// NewJetStream connects to the servers and checks the stream: a stream
// that does not exist and no Create stops it with what to create; refused
// credentials stop it; a server that cannot be reached within
// StartTimeout does not (the spool takes the backlog, and the check runs
// once the server answers).
func NewJetStream(cfg JetStreamConfig) (*JetStream, error) {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("jetstream: no servers")
	}
	if cfg.MsgID == nil && cfg.SpoolID == "" {
		return nil, errors.New("jetstream: no spool id for message ids")
	}
	if err := checkNATSServers(cfg.Servers); err != nil {
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	s := &JetStream{
		cfg:        cfg,
		log:        cfg.Logger.With("output", cfg.Name),
		sem:        make(chan struct{}, cfg.MaxPending),
		flights:    map[uint64]*jsMsg{},
		sweepWake:  make(chan struct{}, 1),
		sweepGrain: max(cfg.AckTimeout/100, time.Millisecond),
		subjects:   map[string]string{},
		wakeRetry:  make(chan struct{}, 1),
		acks:       newAcks(),
		bo:         backoff{min: 50 * time.Millisecond, max: cfg.RetryMax},
	}
	s.causes = newCauses(s.log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	opts, err := NATSOptions(cfg.Name, cfg.Auth, cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	opts = append(opts,
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.Timeout(2*time.Second),
		// A frozen server keeps its sockets open: pings find it, so the
		// connection moves to another server of the cluster.
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("NATS connection lost; reconnecting (publishes in flight are sent again with the same ids)", "err", err)
			}
			if s.ctx.Err() == nil {
				s.failAll(nats.ErrDisconnected)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.reconnects.Add(1)
			s.log.Info("NATS connection up", "server", nc.ConnectedUrlRedacted())
			s.kick()
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			// The first connection came after the start-up wait: check the
			// stream now (a missing one can no longer stop the start; it
			// is logged, and publishes fail as no_stream, counted).
			s.log.Info("NATS connection up", "server", nc.ConnectedUrlRedacted())
			s.lateCheck()
			s.kick()
		}),
		// Credentials refused twice in a row would make nats.go close the
		// connection for good: the output would never publish again, not
		// even once the operator fixed the credentials on the server. It
		// keeps trying instead (counted as auth, the spool keeps the events).
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			switch {
			case errors.Is(err, nats.ErrPermissionViolation) || isPermission(err):
				// The PubAck of a refused publish never comes: its timeout
				// is counted as auth (failed), not here, so that each
				// attempt is counted once.
				s.denied.Store(time.Now().UnixNano())
				s.causes.fail(CauseAuth, 0, err, "check the output's permission to publish to its subjects and to use $JS.API.>")
			case isAuth(err):
				// A connection (or reconnection) refused: one attempt.
				s.causes.fail(CauseAuth, 1, err, "check the output's credentials (creds, nkey, user/password, token or tls client certificate) against the server's")
			default:
				s.log.Warn("NATS asynchronous error", "err", err)
			}
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if s.ctx.Err() == nil {
				s.log.Error("NATS connection closed while the output runs; events wait in the spool until the relay restarts or reloads", "err", nc.LastError())
			}
		}),
	)
	nc, err := nats.Connect(strings.Join(cfg.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("output %q: connect %s: %w", cfg.Name, strings.Join(cfg.Servers, ","), err)
	}
	s.nc = nc
	// jetstream's client checks and creates the stream; publishing goes
	// its own way (jspublish.go).
	s.js, err = jetstream.New(nc)
	if err != nil {
		s.cancel() // not running: the closed handler must not say it lost its connection
		nc.Close()
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	if err := s.startPublisher(); err != nil {
		s.cancel()
		s.wg.Wait()
		nc.Close()
		return nil, fmt.Errorf("output %q: subscribing to PubAcks: %w", cfg.Name, err)
	}
	if err := s.start(); err != nil {
		s.cancel()
		s.wg.Wait()
		nc.Close()
		return nil, err
	}
	s.started.Store(true)
	s.lateCheck()
	s.wg.Add(2)
	go s.retryLoop()
	go func() { defer s.wg.Done(); s.acks.loop(s.ctx) }()
	return s, nil
}

// lateCheck checks the stream once the first connection came after the
// start-up wait. A missing stream can no longer stop the start: it is
// logged, and publishes fail as no_stream (counted, retried).
func (s *JetStream) lateCheck() {
	if !s.started.Load() || !s.nc.IsConnected() || !s.checked.CompareAndSwap(false, true) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StartTimeout)
		defer cancel()
		if err := s.checkStream(ctx, false); err != nil {
			s.log.Error("stream check failed; events wait in the spool", "err", err)
		}
	}()
}

// start waits for a first connection and checks the stream.
func (s *JetStream) start() error {
	deadline := time.Now().Add(s.cfg.StartTimeout)
	for !s.nc.IsConnected() && time.Now().Before(deadline) {
		if err := s.nc.LastError(); isAuth(err) {
			return fmt.Errorf("output %q: %s: %w: %v; check creds, nkey, user/password, token or tls (ca, cert, key)", s.cfg.Name, strings.Join(s.cfg.Servers, ","), ErrRefused, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !s.nc.IsConnected() {
		if err := s.nc.LastError(); isAuth(err) {
			return fmt.Errorf("output %q: %s: %w: %v; check creds, nkey, user/password, token or tls (ca, cert, key)", s.cfg.Name, strings.Join(s.cfg.Servers, ","), ErrRefused, err)
		}
		s.log.Warn("no NATS server reachable at start; events wait in the spool until one is, and the stream is checked then",
			"servers", strings.Join(s.cfg.Servers, ","), "err", s.nc.LastError())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	defer cancel()
	s.checked.Store(true)
	return s.checkStream(ctx, true)
}

// wildcardSubject is the output's subject template with {stream} as a
// wildcard token, to find the stream that takes it.
func (s *JetStream) wildcardSubject() string {
	return strings.ReplaceAll(s.cfg.Subject, "{stream}", "*")
}

// checkStream finds the stream that takes the output's subjects, creates
// it if it is missing and Create is set, and warns about a duplicate
// window too short for what the spool may send again.
func (s *JetStream) checkStream(ctx context.Context, starting bool) error {
	subj := s.wildcardSubject()
	name, err := s.js.StreamNameBySubject(ctx, subj)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if s.cfg.Create == nil {
			return fmt.Errorf("output %q: %w %s on %s; create one, e.g. `nats stream add EVENTS --subjects '%s' --replicas 3 --dupe-window 2h --storage file` (--replicas 1 on a single server), or set create_stream in the output",
				s.cfg.Name, ErrNoStream, subj, strings.Join(s.cfg.Servers, ","), subjectsFor(s.cfg.Subject))
		}
		return s.createStream(ctx)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("output %q: JetStream is not enabled on %s (or for this account): %w; enable it in the server's config (jetstream {store_dir: …})", s.cfg.Name, strings.Join(s.cfg.Servers, ","), err)
	case err != nil:
		if isAuth(err) {
			return fmt.Errorf("output %q: %w: %v; the credentials may not use the JetStream API ($JS.API.>)", s.cfg.Name, ErrRefused, err)
		}
		if starting {
			s.log.Warn("could not check the stream at start; checking again when publishing", "subject", subj, "err", err)
			return nil
		}
		return err
	}
	st, err := s.js.Stream(ctx, name)
	if err != nil {
		s.log.Warn("could not read the stream's settings", "stream", name, "err", err)
		return nil
	}
	s.checkWindow(st.CachedInfo())
	return nil
}

// checkWindow warns when the stream's duplicate window is shorter than
// what the spool may send again.
func (s *JetStream) checkWindow(info *jetstream.StreamInfo) {
	if info == nil {
		return
	}
	win := info.Config.Duplicates
	s.window.Store(int64(win))
	need := max(MinDuplicateWindow, 2*s.cfg.AckTimeout+s.cfg.RetryMax)
	why := "a restart of the relay or a leader election must fit in it"
	if !s.cfg.OldestUnacked.IsZero() {
		if age := time.Since(s.cfg.OldestUnacked); age > need {
			need, why = age, "the spool holds events received that long ago, which may have reached the stream before the restart"
		}
	}
	if win < need {
		s.log.Warn("the stream's duplicate window is shorter than what the relay may send again: a resend after it ends is stored twice; raise it (nats stream edit --dupe-window)",
			"stream", info.Config.Name, "duplicate_window", win, "need", need.Round(time.Second), "why", why)
		s.windowWarned.Store(true)
	}
	if info.Config.Replicas < 3 {
		s.log.Info("the stream has fewer than 3 replicas: a PubAck is not fsync'd by default, so only replication keeps an acknowledged event through a server crash", "stream", info.Config.Name, "replicas", info.Config.Replicas)
	}
}

// WindowWarned reports whether the start-up check warned about the
// duplicate window (tests).
func (s *JetStream) WindowWarned() bool { return s.windowWarned.Load() }

// createStream creates cfg.Create.
func (s *JetStream) createStream(ctx context.Context) error {
	c := s.cfg.Create
	subs := c.Subjects
	if len(subs) == 0 {
		subs = []string{subjectsFor(s.cfg.Subject)}
	}
	sc := jetstream.StreamConfig{
		Name:       c.Name,
		Subjects:   subs,
		Storage:    jetstream.FileStorage,
		Replicas:   max(c.Replicas, 1),
		MaxAge:     c.MaxAge,
		MaxBytes:   c.MaxBytes,
		Duplicates: c.Duplicates,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
	}
	if sc.MaxBytes == 0 {
		sc.MaxBytes = -1
	}
	st, err := s.js.CreateStream(ctx, sc)
	if err != nil {
		return fmt.Errorf("output %q: create_stream %s: %w%s", s.cfg.Name, c.Name, err, createStreamHint(err, sc.Replicas))
	}
	s.log.Info("created the stream", "stream", c.Name, "subjects", strings.Join(subs, ","), "replicas", sc.Replicas)
	s.checkWindow(st.CachedInfo())
	return nil
}

// JetStream API error codes of a stream the server cannot place (server
// side; nats.go names neither).
const (
	jsErrReplicasNotSupported = 10074 // replicas > 1 not supported in non-clustered mode
	jsErrInsufficientResource = 10023 // insufficient resources
)

// createStreamHint says what to change when the server refuses to create
// create_stream's stream for its replicas (or its storage).
func createStreamHint(err error, replicas int) string {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return ""
	}
	switch api.ErrorCode {
	case jsErrReplicasNotSupported:
		return fmt.Sprintf("; the server is not part of a cluster, so a stream has one replica: set create_stream.replicas to 1 (it is %d), or run a JetStream cluster of at least %d servers", replicas, replicas)
	case jsErrInsufficientResource:
		return fmt.Sprintf("; the cluster has fewer JetStream servers than create_stream.replicas (%d), or not enough storage for max_bytes: lower replicas or max_bytes, or add servers or storage", replicas)
	}
	return ""
}

// subjectsFor is the subject filter a stream needs to take every subject
// the template makes.
func subjectsFor(tmpl string) string {
	if i := strings.Index(tmpl, "{stream}"); i >= 0 {
		if strings.HasSuffix(tmpl, "{stream}") {
			return tmpl[:i] + ">"
		}
		return strings.ReplaceAll(tmpl, "{stream}", "*")
	}
	return tmpl
}

// subjectToken makes a stream name usable as one subject token.
func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '.' || c == '*' || c == '>' || c >= 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c == '.' || c == '*' || c == '>' || c >= 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

func (s *JetStream) subject(stream string) string {
	if subj, ok := s.subjects[stream]; ok {
		return subj
	}
	subj := strings.ReplaceAll(s.cfg.Subject, "{stream}", subjectToken(stream))
	if len(s.subjects) < 4096 {
		s.subjects[stream] = subj
	}
	return subj
}

func (s *JetStream) msgID(r *spool.Record) string {
	if s.cfg.MsgID != nil {
		if id := s.cfg.MsgID(r); id != "" {
			return id
		}
	}
	return MsgID(s.cfg.SpoolID, r.Seq)
}

// message builds the message of a record.
func (s *JetStream) message(r *spool.Record) *jsMsg {
	data := r.Raw
	if s.cfg.JSON {
		e := event.New(r.Raw)
		e.Stream, e.Input, e.Peer, e.Received = r.Stream, r.Input, r.Peer, r.Received
		data = e.AppendJSON(make([]byte, 0, 2*len(r.Raw)+256))
	}
	m := &jsMsg{seq: r.Seq, subject: s.subject(r.Stream), data: data, id: s.msgID(r), stream: r.Stream, input: r.Input, peer: r.Peer}
	if !r.Received.IsZero() {
		m.received = r.Received.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// Send publishes recs asynchronously, blocking while MaxPending messages
// wait for their PubAck (backpressure: the spool takes the backlog).
// ack is called, from another goroutine, for the seqs the stream
// confirmed. It returns an error only when ctx ends or the output closes;
// what it had not published stays unacknowledged in the spool.
func (s *JetStream) Send(ctx context.Context, recs []spool.Record, ack func(first, last uint64)) error {
	s.acks.setFunc(ack)
	for i := 0; i < len(recs); {
		n, err := acquire(ctx, s.ctx, s.sem, len(recs)-i)
		if err != nil {
			return err
		}
		chunk := recs[i : i+n]
		msgs := make([]*jsMsg, n)
		now := time.Now()
		for k := range chunk {
			msgs[k] = s.message(&chunk[k])
			msgs[k].first = now
		}
		if s.cfg.Sent != nil {
			if err := s.cfg.Sent(spool.Range{First: chunk[0].Seq, Last: chunk[n-1].Seq}); err != nil && !errors.Is(err, spool.ErrClosed) {
				s.log.Warn("spool: marking records sent failed; a crash now would not count their redelivery", "err", err)
			}
		}
		s.mu.Lock()
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		s.open += n
		s.mu.Unlock()
		s.send(msgs, true)
		i += n
	}
	return nil
}

var errUnconfirmedDuplicate = errors.New("PubAck says duplicate of a message the stream did not store (sequence 0)")

// idleLocked closes idle when nothing is in flight (mu held).
func (s *JetStream) idleLocked() {
	if s.open == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

func (s *JetStream) kick() {
	select {
	case s.wakeRetry <- struct{}{}:
	default:
	}
}

// classify names the cause of a failed publish and what to do about it.
func classify(err error, subject string) (cause, hint string) {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionReconnecting):
		return CauseDisconnected, ""
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return CauseTimeout, "check the servers' health and the stream's leader (nats stream info)"
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return CauseNoStream, fmt.Sprintf("no stream takes subject %s, or its stream has no leader; create the stream (or add the subject to it), or set create_stream", subject)
	case errors.Is(err, errUnconfirmedDuplicate):
		return CauseUnconfirmed, ""
	case errors.Is(err, nats.ErrMaxPayload):
		return CauseTooLarge, "raise the server's max_payload above the inputs' max_message_size"
	case isAuth(err):
		return CauseAuth, "check the output's credentials and its permission to publish to " + subject
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return CauseTooLarge, "raise the stream's max_msg_size above the inputs' max_message_size"
		case jetstream.JSErrCodeStreamNotFound:
			return CauseNoStream, "the stream was deleted; create it again, or set create_stream"
		}
		d := strings.ToLower(apiErr.Description)
		if strings.Contains(d, "maximum") && (strings.Contains(d, "exceeded") || strings.Contains(d, "bytes") || strings.Contains(d, "messages")) {
			return CauseStreamFull, "the stream is full and discards new messages; raise its limits or set discard: old"
		}
		if strings.Contains(d, "insufficient resources") {
			return CauseStreamFull, "the server's JetStream storage is full; free space or raise max_file_store"
		}
	}
	return CauseOther, ""
}

// isPermission reports a permissions violation (the connection stands,
// the subject is refused).
func isPermission(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "permissions violation")
}

func isAuth(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrPermissionViolation) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "authorization violation") || strings.Contains(s, "permissions violation") || strings.Contains(s, "authentication") ||
		isTLSRefusal(err)
}

// isTLSRefusal reports a TLS handshake that one side refused: the server
// rejected the relay's client certificate (a TLS alert, or, with TLS 1.3,
// the connection closed right after the handshake), or the relay could
// not verify the server's certificate against its ca. Like a wrong
// password, retrying does not help until the settings change.
func isTLSRefusal(err error) bool {
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "remote error: tls:") || errors.Is(err, nats.ErrTLS) && strings.Contains(s, "closed by remote after TLS handshake")
}

// retryLoop publishes failed messages again, with the same ids, after a
// capped backoff.
func (s *JetStream) retryLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.wakeRetry:
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		n := len(s.retry)
		s.mu.Unlock()
		if n == 0 {
			continue
		}
		t := time.NewTimer(s.bo.next())
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		if !s.nc.IsConnected() {
			s.kick() // the reconnect handler kicks too
			continue
		}
		s.mu.Lock()
		msgs := s.retry
		s.retry = nil
		late := 0
		if win := time.Duration(s.window.Load()); win > 0 {
			for _, m := range msgs {
				if time.Since(m.first) > win {
					late++
				}
			}
		}
		s.mu.Unlock()
		if late > 0 {
			// The stream may have stored the first copy and forgotten its
			// id: these may be stored twice. Counted, and said.
			if s.beyondWindow.Add(uint64(late)) == uint64(late) {
				s.log.Warn("sending events again after the stream's duplicate window: if their first copy was stored, they are stored twice; raise the stream's duplicate window above the longest outage",
					"events", late, "duplicate_window", time.Duration(s.window.Load()))
			}
		}
		if s.cfg.Create != nil && s.causes.inEpisode(CauseNoStream) {
			s.recreate()
		}
		s.resent.Add(uint64(len(msgs)))
		s.send(msgs, true)
	}
}

// recreate creates the stream again (create_stream set) if it was
// deleted, at most every few seconds.
func (s *JetStream) recreate() {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if time.Since(s.lastCreate) < 5*time.Second {
		return
	}
	s.lastCreate = time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if _, err := s.js.StreamNameBySubject(ctx, s.wildcardSubject()); errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := s.createStream(ctx); err != nil {
			s.log.Warn("could not create the stream again", "err", err)
		}
	}
}

// Close waits, within ctx, for the PubAcks of what was published, then
// closes the connection. What is not confirmed by then stays in the spool
// and is sent again (with the same ids) by the next start.
func (s *JetStream) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		idle := s.idle
		left := s.open
		s.mu.Unlock()
		if idle != nil && left > 0 {
			select {
			case <-idle:
			case <-ctx.Done():
			}
		}
		s.cancel()
		s.wg.Wait()
		s.mu.Lock()
		left = s.open
		s.mu.Unlock()
		if left > 0 {
			s.log.Info("closing with publishes unconfirmed; they stay in the spool and are sent again with the same ids", "messages", left)
		}
		s.nc.Close()
	})
	return s.closeErr
}

// Stats returns the output's counters.
func (s *JetStream) Stats() JetStreamStats {
	s.mu.Lock()
	pending := s.open
	s.mu.Unlock()
	return JetStreamStats{
		Published:    s.published.Load(),
		Confirmed:    s.confirmed.Load(),
		Duplicates:   s.duplicates.Load(),
		Resent:       s.resent.Load(),
		Failed:       s.causes.snapshot(),
		Pending:      pending,
		BeyondWindow: s.beyondWindow.Load(),
		Connected:    s.nc.IsConnected(),
		Reconnects:   s.reconnects.Load(),
	}
}

// String describes the output for logs.
func (s *JetStream) String() string {
	return "jetstream " + strings.Join(s.cfg.Servers, ",") + " subject " + s.cfg.Subject + " window " + strconv.Itoa(s.cfg.MaxPending)
}
