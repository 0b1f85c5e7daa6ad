package link

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/ratelog"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Handler takes the events of one batch: the receiving relay's router. It
// may block (backpressure). Every event carries a hand-off; the batch is
// acknowledged once all of them are handed off.
type Handler func(batch []*event.Event)

// Defaults.
const (
	// DefaultMaxBatch is the largest uncompressed batch a receiver takes
	// and a sender makes.
	DefaultMaxBatch = 4 << 20
	// MaxBatchLimit bounds max_batch.
	MaxBatchLimit = 64 << 20
	// DefaultHelloTimeout bounds the HELLO/WELCOME exchange after the ZMTP
	// handshake.
	DefaultHelloTimeout = 10 * time.Second
)

// MetaLen is the length of the Meta the receiver puts on each event: the
// sender's id and the event's sequence number there (big-endian).
const MetaLen = 16 + 8

// ParseMeta decodes an event's Meta set by a link receiver.
func ParseMeta(m []byte) (SenderID, uint64, bool) {
	var id SenderID
	if len(m) != MetaLen {
		return id, 0, false
	}
	copy(id[:], m)
	return id, binary.BigEndian.Uint64(m[16:]), true
}

// ReceiverConfig configures a link receiver (the input side).
type ReceiverConfig struct {
	// Name is the input's name, for logs and metrics.
	Name string
	// Listen are the addresses to bind, "tcp://host:port" or "host:port".
	Listen []string
	// TLS, if set, is the server's TLS configuration. Client certificates
	// are verified against its ClientCAs (required when ClientCAs is set);
	// refusals are counted by reason.
	TLS *tls.Config
	// Security is the ZMTP mechanism (NULL when nil).
	Security zmq.Security
	// AllowInsecure lets a link without TLS bind a non-loopback address.
	AllowInsecure bool
	// StateDir holds the receiver's id and its marks (what each sender has
	// handed off), fsync'd before every ACK.
	StateDir string
	// MaxBatch is the largest uncompressed batch taken (DefaultMaxBatch).
	MaxBatch int
	// Limits are the listener's connection limits.
	Limits listen.Limits
	Logger *slog.Logger
}

// ReceiverStats are a receiver's counters.
type ReceiverStats struct {
	Sessions        int64  // sessions open now
	SessionsTotal   uint64 // sessions welcomed
	Batches         uint64 // batches received
	Records         uint64 // records received (duplicates included)
	Delivered       uint64 // events handed to the router
	Suppressed      uint64 // records dropped as duplicates (already handed off)
	WireBytes       uint64 // batch payload bytes as received (compressed)
	RawBytes        uint64 // batch payload bytes uncompressed
	Acks            uint64 // ACKs sent
	MarkFsyncs      uint64 // marks files written and fsync'd
	HandoffFailures uint64 // batches whose hand-off failed (the sender sends them again)
	Malformed       uint64 // sessions closed for a protocol error
	// Refused counts refused sessions and TLS handshakes by reason:
	// version, unknown_ca, expired, no_client_cert, bad_certificate,
	// handshake (any other TLS failure), busy, zmtp_handshake, and the
	// CURVE reasons (CurveReasons: curve_unknown_key, curve_bad_box, …).
	Refused map[string]uint64
	// Senders is the per-sender state.
	Senders  []SenderState
	Listener listen.Stats
}

// SenderState is what a receiver knows of one sender.
type SenderState struct {
	ID         SenderID
	Name       string
	Mark       uint64 // handed off up to here, in memory
	Persisted  uint64 // the mark in the fsync'd marks file (what ACKs carried)
	Connected  bool
	Suppressed uint64
	LastSeen   time.Time
}

// Receiver is the input side of the link.
type Receiver struct {
	cfg   ReceiverConfig
	log   *slog.Logger
	id    SenderID
	store *marksStore
	l     *listen.Listener
	lns   []net.Listener
	h     Handler

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when a peer's pending reaches 0, or on stop
	peers   map[SenderID]*peer
	stopped bool

	commitCh chan struct{}
	stopCh   chan struct{}
	wg       sync.WaitGroup

	sessions                                   atomic.Int64
	sessionsTotal, batches, records, delivered atomic.Uint64
	suppressed, wireBytes, rawBytes, acks      atomic.Uint64
	fsyncs, hoFail, malformed                  atomic.Uint64
	refusedMu                                  sync.Mutex
	refused                                    map[string]uint64
	logLimit                                   ratelog.Limiter
}

