package zmq

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/go-zeromq/zmq4"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/salsa20/salsa"
)

// CURVE (ZMTP-CURVE, RFC 25, on CurveZMQ, RFC 26) as libzmq speaks it:
//
//	client                                   server
//	HELLO    C', Box[64 zeros](C'->S)     ->
//	                                      <- WELCOME  Box[S' + cookie](S->C')
//	INITIATE cookie, Box[C + vouch + metadata](C'->S')  ->
//	                                      <- READY    Box[metadata](S'->C')
//	MESSAGE  Box[flags + frame] both ways, one per frame
//
// C/S are the long-term keys (the client's is what the allow-list checks),
// C'/S' fresh per connection; the vouch, Box[C' + S](C->S'), proves the
// client owns C. The cookie is Box[C' + s'] under a key the server draws
// for each connection, so an INITIATE replayed on another connection does
// not open. Short nonces count up from 1 per direction and connection
// (HELLO 1, INITIATE 2, the client's MESSAGEs from 3; READY 1, the
// server's MESSAGEs from 2); a short nonce not above the last one accepted
// from the peer is refused, which stops replayed and reordered boxes.
//
// After the handshake every frame, commands included, travels as a
// MESSAGE: a data frame (no ZMTP flags, as libzmq sends it) holding
// "\x07MESSAGE", the short nonce and a box of one flags byte (0x01 more,
// 0x02 command) and the frame's bytes.

// Curve failure reasons, the keys of Stats.Curve: CURVE handshakes
// refused and CURVE connections dropped, by why.
const (
	// CurveUnknownKey: the client's long-term key is not on the
	// server's allow-list.
	CurveUnknownKey = "unknown_key"
	// CurveBadBox: a box did not open (a HELLO sealed for another server
	// key, a cookie from another connection, a forged or damaged
	// INITIATE, vouch, WELCOME, READY or MESSAGE).
	CurveBadBox = "bad_box"
	// CurveBadVersion: a HELLO announcing a CurveZMQ version other than 1.0.
	CurveBadVersion = "bad_version"
	// CurveBadNonce: a short nonce not above the last one accepted
	// (a replayed or reordered command or MESSAGE).
	CurveBadNonce = "bad_nonce"
	// CurveMalformed: a command of the wrong size or kind, bad metadata,
	// or a peer greeting with another mechanism.
	CurveMalformed = "malformed"
	// CurveRefused: the server answered our INITIATE or HELLO with ERROR
	// (it does not admit our key).
	CurveRefused = "refused"
	// CurveNoWelcome: the server closed the connection after our HELLO,
	// which is what a server does with a HELLO sealed for another key:
	// check the server key.
	CurveNoWelcome = "no_welcome"
)

// CurveReasons lists every reason, for exporting zeroes.
var CurveReasons = []string{CurveUnknownKey, CurveBadBox, CurveBadVersion, CurveBadNonce, CurveMalformed, CurveRefused, CurveNoWelcome}

// curveReasonIndex maps a reason to its counter.
func curveReasonIndex(reason string) int {
	for i, r := range CurveReasons {
		if r == reason {
			return i
		}
	}
	return -1
}

// CurveError is a refused CURVE handshake or a dropped CURVE connection.
// errors.Is matches ErrCurve, and ErrAuth for an unknown client key or a
// server that refused ours.
type CurveError struct {
	Reason string // one of the Curve… reasons
	Detail string
}

func (e *CurveError) Error() string {
	return "curve " + strings.ReplaceAll(e.Reason, "_", " ") + ": " + e.Detail
}

// Unwrap lets errors.Is see ErrCurve and, where credentials are at fault,
// ErrAuth (logged at Warn: an operator has a key to fix).
func (e *CurveError) Unwrap() []error {
	switch e.Reason {
	case CurveUnknownKey, CurveRefused, CurveNoWelcome:
		return []error{ErrCurve, ErrAuth}
	}
	return []error{ErrCurve}
}

