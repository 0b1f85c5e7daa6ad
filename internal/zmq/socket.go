package zmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/rsyslog-zmq/relay/internal/ratelog"
)

// socket is what every socket type shares: endpoints, peers, counters.
// Lock order: socket.mu, then outq.mu; roomMu and recvq.mu are leaves.
type socket struct {
	typ    zmq4.SocketType
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	// authLog keeps refused credentials to one log line a second: any
	// client can present an unknown CURVE key on every connection it
	// opens. Every refusal is counted.
	authLog ratelog.Limiter

	mu        sync.Mutex
	listeners []net.Listener
	peers     map[*peer]struct{}    // connected or still winding down
	pending   map[net.Conn]struct{} // in handshake
	retired   counters              // folded in from peers that are gone

	list      atomic.Pointer[[]*peer] // connected peers, copy-on-write for Send
	parked    atomic.Pointer[[]*outq] // PUSH: queues of Dial endpoints not connected now
	persist   bool                    // PUSH: Dial endpoints keep their queue across reconnects
	subFilter atomic.Pointer[subSet]  // SUB: current subscriptions

	// per type behaviour
	deliver  func(p *peer, batch []Msg) bool // PULL, SUB: received messages
	handle   func(p *peer, m Msg)            // PUSH, PUB: data from a peer
	onAttach func(p *peer)                   // under mu, before the peer starts
	onOrphan func(p *peer, unsent []qmsg)    // the peer's queue when it is gone
	onPark   func(q *outq, unparked <-chan struct{})

	// PUSH senders waiting for room
	roomMu      sync.Mutex
	roomCh      chan struct{}
	roomWaiters atomic.Int32

	handshakes atomic.Int32 // accepted connections in handshake
	// accepted counts accepted connections from accept until their peer
	// is gone (or their handshake failed): what MaxPeers bounds.
	accepted atomic.Int32
	inflight atomic.Int64               // PUSH: accepted by Send, not yet written or lost
	hooks    atomic.Pointer[WriteHooks] // PUSH: Push.SetWriteHooks
	flushed  flushSignal                // PUSH: wakes Flush when inflight reaches 0
	stat     sockCounters
}

type counters struct {
	msgsIn, msgsOut, bytesIn, bytesOut uint64
}

type sockCounters struct {
	handshakeFail, oversize, reconnects, hbTimeouts atomic.Uint64
	connects, disconnects                           atomic.Uint64
	dropPubFull, dropPeerGone, dropLost, dropClosed atomic.Uint64
	dropUnexpected                                  atomic.Uint64
	subsRefused, peersRefused                       atomic.Uint64
	refusedLogged                                   atomic.Int64     // unix ns of the last "peer refused" log line
	curve                                           [7]atomic.Uint64 // by CurveReasons
}

func newSocket(typ zmq4.SocketType, o Options) *socket {
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &socket{
		typ:     typ,
		opts:    o,
		log:     o.Logger.With("socket", string(typ)),
		ctx:     ctx,
		cancel:  cancel,
		peers:   make(map[*peer]struct{}),
		pending: make(map[net.Conn]struct{}),
		roomCh:  make(chan struct{}),
	}
	s.list.Store(&[]*peer{})
	s.parked.Store(&[]*outq{})
	return s
}

// Listen binds endpoint and accepts peers until Close.
func (s *socket) Listen(ep string) error {
	e, err := parseEndpoint(ep)
	if err != nil {
		return err
	}
	l, err := e.listen()
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	s.listeners = append(s.listeners, l)
	s.wg.Add(1)
	s.mu.Unlock()
	go s.acceptLoop(l, e)
	return nil
}