// peer is one sender's state at the receiver. Guarded by Receiver.mu.
type peer struct {
	id        SenderID
	name      string
	mark      uint64   // everything <= mark handed off
	done      rangeSet // handed off above mark (out of order)
	persisted uint64   // mark in the marks file
	dirty     bool
	pending   int // batches in hand-off
	sess      *rsession
	suppr     uint64
	lastSeen  time.Time
}

// NewReceiver opens the receiver's state (id and marks) in StateDir.
// Nothing listens until Start.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxBatch > MaxBatchLimit {
		return nil, fmt.Errorf("link input %q: max_batch %d is above the limit %d", cfg.Name, cfg.MaxBatch, MaxBatchLimit)
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("link input %q: a state directory is required", cfg.Name)
	}
	if len(cfg.Listen) == 0 {
		return nil, fmt.Errorf("link input %q: nothing to listen on", cfg.Name)
	}
	for _, a := range cfg.Listen {
		if err := checkSecure(hostPort(a), cfg.TLS != nil || isCurve(cfg.Security), cfg.AllowInsecure); err != nil {
			return nil, fmt.Errorf("link input %q: %w", cfg.Name, err)
		}
	}
	l, err := listen.New(cfg.Limits, cfg.Logger.With("input", cfg.Name))
	if err != nil {
		return nil, fmt.Errorf("link input %q: %w", cfg.Name, err)
	}
	id, err := LoadID(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("link input %q: %w", cfg.Name, err)
	}
	store, es, err := openMarks(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("link input %q: %w", cfg.Name, err)
	}
	r := &Receiver{
		cfg:      cfg,
		log:      cfg.Logger.With("input", cfg.Name),
		id:       id,
		store:    store,
		l:        l,
		peers:    map[SenderID]*peer{},
		commitCh: make(chan struct{}, 1),
		stopCh:   make(chan struct{}),
		refused:  map[string]uint64{},
	}
	r.cond = sync.NewCond(&r.mu)
	for _, e := range es {
		r.peers[e.id] = &peer{id: e.id, name: e.name, mark: e.mark, done: e.done, persisted: e.mark}
	}
	if len(es) > 0 {
		r.log.Info("link state loaded", "dir", cfg.StateDir, "senders", len(es))
	}
	return r, nil
}

// ID is the receiver's own id (its state directory's).
func (r *Receiver) ID() SenderID { return r.id }

// Start binds every address and serves sessions, handing their events to h.
func (r *Receiver) Start(h Handler) error {
	r.h = h
	var tc *tls.Config
	if r.cfg.TLS != nil {
		tc = r.serverTLS(r.cfg.TLS)
	}
	for _, a := range r.cfg.Listen {
		ln, err := net.Listen("tcp", hostPort(a))
		if err != nil {
			for _, l := range r.lns {
				l.Close()
			}
			return fmt.Errorf("link input %q: listen %s: %w", r.cfg.Name, a, err)
		}
		r.lns = append(r.lns, ln)
	}
	r.wg.Add(1)
	go r.commitLoop()
	for _, ln := range r.lns {
		go r.l.Serve(ln, tc, r.serve)
	}
	return nil
}

// Addrs returns the bound addresses.
func (r *Receiver) Addrs() []net.Addr {
	var as []net.Addr
	for _, ln := range r.lns {
		as = append(as, ln.Addr())
	}
	return as
}

// Stop stops accepting and closes every session; hand-offs in progress
// finish (their marks are written, their ACKs are lost with the sessions:
// the senders resend, and the marks drop the copies), or ctx ends.
func (r *Receiver) Stop(ctx context.Context) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	r.cond.Broadcast()
	r.mu.Unlock()
	r.l.Close()
	err := r.l.Wait(ctx)
	// Let in-flight hand-offs end, then write the marks once more.
	r.mu.Lock()
	for !r.allSettled() && ctx.Err() == nil {
		r.mu.Unlock()
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	close(r.stopCh)
	r.wg.Wait()
	r.commit()
	r.store.close()
	return err
}

