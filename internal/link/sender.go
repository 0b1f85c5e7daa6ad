package link

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/rsyslog-zmq/relay/internal/ratelog"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Sender defaults.
const (
	DefaultHeartbeat        = time.Second
	DefaultHeartbeatTimeout = 5 * time.Second
	DefaultReconnectMin     = 100 * time.Millisecond
	DefaultReconnectMax     = 5 * time.Second
	DefaultFailback         = 30 * time.Second
	DefaultDialTimeout      = 5 * time.Second
	// DefaultMinWindow and DefaultMaxWindow bound the bytes (as sent, after
	// compression) a sender keeps unacknowledged.
	DefaultMinWindow = 1 << 20
	DefaultMaxWindow = 64 << 20
	// DefaultBatchRecords caps the records of one batch.
	DefaultBatchRecords = 8192
	// DefaultCompressWorkers bounds the batches compressed at once.
	DefaultCompressWorkers = 4
	// drainWait bounds how long a planned fail-back waits for the
	// batches in flight to the current receiver to be acknowledged.
	drainWait = 10 * time.Second
)

// SenderConfig configures the output side of the link.
type SenderConfig struct {
	Name string
	// Connect are the receivers, "tcp://host:port", tried in order: the
	// sender fails over down the list and back up to the first one that
	// answers.
	Connect []string
	// TLS is the client TLS configuration (its certificate, the CAs it
	// trusts, ServerName). ServerName defaults to each endpoint's host.
	TLS *tls.Config
	// TLSFunc, if set, is asked for the client TLS configuration at each
	// connection instead of TLS (the relay's certificates, which a
	// reload re-reads).
	TLSFunc func() (*tls.Config, error)
	// Security is the ZMTP mechanism (CURVE); nil: NULL.
	Security      zmq.Security
	AllowInsecure bool
	// ID is the sender's durable identity (LoadID of its spool directory).
	ID SenderID
	// MaxBatch bounds one batch's uncompressed bytes (DefaultMaxBatch);
	// the receiver's own limit (from WELCOME) applies too.
	MaxBatch     int
	BatchRecords int
	// Compression is CompressZstd (the default of the config), CompressS2
	// or CompressNone.
	Compression Compression
	// MinWindow and MaxWindow bound the adaptive window (bytes on the
	// wire, unacknowledged).
	MinWindow, MaxWindow int64
	// CompressWorkers is how many batches are compressed at once, on
	// goroutines of their own, while Send encodes the next ones; they are
	// queued in order. 0: half of GOMAXPROCS (the rest of the relay needs
	// the other half), at least 1 and at most DefaultCompressWorkers; 1:
	// each batch is compressed on Send's goroutine. Measured on 2 shared
	// cores (BenchmarkSenderPath), two workers halved the rate: the
	// compressors took both cores from the spool, the writer and the acks.
	CompressWorkers  int
	Heartbeat        time.Duration
	HeartbeatTimeout time.Duration
	ReconnectMin     time.Duration
	ReconnectMax     time.Duration
	Failback         time.Duration
	DialTimeout      time.Duration
	// Sent, if set, is called with a batch's record range just before it
	// goes on the wire (spool.Sent: exact redelivery counts after a crash).
	Sent   func(spool.Range) error
	Logger *slog.Logger
}

func (c *SenderConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ReconnectMin, DefaultReconnectMin)
	def(&c.ReconnectMax, DefaultReconnectMax)
	def(&c.Failback, DefaultFailback)
	def(&c.DialTimeout, DefaultDialTimeout)
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.BatchRecords <= 0 {
		c.BatchRecords = DefaultBatchRecords
	}
	if c.MinWindow <= 0 {
		c.MinWindow = DefaultMinWindow
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	c.MaxWindow = max(c.MaxWindow, c.MinWindow)
	if c.CompressWorkers <= 0 {
		c.CompressWorkers = min(max(runtime.GOMAXPROCS(0)/2, 1), DefaultCompressWorkers)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Compression is how a sender compresses its batches.
type Compression int

// Compressions.
const (
	CompressNone Compression = iota
	CompressZstd
	CompressS2
)

// ParseCompression parses zstd, s2 or none.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "zstd", "":
		return CompressZstd, nil
	case "s2":
		return CompressS2, nil
	case "none":
		return CompressNone, nil
	}
	return 0, fmt.Errorf("compression %q is not known; use zstd, s2 or none", s)
}

