package link

import (
	"encoding/binary"
	"fmt"
)

// Version is the link protocol version. Both ends must speak the same one:
// a HELLO of another version is answered with REFUSE and both ends log why.
const Version = 1

// Message kinds: the third byte of every header frame.
const (
	kindHello   = 'H' // sender → receiver, first message of a session
	kindWelcome = 'W' // receiver → sender, answer to HELLO
	kindRefuse  = 'R' // receiver → sender, then close
	kindBatch   = 'B' // sender → receiver
	kindAck     = 'A' // receiver → sender
)

const magic = 'L'

// Batch flags.
const (
	// FlagZstd: the payload frame is zstd-compressed.
	FlagZstd = 0x01
	// FlagFirst: the first batch of a session. Every sequence number below
	// its First was acknowledged (by this receiver or another) or will
	// never be sent, so the receiver may move its mark up to First-1.
	FlagFirst = 0x02
	// FlagS2: the payload frame is s2-compressed (klauspost/compress/s2:
	// a third of zstd's CPU, a lower ratio).
	FlagS2     = 0x04
	batchFlags = FlagZstd | FlagFirst | FlagS2
)

// Refuse codes.
const (
	RefuseVersion  = 1 // the protocol versions differ
	RefuseBusy     = 2 // the receiver is shutting down
	RefuseProtocol = 3 // the sender broke the protocol
)

// Header frame lengths.
const (
	helloLen   = 4 + 16 + 4 + 4
	welcomeLen = 4 + 16 + 8 + 4
	refuseLen  = 4
	batchLen   = 4 + 8 + 8 + 4 + 4
	ackLen     = 4 + 8
	// maxName bounds the names carried in HELLO and WELCOME.
	maxName = 255
	// maxReason bounds a REFUSE reason.
	maxReason = 1024
)

// SenderID is a sender's durable identity: random, created with its spool.
type SenderID [16]byte

func (id SenderID) String() string { return fmt.Sprintf("%x", id[:]) }

// Hello opens a session.
type Hello struct {
	Version  byte
	Sender   SenderID
	MaxBatch uint32 // largest uncompressed batch the sender will send
	Flags    uint32 // compressions the sender can use (FlagZstd)
	Name     string // the sending relay's output, for the receiver's logs
}

// Welcome accepts a session.
type Welcome struct {
	Receiver SenderID // the receiver's own id (its state directory's)
	// Mark: every sequence number of this sender up to Mark is handed off
	// by this receiver (or was acknowledged before): the sender drops the
	// batches it holds up to it without sending them again.
	Mark     uint64
	MaxBatch uint32 // largest uncompressed batch the receiver takes
	Name     string
}

// Refuse ends a session before it starts.
type Refuse struct {
	Version byte // the receiver's protocol version
	Code    byte
	Reason  string
}

// BatchHeader describes one batch of records: it covers the sequence
// numbers First..Last (records absent in between were acknowledged earlier
// or never existed) and holds Count records whose encoding is RawLen bytes
// before compression.
type BatchHeader struct {
	Flags  byte
	First  uint64
	Last   uint64
	Count  uint32
	RawLen uint32
}

// hdr writes the 4 common bytes.
func hdr(dst []byte, kind, flags byte) []byte { return append(dst, magic, Version, kind, flags) }

// kindOf checks the common bytes of a header frame and returns its kind.
// A frame of another version is an ErrVersion error carrying the version.
func kindOf(b []byte) (byte, error) {
	if len(b) < 4 || b[0] != magic {
		return 0, fmt.Errorf("not a link header frame (%d bytes): %w", len(b), ErrMalformed)
	}
	if b[1] != Version {
		return b[2], &VersionError{Theirs: b[1]}
	}
	return b[2], nil
}

// VersionError is a message of another protocol version.
type VersionError struct{ Theirs byte }

func (e *VersionError) Error() string {
	return fmt.Sprintf("link protocol version %d on the other end, this relay speaks version %d; run the same relay version at both ends", e.Theirs, Version)
}

// Unwrap makes errors.Is match ErrVersion.
func (e *VersionError) Unwrap() error { return ErrVersion }

// AppendHello encodes h as [header, name].
func appendHello(h Hello) [][]byte {
	b := hdr(make([]byte, 0, helloLen), kindHello, 0)
	b = append(b, h.Sender[:]...)
	b = binary.BigEndian.AppendUint32(b, h.MaxBatch)
	b = binary.BigEndian.AppendUint32(b, h.Flags)
	return [][]byte{b, []byte(h.Name)}
}

// ParseHello decodes a HELLO message. A HELLO of another version returns
// a *VersionError (and the version, so the receiver can say which).
func ParseHello(m [][]byte) (Hello, error) {
	if len(m) == 0 {
		return Hello{}, fmt.Errorf("empty message: %w", ErrMalformed)
	}
	k, err := kindOf(m[0])
	if err != nil {
		return Hello{Version: versionByte(m[0])}, err
	}
	if k != kindHello {
		return Hello{}, fmt.Errorf("expected HELLO, got kind %q: %w", k, ErrMalformed)
	}
	if len(m) != 2 || len(m[0]) != helloLen || m[0][3] != 0 || len(m[1]) > maxName {
		return Hello{}, fmt.Errorf("HELLO of %d frames, header %d bytes: %w", len(m), len(m[0]), ErrMalformed)
	}
	b := m[0]
	h := Hello{Version: b[1], MaxBatch: binary.BigEndian.Uint32(b[20:]), Flags: binary.BigEndian.Uint32(b[24:]), Name: string(m[1])}
	copy(h.Sender[:], b[4:20])
	if h.Sender == (SenderID{}) {
		return Hello{}, fmt.Errorf("HELLO with a zero sender id: %w", ErrMalformed)
	}
	return h, nil
}