func (r *Receiver) allSettled() bool {
	for _, p := range r.peers {
		if p.pending > 0 {
			return false
		}
	}
	return true
}

// Stats returns a snapshot of the counters.
func (r *Receiver) Stats() ReceiverStats {
	s := ReceiverStats{
		Sessions:        r.sessions.Load(),
		SessionsTotal:   r.sessionsTotal.Load(),
		Batches:         r.batches.Load(),
		Records:         r.records.Load(),
		Delivered:       r.delivered.Load(),
		Suppressed:      r.suppressed.Load(),
		WireBytes:       r.wireBytes.Load(),
		RawBytes:        r.rawBytes.Load(),
		Acks:            r.acks.Load(),
		MarkFsyncs:      r.fsyncs.Load(),
		HandoffFailures: r.hoFail.Load(),
		Malformed:       r.malformed.Load(),
		Refused:         map[string]uint64{},
		Listener:        r.l.Stats(),
	}
	r.refusedMu.Lock()
	for k, v := range r.refused {
		s.Refused[k] = v
	}
	r.refusedMu.Unlock()
	r.mu.Lock()
	for _, p := range r.peers {
		s.Senders = append(s.Senders, SenderState{ID: p.id, Name: p.name, Mark: p.mark, Persisted: p.persisted,
			Connected: p.sess != nil, Suppressed: p.suppr, LastSeen: p.lastSeen})
	}
	r.mu.Unlock()
	return s
}

func (r *Receiver) refuse(reason string) {
	r.refusedMu.Lock()
	r.refused[reason]++
	r.refusedMu.Unlock()
}

// rsession is one sender's connection at the receiver.
type rsession struct {
	r    *Receiver
	s    *zmq.Session
	c    *listen.Conn
	p    *peer
	peer string

	mu     sync.Mutex
	ackTo  uint64 // ACK wanted up to here
	sentTo uint64 // ACK sent up to here
	pongs  [][]byte
	closed bool
	wake   chan struct{}
	werr   error
}

// serve runs one connection: ZMTP handshake, HELLO, WELCOME, then batches.
func (r *Receiver) serve(c *listen.Conn) {
	s, err := zmq.NewSession(c, zmq.SessionOptions{Type: "DEALER", Security: r.cfg.Security,
		MaxMsgSize: int64(r.cfg.MaxBatch) + 64<<10, HandshakeTimeout: DefaultHelloTimeout})
	if err != nil {
		if reason := curveRefusal(err); reason != "" {
			r.refuse(reason)
			r.warn("link: CURVE handshake refused", "peer", c.Peer(), "reason", reason, "err", err)
			return
		}
		r.warn("link: ZMTP handshake failed", "peer", c.Peer(), "err", err)
		r.refuse("zmtp_handshake")
		return
	}
	defer s.Close()
	c.SetReadDeadline(time.Now().Add(DefaultHelloTimeout))
	m, cmd, err := s.Recv()
	if err != nil || cmd {
		r.warn("link: no HELLO", "peer", c.Peer(), "err", err)
		return
	}
	c.Frame()
	hello, err := ParseHello(m)
	var ve *VersionError
	if errors.As(err, &ve) {
		reason := fmt.Sprintf("this relay speaks link protocol version %d, the sender %d: run the same relay version at both ends", Version, ve.Theirs)
		r.log.Error("link: sender refused: protocol version mismatch", "peer", c.Peer(), "sender_version", ve.Theirs, "version", Version)
		r.refuse("version")
		s.Send(appendRefuse(RefuseVersion, reason))
		return
	}
	if err != nil {
		r.malformed.Add(1)
		r.warn("link: bad HELLO; closing", "peer", c.Peer(), "err", err)
		s.Send(appendRefuse(RefuseProtocol, err.Error()))
		return
	}
	rs := &rsession{r: r, s: s, c: c, peer: c.Peer(), wake: make(chan struct{}, 1)}
	p, ok := r.takeOver(hello, rs)
	if !ok {
		r.refuse("busy")
		s.Send(appendRefuse(RefuseBusy, "the receiving relay is shutting down"))
		return
	}
	defer r.leave(p, rs)
	if err := s.Send(appendWelcome(Welcome{Receiver: r.id, Mark: rs.sentTo, MaxBatch: uint32(r.cfg.MaxBatch), Name: r.cfg.Name})); err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	r.sessions.Add(1)
	r.sessionsTotal.Add(1)
	defer r.sessions.Add(-1)
	args := []any{"peer", c.Peer(), "sender", hello.Sender.String(), "name", hello.Name, "mark", rs.sentTo}
	if k, ok := s.PeerKey(); ok {
		args = append(args, "curve_key", k.Z85())
	}
	r.log.Info("link: sender connected", args...)
	go rs.writeLoop()
	defer rs.close()
	err = r.readLoop(rs, p)
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, listen.ErrClosed):
		r.log.Info("link: sender disconnected", "peer", c.Peer(), "sender", hello.Sender.String())
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge), errors.Is(err, zmq.ErrMalformed), errors.Is(err, zmq.ErrOversize):
		r.malformed.Add(1)
		r.warn("link: protocol error; session closed", "peer", c.Peer(), "sender", hello.Sender.String(), "err", err)
	default:
		r.log.Info("link: session ended", "peer", c.Peer(), "sender", hello.Sender.String(), "err", err)
	}
}