// EndpointStats is the state of one receiver address.
type EndpointStats struct {
	Addr      string
	Connected bool
	Failures  uint64 // connection attempts that failed
	LastError string
}

// SenderStats are a sender's counters and gauges.
type SenderStats struct {
	Connected       bool
	Endpoint        string
	Endpoints       []EndpointStats
	RTT             time.Duration // PING/PONG round trip, smoothed
	AckRTT          time.Duration // batch sent → ACK, smoothed (includes the receiver's hand-off and fsync)
	Window          int64         // bytes allowed unacknowledged now
	InFlightBatches int
	InFlightBytes   int64
	Batches         uint64 // batches made
	Records         uint64 // records put in batches
	RawBytes        uint64 // their encoded bytes before compression
	WireBytes       uint64 // their bytes after compression
	SentBytes       uint64 // payload bytes written, resends included
	AckedBatches    uint64
	AckedRecords    uint64
	ResentBatches   uint64 // batches sent again on a later session
	ResentRecords   uint64
	SkippedRecords  uint64 // records a WELCOME said the receiver had: acknowledged without sending again
	Sessions        uint64 // sessions established
	Failovers       uint64 // sessions established on another receiver than the last one, not planned
	Failbacks       uint64 // planned moves back up the connect list
	// FailoverResent counts records sent again to another receiver than
	// the one they were last sent to: the bound on what a fail-over may
	// have duplicated across receivers.
	FailoverResent uint64
	Refused        map[string]uint64 // TLS, CURVE (CurveReasons) and protocol refusals by reason
}

// outBatch is one batch, kept (encoded) until acknowledged.
type outBatch struct {
	hdr      BatchHeader
	recFirst uint64 // seq of its first record
	payload  []byte
	records  int
	ack      func(first, last uint64)
	sentAt   time.Time
	sentOn   int // endpoint it was last sent to; -1: never sent
	resent   bool
	raw      []byte        // its encoding, until compressed
	ready    chan struct{} // closed once payload is set (compression on a worker)
}

// Sender is the output side of the link: it batches records drained from
// a spool, sends them over one session at a time, and acknowledges them to
// the spool when the receiver has handed them off.
type Sender struct {
	cfg SenderConfig
	log *slog.Logger

	rawBuf []byte // encoding scratch of batches compressed on Send's goroutine

	// The compression pipeline (CompressWorkers > 1): Send encodes a
	// batch, a worker compresses it (sem bounds them), and the queuer
	// takes the batches from pipe in order and queues them for sending.
	sem      chan struct{}
	pipe     chan *outBatch
	closeCtx context.Context
	closeFn  context.CancelFunc

	mu          sync.Mutex
	cond        *sync.Cond
	queue       []*outBatch // unacknowledged, in order
	sent        int         // queue[:sent] sent on the current session
	queuedBytes int64
	lastLast    uint64
	window      int64
	closed      bool
	piped       int // batches in the compression pipeline, not yet queued
	peerMax     int // the largest batch the current (or last) receiver takes
	sess        *ssession
	draining    bool // a fail-back is waiting for acks: send nothing new
	lastEP      int  // endpoint of the last session; -1 before the first
	srtt, prtt  time.Duration
	rateSince   time.Time
	rateBytes   int64
	rate        float64 // acked wire bytes per second, smoothed
	eps         []EndpointStats

	closeCh chan struct{}
	wg      sync.WaitGroup

	batches, records, rawBytes, wireBytes, sentBytes    atomic.Uint64
	ackedB, ackedR, resentB, resentR, skipped, sessions atomic.Uint64
	failovers, failbacks, foResent                      atomic.Uint64
	refusedMu                                           sync.Mutex
	refused                                             map[string]uint64
	logLimit                                            ratelog.Limiter
}

