package zmq

import (
	"fmt"
	"net"
	"time"

	"github.com/go-zeromq/zmq4"
)

// SessionOptions configure a Session.
type SessionOptions struct {
	// Type is our ZMTP socket type, as the peer checks it ("PUSH",
	// "PULL", "DEALER", "ROUTER", …).
	Type             string
	Security         Security // nil means NULL
	Identity         string
	HandshakeTimeout time.Duration // default 5s
	MaxMsgSize       int64         // largest message accepted (default 1 MiB)
}

// Session is one ZMTP connection outside a socket: a connection the
// caller dialled or accepted, greeted and handshaken with a mechanism
// (NULL, PLAIN), then messages and commands in both directions with the
// sockets' framing and limits. It is for protocols that run their own
// connections over ZMTP (the relay link). One goroutine may Send while
// another Recvs; Sends must not overlap each other, nor Recvs.
//
// (The CURVE branch carries the same type with CURVE boxes; this one is
// its NULL/PLAIN subset, with the same API.)
type Session struct {
	conn net.Conn
	d    *decoder
	wbuf []byte
}

// NewSession runs the greeting and the handshake on c, within
// HandshakeTimeout. On failure c is closed.
func NewSession(c net.Conn, o SessionOptions) (s *Session, err error) {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = DefaultMaxMsgSize
	}
	if o.Security == nil {
		o.Security = nullSecurity{}
	}
	typ := zmq4.SocketType(o.Type)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handshake with %s: %v: %w", c.RemoteAddr(), r, ErrHandshakePanic)
		}
		if err != nil {
			c.Close()
		}
	}()
	if err := c.SetDeadline(time.Now().Add(o.HandshakeTimeout)); err != nil {
		return nil, err
	}
	if _, err := zmq4.Open(newGuardConn(c, handshakeFrameLimit), o.Security, typ, zmq4.SocketIdentity(o.Identity), o.Security.AsServer(), nil); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", c.RemoteAddr(), err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &Session{conn: c, d: newDecoder(c, o.MaxMsgSize)}, nil
}

// Send writes one message.
func (s *Session) Send(m Msg) error {
	s.wbuf = appendMsg(s.wbuf[:0], m)
	return s.write()
}

// SendCmd writes one ZMTP command (PING, PONG, …).
func (s *Session) SendCmd(name string, data []byte) error {
	s.wbuf = appendCmd(s.wbuf[:0], name, data)
	return s.write()
}

func (s *Session) write() error {
	_, err := s.conn.Write(s.wbuf)
	if cap(s.wbuf) > writeBufSize {
		s.wbuf = nil
	}
	return err
}

// Recv reads the next message, or command (cmd true, m[0] the command
// frame: see ParseCommand). The frames may share a read buffer (see the
// package doc). Any error ends the session.
func (s *Session) Recv() (m Msg, cmd bool, err error) { return s.d.next() }

// ParseCommand splits a command frame from Recv into name and data.
func ParseCommand(f []byte) (name string, data []byte, ok bool) { return parseCmd(f) }

// Conn is the underlying connection (deadlines, addresses).
func (s *Session) Conn() net.Conn { return s.conn }

// Close closes the connection.
func (s *Session) Close() error { return s.conn.Close() }