// takeOver makes rs the session of hello's sender: an older session of the
// same sender is closed, and its hand-offs are waited for, so the mark
// tells exactly what is handed off before anything new is taken.
func (r *Receiver) takeOver(hello Hello, rs *rsession) (*peer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[hello.Sender]
	if p == nil {
		p = &peer{id: hello.Sender}
		r.peers[hello.Sender] = p
	}
	p.name = hello.Name
	if old := p.sess; old != nil {
		r.log.Info("link: a new session of the same sender replaces the old one", "sender", hello.Sender.String(), "old_peer", old.peer, "peer", rs.peer)
		old.close()
	}
	p.sess = rs
	rs.p = p
	for p.pending > 0 && !r.stopped && p.sess == rs {
		r.cond.Wait()
	}
	if r.stopped || p.sess != rs {
		if p.sess == rs {
			p.sess = nil
		}
		return nil, false
	}
	rs.sentTo = p.persisted
	rs.ackTo = p.persisted
	p.lastSeen = time.Now()
	return p, true
}

func (r *Receiver) leave(p *peer, rs *rsession) {
	r.mu.Lock()
	if p.sess == rs {
		p.sess = nil
	}
	p.lastSeen = time.Now()
	r.mu.Unlock()
}

// readLoop reads batches and hands them off until the session ends.
func (r *Receiver) readLoop(rs *rsession, p *peer) error {
	r.mu.Lock()
	mark := p.mark
	done := append(rangeSet(nil), p.done...)
	r.mu.Unlock()
	var next uint64 // First expected of the next batch; 0 before the first
	metaBuf := make([]byte, 0)
	for {
		m, cmd, err := rs.s.Recv()
		if err != nil {
			return err
		}
		rs.c.Frame()
		if cmd {
			r.command(rs, m)
			continue
		}
		if len(m) != 2 {
			return fmt.Errorf("batch of %d frames: %w", len(m), ErrMalformed)
		}
		h, err := ParseBatchHeader(m[0], r.cfg.MaxBatch)
		if err != nil {
			return err
		}
		switch {
		case next == 0 && h.Flags&FlagFirst == 0:
			return fmt.Errorf("first batch of a session without FIRST: %w", ErrMalformed)
		case next != 0 && h.Flags&FlagFirst != 0:
			return fmt.Errorf("FIRST on a later batch: %w", ErrMalformed)
		case next != 0 && h.First != next:
			return fmt.Errorf("batch starts at %d, expected %d: %w", h.First, next, ErrMalformed)
		}
		if h.Last == ^uint64(0) {
			return fmt.Errorf("batch range ends at the last sequence number: %w", ErrMalformed)
		}
		next = h.Last + 1
		if h.Flags&FlagFirst != 0 && h.First-1 > mark {
			// Everything below First was acknowledged by some receiver.
			mark = h.First - 1
			r.mu.Lock()
			if mark > p.mark {
				p.mark = mark
				p.mark = p.done.advance(p.mark)
				p.dirty = true
			}
			r.mu.Unlock()
		}
		payload, err := DecodePayload(h, m[1])
		if err != nil {
			return err
		}
		r.batches.Add(1)
		r.wireBytes.Add(uint64(len(m[1])))
		r.rawBytes.Add(uint64(len(payload)))
		evs := make([]*event.Event, 0, h.Count)
		slab := make([]event.Event, h.Count)
		if cap(metaBuf)-len(metaBuf) < int(h.Count)*MetaLen {
			metaBuf = make([]byte, 0, max(int(h.Count)*MetaLen, 4096))
		}
		var dups uint64
		err = DecodeRecords(payload, h, func(rec *Record) {
			if rec.Seq <= mark || done.has(rec.Seq) {
				dups++
				return
			}
			e := &slab[len(evs)]
			e.Raw, e.Stream, e.Input, e.Peer, e.Received = rec.Raw, rec.Stream, rec.Input, rec.Peer, rec.Received
			start := len(metaBuf)
			metaBuf = append(metaBuf, p.id[:]...)
			metaBuf = binary.BigEndian.AppendUint64(metaBuf, rec.Seq)
			e.Meta = metaBuf[start:len(metaBuf):len(metaBuf)]
			evs = append(evs, e)
		})
		if err != nil {
			return err
		}
		r.records.Add(uint64(h.Count))
		if dups > 0 {
			r.suppressed.Add(dups)
			r.mu.Lock()
			p.suppr += dups
			r.mu.Unlock()
		}
		r.handoff(rs, p, h.First, h.Last, evs)
	}
}