func curveErr(reason, format string, args ...any) error {
	return &CurveError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// curveReason returns the reason of a CURVE failure in err's chain.
func curveReason(err error) (string, bool) {
	var ce *CurveError
	if errors.As(err, &ce) {
		return ce.Reason, true
	}
	return "", false
}

// CurveKey is a Curve25519 key, public or secret.
type CurveKey [32]byte

// Z85 returns the key in Z85, as certificate files and libzmq write it.
func (k CurveKey) Z85() string {
	s, _ := Z85Encode(k[:])
	return s
}

// ParseCurveKey decodes a key written in Z85 (40 characters).
func ParseCurveKey(s string) (CurveKey, error) {
	var k CurveKey
	if len(s) != 40 {
		return k, fmt.Errorf("a CURVE key is 40 Z85 characters, got %d: %w", len(s), ErrZ85)
	}
	b, err := Z85Decode(s)
	if err != nil {
		return k, err
	}
	copy(k[:], b)
	return k, nil
}

// CurveKeyPair is a long-term key pair.
type CurveKeyPair struct {
	Public, Secret CurveKey
}

// NewCurveKeyPair draws a fresh key pair.
func NewCurveKeyPair() (CurveKeyPair, error) {
	pub, sec, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return CurveKeyPair{}, fmt.Errorf("curve: generate key pair: %w", err)
	}
	return CurveKeyPair{Public: *pub, Secret: *sec}, nil
}

// CurvePublicKey derives the public key of a secret key.
func CurvePublicKey(secret CurveKey) (CurveKey, error) {
	var pub CurveKey
	b, err := curve25519.X25519(secret[:], curve25519.Basepoint)
	if err != nil {
		return pub, fmt.Errorf("curve: %w", err)
	}
	copy(pub[:], b)
	return pub, nil
}

// CurveAuthorizer decides which clients a CURVE server admits, by their
// long-term public key (proved by the vouch before it is asked).
type CurveAuthorizer interface {
	CurveAllowed(client CurveKey) bool
}

// CurveKeySet admits the keys it holds.
type CurveKeySet map[CurveKey]struct{}

// CurveAllowed implements CurveAuthorizer.
func (s CurveKeySet) CurveAllowed(k CurveKey) bool {
	_, ok := s[k]
	return ok
}

type curveAllowAny struct{}

func (curveAllowAny) CurveAllowed(CurveKey) bool { return true }

// CurveAllowAny admits every client that completes the handshake: the
// traffic is encrypted, but anyone may connect. Choose it explicitly.
var CurveAllowAny CurveAuthorizer = curveAllowAny{}

// CurveServer returns CURVE server security: keys are the server's
// long-term pair, and a client is admitted when one of allow admits its
// long-term key (none: nobody is). A refused client gets an ERROR "400",
// as libzmq's ZAP refusal. Like every mechanism its role is independent
// of bind and connect.
func CurveServer(keys CurveKeyPair, allow ...CurveAuthorizer) Security {
	return &curveSecurity{keys: keys, server: true, allow: allow}
}

// CurveKeysFunc returns a socket's CURVE keys: its own pair and, for a
// client, the server's public key. A socket built with one asks it at
// every handshake, so keys can be replaced (a reload re-reading the
// files) without recreating the socket; established connections keep
// the keys they were set up with.
type CurveKeysFunc func() (own CurveKeyPair, server CurveKey)

// CurveServerFunc is CurveServer taking its key pair from keys at each
// handshake.
func CurveServerFunc(keys CurveKeysFunc, allow ...CurveAuthorizer) Security {
	return &curveSecurity{keysFn: keys, server: true, allow: allow}
}

// CurveClientFunc is CurveClient taking its key pair and the server's key
// from keys at each handshake.
func CurveClientFunc(keys CurveKeysFunc) Security {
	return &curveSecurity{keysFn: keys}
}

// CurveClient returns CURVE client security: keys are the client's
// long-term pair (what the server's allow-list names) and server is the
// server's long-term public key.
func CurveClient(keys CurveKeyPair, server CurveKey) Security {
	return &curveSecurity{keys: keys, serverKey: server}
}

// curveSecurity runs its own greeting and handshake on the raw connection
// (see connHandshaker) instead of inside zmq4.Open, because its frames
// after the handshake are boxes that zmq4 cannot frame.
type curveSecurity struct {
	keys      CurveKeyPair
	server    bool
	serverKey CurveKey      // client role
	keysFn    CurveKeysFunc // if set, keys and serverKey come from it at each handshake
	allow     []CurveAuthorizer
}