func versionByte(b []byte) byte {
	if len(b) > 1 {
		return b[1]
	}
	return 0
}

func appendWelcome(w Welcome) [][]byte {
	b := hdr(make([]byte, 0, welcomeLen), kindWelcome, 0)
	b = append(b, w.Receiver[:]...)
	b = binary.BigEndian.AppendUint64(b, w.Mark)
	b = binary.BigEndian.AppendUint32(b, w.MaxBatch)
	return [][]byte{b, []byte(w.Name)}
}

func appendRefuse(code byte, reason string) [][]byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	return [][]byte{hdr(make([]byte, 0, refuseLen), kindRefuse, code), []byte(reason)}
}

// ParseAnswer decodes the receiver's answer to HELLO: a WELCOME, or a
// REFUSE (returned as a *RefusedError).
func ParseAnswer(m [][]byte) (Welcome, error) {
	if len(m) == 0 {
		return Welcome{}, fmt.Errorf("empty message: %w", ErrMalformed)
	}
	k, err := kindOf(m[0])
	if err != nil && k != kindRefuse {
		return Welcome{}, err
	}
	switch k {
	case kindRefuse:
		if len(m) != 2 || len(m[0]) != refuseLen || len(m[1]) > maxReason {
			return Welcome{}, fmt.Errorf("REFUSE of %d frames: %w", len(m), ErrMalformed)
		}
		return Welcome{}, &RefusedError{Refuse{Version: m[0][1], Code: m[0][3], Reason: string(m[1])}}
	case kindWelcome:
		if len(m) != 2 || len(m[0]) != welcomeLen || m[0][3] != 0 || len(m[1]) > maxName {
			return Welcome{}, fmt.Errorf("WELCOME of %d frames: %w", len(m), ErrMalformed)
		}
		b := m[0]
		w := Welcome{Mark: binary.BigEndian.Uint64(b[20:]), MaxBatch: binary.BigEndian.Uint32(b[28:]), Name: string(m[1])}
		copy(w.Receiver[:], b[4:20])
		return w, nil
	}
	return Welcome{}, fmt.Errorf("expected WELCOME, got kind %q: %w", k, ErrMalformed)
}

// RefusedError is a REFUSE from the receiver.
type RefusedError struct{ Refuse Refuse }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused by the receiver (its protocol version %d): %s", e.Refuse.Version, e.Refuse.Reason)
}

// Unwrap makes errors.Is match ErrRefused, and ErrVersion for a version
// refusal.
func (e *RefusedError) Unwrap() []error {
	if e.Refuse.Code == RefuseVersion {
		return []error{ErrRefused, ErrVersion}
	}
	return []error{ErrRefused}
}

// appendBatchHeader encodes a batch's header frame.
func appendBatchHeader(dst []byte, h BatchHeader) []byte {
	dst = hdr(dst, kindBatch, h.Flags)
	dst = binary.BigEndian.AppendUint64(dst, h.First)
	dst = binary.BigEndian.AppendUint64(dst, h.Last)
	dst = binary.BigEndian.AppendUint32(dst, h.Count)
	return binary.BigEndian.AppendUint32(dst, h.RawLen)
}

// ParseBatchHeader decodes a batch's header frame and checks it against
// maxRaw, the largest uncompressed batch this end takes.
func ParseBatchHeader(b []byte, maxRaw int) (BatchHeader, error) {
	k, err := kindOf(b)
	if err != nil {
		return BatchHeader{}, err
	}
	if k != kindBatch || len(b) != batchLen {
		return BatchHeader{}, fmt.Errorf("expected a batch header, got kind %q of %d bytes: %w", k, len(b), ErrMalformed)
	}
	h := BatchHeader{
		Flags:  b[3],
		First:  binary.BigEndian.Uint64(b[4:]),
		Last:   binary.BigEndian.Uint64(b[12:]),
		Count:  binary.BigEndian.Uint32(b[20:]),
		RawLen: binary.BigEndian.Uint32(b[24:]),
	}
	switch {
	case h.Flags&^batchFlags != 0:
		return h, fmt.Errorf("unknown batch flags %#x: %w", h.Flags, ErrMalformed)
	case h.First == 0 || h.Last < h.First:
		return h, fmt.Errorf("batch range %d..%d: %w", h.First, h.Last, ErrMalformed)
	case uint64(h.Count) > h.Last-h.First+1:
		return h, fmt.Errorf("batch of %d records in range %d..%d: %w", h.Count, h.First, h.Last, ErrMalformed)
	case int64(h.RawLen) > int64(maxRaw):
		return h, fmt.Errorf("batch of %d bytes, limit %d: %w", h.RawLen, maxRaw, ErrTooLarge)
	case int64(h.Count)*minRecord > int64(h.RawLen):
		return h, fmt.Errorf("batch of %d records in %d bytes: %w", h.Count, h.RawLen, ErrMalformed)
	}
	return h, nil
}

// appendAck encodes an ACK: everything of this sender up to upTo is
// handed off, durably.
func appendAck(dst []byte, upTo uint64) []byte {
	dst = hdr(dst, kindAck, 0)
	return binary.BigEndian.AppendUint64(dst, upTo)
}

// ParseAck decodes an ACK frame.
func ParseAck(b []byte) (uint64, error) {
	k, err := kindOf(b)
	if err != nil {
		return 0, err
	}
	if k != kindAck || len(b) != ackLen || b[3] != 0 {
		return 0, fmt.Errorf("expected an ACK, got kind %q of %d bytes: %w", k, len(b), ErrMalformed)
	}
	return binary.BigEndian.Uint64(b[4:]), nil
}