// NewSender checks cfg and starts connecting.
func NewSender(cfg SenderConfig) (*Sender, error) {
	cfg.defaults()
	if len(cfg.Connect) == 0 {
		return nil, fmt.Errorf("link output %q: connect is empty", cfg.Name)
	}
	if cfg.ID == (SenderID{}) {
		return nil, fmt.Errorf("link output %q: no sender id", cfg.Name)
	}
	for _, ep := range cfg.Connect {
		if err := checkSecure(hostPort(ep), cfg.TLS != nil || cfg.TLSFunc != nil || isCurve(cfg.Security), cfg.AllowInsecure); err != nil {
			return nil, fmt.Errorf("link output %q: %w", cfg.Name, err)
		}
	}
	s := &Sender{
		cfg:     cfg,
		peerMax: cfg.MaxBatch,
		log:     cfg.Logger.With("output", cfg.Name),
		window:  cfg.MinWindow,
		lastEP:  -1,
		closeCh: make(chan struct{}),
		refused: map[string]uint64{},
	}
	s.cond = sync.NewCond(&s.mu)
	for _, ep := range cfg.Connect {
		s.eps = append(s.eps, EndpointStats{Addr: ep})
	}
	s.closeCtx, s.closeFn = context.WithCancel(context.Background())
	if cfg.CompressWorkers > 1 && cfg.Compression != CompressNone {
		s.sem = make(chan struct{}, cfg.CompressWorkers)
		s.pipe = make(chan *outBatch, cfg.CompressWorkers)
		s.wg.Add(1)
		go s.queuer()
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Send batches recs (in Seq order, after every record given before) and
// queues them for the receiver. It blocks while the window is full
// (backpressure to the spool's drain). ack is called with each batch's
// record range once the receiver has handed it off durably; acks come in
// order, from another goroutine.
func (s *Sender) Send(ctx context.Context, recs []spool.Record, ack func(first, last uint64)) error {
	for len(recs) > 0 {
		s.mu.Lock()
		// Half the window, which counts bytes on the wire: in raw bytes
		// that is the compression ratio times more. (Counted raw, a short
		// round trip kept batches at a quarter of that: more batches, each
		// compressed and fsync'd at the receiver on its own.) Never above
		// what the receiver takes.
		target := int(min(max(float64(s.window/2)*s.ratio(), 64<<10), float64(min(s.cfg.MaxBatch, s.peerMax))))
		s.mu.Unlock()
		n, size := 0, 0
		for n < len(recs) && n < s.cfg.BatchRecords {
			rs := recordSize(&recs[n])
			if n > 0 && size+rs > target {
				break
			}
			size += rs
			n++
		}
		if s.pipe != nil {
			if err := s.compressAsync(ctx, recs[:n], ack); err != nil {
				return err
			}
		} else {
			b := s.encode(recs[:n], ack)
			s.compressBatch(b)
			if err := s.enqueue(ctx, b); err != nil {
				return err
			}
		}
		recs = recs[n:]
	}
	return nil
}

// compressAsync encodes recs as the next batch, has a worker compress it
// and hands it to the queuer, waiting while every worker is busy or the
// queuer is full (backpressure from the window).
func (s *Sender) compressAsync(ctx context.Context, recs []spool.Record, ack func(first, last uint64)) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closeCh:
		return ErrClosed
	}
	b := s.encode(recs, ack)
	b.ready = make(chan struct{})
	s.mu.Lock()
	s.piped++
	s.mu.Unlock()
	go func() {
		s.compressBatch(b)
		close(b.ready)
		<-s.sem
	}()
	select {
	case s.pipe <- b:
		return nil
	case <-ctx.Done():
	case <-s.closeCh:
	}
	// Not handed over: these records stay unacknowledged in the spool.
	s.mu.Lock()
	s.piped--
	s.cond.Broadcast()
	s.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return ErrClosed
}

// queuer queues the pipeline's batches in the order Send made them, each
// once compressed, waiting for room in the window.
func (s *Sender) queuer() {
	defer s.wg.Done()
	for {
		var b *outBatch
		select {
		case b = <-s.pipe:
		case <-s.closeCh:
			return
		}
		select {
		case <-b.ready:
		case <-s.closeCh:
			return
		}
		err := s.enqueue(s.closeCtx, b)
		s.mu.Lock()
		s.piped--
		s.cond.Broadcast()
		s.mu.Unlock()
		if err != nil {
			return // closed: what was not queued stays in the spool
		}
	}
}