// current returns the keys for a handshake starting now.
func (s *curveSecurity) current() (CurveKeyPair, CurveKey) {
	if s.keysFn != nil {
		return s.keysFn()
	}
	return s.keys, s.serverKey
}

func (*curveSecurity) Type() zmq4.SecurityType { return zmq4.CurveSecurity }
func (s *curveSecurity) AsServer() bool        { return s.server }

// errCurveViaZmq4 is returned if zmq4 code is ever handed this mechanism.
var errCurveViaZmq4 = errors.New("zmq: CURVE runs on this package's sockets and sessions only, not through zmq4")

func (*curveSecurity) Handshake(*zmq4.Conn, bool) error       { return errCurveViaZmq4 }
func (*curveSecurity) Encrypt(io.Writer, []byte) (int, error) { return 0, errCurveViaZmq4 }
func (*curveSecurity) Decrypt(io.Writer, []byte) (int, error) { return 0, errCurveViaZmq4 }
func (s *curveSecurity) allowed(k CurveKey) bool {
	for _, a := range s.allow {
		if a != nil && a.CurveAllowed(k) {
			return true
		}
	}
	return false
}

// connHandshaker is a mechanism that runs the greeting and its handshake
// itself on the connection and returns the codec of the frames after it.
type connHandshaker interface {
	handshakeConn(c net.Conn, typ zmq4.SocketType, identity string) (*curveConn, error)
}

// Sizes of the CURVE commands, their name included (RFC 26).
const (
	curveHelloSize    = 200
	curveWelcomeSize  = 168
	curveInitiateMin  = 257 // without metadata
	curveReadyMin     = 30  // without metadata
	curveCookieSize   = 96
	curveMsgHeader    = 16 // "\x07MESSAGE" and the short nonce
	curveFrameExtra   = curveMsgHeader + boxOverhead + 1
	zmtpGreetingSize  = 64
	zmtpMechanismSize = 20
)

// Nonce prefixes of the RFC.
const (
	nonceHello    = "CurveZMQHELLO---"
	nonceWelcome  = "WELCOME-"
	nonceCookie   = "COOKIE--"
	nonceVouch    = "VOUCH---"
	nonceInitiate = "CurveZMQINITIATE"
	nonceReady    = "CurveZMQREADY---"
	nonceMsgC     = "CurveZMQMESSAGEC"
	nonceMsgS     = "CurveZMQMESSAGES"
)

// shortNonce builds a 24-byte nonce from a 16-byte prefix and a counter.
func shortNonce(prefix string, n uint64) *[24]byte {
	var b [24]byte
	copy(b[:16], prefix)
	binary.BigEndian.PutUint64(b[16:], n)
	return &b
}

// longNonce builds a 24-byte nonce from an 8-byte prefix and 16 bytes.
func longNonce(prefix string, rnd []byte) *[24]byte {
	var b [24]byte
	copy(b[:8], prefix)
	copy(b[8:], rnd)
	return &b
}

// sharedKey is box.Precompute, refusing the low-order public keys for
// which X25519 yields zero (a peer choosing one would make the shared key
// known to anyone).
func sharedKey(peer, secret *CurveKey) (*[32]byte, bool) {
	x, err := curve25519.X25519(secret[:], peer[:])
	if err != nil {
		return nil, false
	}
	var k [32]byte
	copy(k[:], x)
	var in [16]byte
	salsa.HSalsa20(&k, &in, &k, &salsa.Sigma)
	return &k, true
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("curve: random: %w", err)
	}
	return b, nil
}

// hsConn reads and writes ZMTP commands during a handshake. It reads
// exactly the bytes of each frame, so what the peer sends right after its
// last command stays in the connection for the decoder.
type hsConn struct {
	c    net.Conn
	wbuf []byte
}

func (h *hsConn) send(name string, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := appendHeader(h.wbuf[:0], flagCommand, 1+len(name)+n)
	b = append(b, byte(len(name)))
	b = append(b, name...)
	for _, p := range parts {
		b = append(b, p...)
	}
	h.wbuf = b
	if _, err := h.c.Write(b); err != nil {
		return fmt.Errorf("send %s: %w", name, err)
	}
	return nil
}