// Dial connects to endpoint in the background and keeps reconnecting.
func (s *socket) Dial(ep string) error {
	e, err := parseEndpoint(ep)
	if err != nil {
		return err
	}
	if e.network == "tcp" {
		if host, _, _ := net.SplitHostPort(e.addr); host == "" {
			return fmt.Errorf("dial %q: name a host to connect to: %w", ep, ErrEndpoint)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	var pipe *outq
	if s.persist {
		// As libzmq without ZMQ_IMMEDIATE: the endpoint's queue exists
		// from now on and keeps its messages across reconnects.
		pipe = newOutq(s.opts.HWM)
		s.parkLocked(pipe)
	}
	s.wg.Add(1)
	go s.dialLoop(e, pipe)
	return nil
}

// Addrs returns the bound addresses, with port 0 resolved.
func (s *socket) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// put hands a batch read from a peer to rq, waiting for room. If the
// socket closes meanwhile, the rest is kept in rq anyway, past RecvHWM:
// it was read off the wire, its peer will not send it again, and Recv
// still yields what a closed socket holds (a relay input's Stop drains
// it). It reports whether the reader may go on reading.
func (s *socket) put(rq *recvq, batch []Msg) bool {
	n := rq.put(batch)
	if n < len(batch) {
		rq.keep(batch[n:])
		return false
	}
	return true
}

// Close stops listening and dialing, disconnects every peer and waits for
// the socket's goroutines. Messages still queued to peers are discarded
// (counted as socket_closed); Push.Flush first to deliver them. PULL and
// SUB keep what they received for Recv.
func (s *socket) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	ls := s.listeners
	peers := make([]*peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	for c := range s.pending {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	for _, l := range ls {
		l.Close()
	}
	for _, p := range peers {
		p.close(ErrClosed)
	}
	s.wg.Wait()
	for _, q := range *s.parked.Load() {
		left := q.close()
		s.stat.dropClosed.Add(uint64(len(left)))
		s.inflight.Add(-int64(len(left)))
		settleTracked(left, ErrClosed)
	}
	return nil
}

func (s *socket) acceptLoop(l net.Listener, e endpoint) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of fds or similar: back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept", "endpoint", e.raw, "err", err)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		if s.accepted.Add(1) > int32(s.opts.MaxPeers) && s.opts.MaxPeers > 0 {
			s.accepted.Add(-1)
			s.refusePeer(c, e.raw)
			continue
		}
		if s.handshakes.Add(1) > maxPendingHandshakes {
			s.handshakes.Add(-1)
			s.accepted.Add(-1)
			s.stat.handshakeFail.Add(1)
			s.log.Warn("refusing connection", "endpoint", e.raw, "remote", c.RemoteAddr().String(), "err", ErrTooManyHandshakes)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.handshakes.Add(-1)
			p, err := s.handshake(c, e.raw, nil)
			if err != nil {
				s.accepted.Add(-1)
				s.stat.handshakeFail.Add(1)
				s.logHandshake(e.raw, c.RemoteAddr().String(), err)
				return
			}
			p.acceptedSlot = true // given back when the peer is retired
			if !s.attach(p) {
				s.accepted.Add(-1)
			}
		}()
	}
}

// refusePeer closes a connection accepted over MaxPeers, counts it, and
// says so at most once a second: a flood must not flood the log too.
func (s *socket) refusePeer(c net.Conn, ep string) {
	s.stat.peersRefused.Add(1)
	now := time.Now().UnixNano()
	if last := s.stat.refusedLogged.Load(); now-last >= int64(time.Second) && s.stat.refusedLogged.CompareAndSwap(last, now) {
		s.log.Warn("refusing connection: the socket has its maximum of peers", "endpoint", ep,
			"remote", c.RemoteAddr().String(), "max_peers", s.opts.MaxPeers, "refused_total", s.stat.peersRefused.Load())
	}
	c.Close()
}

func (s *socket) dialLoop(e endpoint, pipe *outq) {
	defer s.wg.Done()
	backoff := s.opts.ReconnectMin
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.stat.reconnects.Add(1)
		}
		d := net.Dialer{Timeout: s.opts.HandshakeTimeout}
		c, err := e.dial(s.ctx, &d)
		if err != nil {
			s.log.Debug("dial failed", "endpoint", e.raw, "err", err)
		} else if p, err := s.handshake(c, e.raw, pipe); err != nil {
			s.stat.handshakeFail.Add(1)
			s.logHandshake(e.raw, "", err)
		} else if s.attach(p) {
			backoff = s.opts.ReconnectMin
			// Wait for its writer too: the next connection reuses pipe.
			select {
			case <-p.exited:
				s.log.Info("peer disconnected, reconnecting", "endpoint", e.raw, "err", p.err)
			case <-s.ctx.Done():
				return
			}
		}
		// Jitter spreads reconnects of many sockets after an outage.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			return
		}
		backoff = min(2*backoff, s.opts.ReconnectMax)
	}
}

// handshake runs the greeting and security handshake on c under a
// deadline: CURVE's own, or zmq4's behind the guard that refuses
// oversized frames, containing any panic zmq4 raises on hostile input.
// On failure c is closed.
func (s *socket) handshake(c net.Conn, ep string, pipe *outq) (p *peer, err error) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	}
	s.pending[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handshake with %s: %v: %w", c.RemoteAddr(), r, ErrHandshakePanic)
		}
		s.mu.Lock()
		delete(s.pending, c)
		s.mu.Unlock()
		if err != nil {
			c.Close()
		}
	}()
	if err := c.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout)); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", c.RemoteAddr(), err)
	}
	sec := s.opts.Security
	var cc *curveConn
	if ch, ok := sec.(connHandshaker); ok {
		// CURVE: its own greeting and handshake, and boxed frames after.
		if cc, err = ch.handshakeConn(c, s.typ, s.opts.Identity); err != nil {
			s.countCurve(err)
			return nil, fmt.Errorf("handshake with %s: %w", c.RemoteAddr(), err)
		}
	} else if _, err := zmq4.Open(newGuardConn(c, handshakeFrameLimit), sec, s.typ, zmq4.SocketIdentity(s.opts.Identity), sec.AsServer(), nil); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", c.RemoteAddr(), err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", c.RemoteAddr(), err)
	}
	p = newPeer(s, c, ep, pipe)
	p.curve = cc
	return p, nil
}

