package zmq

import (
	"crypto/subtle"
	"encoding/binary"

	"golang.org/x/crypto/poly1305" //nolint:staticcheck // the MAC of NaCl's box, used exactly as box does
	"golang.org/x/crypto/salsa20/salsa"
)

// boxOverhead is the Poly1305 tag in front of every box.
const boxOverhead = poly1305.TagSize

// msgCipher is one direction of a CURVE connection's MESSAGE boxes: NaCl's
// crypto_box_afternm (XSalsa20-Poly1305 under the precomputed shared key of
// the two short-term keys) with the 24-byte nonce the RFC prescribes, a
// fixed 16-byte prefix ("CurveZMQMESSAGEC" from the client,
// "CurveZMQMESSAGES" from the server) followed by the 8-byte short nonce.
//
// XSalsa20 first derives a subkey with HSalsa20 from the key and the
// nonce's first 16 bytes; with a fixed prefix that subkey is the same for
// every message of the connection, so it is computed once here instead of
// once per message as box.SealAfterPrecomputation would. The output is
// byte for byte the same (curvebox_test.go checks it against nacl/box),
// and boxes are sealed and opened in place, so a message is copied once,
// into the write buffer, as on a NULL connection, and a received frame is
// decrypted where it was read.
type msgCipher struct {
	subkey [32]byte
	nonce  uint64 // send: the last short nonce used; receive: the last accepted
}

// newMsgCipher derives the cipher of one direction from the shared key
// (box.Precompute of the short-term keys) and the nonce prefix; last is
// the last short nonce already used in that direction by the handshake.
func newMsgCipher(shared *[32]byte, prefix string, last uint64) *msgCipher {
	c := &msgCipher{nonce: last}
	var in [16]byte
	copy(in[:], prefix)
	salsa.HSalsa20(&c.subkey, &in, shared, &salsa.Sigma)
	return c
}

// firstBlock returns the Poly1305 key of the message with short nonce n
// (the first 32 bytes of its key stream) and the 32 key stream bytes that
// encrypt the first 32 bytes of the message.
func (c *msgCipher) firstBlock(n uint64, ctr *[16]byte) (polyKey [32]byte, stream [32]byte) {
	binary.BigEndian.PutUint64(ctr[:8], n)
	var block [64]byte
	salsa.XORKeyStream(block[:], block[:], ctr, &c.subkey)
	copy(polyKey[:], block[:32])
	copy(stream[:], block[32:])
	return polyKey, stream
}

// xor encrypts or decrypts b in place with the key stream of short nonce n
// (whose first block firstBlock returned).
func (c *msgCipher) xor(b []byte, stream *[32]byte, ctr *[16]byte) {
	k := min(len(b), 32)
	subtle.XORBytes(b[:k], b[:k], stream[:k])
	if len(b) > 32 {
		ctr[8] = 1 // block 1 onwards
		salsa.XORKeyStream(b[32:], b[32:], ctr, &c.subkey)
	}
}

// seal encrypts b in place under short nonce n and writes its tag.
func (c *msgCipher) seal(n uint64, tag []byte, b []byte) {
	var ctr [16]byte
	polyKey, stream := c.firstBlock(n, &ctr)
	c.xor(b, &stream, &ctr)
	var t [16]byte
	poly1305.Sum(&t, b, &polyKey)
	copy(tag, t[:])
}

// open checks tag over b and, if it holds, decrypts b in place under short
// nonce n. Nothing is decrypted when the tag is wrong.
func (c *msgCipher) open(n uint64, tag []byte, b []byte) bool {
	var ctr [16]byte
	polyKey, stream := c.firstBlock(n, &ctr)
	var t [16]byte
	copy(t[:], tag)
	if !poly1305.Verify(&t, b, &polyKey) {
		return false
	}
	c.xor(b, &stream, &ctr)
	return true
}
