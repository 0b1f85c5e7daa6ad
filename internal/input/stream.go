package input

import (
	"errors"
	"io"
	"net"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/frame"
	"github.com/rsyslog-zmq/relay/internal/listen"
)

// serveConn reads frames from one connection (internal/listen accepted
// it, did the TLS handshake and enforces the deadlines) and hands them
// over in batches until the peer closes, an error occurs or the input
// stops.
func (s *Syslog) serveConn(c *listen.Conn) {
	peer := c.Peer()
	s.log.Debug("connection opened", "peer", peer, "local", c.LocalAddr().String())
	defer s.log.Debug("connection closed", "peer", peer)
	// Buffers only once the peer sends: a connection that never does (an
	// idle flood) holds none.
	if err := c.WaitData(); err != nil {
		s.ended(peer, err)
		return
	}
	// Room for MaxBatch at first: a batch grows towards MaxStreamBatch only
	// on a connection whose data piles up while the Handler waits, so a
	// flood of connections that send a little holds little each.
	batch := make([]*event.Event, 0, MaxBatch)
	batchBytes := 0
	flush := func() {
		deliver(s.h, s.cfg.Name, &s.stats, batch)
		clear(batch)
		batch = batch[:0]
		batchBytes = 0
	}
	// Before a read would wait for the network, the pending batch is
	// handed over, so events never wait for more bytes to arrive.
	c.OnWait(func() bool { return len(batch) > 0 }, flush)

	fr := frame.NewReader(c, s.cfg.MaxMessageSize)
	var events event.Slab // this connection's events, 64 per allocation
	for {
		msg, err := fr.Next()
		if err == nil {
			c.Frame()
			e := events.New(msg)
			e.Peer = peer
			batch = append(batch, e)
			batchBytes += len(msg)
			if len(batch) == MaxStreamBatch || batchBytes >= maxBatchBytes {
				flush()
			}
			continue
		}
		switch {
		case errors.Is(err, frame.ErrOversize):
			s.stats.oversize.Add(1)
			s.warn.Warn("oversize message discarded", "peer", peer, "max_message_size", s.cfg.MaxMessageSize, "err", err)
			continue
		case errors.Is(err, frame.ErrMalformed):
			s.stats.malformed.Add(1)
			s.warn.Warn("malformed frame skipped", "peer", peer, "err", err)
			continue
		}
		flush()
		s.ended(peer, err)
		return
	}
}

// ended accounts for the error that ended a connection.
func (s *Syslog) ended(peer string, err error) {
	switch {
	case errors.Is(err, listen.ErrClosed):
		// A deadline or an eviction: the listener counted and logged it.
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The peer closed in the middle of an octet-counted frame.
		s.stats.malformed.Add(1)
		s.warn.Warn("connection closed inside a frame", "peer", peer)
	default:
		s.stats.readErrors.Add(1)
		s.warn.Warn("connection ended", "peer", peer, "err", err)
	}
}