// ratio is the compression ratio so far (raw bytes per wire byte), at
// least 1.
func (s *Sender) ratio() float64 {
	raw, wire := s.rawBytes.Load(), s.wireBytes.Load()
	if wire == 0 || raw <= wire {
		return 1
	}
	return float64(raw) / float64(wire)
}

// encode makes a batch of recs.
func (s *Sender) encode(recs []spool.Record, ack func(first, last uint64)) *outBatch {
	first := recs[0].Seq
	if s.lastLast != 0 && s.lastLast < first {
		first = s.lastLast + 1
	}
	last := recs[len(recs)-1].Seq
	s.lastLast = last
	need := 64 + sizeOf(recs)
	var raw []byte
	switch {
	case s.cfg.Compression == CompressNone, s.pipe != nil:
		// The payload itself, or a worker's input: back to the pool once
		// acknowledged, or once compressed.
		pool := &rawPool
		if s.cfg.Compression == CompressNone {
			pool = &payloadPool
		}
		raw = getBuf(pool, need)
	default:
		// Compressed here: the encoding is scratch.
		if cap(s.rawBuf) < need {
			s.rawBuf = make([]byte, 0, need)
		}
		raw = s.rawBuf[:0]
	}
	raw = encodeRecords(raw, first-1, recs)
	h := BatchHeader{First: first, Last: last, Count: uint32(len(recs)), RawLen: uint32(len(raw))}
	s.batches.Add(1)
	s.records.Add(uint64(len(recs)))
	s.rawBytes.Add(uint64(len(raw)))
	return &outBatch{hdr: h, recFirst: recs[0].Seq, raw: raw, records: len(recs), ack: ack, sentOn: -1}
}

// compressBatch sets b's payload: its encoding, compressed.
func (s *Sender) compressBatch(b *outBatch) {
	raw := b.raw
	b.raw = nil
	switch s.cfg.Compression {
	case CompressZstd:
		b.payload = compress(getBuf(&payloadPool, len(raw)/3+64), raw)
		b.hdr.Flags |= FlagZstd
	case CompressS2:
		b.payload = compressS2(getBuf(&payloadPool, s2MaxLen(len(raw))), raw)
		b.hdr.Flags |= FlagS2
	default:
		b.payload = raw
	}
	if s.pipe != nil && s.cfg.Compression != CompressNone {
		putBuf(&rawPool, raw)
	}
	s.wireBytes.Add(uint64(len(b.payload)))
}

func sizeOf(recs []spool.Record) int {
	n := 0
	for i := range recs {
		n += recordSize(&recs[i])
	}
	return n
}

// enqueue waits for room in the window and queues b.
func (s *Sender) enqueue(ctx context.Context, b *outBatch) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	for !s.closed && ctx.Err() == nil && s.queuedBytes > 0 && s.queuedBytes+int64(len(b.payload)) > s.window {
		s.cond.Wait()
	}
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.queue = append(s.queue, b)
	s.queuedBytes += int64(len(b.payload))
	ss := s.sess
	s.mu.Unlock()
	if ss != nil {
		ss.kick()
	}
	return nil
}

// Flush waits until every batch queued so far is acknowledged, or ctx ends.
func (s *Sender) Flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for (len(s.queue) > 0 || s.piped > 0) && !s.closed && ctx.Err() == nil {
		s.cond.Wait()
	}
	if len(s.queue) > 0 || s.piped > 0 {
		if s.closed {
			return ErrClosed
		}
		return ctx.Err()
	}
	return nil
}

// Close waits (within ctx) for what is queued to be acknowledged, then
// stops. What is not acknowledged stays in the spool, for the next start.
func (s *Sender) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ss := s.sess
	s.cond.Broadcast()
	s.mu.Unlock()
	close(s.closeCh)
	s.closeFn()
	if ss != nil {
		ss.fail(ErrClosed)
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("link output %q: %d batches not acknowledged at close (they stay spooled): %w", s.cfg.Name, s.Stats().InFlightBatches, err)
	}
	return nil
}

