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
	MaxFrames        int           // most frames in a message accepted (default DefaultMaxFrames)
}

// Session is one ZMTP connection outside a socket: a connection the
// caller dialled or accepted, greeted and handshaken with any mechanism
// (NULL, PLAIN, CURVE), then messages and commands in both directions
// with the sockets' framing and, under CURVE, their MESSAGE boxes and
// nonce checks. It is for protocols that run their own connections over
// ZMTP (the relay link). One goroutine may Send while another Recvs;
// Sends must not overlap each other, nor Recvs.
type Session struct {
	conn  net.Conn
	curve *curveConn
	d     *decoder
	cr    *curveReader
	wbuf  []byte
}

// NewSession runs the greeting and the handshake on c, within
// HandshakeTimeout. On failure c is closed; a CURVE refusal is a
// *CurveError.
func NewSession(c net.Conn, o SessionOptions) (s *Session, err error) {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = DefaultMaxMsgSize
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = DefaultMaxFrames
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
	s = &Session{conn: c}
	if ch, ok := o.Security.(connHandshaker); ok {
		if s.curve, err = ch.handshakeConn(c, typ, o.Identity); err != nil {
			return nil, fmt.Errorf("handshake with %s: %w", c.RemoteAddr(), err)
		}
	} else if _, err := zmq4.Open(newGuardConn(c, handshakeFrameLimit), o.Security, typ, zmq4.SocketIdentity(o.Identity), o.Security.AsServer(), nil); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", c.RemoteAddr(), err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	if s.curve != nil {
		s.d = newDecoder(c, o.MaxMsgSize+curveFrameExtra)
		s.cr = newCurveReader(s.d, s.curve, o.MaxMsgSize, o.MaxFrames)
	} else {
		s.d = newDecoderFrames(c, o.MaxMsgSize, o.MaxFrames)
	}
	return s, nil
}

// directWriteMin is the size from which Send writes a NULL message's
// frames without copying them: frame headers and payloads go out as one
// vectored write (writev on TCP). Below it copying is cheaper.
const directWriteMin = 32 << 10

// Send writes one message.
func (s *Session) Send(m Msg) error {
	switch {
	case s.curve != nil:
		s.wbuf = s.curve.appendMsg(s.wbuf[:0], m)
	case len(m) > 0 && msgBytes(m) >= directWriteMin:
		return s.sendDirect(m)
	default:
		s.wbuf = appendMsg(s.wbuf[:0], m)
	}
	return s.write()
}

func msgBytes(m Msg) int {
	n := 0
	for _, f := range m {
		n += len(f)
	}
	return n
}

// sendDirect writes m's frames in place: a relay link's batches are
// megabytes, and copying each into the write buffer cost a memmove per
// byte.
func (s *Session) sendDirect(m Msg) error {
	hdrs := s.wbuf[:0]
	if cap(hdrs) < 9*len(m) {
		hdrs = make([]byte, 0, 9*len(m))
	}
	ends := make([]int, len(m))
	for i, f := range m {
		var fl byte
		if i < len(m)-1 {
			fl = flagMore
		}
		hdrs = appendHeader(hdrs, fl, len(f))
		ends[i] = len(hdrs)
	}
	s.wbuf = hdrs
	bufs := make(net.Buffers, 0, 2*len(m))
	start := 0
	for i, f := range m {
		bufs = append(bufs, hdrs[start:ends[i]], f)
		start = ends[i]
	}
	_, err := bufs.WriteTo(s.conn)
	return err
}

// SendCmd writes one ZMTP command (PING, PONG, …).
func (s *Session) SendCmd(name string, data []byte) error {
	if s.curve != nil {
		s.wbuf = s.curve.appendFrame(s.wbuf[:0], boxCommand, appendCmdBody(nil, name, data))
	} else {
		s.wbuf = appendCmd(s.wbuf[:0], name, data)
	}
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
func (s *Session) Recv() (m Msg, cmd bool, err error) {
	if s.cr != nil {
		return s.cr.next()
	}
	return s.d.next()
}

// ParseCommand splits a command frame from Recv into name and data.
func ParseCommand(f []byte) (name string, data []byte, ok bool) { return parseCmd(f) }

// PeerKey is the peer's long-term CURVE key (the client's, on the server
// side: the one its allow-list admitted); false without CURVE.
func (s *Session) PeerKey() (CurveKey, bool) {
	if s.curve == nil {
		return CurveKey{}, false
	}
	return s.curve.peerKey, true
}

// Conn is the underlying connection (deadlines, addresses).
func (s *Session) Conn() net.Conn { return s.conn }

// Close closes the connection.
func (s *Session) Close() error { return s.conn.Close() }

// appendCmdBody is a command frame's body: name length, name, data.
func appendCmdBody(dst []byte, name string, data []byte) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	return append(dst, data...)
}
