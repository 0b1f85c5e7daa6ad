package zmq

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"golang.org/x/crypto/nacl/box"
)

// zeroVouchClient is our client's handshake with one change an attacker
// can make: its vouch names the server key 0, the public key a CURVE
// server with no key pair loaded (CurveKeyPair{}) compares it with. Its
// HELLO is sealed for that server's real public key: X25519 clamps the
// secret 0 into a valid, publicly known scalar.
func zeroVouchClient(c net.Conn, own CurveKeyPair) error {
	var zero CurveKey
	serverKey, err := CurvePublicKey(zero)
	if err != nil {
		return err
	}
	if err := greet(c, string(zmq4.CurveSecurity), false); err != nil {
		return err
	}
	h := &hsConn{c: c}
	cnPub, cnSec, _ := box.GenerateKey(rand.Reader)
	toServer, _ := sharedKey(&serverKey, (*CurveKey)(cnSec))
	hello := append([]byte{1, 0}, make([]byte, 72)...)
	hello = append(hello, cnPub[:]...)
	hello = binary.BigEndian.AppendUint64(hello, 1)
	hello = box.SealAfterPrecomputation(hello, make([]byte, 64), shortNonce(nonceHello, 1), toServer)
	if err := h.send("HELLO", hello); err != nil {
		return err
	}
	welcome, err := h.readCmd("WELCOME")
	if err != nil {
		return err
	}
	wpt, ok := box.OpenAfterPrecomputation(nil, welcome[16:], longNonce(nonceWelcome, welcome[:16]), toServer)
	if !ok {
		return errors.New("WELCOME does not open")
	}
	var serverShort CurveKey
	copy(serverShort[:], wpt[:32])
	shared, _ := sharedKey(&serverShort, (*CurveKey)(cnSec))
	vouchKey, _ := sharedKey(&serverShort, &own.Secret)
	vn := make([]byte, 16)
	vouch := box.SealAfterPrecomputation(nil, append(cnPub[:], zero[:]...), longNonce(nonceVouch, vn), vouchKey)
	ipt := append(append(append(own.Public[:], vn...), vouch...), zmtpMetadata(zmq4.Push, "")...)
	ibox := box.SealAfterPrecomputation(nil, ipt, shortNonce(nonceInitiate, 2), shared)
	if err := h.send("INITIATE", wpt[32:128], binary.BigEndian.AppendUint64(nil, 2), ibox); err != nil {
		return err
	}
	_, err = h.readCmd("READY")
	return err
}

// TestCurveRefusesZeroKeys: a socket whose keys function has nothing
// loaded yet returns zero keys. A server must not then run on the secret
// key 0, whose public key anyone can compute: a client naming it in its
// vouch was admitted (with allow_any). Such a server, and a client with
// no server key, now refuse every handshake, saying why.
func TestCurveRefusesZeroKeys(t *testing.T) {
	none := func() (CurveKeyPair, CurveKey) { return CurveKeyPair{}, CurveKey{} }
	pull := NewPull(Options{Security: CurveServerFunc(none, CurveAllowAny), HandshakeTimeout: 2 * time.Second})
	closeAll(t, pull)
	ep := bound(t, pull)
	ck, _ := NewCurveKeyPair()
	c, err := net.Dial("tcp", ep[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := zeroVouchClient(c, ck); err == nil {
		t.Fatal("a server with no key pair completed a handshake with the publicly known key of secret 0")
	}
	if st := pull.Stats(); st.Connects != 0 {
		t.Fatalf("a client connected to a server with no keys: %+v", st)
	}

	for _, sec := range []Security{CurveClientFunc(none), CurveServerFunc(none, CurveAllowAny)} {
		a, b := net.Pipe()
		_, err := NewSession(a, SessionOptions{Type: "PUSH", Security: sec, HandshakeTimeout: time.Second})
		b.Close()
		if !errors.Is(err, ErrCurveCert) {
			t.Fatalf("server %v with no keys: %v, want ErrCurveCert", sec.AsServer(), err)
		}
	}
}