// Stats returns a snapshot.
func (s *Sender) Stats() SenderStats {
	st := SenderStats{
		Batches:        s.batches.Load(),
		Records:        s.records.Load(),
		RawBytes:       s.rawBytes.Load(),
		WireBytes:      s.wireBytes.Load(),
		SentBytes:      s.sentBytes.Load(),
		AckedBatches:   s.ackedB.Load(),
		AckedRecords:   s.ackedR.Load(),
		ResentBatches:  s.resentB.Load(),
		ResentRecords:  s.resentR.Load(),
		SkippedRecords: s.skipped.Load(),
		Sessions:       s.sessions.Load(),
		Failovers:      s.failovers.Load(),
		Failbacks:      s.failbacks.Load(),
		FailoverResent: s.foResent.Load(),
		Refused:        map[string]uint64{},
	}
	s.mu.Lock()
	st.Connected = s.sess != nil
	if s.sess != nil {
		st.Endpoint = s.cfg.Connect[s.sess.ep]
	}
	st.Endpoints = append([]EndpointStats(nil), s.eps...)
	st.RTT, st.AckRTT, st.Window = s.prtt, s.srtt, s.window
	st.InFlightBatches = len(s.queue)
	st.InFlightBytes = s.queuedBytes
	s.mu.Unlock()
	s.refusedMu.Lock()
	for k, v := range s.refused {
		st.Refused[k] = v
	}
	s.refusedMu.Unlock()
	return st
}

func (s *Sender) refuse(reason string) {
	s.refusedMu.Lock()
	s.refused[reason]++
	s.refusedMu.Unlock()
}

// ssession is one established session.
type ssession struct {
	s       *Sender
	zs      *zmq.Session
	ep      int
	welcome Welcome
	kickCh  chan struct{}
	done    chan struct{}
	once    sync.Once
	err     error
	first   bool // the next batch sent is the session's first
	maxRaw  int
}

func (ss *ssession) kick() {
	select {
	case ss.kickCh <- struct{}{}:
	default:
	}
}

// fail ends the session (once).
func (ss *ssession) fail(err error) {
	ss.once.Do(func() {
		ss.err = err
		ss.zs.Close()
		close(ss.done)
	})
}

// run keeps one session up: connect down the list, serve the session,
// reconnect with capped backoff.
func (s *Sender) run() {
	defer s.wg.Done()
	backoff := s.cfg.ReconnectMin
	var next *ssession // a fail-back's session, established already
	for {
		ss := next
		next = nil
		if ss == nil {
			for i := range s.cfg.Connect {
				if s.isClosed() {
					return
				}
				var err error
				if ss, err = s.dial(i); err == nil {
					break
				}
				ss = nil
			}
		}
		if ss == nil {
			d := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, s.cfg.ReconnectMax)
			select {
			case <-s.closeCh:
				return
			case <-time.After(d):
			}
			continue
		}
		backoff = s.cfg.ReconnectMin
		next = s.serve(ss)
		if s.isClosed() {
			if next != nil {
				next.fail(ErrClosed)
			}
			return
		}
	}
}

func (s *Sender) isClosed() bool {
	select {
	case <-s.closeCh:
		return true
	default:
		return false
	}
}

// dial connects to endpoint i: TCP, TLS, ZMTP, HELLO → WELCOME.
func (s *Sender) dial(i int) (*ssession, error) {
	ep := s.cfg.Connect[i]
	ss, err := s.dialEP(i, ep)
	s.mu.Lock()
	if err != nil {
		s.eps[i].Failures++
		s.eps[i].LastError = err.Error()
	} else {
		s.eps[i].LastError = ""
	}
	s.mu.Unlock()
	if err != nil {
		if reason := curveRefusal(err); reason != "" {
			s.refuse(reason)
			s.warn("link: CURVE handshake with the receiver failed", "endpoint", ep, "reason", reason, "err", err)
		} else if mechanismMismatch(err) {
			s.refuse(ReasonMechanism)
			s.warn("link: the receiver uses another security mechanism (curve on one end only?)", "endpoint", ep, "err", err)
		} else if reason := classifyDial(err); reason != "" {
			s.refuse(reason)
			s.warn("link: TLS with the receiver failed", "endpoint", ep, "reason", reason, "err", err)
		} else if errors.Is(err, ErrRefused) {
			// logged in dialEP
		} else {
			s.warn("link: connecting to the receiver failed", "endpoint", ep, "err", err)
		}
	}
	return ss, err
}