// attach makes a handshaken peer live; false if the socket closed.
func (s *socket) attach(p *peer) bool {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		p.conn.Close()
		return false
	}
	s.peers[p] = struct{}{}
	if p.pipe {
		s.unparkLocked(p.q)
	}
	if s.onAttach != nil {
		s.onAttach(p)
	}
	old := *s.list.Load()
	nl := make([]*peer, 0, len(old)+1)
	nl = append(append(nl, old...), p)
	s.list.Store(&nl)
	s.wg.Add(1)
	s.mu.Unlock()
	s.stat.connects.Add(1)
	s.log.Info("peer connected", "endpoint", p.endpoint, "remote", p.remote)
	p.start(s.opts.HeartbeatIvl > 0)
	s.roomFreed()
	return true
}

// unlist removes p from the peers Send chooses from.
func (s *socket) unlist(p *peer) {
	s.mu.Lock()
	old := *s.list.Load()
	nl := make([]*peer, 0, len(old))
	for _, q := range old {
		if q != p {
			nl = append(nl, q)
		}
	}
	s.list.Store(&nl)
	s.mu.Unlock()
	s.stat.disconnects.Add(1)
}

// retire folds a finished peer's counters into the socket's.
func (s *socket) retire(p *peer) {
	s.mu.Lock()
	s.retired.msgsIn += p.msgsIn.Load()
	s.retired.msgsOut += p.msgsOut.Load()
	s.retired.bytesIn += p.bytesIn.Load()
	s.retired.bytesOut += p.bytesOut.Load()
	delete(s.peers, p)
	s.mu.Unlock()
	if p.acceptedSlot {
		s.accepted.Add(-1)
	}
	close(p.exited)
	s.wg.Done()
}

// orphaned takes the messages a gone peer never wrote.
func (s *socket) orphaned(p *peer, unsent []qmsg) {
	if p.pipe {
		s.mu.Lock()
		if !s.closed.Load() {
			// Keep them for the next connection to the same endpoint.
			if p.q.unshift(unsent) {
				s.parkLocked(p.q)
				s.mu.Unlock()
				s.roomFreed()
				return
			}
		}
		s.mu.Unlock()
	}
	rest := p.q.close()
	all := make([]qmsg, 0, len(unsent)+len(rest))
	all = append(append(all, unsent...), rest...)
	if len(all) == 0 || s.onOrphan == nil {
		return
	}
	if s.closed.Load() {
		s.stat.dropClosed.Add(uint64(len(all)))
		s.inflight.Add(-int64(len(all)))
		settleTracked(all, ErrClosed)
		return
	}
	// Close may begin from here on: a handler that finds the socket
	// closed must still settle what it was given.
	s.onOrphan(p, all)
}

// lost counts messages that were in a failed write: some may have reached
// the peer's kernel, none can be retried without risking a duplicate.
func (s *socket) lost(ms []qmsg) {
	s.stat.dropLost.Add(uint64(len(ms)))
	s.settle(int64(len(ms)))
	settleTracked(ms, ErrLostInFlight)
}

// roomWait registers a sender waiting for queue room and returns the
// channel closed at the next change; call roomDone after.
func (s *socket) roomWait() <-chan struct{} {
	s.roomMu.Lock()
	s.roomWaiters.Add(1)
	ch := s.roomCh
	s.roomMu.Unlock()
	return ch
}

func (s *socket) roomDone() { s.roomWaiters.Add(-1) }

// roomFreed wakes waiting senders; free when nobody waits.
func (s *socket) roomFreed() {
	if s.roomWaiters.Load() == 0 {
		return
	}
	s.roomMu.Lock()
	close(s.roomCh)
	s.roomCh = make(chan struct{})
	s.roomMu.Unlock()
}

// parkLocked lists q as a disconnected Dial pipe that Send may still fill.
func (s *socket) parkLocked(q *outq) {
	old := *s.parked.Load()
	nl := append(append(make([]*outq, 0, len(old)+1), old...), q)
	s.parked.Store(&nl)
	q.unparked = make(chan struct{})
	if s.onPark != nil {
		s.wg.Add(1)
		s.onPark(q, q.unparked)
	}
}

// unparkLocked takes q off the parked list when its endpoint reconnects.
func (s *socket) unparkLocked(q *outq) {
	old := *s.parked.Load()
	nl := make([]*outq, 0, len(old))
	for _, o := range old {
		if o != q {
			nl = append(nl, o)
		}
	}
	s.parked.Store(&nl)
	if q.unparked != nil {
		close(q.unparked)
		q.unparked = nil
	}
}

// logHandshake logs refused credentials at Warn (an operator must fix
// them), at most one line a second, and other failures (scanners, junk,
// timeouts) at Debug: they are counted, and logging each would let any
// client flood the log.
func (s *socket) logHandshake(ep, remote string, err error) {
	if errors.Is(err, ErrAuth) || errors.Is(err, ErrPeerError) {
		s.authLog.Log(s.log, slog.LevelWarn, "handshake failed", "endpoint", ep, "remote", remote, "err", err)
		return
	}
	s.log.Log(context.Background(), slog.LevelDebug, "handshake failed", "endpoint", ep, "remote", remote, "err", err)
}