// recv reads one command: its name and data. A frame that is not a single
// command or is over handshakeFrameLimit is malformed; I/O errors are
// returned as they are.
func (h *hsConn) recv() (string, []byte, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(h.c, hdr[:2]); err != nil {
		return "", nil, err
	}
	size := uint64(hdr[1])
	if hdr[0]&flagLong != 0 {
		if _, err := io.ReadFull(h.c, hdr[2:9]); err != nil {
			return "", nil, unexpected(err)
		}
		size = binary.BigEndian.Uint64(hdr[1:9])
	}
	if hdr[0]&^flagLong != flagCommand {
		return "", nil, curveErr(CurveMalformed, "handshake frame with flags %#x, want one command", hdr[0])
	}
	if size > handshakeFrameLimit {
		return "", nil, curveErr(CurveMalformed, "handshake command of %d bytes (limit %d)", size, handshakeFrameLimit)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(h.c, body); err != nil {
		return "", nil, unexpected(err)
	}
	name, data, ok := parseCmd(body)
	if !ok {
		return "", nil, curveErr(CurveMalformed, "command of %d bytes without a valid name", size)
	}
	return name, data, nil
}

// greet exchanges ZMTP 3.0 greetings announcing mech and checks the
// peer's: the signature, version 3 or later, the same mechanism.
func greet(c net.Conn, mech string, server bool) error {
	var g [zmtpGreetingSize]byte
	g[0], g[9] = 0xff, 0x7f
	g[10], g[11] = 3, 0
	copy(g[12:12+zmtpMechanismSize], mech)
	if server {
		g[32] = 1
	}
	if _, err := c.Write(g[:]); err != nil {
		return fmt.Errorf("send greeting: %w", err)
	}
	var p [zmtpGreetingSize]byte
	if _, err := io.ReadFull(c, p[:]); err != nil {
		return fmt.Errorf("receive greeting: %w", unexpected(err))
	}
	if p[0] != 0xff || p[9] != 0x7f {
		return fmt.Errorf("peer greeting has no ZMTP signature: %w", ErrMalformed)
	}
	if p[10] < 3 {
		return fmt.Errorf("peer speaks ZMTP %d.%d, want 3.x: %w", p[10], p[11], ErrMalformed)
	}
	peer := string(bytes.TrimRight(p[12:12+zmtpMechanismSize], "\x00"))
	if peer != mech {
		return curveErr(CurveMalformed, "peer greets with mechanism %q, we use %s", peer, mech)
	}
	// Two servers would each wait for a HELLO until the handshake
	// timeout. Our greeting says when we are the server; libzmq's never
	// does (it sends 0), so only a peer that says so is known to be one.
	if server && p[32] == 1 {
		return errBothRoles("server")
	}
	return nil
}

// errBothRoles reports two CURVE servers or two clients: a configuration
// slip, so it is also ErrAuth (logged at Warn).
func errBothRoles(role string) error {
	return fmt.Errorf("%w (%w)", curveErr(CurveMalformed, "the peer is a CURVE %s too: one side must be the client, naming the other's public key (server_key_file or server_key; --curve-server-key)", role), ErrAuth)
}

// readCmd receives a command and insists on its name; an ERROR from the
// peer is reported with its reason, as refused.
func (h *hsConn) readCmd(want string) ([]byte, error) {
	name, data, err := h.recv()
	if err != nil {
		return nil, err
	}
	if name == zmq4.CmdError {
		reason := ""
		if len(data) > 0 && int(data[0]) <= len(data)-1 {
			reason = string(data[1 : 1+int(data[0])])
		}
		return nil, curveErr(CurveRefused, "server answered ERROR %q instead of %s: it does not admit our key", reason, want)
	}
	if name == "HELLO" && want == "WELCOME" {
		return nil, errBothRoles("client")
	}
	if name != want {
		return nil, curveErr(CurveMalformed, "expected %s, got %q", want, name)
	}
	return data, nil
}

// curveConn is a connection's state after its CURVE handshake: the two
// MESSAGE ciphers and what the handshake learned about the peer.
type curveConn struct {
	send     *msgCipher // under the peer's write lock
	recv     *msgCipher // the reader's
	peerKey  CurveKey   // the client's long-term key (server side), or the server's
	peerType string
}

// zmtpMetadata encodes our READY/INITIATE metadata (RFC 23): Socket-Type
// and, if set, Identity.
func zmtpMetadata(typ zmq4.SocketType, identity string) []byte {
	b := appendMetadata(nil, "Socket-Type", string(typ))
	if identity != "" {
		b = appendMetadata(b, "Identity", identity)
	}
	return b
}

func appendMetadata(dst []byte, name, value string) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// parseMetadata reads name/value properties, strictly within b, and
// returns the Socket-Type (names compare case-insensitively, as libzmq).
func parseMetadata(b []byte) (socketType string, err error) {
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || len(b) < 1+n+4 {
			return "", curveErr(CurveMalformed, "metadata property cut short")
		}
		name := string(b[1 : 1+n])
		vlen := binary.BigEndian.Uint32(b[1+n:])
		b = b[1+n+4:]
		if uint64(vlen) > uint64(len(b)) {
			return "", curveErr(CurveMalformed, "metadata value of %q claims %d bytes, %d left", name, vlen, len(b))
		}
		if strings.EqualFold(name, "Socket-Type") {
			socketType = string(b[:vlen])
		}
		b = b[vlen:]
	}
	return socketType, nil
}

