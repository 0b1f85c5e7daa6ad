package input

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/frame"
)

func (s *Syslog) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	_, isTLS := l.(*tlsListener)
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off rather than
			// spin, and keep serving the connections we have.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.warn.warn("accept failed", "addr", l.Addr().String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ok, full := s.track(c)
		switch {
		case full:
			c.Close()
			s.stats.connsRefused.Add(1)
			s.warn.warn("connection refused: max_connections reached", "peer", c.RemoteAddr().String(), "max_connections", s.cfg.MaxConnections)
			continue
		case !ok: // stopping
			c.Close()
			return
		}
		s.stats.connsTotal.Add(1)
		s.stats.conns.Add(1)
		go s.serveConn(c, isTLS)
	}
}

// serveConn reads frames from one connection and hands them over in
// batches until the peer closes, an error occurs or the input stops.
func (s *Syslog) serveConn(c net.Conn, isTLS bool) {
	defer s.wg.Done()
	defer s.stats.conns.Add(-1)
	defer s.untrack(c)
	defer c.Close()

	peer := c.RemoteAddr().String()
	s.log.Debug("connection opened", "peer", peer, "local", c.LocalAddr().String())
	defer s.log.Debug("connection closed", "peer", peer)
	batch := make([]*event.Event, 0, MaxBatch)
	batchBytes := 0
	flush := func() {
		deliver(s.h, s.cfg.Name, &s.stats, batch)
		clear(batch)
		batch = batch[:0]
		batchBytes = 0
	}
	pr := newPollReader(c, s.cfg.IdleTimeout, func() bool { return len(batch) > 0 }, flush)

	var r io.Reader = pr
	if isTLS {
		tc := tls.Server(pr, s.cfg.TLS)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			if !s.isStopping() {
				s.stats.handshakeErrors.Add(1)
				s.warn.warn("tls handshake failed", "peer", peer, "err", err)
			}
			return
		}
		r = tc
	}

	fr := frame.NewReader(r, s.cfg.MaxMessageSize)
	var events event.Slab // this connection's events, 64 per allocation
	for {
		msg, err := fr.Next()
		if err == nil {
			e := events.New(msg)
			e.Peer = peer
			batch = append(batch, e)
			batchBytes += len(msg)
			if len(batch) == MaxBatch || batchBytes >= maxBatchBytes {
				flush()
			}
			continue
		}
		switch {
		case errors.Is(err, frame.ErrOversize):
			s.stats.oversize.Add(1)
			s.warn.warn("oversize message discarded", "peer", peer, "max_message_size", s.cfg.MaxMessageSize, "err", err)
			continue
		case errors.Is(err, frame.ErrMalformed):
			s.stats.malformed.Add(1)
			s.warn.warn("malformed frame skipped", "peer", peer, "err", err)
			continue
		}
		flush()
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		case errors.Is(err, io.ErrUnexpectedEOF):
			// The peer closed in the middle of an octet-counted frame.
			s.stats.malformed.Add(1)
			s.warn.warn("connection closed inside a frame", "peer", peer)
		case isTimeout(err) && s.cfg.IdleTimeout > 0:
			s.log.Debug("closing idle connection", "peer", peer, "idle_timeout", s.cfg.IdleTimeout)
		default:
			s.stats.readErrors.Add(1)
			s.warn.warn("connection ended", "peer", peer, "err", err)
		}
		return
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pollReader sits between a connection and its frame (or TLS) reader.
// Before it would block on the network it hands over the pending batch,
// so events never wait for more bytes to arrive. It learns "would block"
// from one non-blocking read on the socket, which costs nothing when data
// is ready: that read is the read.
type pollReader struct {
	net.Conn
	raw     syscall.RawConn // nil if the conn has no file descriptor
	idle    time.Duration
	pending func() bool
	flush   func()

	// state for rawRead, kept here so the callback is allocated once
	p     []byte
	n     int
	errno error
	fn    func(fd uintptr) bool
}

func newPollReader(c net.Conn, idle time.Duration, pending func() bool, flush func()) *pollReader {
	pr := &pollReader{Conn: c, idle: idle, pending: pending, flush: flush}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pr.raw = raw
		}
	}
	pr.fn = pr.rawRead
	return pr
}

func (pr *pollReader) rawRead(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), pr.p)
		if err == syscall.EINTR {
			continue
		}
		pr.n, pr.errno = n, err
		return true // never wait here: EAGAIN is the answer we want
	}
}

// Read implements io.Reader.
func (pr *pollReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if pr.pending() {
		if pr.raw != nil {
			pr.p = p
			err := pr.raw.Read(pr.fn)
			pr.p = nil
			// err != nil: closed, or a stale deadline; take the slow path,
			// which reports the first and resets the second.
			if err == nil {
				switch {
				case pr.errno == nil && pr.n > 0:
					return pr.n, nil
				case pr.errno == nil:
					return 0, io.EOF
				case pr.errno != syscall.EAGAIN:
					return 0, pr.errno
				}
			}
		}
		pr.flush()
	}
	if pr.idle > 0 {
		pr.Conn.SetReadDeadline(time.Now().Add(pr.idle))
	}
	return pr.Conn.Read(p)
}