// handoff gives evs to the handler; once every event is handed off, the
// batch's range counts as done.
func (r *Receiver) handoff(rs *rsession, p *peer, first, last uint64, evs []*event.Event) {
	r.mu.Lock()
	if p.sess != rs {
		// A newer session of this sender took over while this batch was
		// read: it decides from the mark, which must not change under it.
		// The sender sends the batch again there.
		r.mu.Unlock()
		return
	}
	p.pending++
	r.mu.Unlock()
	ho := event.NewHandoff(func(err error) { r.batchDone(rs, p, first, last, err) })
	for _, e := range evs {
		e.SetHandoff(ho)
	}
	if len(evs) > 0 {
		r.delivered.Add(uint64(len(evs)))
		r.h(evs)
	}
	ho.Release(nil)
}

// batchDone records a finished hand-off. The mark moves only over
// contiguous ranges: a later batch done before an earlier one waits in
// done, so a batch whose hand-off failed is never skipped.
func (r *Receiver) batchDone(rs *rsession, p *peer, first, last uint64, err error) {
	r.mu.Lock()
	p.pending--
	if err == nil {
		p.done.add(rng{first, last})
		if m := p.done.advance(p.mark); m != p.mark {
			p.mark = m
			p.dirty = true
		}
	}
	if p.pending == 0 {
		r.cond.Broadcast()
	}
	r.mu.Unlock()
	if err != nil {
		r.hoFail.Add(1)
		r.warn("link: hand-off failed; closing the session, the sender sends the batch again", "sender", p.id.String(), "first", first, "last", last, "err", err)
		rs.close()
		return
	}
	select {
	case r.commitCh <- struct{}{}:
	default:
	}
}

// commitLoop writes the marks (group commit: one fsync covers every
// batch done since the last) and then sends the ACKs they cover.
func (r *Receiver) commitLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stopCh:
			return
		case <-r.commitCh:
		}
		r.commit()
	}
}

