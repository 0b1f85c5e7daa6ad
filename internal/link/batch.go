package link

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// A batch's payload, before compression, is its records one after the
// other:
//
//	flags     1 byte: 0x01 stream, 0x02 input, 0x04 peer as the previous record's
//	seq       uvarint: seq minus the previous record's (the first: minus First-1); at least 1
//	received  varint: Unix ns minus the previous record's (the first: minus 0); 0 ns is the zero time
//	stream    uvarint length, bytes (unless flag 0x01)
//	input     uvarint length, bytes (unless flag 0x02)
//	peer      uvarint length, bytes (unless flag 0x04)
//	raw       uvarint length, bytes
//
// Runs of events from one input and stream cost a few bytes each beyond
// their raw bytes; zstd then takes what repeats inside the raw messages.
const (
	sameStream = 0x01
	sameInput  = 0x02
	samePeer   = 0x04
	knownSame  = sameStream | sameInput | samePeer
	// minRecord is the smallest encoded record: flags, seq, received, raw length.
	minRecord = 4
	// maxField bounds stream, input and peer.
	maxField = 4096
)

// Record is one event as the link carries it.
type Record struct {
	Seq      uint64
	Raw      []byte
	Stream   string
	Input    string
	Peer     string
	Received time.Time
}

// recordSize bounds the encoded size of r.
func recordSize(r *spool.Record) int {
	return 1 + 10 + 10 + 3*binary.MaxVarintLen32 + len(r.Stream) + len(r.Input) + len(r.Peer) + binary.MaxVarintLen32 + len(r.Raw)
}

// encodeRecords appends the payload of recs to dst. prev is the seq before
// the first record (the batch's First-1).
func encodeRecords(dst []byte, prev uint64, recs []spool.Record) []byte {
	var ps, pi, pp string
	var pt int64
	for i := range recs {
		r := &recs[i]
		var fl byte
		if i > 0 {
			if r.Stream == ps {
				fl |= sameStream
			}
			if r.Input == pi {
				fl |= sameInput
			}
			if r.Peer == pp {
				fl |= samePeer
			}
		}
		dst = append(dst, fl)
		dst = binary.AppendUvarint(dst, r.Seq-prev)
		var t int64
		if !r.Received.IsZero() {
			t = r.Received.UnixNano()
		}
		dst = binary.AppendVarint(dst, t-pt)
		if fl&sameStream == 0 {
			dst = appendString(dst, r.Stream)
		}
		if fl&sameInput == 0 {
			dst = appendString(dst, r.Input)
		}
		if fl&samePeer == 0 {
			dst = appendString(dst, r.Peer)
		}
		dst = binary.AppendUvarint(dst, uint64(len(r.Raw)))
		dst = append(dst, r.Raw...)
		prev, pt, ps, pi, pp = r.Seq, t, r.Stream, r.Input, r.Peer
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	if len(s) > maxField {
		s = s[:maxField]
	}
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendPayload appends the payload of one batch of recs as a sender makes
// it: the records' encoding, compressed as comp says. For benchmarks that
// measure what the link's encoding and compression cost on its events.
func AppendPayload(dst []byte, recs []spool.Record, comp Compression) []byte {
	if len(recs) == 0 {
		return dst
	}
	raw := encodeRecords(make([]byte, 0, 64+sizeOf(recs)), recs[0].Seq-1, recs)
	return Compress(dst, raw, comp)
}

// Compress appends raw compressed as comp says (zstd at the sender's
// level and settings) to dst.
func Compress(dst, raw []byte, comp Compression) []byte {
	switch comp {
	case CompressZstd:
		return compress(dst, raw)
	case CompressS2:
		return compressS2(dst, raw)
	}
	return append(dst, raw...)
}

// DecodeRecords decodes a batch's uncompressed payload, which must hold
// exactly h.Count records with strictly increasing seqs within
// h.First..h.Last. Raw slices alias p; strings are shared between records
// that repeat them. each is called per record, in order.
func DecodeRecords(p []byte, h BatchHeader, each func(r *Record)) error {
	prev := h.First - 1
	var pt int64
	var r Record
	for n := uint32(0); n < h.Count; n++ {
		if len(p) < minRecord {
			return fmt.Errorf("record %d: truncated: %w", n, ErrMalformed)
		}
		fl := p[0]
		p = p[1:]
		if fl&^knownSame != 0 || (n == 0 && fl != 0) {
			return fmt.Errorf("record %d: flags %#x: %w", n, fl, ErrMalformed)
		}
		d, k := binary.Uvarint(p)
		if k <= 0 || d == 0 || d > h.Last-prev {
			return fmt.Errorf("record %d: seq delta out of range: %w", n, ErrMalformed)
		}
		p = p[k:]
		prev += d
		dt, k := binary.Varint(p)
		if k <= 0 {
			return fmt.Errorf("record %d: received: %w", n, ErrMalformed)
		}
		p = p[k:]
		pt += dt
		var err error
		if fl&sameStream == 0 {
			if r.Stream, p, err = readString(p, r.Stream); err != nil {
				return fmt.Errorf("record %d: stream: %w", n, err)
			}
		}
		if fl&sameInput == 0 {
			if r.Input, p, err = readString(p, r.Input); err != nil {
				return fmt.Errorf("record %d: input: %w", n, err)
			}
		}
		if fl&samePeer == 0 {
			if r.Peer, p, err = readString(p, r.Peer); err != nil {
				return fmt.Errorf("record %d: peer: %w", n, err)
			}
		}
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return fmt.Errorf("record %d: raw length: %w", n, ErrMalformed)
		}
		r.Raw = p[k : k+int(l) : k+int(l)]
		p = p[k+int(l):]
		r.Seq = prev
		if pt == 0 {
			r.Received = time.Time{}
		} else {
			r.Received = time.Unix(0, pt)
		}
		each(&r)
	}
	if len(p) != 0 {
		return fmt.Errorf("%d bytes after the last record: %w", len(p), ErrMalformed)
	}
	return nil
}

// readString reads a length-prefixed string; equal to prev, it returns
// prev (no allocation).
func readString(p []byte, prev string) (string, []byte, error) {
	l, k := binary.Uvarint(p)
	if k <= 0 || l > maxField || l > uint64(len(p)-k) {
		return "", nil, ErrMalformed
	}
	b := p[k : k+int(l)]
	if string(b) == prev {
		return prev, p[k+int(l):], nil
	}
	return string(b), p[k+int(l):], nil
}

// The zstd encoders and decoders are pooled: one per goroutine in use.
// Level: SpeedFastest compressed realistic RFC 5424 traffic as well as
// SpeedDefault, at the same speed (BenchmarkCompression; see doc.go).
var (
	encPool = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true))
		if err != nil {
			panic(err)
		}
		return e
	}}
	decPool = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBatchLimit+(1<<20)),
			zstd.WithDecoderMaxWindow(MaxBatchLimit+(1<<20)))
		if err != nil {
			panic(err)
		}
		return d
	}}
)

