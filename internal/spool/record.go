package spool

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

// A frame on disk:
//
//	len     u32 LE   length of payload
//	crc     u32 LE   CRC-32C (Castagnoli) of the 4 length bytes, then the payload
//	payload:
//	  seq       u64 LE
//	  received  i64 LE   Unix nanoseconds; 0: zero time
//	  stream    uvarint length, bytes
//	  input     uvarint length, bytes
//	  peer      uvarint length, bytes
//	  meta      uvarint length, bytes
//	  raw       the rest
//
// The CRC covers the length, so a corrupted length is caught before it is
// trusted beyond its sanity bounds.
const (
	frameHeader = 8
	// minPayload is seq, received and four empty length prefixes.
	minPayload = 8 + 8 + 4
	minFrame   = frameHeader + minPayload
	// MaxRecordBytes is the largest encoded record a spool takes.
	MaxRecordBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// frameSize is the encoded size of r, header included.
func frameSize(r *Record) int {
	return frameHeader + 16 +
		uvarintLen(len(r.Stream)) + len(r.Stream) +
		uvarintLen(len(r.Input)) + len(r.Input) +
		uvarintLen(len(r.Peer)) + len(r.Peer) +
		uvarintLen(len(r.Meta)) + len(r.Meta) +
		len(r.Raw)
}

// appendFrame appends r's frame to dst.
func appendFrame(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, r.Seq)
	var ns int64
	if !r.Received.IsZero() {
		ns = r.Received.UnixNano()
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(ns))
	dst = binary.AppendUvarint(dst, uint64(len(r.Stream)))
	dst = append(dst, r.Stream...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Input)))
	dst = append(dst, r.Input...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Peer)))
	dst = append(dst, r.Peer...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Meta)))
	dst = append(dst, r.Meta...)
	dst = append(dst, r.Raw...)
	n := len(dst) - start - frameHeader
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	crc := crc32.Update(0, castagnoli, dst[start:start+4])
	crc = crc32.Update(crc, castagnoli, dst[start+frameHeader:])
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst
}

// frameView is a decoded frame whose byte fields alias the buffer it was
// decoded from.
type frameView struct {
	seq      uint64
	received int64
	stream   []byte
	input    []byte
	peer     []byte
	meta     []byte
	raw      []byte
}

// frameLen returns the payload length a frame header at b announces, and
// whether it is within bounds (b must hold at least 4 bytes).
func frameLen(b []byte) (int, bool) {
	n := binary.LittleEndian.Uint32(b)
	return int(n), n >= minPayload && n <= MaxRecordBytes
}

// decodeFrame decodes the frame at the start of b, which must hold all of
// it (frameHeader + frameLen bytes). It reports false for a frame that
// fails its CRC or whose fields overrun it.
func decodeFrame(b []byte, v *frameView) bool {
	n, ok := frameLen(b)
	if !ok || len(b) < frameHeader+n {
		return false
	}
	crc := crc32.Update(0, castagnoli, b[:4])
	crc = crc32.Update(crc, castagnoli, b[frameHeader:frameHeader+n])
	if crc != binary.LittleEndian.Uint32(b[4:]) {
		return false
	}
	p := b[frameHeader : frameHeader+n]
	v.seq = binary.LittleEndian.Uint64(p)
	v.received = int64(binary.LittleEndian.Uint64(p[8:]))
	p = p[16:]
	for _, f := range []*[]byte{&v.stream, &v.input, &v.peer, &v.meta} {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return false
		}
		*f = p[k : k+int(l)]
		p = p[k+int(l):]
	}
	v.raw = p
	return true
}

// peekSeq returns the seq of a frame at b without checking its CRC (b
// holds at least frameHeader+8 bytes).
func peekSeq(b []byte) uint64 { return binary.LittleEndian.Uint64(b[frameHeader:]) }

// receivedTime converts a frame's received field.
func receivedTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// recordFrom copies a frame view into a record. Its byte fields are carved
// out of *slab (grown as needed) and strings are shared with prev when
// equal, so a run of records from one input costs few allocations.
func recordFrom(v *frameView, slab *[]byte, prev *Record) Record {
	r := Record{Seq: v.seq, Received: receivedTime(v.received)}
	str := func(b []byte, p string) string {
		if string(b) == p { // no allocation for the comparison
			return p
		}
		return string(b)
	}
	if prev != nil {
		r.Stream, r.Input, r.Peer = str(v.stream, prev.Stream), str(v.input, prev.Input), str(v.peer, prev.Peer)
	} else {
		r.Stream, r.Input, r.Peer = string(v.stream), string(v.input), string(v.peer)
	}
	need := len(v.raw) + len(v.meta)
	if cap(*slab)-len(*slab) < need {
		*slab = make([]byte, 0, max(need, 256<<10))
	}
	s := *slab
	start := len(s)
	s = append(s, v.raw...)
	r.Raw = s[start:len(s):len(s)]
	if len(v.meta) > 0 {
		start = len(s)
		s = append(s, v.meta...)
		r.Meta = s[start:len(s):len(s)]
	}
	*slab = s
	return r
}

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