func (r *Receiver) commit() {
	r.mu.Lock()
	dirty := false
	es := make([]markEntry, 0, len(r.peers))
	for _, p := range r.peers {
		dirty = dirty || p.dirty
		es = append(es, markEntry{id: p.id, mark: p.mark, done: append(rangeSet(nil), p.done...), name: p.name})
	}
	if !dirty {
		r.mu.Unlock()
		return
	}
	for _, p := range r.peers {
		p.dirty = false
	}
	r.mu.Unlock()
	if err := r.store.write(es); err != nil {
		// Never ack what is not durable: mark them dirty again and retry.
		r.log.Error("link: writing the marks failed; ACKs wait", "dir", r.cfg.StateDir, "err", err)
		r.mu.Lock()
		for _, p := range r.peers {
			p.dirty = true
		}
		r.mu.Unlock()
		time.AfterFunc(100*time.Millisecond, func() {
			select {
			case r.commitCh <- struct{}{}:
			default:
			}
		})
		return
	}
	r.fsyncs.Add(1)
	r.mu.Lock()
	for _, e := range es {
		p := r.peers[e.id]
		if p == nil || e.mark <= p.persisted {
			continue
		}
		p.persisted = e.mark
		if p.sess != nil {
			p.sess.ack(e.mark)
		}
	}
	r.mu.Unlock()
}

// command answers a ZMTP command: PING gets a PONG with its context, and
// its TTL becomes the read deadline (a sender silent that long is gone).
func (r *Receiver) command(rs *rsession, m zmq.Msg) {
	name, data, ok := zmq.ParseCommand(m[0])
	if !ok || name != zmq4.CmdPing || len(data) < 2 {
		return
	}
	ttl := time.Duration(binary.BigEndian.Uint16(data)) * 100 * time.Millisecond
	if ttl > 0 {
		rs.c.SetReadDeadline(time.Now().Add(ttl))
	}
	ctx := append([]byte(nil), data[2:]...)
	rs.mu.Lock()
	if len(rs.pongs) < 16 {
		rs.pongs = append(rs.pongs, ctx)
	}
	rs.mu.Unlock()
	rs.signal()
}

func (rs *rsession) ack(upTo uint64) {
	rs.mu.Lock()
	if upTo > rs.ackTo {
		rs.ackTo = upTo
	}
	rs.mu.Unlock()
	rs.signal()
}

func (rs *rsession) signal() {
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

// close ends the session; its reader sees the connection fail.
func (rs *rsession) close() {
	rs.mu.Lock()
	already := rs.closed
	rs.closed = true
	rs.mu.Unlock()
	if !already {
		rs.c.Close()
		rs.signal()
	}
}

// writeLoop sends ACKs (coalesced: only the highest) and PONGs.
func (rs *rsession) writeLoop() {
	buf := make([]byte, 0, ackLen)
	for range rs.wake {
		rs.mu.Lock()
		if rs.closed {
			rs.mu.Unlock()
			return
		}
		to, pongs := rs.ackTo, rs.pongs
		rs.pongs = nil
		send := to > rs.sentTo
		rs.mu.Unlock()
		for _, pc := range pongs {
			if err := rs.s.SendCmd(zmq4.CmdPong, pc); err != nil {
				rs.close()
				return
			}
		}
		if send {
			buf = appendAck(buf[:0], to)
			if err := rs.s.Send(zmq.Msg{buf}); err != nil {
				rs.close()
				return
			}
			rs.r.acks.Add(1)
			rs.mu.Lock()
			rs.sentTo = to
			rs.mu.Unlock()
		}
	}
}

// warn logs a warning, at most one a second (ratelog).
func (r *Receiver) warn(msg string, args ...any) { r.logLimit.Log(r.log, slog.LevelWarn, msg, args...) }

// hostPort strips a tcp:// scheme.
func hostPort(a string) string {
	a = strings.TrimPrefix(a, "tcp://")
	return strings.TrimPrefix(a, "tls://")
}

// checkSecure refuses an insecure link on a non-loopback address.
func checkSecure(addr string, secure, allowInsecure bool) error {
	if secure || allowInsecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address and the link has neither tls nor curve: %w; set tls or curve, or allow_insecure: true on a network you trust", addr, ErrInsecure)
}
