package zmq

import (
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/go-zeromq/zmq4"
)

// Security is a ZMTP security mechanism. It is zmq4's interface (so the
// handshake runs inside zmq4.Open) plus the mechanism role, which in ZMTP
// is independent of bind/connect. After the handshake this package frames
// messages itself and supports only mechanisms whose Encrypt/Decrypt are
// pass-through (NULL, PLAIN); CURVE would plug in here and in the codec.
type Security interface {
	zmq4.Security
	// AsServer reports whether this side plays the mechanism's server
	// role (checks credentials) rather than the client role.
	AsServer() bool
}

// nullSecurity is ZMTP NULL: no authentication, READY both ways.
type nullSecurity struct{}

func (nullSecurity) Type() zmq4.SecurityType { return zmq4.NullSecurity }
func (nullSecurity) AsServer() bool          { return false }

func (nullSecurity) Handshake(conn *zmq4.Conn, _ bool) error {
	if err := sendReady(conn); err != nil {
		return err
	}
	return recvReady(conn)
}

func (nullSecurity) Encrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }
func (nullSecurity) Decrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }

// PlainClient returns ZMTP PLAIN client security presenting user and pass.
// Unlike zmq4's PLAIN it keeps the credentials, so reconnects work.
func PlainClient(user, pass string) Security {
	return &plainSecurity{user: user, pass: pass}
}

// PlainServer returns ZMTP PLAIN server security that admits a client only
// when check(user, pass) returns true; refused clients get an ERROR
// command and are disconnected. A nil check refuses everyone.
func PlainServer(check func(user, pass string) bool) Security {
	if check == nil {
		check = func(string, string) bool { return false }
	}
	return &plainSecurity{check: check}
}

// PlainPassword returns a check for PlainServer that accepts exactly one
// user/password pair, compared in constant time.
func PlainPassword(user, pass string) func(string, string) bool {
	return func(u, p string) bool {
		okU := subtle.ConstantTimeCompare([]byte(u), []byte(user))
		okP := subtle.ConstantTimeCompare([]byte(p), []byte(pass))
		return okU&okP == 1
	}
}

type plainSecurity struct {
	user, pass string
	check      func(user, pass string) bool // non-nil: server role
}

func (*plainSecurity) Type() zmq4.SecurityType                       { return zmq4.PlainSecurity }
func (s *plainSecurity) AsServer() bool                              { return s.check != nil }
func (*plainSecurity) Encrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }
func (*plainSecurity) Decrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }

func (s *plainSecurity) Handshake(conn *zmq4.Conn, _ bool) error {
	if s.check != nil {
		return s.serverHandshake(conn)
	}
	return s.clientHandshake(conn)
}

func (s *plainSecurity) clientHandshake(conn *zmq4.Conn) error {
	if len(s.user) > 255 || len(s.pass) > 255 {
		return fmt.Errorf("plain: user and password must be at most 255 bytes: %w", ErrAuth)
	}
	hello := make([]byte, 0, 2+len(s.user)+len(s.pass))
	hello = append(hello, byte(len(s.user)))
	hello = append(hello, s.user...)
	hello = append(hello, byte(len(s.pass)))
	hello = append(hello, s.pass...)
	if err := conn.SendCmd(zmq4.CmdHello, hello); err != nil {
		return fmt.Errorf("plain: send HELLO: %w", err)
	}
	if _, err := recvCmd(conn, zmq4.CmdWelcome); err != nil {
		return err
	}
	meta, err := conn.Meta.MarshalZMTP()
	if err != nil {
		return fmt.Errorf("plain: metadata: %w", err)
	}
	if err := conn.SendCmd(zmq4.CmdInitiate, meta); err != nil {
		return fmt.Errorf("plain: send INITIATE: %w", err)
	}
	return recvReady(conn)
}

func (s *plainSecurity) serverHandshake(conn *zmq4.Conn) error {
	cmd, err := recvCmd(conn, zmq4.CmdHello)
	if err != nil {
		return err
	}
	user, pass, ok := parseHello(cmd.Body)
	if !ok {
		_ = sendError(conn, "malformed HELLO")
		return fmt.Errorf("plain: malformed HELLO: %w", ErrMalformed)
	}
	if !s.check(user, pass) {
		_ = sendError(conn, "invalid username or password")
		return fmt.Errorf("plain: user %q: %w", user, ErrAuth)
	}
	if err := conn.SendCmd(zmq4.CmdWelcome, nil); err != nil {
		return fmt.Errorf("plain: send WELCOME: %w", err)
	}
	cmd, err = recvCmd(conn, zmq4.CmdInitiate)
	if err != nil {
		return err
	}
	if err := conn.Peer.Meta.UnmarshalZMTP(cmd.Body); err != nil {
		return fmt.Errorf("plain: peer metadata: %w", err)
	}
	return sendReady(conn)
}

func parseHello(b []byte) (user, pass string, ok bool) {
	if len(b) < 1 {
		return "", "", false
	}
	n := int(b[0])
	b = b[1:]
	if len(b) < n+1 {
		return "", "", false
	}
	user = string(b[:n])
	b = b[n:]
	m := int(b[0])
	b = b[1:]
	if len(b) != m {
		return "", "", false
	}
	return user, string(b), true
}

func sendReady(conn *zmq4.Conn) error {
	meta, err := conn.Meta.MarshalZMTP()
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if err := conn.SendCmd(zmq4.CmdReady, meta); err != nil {
		return fmt.Errorf("send READY: %w", err)
	}
	return nil
}

func recvReady(conn *zmq4.Conn) error {
	cmd, err := recvCmd(conn, zmq4.CmdReady)
	if err != nil {
		return err
	}
	if err := conn.Peer.Meta.UnmarshalZMTP(cmd.Body); err != nil {
		return fmt.Errorf("peer metadata: %w", err)
	}
	return nil
}

// recvCmd reads one command and insists on its name; an ERROR command
// from the peer becomes ErrPeerError with the peer's reason.
func recvCmd(conn *zmq4.Conn, want string) (zmq4.Cmd, error) {
	cmd, err := conn.RecvCmd()
	if err != nil {
		return cmd, fmt.Errorf("receive %s: %w", want, err)
	}
	if cmd.Name == zmq4.CmdError {
		reason := ""
		if len(cmd.Body) > 0 && int(cmd.Body[0]) <= len(cmd.Body)-1 {
			reason = string(cmd.Body[1 : 1+int(cmd.Body[0])])
		}
		return cmd, fmt.Errorf("expected %s, peer says %q: %w", want, reason, ErrPeerError)
	}
	if cmd.Name != want {
		return cmd, fmt.Errorf("expected %s, got %q: %w", want, cmd.Name, ErrMalformed)
	}
	return cmd, nil
}

// sendError sends a ZMTP ERROR command: a one-byte length, then the reason.
func sendError(conn *zmq4.Conn, reason string) error {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	body := append([]byte{byte(len(reason))}, reason...)
	return conn.SendCmd(zmq4.CmdError, body)
}

var (
	_ Security = nullSecurity{}
	_ Security = (*plainSecurity)(nil)
)