func (s *Sender) dialEP(i int, ep string) (*ssession, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	addr := hostPort(ep)
	d := net.Dialer{KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	base := s.cfg.TLS
	if s.cfg.TLSFunc != nil {
		if base, err = s.cfg.TLSFunc(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if base != nil {
		tc := base.Clone()
		if tc.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			tc.ServerName = host
		}
		t := tls.Client(c, tc)
		if err := t.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", ep, err)
		}
		c = t
	}
	dl, _ := ctx.Deadline()
	zs, err := zmq.NewSession(c, zmq.SessionOptions{Type: "DEALER", Security: s.cfg.Security,
		MaxMsgSize: 64 << 10, HandshakeTimeout: time.Until(dl)})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(dl)
	flags := uint32(0)
	switch s.cfg.Compression {
	case CompressZstd:
		flags |= FlagZstd
	case CompressS2:
		flags |= FlagS2
	}
	if err := zs.Send(appendHello(Hello{Sender: s.cfg.ID, MaxBatch: uint32(s.cfg.MaxBatch), Flags: flags, Name: s.cfg.Name})); err != nil {
		zs.Close()
		return nil, fmt.Errorf("send HELLO to %s: %w", ep, err)
	}
	m, cmd, err := zs.Recv()
	if err == nil && cmd {
		err = fmt.Errorf("command before WELCOME: %w", ErrMalformed)
	}
	var w Welcome
	if err == nil {
		w, err = ParseAnswer(m)
	}
	if err != nil {
		zs.Close()
		var re *RefusedError
		var ve *VersionError
		switch {
		case errors.As(err, &re):
			reason := "refused"
			if re.Refuse.Code == RefuseVersion {
				reason = "version"
				s.log.Error("link: the receiver refused this relay: protocol version mismatch", "endpoint", ep,
					"version", Version, "receiver_version", re.Refuse.Version, "reason", re.Refuse.Reason)
			} else {
				s.warn("link: the receiver refused the session", "endpoint", ep, "reason", re.Refuse.Reason)
			}
			s.refuse(reason)
		case errors.As(err, &ve):
			s.refuse("version")
			s.log.Error("link: the receiver speaks another protocol version", "endpoint", ep, "err", err)
		}
		return nil, fmt.Errorf("WELCOME from %s: %w", ep, err)
	}
	c.SetDeadline(time.Time{})
	maxRaw := s.cfg.MaxBatch
	if w.MaxBatch > 0 && int(w.MaxBatch) < maxRaw {
		maxRaw = int(w.MaxBatch)
	}
	return &ssession{s: s, zs: zs, ep: i, welcome: w, kickCh: make(chan struct{}, 1), done: make(chan struct{}), first: true, maxRaw: maxRaw}, nil
}

// serve runs an established session until it fails or a fail-back
// replaces it; it returns the fail-back's session, if any.
func (s *Sender) serve(ss *ssession) *ssession {
	s.sessions.Add(1)
	s.mu.Lock()
	planned := s.draining
	s.draining = false
	if s.lastEP >= 0 && s.lastEP != ss.ep && !planned {
		s.failovers.Add(1)
		s.log.Warn("link: failed over", "from", s.cfg.Connect[s.lastEP], "to", s.cfg.Connect[ss.ep])
	}
	s.lastEP = ss.ep
	s.peerMax = ss.maxRaw
	s.eps[ss.ep].Connected = true
	// What the receiver says it has is acknowledged without sending again.
	acks := s.ackLocked(ss.welcome.Mark, true)
	s.sent = 0
	s.sess = ss
	s.cond.Broadcast()
	s.mu.Unlock()
	s.runAcks(acks)
	ss.kick()
	s.log.Info("link: connected", "endpoint", s.cfg.Connect[ss.ep], "receiver", ss.welcome.Name, "mark", ss.welcome.Mark)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.readLoop(ss) }()
	go func() { defer wg.Done(); s.writeLoop(ss) }()
	next := s.watchFailback(ss)
	<-ss.done
	wg.Wait()
	s.mu.Lock()
	if s.sess == ss {
		s.sess = nil
	}
	s.eps[ss.ep].Connected = false
	s.window = max(s.cfg.MinWindow, s.window/2)
	s.cond.Broadcast()
	s.mu.Unlock()
	if next == nil && !s.isClosed() {
		s.warn("link: session ended", "endpoint", s.cfg.Connect[ss.ep], "err", ss.err)
	}
	return next
}

