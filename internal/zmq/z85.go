package zmq

import (
	"encoding/binary"
	"fmt"
)

// Z85 (ZeroMQ RFC 32) is the printable encoding of CURVE keys in
// certificate files, libzmq's socket options and rsyslog's configs: every
// 4 bytes become 5 characters of an 85-symbol alphabet, most significant
// first. A 32-byte key is 40 characters.
const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// z85Value maps a character to its digit plus one (0: not in the alphabet).
var z85Value = func() (t [256]byte) {
	for i := 0; i < len(z85Alphabet); i++ {
		t[z85Alphabet[i]] = byte(i + 1)
	}
	return t
}()

// Z85Encode encodes b, whose length must be a multiple of 4.
func Z85Encode(b []byte) (string, error) {
	if len(b)%4 != 0 {
		return "", fmt.Errorf("z85: %d bytes is not a multiple of 4: %w", len(b), ErrZ85)
	}
	out := make([]byte, 0, len(b)/4*5)
	for i := 0; i < len(b); i += 4 {
		v := binary.BigEndian.Uint32(b[i:])
		var c [5]byte
		for j := 4; j >= 0; j-- {
			c[j] = z85Alphabet[v%85]
			v /= 85
		}
		out = append(out, c[:]...)
	}
	return string(out), nil
}

// Z85Decode decodes s, whose length must be a multiple of 5.
func Z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("z85: %d characters is not a multiple of 5: %w", len(s), ErrZ85)
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := 0; j < 5; j++ {
			d := z85Value[s[i+j]]
			if d == 0 {
				return nil, fmt.Errorf("z85: %q at offset %d is not a Z85 character: %w", s[i+j], i+j, ErrZ85)
			}
			v = v*85 + uint64(d-1)
		}
		if v > 0xffffffff {
			return nil, fmt.Errorf("z85: group %q at offset %d overflows 32 bits: %w", s[i:i+5], i, ErrZ85)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(v))
	}
	return out, nil
}