// compress appends the zstd compression of src to dst.
func compress(dst, src []byte) []byte {
	e := encPool.Get().(*zstd.Encoder)
	dst = e.EncodeAll(src, dst)
	encPool.Put(e)
	return dst
}

// decompress decodes a zstd payload that must expand to exactly rawLen
// bytes (checked against the frame before decoding, and after).
func decompress(src []byte, rawLen int) ([]byte, error) {
	var fh zstd.Header
	if err := fh.Decode(src); err != nil {
		return nil, fmt.Errorf("zstd header: %v: %w", err, ErrMalformed)
	}
	if fh.HasFCS && fh.FrameContentSize != uint64(rawLen) {
		return nil, fmt.Errorf("zstd frame of %d bytes, header says %d: %w", fh.FrameContentSize, rawLen, ErrMalformed)
	}
	d := decPool.Get().(*zstd.Decoder)
	out, err := d.DecodeAll(src, make([]byte, 0, rawLen))
	decPool.Put(d)
	if err != nil {
		return nil, fmt.Errorf("zstd: %v: %w", err, ErrMalformed)
	}
	if len(out) != rawLen {
		return nil, fmt.Errorf("zstd payload of %d bytes, header says %d: %w", len(out), rawLen, ErrMalformed)
	}
	return out, nil
}

// Batch payloads are megabytes kept until acknowledged, and the pipeline's
// encodings megabytes kept until compressed; pools save allocating (and
// zeroing) them per batch. Encodings and payloads have pools of their own
// (their sizes differ by the compression ratio); a buffer much larger
// than asked is dropped rather than kept.
var payloadPool, rawPool sync.Pool

// getBuf returns an empty buffer of capacity at least n from pool.
func getBuf(pool *sync.Pool, n int) []byte {
	if p, ok := pool.Get().(*[]byte); ok {
		if b := *p; cap(b) >= n && cap(b) <= 2*n+(64<<10) {
			return b[:0]
		}
	}
	return make([]byte, 0, n)
}

// putBuf gives b back to pool.
func putBuf(pool *sync.Pool, b []byte) {
	if cap(b) >= 4<<10 {
		pool.Put(&b)
	}
}

func s2MaxLen(n int) int { return s2.MaxEncodedLen(n) }

// compressS2 appends the s2 compression of src to dst.
func compressS2(dst, src []byte) []byte {
	n := s2.MaxEncodedLen(len(src))
	if cap(dst)-len(dst) < n {
		nd := make([]byte, len(dst), len(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	out := s2.Encode(dst[len(dst):len(dst)+n], src)
	return dst[:len(dst)+len(out)]
}

// decompressS2 decodes an s2 payload that must expand to exactly rawLen.
func decompressS2(src []byte, rawLen int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil || n != rawLen {
		return nil, fmt.Errorf("s2 payload of %d bytes, header says %d (%v): %w", n, rawLen, err, ErrMalformed)
	}
	out, err := s2.Decode(make([]byte, rawLen), src)
	if err != nil || len(out) != rawLen {
		return nil, fmt.Errorf("s2: %v: %w", err, ErrMalformed)
	}
	return out, nil
}

// DecodePayload turns a batch's payload frame into its uncompressed
// records' encoding, checking its length against the header.
func DecodePayload(h BatchHeader, payload []byte) ([]byte, error) {
	switch {
	case h.Flags&FlagZstd != 0 && h.Flags&FlagS2 != 0:
		return nil, fmt.Errorf("batch flags %#x name two compressions: %w", h.Flags, ErrMalformed)
	case h.Flags&FlagZstd != 0:
		return decompress(payload, int(h.RawLen))
	case h.Flags&FlagS2 != 0:
		return decompressS2(payload, int(h.RawLen))
	}
	if len(payload) != int(h.RawLen) {
		return nil, fmt.Errorf("payload of %d bytes, header says %d: %w", len(payload), h.RawLen, ErrMalformed)
	}
	return payload, nil
}