// watchFailback waits for the session to end; while it runs on a
// fallback endpoint it probes the ones above it, and when one answers it
// drains the session (no new batches; in-flight ones acknowledged) and
// returns the new session to switch to.
func (s *Sender) watchFailback(ss *ssession) *ssession {
	if ss.ep == 0 {
		return nil
	}
	t := time.NewTicker(s.cfg.Failback)
	defer t.Stop()
	for {
		select {
		case <-ss.done:
			return nil
		case <-t.C:
		}
		for i := 0; i < ss.ep; i++ {
			ns, err := s.dialEP(i, s.cfg.Connect[i])
			if err != nil {
				continue
			}
			// Planned: drain the current session first, so nothing is
			// sent to two receivers.
			s.mu.Lock()
			s.draining = true
			deadline := time.Now().Add(drainWait)
			for s.sent > 0 && s.sess == ss && time.Now().Before(deadline) {
				s.mu.Unlock()
				select {
				case <-ss.done:
				case <-time.After(5 * time.Millisecond):
				}
				s.mu.Lock()
			}
			s.mu.Unlock()
			s.failbacks.Add(1)
			s.log.Info("link: failing back", "from", s.cfg.Connect[ss.ep], "to", s.cfg.Connect[i])
			ss.fail(errors.New("fail-back"))
			return ns
		}
	}
}

// writeLoop sends queued batches and PINGs.
func (s *Sender) writeLoop(ss *ssession) {
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	hdrBuf := make([]byte, 0, batchLen)
	ping := make([]byte, 10)
	ttl := uint16(min(s.cfg.HeartbeatTimeout/(100*time.Millisecond), 0xffff))
	for {
		select {
		case <-ss.done:
			return
		case <-t.C:
			binary.BigEndian.PutUint16(ping, ttl)
			binary.BigEndian.PutUint64(ping[2:], uint64(time.Now().UnixNano()))
			if err := ss.zs.SendCmd(zmq4.CmdPing, ping); err != nil {
				ss.fail(err)
				return
			}
		case <-ss.kickCh:
		}
		for {
			b, first := s.nextBatch(ss)
			if b == nil {
				break
			}
			if s.cfg.Sent != nil {
				if err := s.cfg.Sent(spool.Range{First: b.recFirst, Last: b.hdr.Last}); err != nil {
					s.warn("link: spool Sent failed", "err", err)
				}
			}
			h := b.hdr
			if first {
				h.Flags |= FlagFirst
			}
			hdrBuf = appendBatchHeader(hdrBuf[:0], h)
			// Once Send wrote it, the batch may be acknowledged and its
			// payload given back (ackLocked, on the read loop): read it
			// before.
			payload := b.payload
			if err := ss.zs.Send(zmq.Msg{hdrBuf, payload}); err != nil {
				ss.fail(err)
				return
			}
			s.sentBytes.Add(uint64(len(payload)))
		}
	}
}

// nextBatch takes the next batch to send on ss, or nil.
func (s *Sender) nextBatch(ss *ssession) (*outBatch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess != ss || s.draining || s.sent >= len(s.queue) {
		return nil, false
	}
	b := s.queue[s.sent]
	s.sent++
	if b.sentOn >= 0 {
		b.resent = true
		s.resentB.Add(1)
		s.resentR.Add(uint64(b.records))
		if b.sentOn != ss.ep {
			s.foResent.Add(uint64(b.records))
		}
	}
	b.sentOn = ss.ep
	b.sentAt = time.Now()
	first := ss.first
	ss.first = false
	return b, first
}