func checkPeerType(ours zmq4.SocketType, peer string) error {
	if !ours.IsCompatible(zmq4.SocketType(peer)) {
		return fmt.Errorf("peer socket type %q cannot talk to %s: %w", peer, ours, ErrMalformed)
	}
	return nil
}

func (s *curveSecurity) handshakeConn(c net.Conn, typ zmq4.SocketType, identity string) (*curveConn, error) {
	keys, serverKey := s.current()
	if err := checkKeys(keys, serverKey, s.server); err != nil {
		return nil, err
	}
	if err := greet(c, string(zmq4.CurveSecurity), s.server); err != nil {
		return nil, err
	}
	h := &hsConn{c: c}
	if s.server {
		return s.serverHandshake(h, typ, identity, keys)
	}
	return s.clientHandshake(h, typ, identity, keys, serverKey)
}

// checkKeys refuses to run a handshake without keys, as a keys function
// returns them before any are loaded: X25519 clamps the secret key 0 into
// a valid scalar whose public key anyone can compute, so a server would
// admit whoever names that key.
func checkKeys(keys CurveKeyPair, serverKey CurveKey, server bool) error {
	var zero CurveKey
	if subtle.ConstantTimeCompare(keys.Secret[:], zero[:]) == 1 {
		return fmt.Errorf("curve: no key pair loaded (the secret key is zero); set key_file to a secret certificate: %w", ErrCurveCert)
	}
	if !server && serverKey == zero {
		return fmt.Errorf("curve: no server key loaded; set server_key_file or server_key: %w", ErrCurveCert)
	}
	return nil
}

