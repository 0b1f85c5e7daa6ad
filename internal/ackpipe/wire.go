package ackpipe

import (
	"encoding/binary"
	"fmt"
)

// Protocol constants; see the package documentation.
const (
	Version    = 1
	HeaderLen  = 20
	AckLen     = 16
	kindData   = 'D'
	kindAck    = 'A'
	FlagLast   = 0x01 // the final message of its batch
	FlagResent = 0x02 // sent again after ResendAfter without an ack
	FlagMarker = 0x04 // closes a partial batch; carries no application frames
	knownFlags = FlagLast | FlagResent | FlagMarker
)

// Header is a decoded data header frame.
type Header struct {
	Flags  byte
	Stream uint32
	Seq    uint64
	Index  uint32
}

// putHeader writes h into b, which must be HeaderLen bytes long.
func putHeader(b []byte, h Header) {
	_ = b[HeaderLen-1]
	b[0], b[1], b[2], b[3] = Version, kindData, h.Flags, 0
	binary.BigEndian.PutUint32(b[4:], h.Stream)
	binary.BigEndian.PutUint64(b[8:], h.Seq)
	binary.BigEndian.PutUint32(b[16:], h.Index)
}

// AppendHeader appends h's encoding to dst.
func AppendHeader(dst []byte, h Header) []byte {
	var b [HeaderLen]byte
	putHeader(b[:], h)
	return append(dst, b[:]...)
}

// ParseHeader decodes a data header frame.
func ParseHeader(b []byte) (Header, error) {
	if len(b) != HeaderLen {
		return Header{}, fmt.Errorf("header of %d bytes, want %d: %w", len(b), HeaderLen, ErrMalformed)
	}
	if b[0] != Version || b[1] != kindData || b[3] != 0 {
		return Header{}, fmt.Errorf("header version/kind %#x/%#x: %w", b[0], b[1], ErrMalformed)
	}
	h := Header{
		Flags:  b[2],
		Stream: binary.BigEndian.Uint32(b[4:]),
		Seq:    binary.BigEndian.Uint64(b[8:]),
		Index:  binary.BigEndian.Uint32(b[16:]),
	}
	if h.Flags&^knownFlags != 0 {
		return Header{}, fmt.Errorf("unknown header flags %#x: %w", h.Flags, ErrMalformed)
	}
	if h.Flags&FlagMarker != 0 && h.Flags&FlagLast == 0 {
		return Header{}, fmt.Errorf("marker without LAST: %w", ErrMalformed)
	}
	if h.Seq == 0 {
		return Header{}, fmt.Errorf("batch sequence 0: %w", ErrMalformed)
	}
	return h, nil
}

// AppendAck appends the ack frame for a stream's batch seq to dst.
func AppendAck(dst []byte, stream uint32, seq uint64) []byte {
	var b [AckLen]byte
	b[0], b[1] = Version, kindAck
	binary.BigEndian.PutUint32(b[4:], stream)
	binary.BigEndian.PutUint64(b[8:], seq)
	return append(dst, b[:]...)
}

// ParseAck decodes an ack frame.
func ParseAck(b []byte) (stream uint32, seq uint64, err error) {
	if len(b) != AckLen {
		return 0, 0, fmt.Errorf("ack of %d bytes, want %d: %w", len(b), AckLen, ErrMalformed)
	}
	if b[0] != Version || b[1] != kindAck || b[2] != 0 || b[3] != 0 {
		return 0, 0, fmt.Errorf("ack version/kind %#x/%#x: %w", b[0], b[1], ErrMalformed)
	}
	seq = binary.BigEndian.Uint64(b[8:])
	if seq == 0 {
		return 0, 0, fmt.Errorf("ack of batch 0: %w", ErrMalformed)
	}
	return binary.BigEndian.Uint32(b[4:]), seq, nil
}