// readLoop reads ACKs and PONGs; silence past HeartbeatTimeout ends the
// session.
func (s *Sender) readLoop(ss *ssession) {
	c := ss.zs.Conn()
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.HeartbeatTimeout))
		m, cmd, err := ss.zs.Recv()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no answer for %s (heartbeat timeout): %w", s.cfg.HeartbeatTimeout, err)
			}
			ss.fail(err)
			return
		}
		if cmd {
			if name, data, ok := zmq.ParseCommand(m[0]); ok && name == zmq4.CmdPong && len(data) == 8 {
				rtt := time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(data))))
				s.mu.Lock()
				s.prtt = smooth(s.prtt, rtt)
				s.mu.Unlock()
			}
			continue
		}
		if len(m) != 1 {
			ss.fail(fmt.Errorf("ACK of %d frames: %w", len(m), ErrMalformed))
			return
		}
		upTo, err := ParseAck(m[0])
		if err != nil {
			ss.fail(err)
			return
		}
		s.mu.Lock()
		acks := s.ackLocked(upTo, false)
		s.mu.Unlock()
		s.runAcks(acks)
	}
}

type ackCall struct {
	f           func(first, last uint64)
	first, last uint64
}

// ackLocked removes the batches up to upTo from the queue, adapts the
// window, and returns the spool acks to make (outside the lock).
func (s *Sender) ackLocked(upTo uint64, welcome bool) []ackCall {
	var calls []ackCall
	now := time.Now()
	var bytes int64
	n := 0
	for n < len(s.queue) && s.queue[n].hdr.Last <= upTo {
		b := s.queue[n]
		calls = append(calls, ackCall{b.ack, b.recFirst, b.hdr.Last})
		bytes += int64(len(b.payload))
		putBuf(&payloadPool, b.payload)
		b.payload = nil
		if welcome {
			s.skipped.Add(uint64(b.records))
		} else if !b.resent && !b.sentAt.IsZero() {
			s.srtt = smooth(s.srtt, now.Sub(b.sentAt))
		}
		s.ackedB.Add(1)
		s.ackedR.Add(uint64(b.records))
		n++
	}
	if n == 0 {
		return nil
	}
	clear(s.queue[:n])
	s.queue = s.queue[n:]
	s.sent = max(0, s.sent-n)
	s.queuedBytes -= bytes
	s.adapt(now, bytes)
	s.cond.Broadcast()
	return calls
}

// adapt keeps the window at twice the bandwidth-delay product measured
// from the acks (acknowledged bytes per second × smoothed ack round trip),
// within MinWindow..MaxWindow. A window that limits the rate shows as a
// rate of window/RTT, and doubles: it grows until the link, not the
// window, is the limit. A small window keeps what a fail-over can send
// twice small.
func (s *Sender) adapt(now time.Time, bytes int64) {
	s.rateBytes += bytes
	if s.rateSince.IsZero() {
		s.rateSince = now
		return
	}
	dt := now.Sub(s.rateSince)
	if dt < 50*time.Millisecond {
		return
	}
	r := float64(s.rateBytes) / dt.Seconds()
	if s.rate == 0 {
		s.rate = r
	} else {
		s.rate = 0.75*s.rate + 0.25*r
	}
	s.rateSince, s.rateBytes = now, 0
	w := int64(2 * s.rate * s.srtt.Seconds())
	s.window = min(max(w, s.cfg.MinWindow), s.cfg.MaxWindow)
}

func (s *Sender) runAcks(calls []ackCall) {
	for _, c := range calls {
		if c.f != nil {
			c.f(c.first, c.last)
		}
	}
}

func smooth(old, sample time.Duration) time.Duration {
	if old == 0 {
		return sample
	}
	return old + (sample-old)/8
}

// warn logs a warning, at most one a second (ratelog).
func (s *Sender) warn(msg string, args ...any) { s.logLimit.Log(s.log, slog.LevelWarn, msg, args...) }