func (s *curveSecurity) clientHandshake(h *hsConn, typ zmq4.SocketType, identity string, keys CurveKeyPair, serverKey CurveKey) (*curveConn, error) {
	cnPub, cnSec, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("curve: %w", err)
	}
	short := (*CurveKey)(cnSec)
	toServer, ok := sharedKey(&serverKey, short)
	if !ok {
		return nil, curveErr(CurveMalformed, "the server key is not a usable Curve25519 public key")
	}
	// HELLO: version 1.0, 72 bytes of padding (a HELLO is as large as the
	// WELCOME it asks for), C', short nonce 1, Box[64 zeros](C'->S).
	hello := make([]byte, 0, curveHelloSize-6)
	hello = append(hello, 1, 0)
	hello = append(hello, make([]byte, 72)...)
	hello = append(hello, cnPub[:]...)
	hello = binary.BigEndian.AppendUint64(hello, 1)
	hello = box.SealAfterPrecomputation(hello, make([]byte, 64), shortNonce(nonceHello, 1), toServer)
	if err := h.send("HELLO", hello); err != nil {
		return nil, err
	}
	welcome, err := h.readCmd("WELCOME")
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil, curveErr(CurveNoWelcome, "the server closed the connection after our HELLO (%v): it could not open it, so the server key we use is not its key", err)
		}
		return nil, err
	}
	if len(welcome) != curveWelcomeSize-8 {
		return nil, curveErr(CurveMalformed, "WELCOME of %d bytes, want %d", len(welcome)+8, curveWelcomeSize)
	}
	wpt, ok := box.OpenAfterPrecomputation(nil, welcome[16:], longNonce(nonceWelcome, welcome[:16]), toServer)
	if !ok {
		return nil, curveErr(CurveBadBox, "WELCOME box does not open with the server key")
	}
	var serverShort CurveKey
	copy(serverShort[:], wpt[:32])
	cookie := wpt[32:128]
	shared, ok := sharedKey(&serverShort, short)
	if !ok {
		return nil, curveErr(CurveBadBox, "server's short-term key is a low-order point")
	}
	// The vouch: Box[C' + S](C->S'), with a random long nonce.
	vouchKey, ok := sharedKey(&serverShort, &keys.Secret)
	if !ok {
		return nil, curveErr(CurveBadBox, "server's short-term key is a low-order point")
	}
	vn, err := randomBytes(16)
	if err != nil {
		return nil, err
	}
	vouchPT := append(append(make([]byte, 0, 64), cnPub[:]...), serverKey[:]...)
	vouch := box.SealAfterPrecomputation(nil, vouchPT, longNonce(nonceVouch, vn), vouchKey)
	meta := zmtpMetadata(typ, identity)
	ipt := make([]byte, 0, 128+len(meta))
	ipt = append(ipt, keys.Public[:]...)
	ipt = append(ipt, vn...)
	ipt = append(ipt, vouch...)
	ipt = append(ipt, meta...)
	ibox := box.SealAfterPrecomputation(nil, ipt, shortNonce(nonceInitiate, 2), shared)
	if err := h.send("INITIATE", cookie, binary.BigEndian.AppendUint64(nil, 2), ibox); err != nil {
		return nil, err
	}
	ready, err := h.readCmd("READY")
	if err != nil {
		return nil, err
	}
	if len(ready) < curveReadyMin-6 {
		return nil, curveErr(CurveMalformed, "READY of %d bytes, want at least %d", len(ready)+6, curveReadyMin)
	}
	rn := binary.BigEndian.Uint64(ready[:8])
	if rn == 0 {
		return nil, curveErr(CurveBadNonce, "READY with short nonce 0")
	}
	rpt, ok := box.OpenAfterPrecomputation(nil, ready[8:], shortNonce(nonceReady, rn), shared)
	if !ok {
		return nil, curveErr(CurveBadBox, "READY box does not open")
	}
	peerType, err := parseMetadata(rpt)
	if err != nil {
		return nil, err
	}
	if err := checkPeerType(typ, peerType); err != nil {
		return nil, err
	}
	return &curveConn{
		send:     newMsgCipher(shared, nonceMsgC, 2),
		recv:     newMsgCipher(shared, nonceMsgS, rn),
		peerKey:  serverKey,
		peerType: peerType,
	}, nil
}

func (s *curveSecurity) serverHandshake(h *hsConn, typ zmq4.SocketType, identity string, keys CurveKeyPair) (*curveConn, error) {
	hello, err := h.readCmd("HELLO")
	if err != nil {
		return nil, err
	}
	if len(hello) != curveHelloSize-6 {
		return nil, curveErr(CurveMalformed, "HELLO of %d bytes, want %d", len(hello)+6, curveHelloSize)
	}
	if hello[0] != 1 || hello[1] != 0 {
		return nil, curveErr(CurveBadVersion, "HELLO for CurveZMQ %d.%d, we speak 1.0", hello[0], hello[1])
	}
	var clientShort CurveKey
	copy(clientShort[:], hello[74:106])
	hn := binary.BigEndian.Uint64(hello[106:114])
	if hn == 0 {
		return nil, curveErr(CurveBadNonce, "HELLO with short nonce 0")
	}
	toClient, ok := sharedKey(&clientShort, &keys.Secret)
	if !ok {
		return nil, curveErr(CurveBadBox, "client's short-term key is a low-order point")
	}
	if _, ok := box.OpenAfterPrecomputation(nil, hello[114:], shortNonce(nonceHello, hn), toClient); !ok {
		return nil, curveErr(CurveBadBox, "HELLO box does not open with our key: the client uses another server key")
	}
	snPub, snSec, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("curve: %w", err)
	}
	// The cookie: Box[C' + s'](K) under a key of this connection only.
	rnd, err := randomBytes(32 + 16 + 16)
	if err != nil {
		return nil, err
	}
	var cookieKey [32]byte
	copy(cookieKey[:], rnd[:32])
	cookieNonce, welcomeNonce := rnd[32:48], rnd[48:64]
	cookie := append(make([]byte, 0, curveCookieSize), cookieNonce...)
	cookie = secretbox.Seal(cookie, append(clientShort[:], snSec[:]...), longNonce(nonceCookie, cookieNonce), &cookieKey)
	wpt := append(append(make([]byte, 0, 128), snPub[:]...), cookie...)
	wbox := box.SealAfterPrecomputation(nil, wpt, longNonce(nonceWelcome, welcomeNonce), toClient)
	if err := h.send("WELCOME", welcomeNonce, wbox); err != nil {
		return nil, err
	}
	initiate, err := h.readCmd("INITIATE")
	if err != nil {
		return nil, err
	}
	if len(initiate) < curveInitiateMin-9 {
		return nil, curveErr(CurveMalformed, "INITIATE of %d bytes, want at least %d", len(initiate)+9, curveInitiateMin)
	}
	cpt, ok := secretbox.Open(nil, initiate[16:96], longNonce(nonceCookie, initiate[:16]), &cookieKey)
	if !ok {
		return nil, curveErr(CurveBadBox, "INITIATE cookie does not open: not issued on this connection (a replay?)")
	}
	if subtle.ConstantTimeCompare(cpt[:32], clientShort[:]) != 1 || subtle.ConstantTimeCompare(cpt[32:], snSec[:]) != 1 {
		return nil, curveErr(CurveBadBox, "INITIATE cookie holds other keys")
	}
	in := binary.BigEndian.Uint64(initiate[96:104])
	if in <= hn {
		return nil, curveErr(CurveBadNonce, "INITIATE short nonce %d not above HELLO's %d", in, hn)
	}
	shared, ok := sharedKey(&clientShort, (*CurveKey)(snSec))
	if !ok {
		return nil, curveErr(CurveBadBox, "client's short-term key is a low-order point")
	}
	ipt, ok := box.OpenAfterPrecomputation(nil, initiate[104:], shortNonce(nonceInitiate, in), shared)
	if !ok {
		return nil, curveErr(CurveBadBox, "INITIATE box does not open")
	}
	var client CurveKey
	copy(client[:], ipt[:32])
	vouchKey, ok := sharedKey(&client, (*CurveKey)(snSec))
	if !ok {
		return nil, curveErr(CurveBadBox, "client's long-term key is a low-order point")
	}
	vpt, ok := box.OpenAfterPrecomputation(nil, ipt[48:128], longNonce(nonceVouch, ipt[32:48]), vouchKey)
	if !ok {
		return nil, curveErr(CurveBadBox, "vouch does not open: the client does not own the key it names")
	}
	if subtle.ConstantTimeCompare(vpt[:32], clientShort[:]) != 1 || subtle.ConstantTimeCompare(vpt[32:], keys.Public[:]) != 1 {
		return nil, curveErr(CurveBadBox, "vouch is for another connection or server")
	}
	peerType, err := parseMetadata(ipt[128:])
	if err != nil {
		return nil, err
	}
	if !s.allowed(client) {
		// As libzmq when ZAP refuses: ERROR with the status code.
		_ = h.send(zmq4.CmdError, []byte{3}, []byte("400"))
		return nil, curveErr(CurveUnknownKey, "client key %s is not on the allow-list; if it belongs, put its public certificate in allow_dir or its key in allow", client.Z85())
	}
	if err := checkPeerType(typ, peerType); err != nil {
		return nil, err
	}
	rbox := box.SealAfterPrecomputation(nil, zmtpMetadata(typ, identity), shortNonce(nonceReady, 1), shared)
	if err := h.send("READY", binary.BigEndian.AppendUint64(nil, 1), rbox); err != nil {
		return nil, err
	}
	return &curveConn{
		send:     newMsgCipher(shared, nonceMsgS, 1),
		recv:     newMsgCipher(shared, nonceMsgC, in),
		peerKey:  client,
		peerType: peerType,
	}, nil
}
