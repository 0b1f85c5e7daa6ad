package zmq

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ZMTP frame flags.
const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
)

const (
	readBufSize  = 64 << 10 // one read syscall fills up to this much
	frameSlabLen = 512      // frame headers ([]byte) carved per allocation
)

// appendMsg encodes m as ZMTP data frames.
func appendMsg(dst []byte, m Msg) []byte {
	if len(m) == 0 {
		// ZeroMQ has no empty messages: send one empty frame.
		return append(dst, 0, 0)
	}
	last := len(m) - 1
	for i, f := range m {
		var fl byte
		if i < last {
			fl = flagMore
		}
		dst = appendHeader(dst, fl, len(f))
		dst = append(dst, f...)
	}
	return dst
}

func appendHeader(dst []byte, fl byte, size int) []byte {
	if size > 255 {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(size))
		dst = append(dst, fl|flagLong)
		return append(dst, b[:]...)
	}
	return append(dst, fl, byte(size))
}

// appendCmd encodes a ZMTP command frame: name length, name, data.
func appendCmd(dst []byte, name string, data []byte) []byte {
	dst = appendHeader(dst, flagCommand, 1+len(name)+len(data))
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	return append(dst, data...)
}

// FrameOverhead is what each frame of a message after its first costs
// against MaxMsgSize on top of its payload: a received frame costs a slice
// header (24 bytes) and its share of the slab whatever its size, so a
// flood of empty frames must use up the limit like payload does. The
// first frame is free, so a one-frame message may be MaxMsgSize bytes.
const FrameOverhead = 32

// MsgSize is what m counts against a receiver's MaxMsgSize: its payload
// plus FrameOverhead for every frame after the first. A sender that must
// not send what the peer will refuse (omzmq-bridge) checks it.
func MsgSize(m Msg) int64 {
	n := int64(0)
	for _, f := range m {
		n += int64(len(f))
	}
	if len(m) > 1 {
		n += int64(len(m)-1) * FrameOverhead
	}
	return n
}

// msgWireSize is the encoded size of m, for byte counters.
func msgWireSize(m Msg) int {
	n := 0
	for _, f := range m {
		n += len(f)
	}
	return n
}

// decoder reads ZMTP frames after the handshake. Frames up to readBufSize
// are carved out of the read buffer itself (no copy, no allocation per
// frame): a buffer is never written again once frames point into it, a
// fresh one is allocated when it is full. Larger frames get their own
// allocation, made only after the running total is checked against max.
// A message's cost is MsgSize (payload plus FrameOverhead per extra
// frame), and it has at most maxFrames frames: memory per message is
// bounded whatever the frames hold.
type decoder struct {
	r          io.Reader
	buf        []byte
	start, end int
	max        uint64
	maxFrames  int
	frames     [][]byte // slab the returned Msg slices are carved from
	// pinned is what the current slab keeps reachable: the read buffers
	// allocated and the frames given their own allocation since it was
	// started. Past maxPinned a new slab starts with the next message, so
	// frames the caller has finished with (commands, messages handed on)
	// are not kept alive by the slab's up to frameSlabLen references.
	pinned int
}

// maxPinned bounds the memory a decoder's current slab keeps reachable
// beyond the messages its caller still holds.
const maxPinned = 256 << 10

func newDecoder(r io.Reader, max int64) *decoder {
	return newDecoderFrames(r, max, DefaultMaxFrames)
}

// newDecoderFrames is newDecoder with a limit on frames per message.
func newDecoderFrames(r io.Reader, max int64, maxFrames int) *decoder {
	return &decoder{r: r, buf: make([]byte, readBufSize), max: uint64(max), maxFrames: maxFrames}
}

// fill makes at least n bytes available at buf[start:]. It reads as much
// as one Read returns, so later calls are usually served from memory.
func (d *decoder) fill(n int) error {
	if d.end-d.start >= n {
		return nil
	}
	if d.start+n > len(d.buf) {
		// Frames may point into the old buffer: start a new one.
		size := readBufSize
		if n > size {
			size = n
		}
		nb := make([]byte, size)
		d.pinned += size
		d.end = copy(nb, d.buf[d.start:d.end])
		d.start = 0
		d.buf = nb
	}
	for d.end-d.start < n {
		k, err := d.r.Read(d.buf[d.end:])
		d.end += k
		if err != nil {
			if d.end-d.start >= n {
				return nil
			}
			if err == io.EOF && d.end > d.start {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// next returns one message or one command (a single frame holding name
// length, name and data). io.EOF means the peer closed between messages.
func (d *decoder) next() (m Msg, cmd bool, err error) {
	var total uint64
	if d.pinned > maxPinned {
		d.frames, d.pinned = make([][]byte, 0, frameSlabLen), 0
	}
	first := len(d.frames)
	for {
		if err := d.fill(2); err != nil {
			return nil, false, err
		}
		fl := d.buf[d.start]
		size := uint64(d.buf[d.start+1])
		hdr := 2
		if fl&flagLong != 0 {
			if err := d.fill(9); err != nil {
				return nil, false, err
			}
			size = binary.BigEndian.Uint64(d.buf[d.start+1 : d.start+9])
			hdr = 9
		}
		isCmd := fl&flagCommand != 0
		if isCmd && (fl&flagMore != 0 || len(d.frames) != first) {
			return nil, false, fmt.Errorf("command inside a multipart message: %w", ErrMalformed)
		}
		cost := size
		if n := len(d.frames) - first; n > 0 {
			if n >= d.maxFrames {
				return nil, false, fmt.Errorf("more than %d frames in one message: %w", d.maxFrames, ErrOversize)
			}
			cost += FrameOverhead
		}
		if cost > d.max || total+cost > d.max {
			return nil, false, fmt.Errorf("frame of %d bytes after %d (limit %d, %d per extra frame): %w", size, total, d.max, FrameOverhead, ErrOversize)
		}
		total += cost
		d.start += hdr
		var f []byte
		if size <= readBufSize {
			n := int(size)
			if err := d.fill(n); err != nil {
				return nil, false, unexpected(err)
			}
			f = d.buf[d.start : d.start+n : d.start+n]
			d.start += n
		} else {
			f = make([]byte, size)
			d.pinned += int(size)
			c := copy(f, d.buf[d.start:d.end])
			d.start += c
			if _, err := io.ReadFull(d.r, f[c:]); err != nil {
				return nil, false, unexpected(err)
			}
		}
		if len(d.frames) == cap(d.frames) {
			// Move this message's frames so it stays contiguous.
			ns := make([][]byte, 0, frameSlabLen)
			ns = append(ns, d.frames[first:]...)
			d.frames = ns
			first = 0
		}
		d.frames = append(d.frames, f)
		if isCmd || fl&flagMore == 0 {
			m = d.frames[first:len(d.frames):len(d.frames)]
			return m, isCmd, nil
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// complete reports whether a whole message is already buffered, so a
// reader can hand over its batch before it would block.
func (d *decoder) complete() bool {
	b := d.buf[d.start:d.end]
	for {
		if len(b) < 2 {
			return false
		}
		fl := b[0]
		size := uint64(b[1])
		hdr := uint64(2)
		if fl&flagLong != 0 {
			if len(b) < 9 {
				return false
			}
			size = binary.BigEndian.Uint64(b[1:9])
			hdr = 9
		}
		if size > uint64(len(b))-hdr {
			return false
		}
		b = b[hdr+size:]
		if fl&flagMore == 0 || fl&flagCommand != 0 {
			return true
		}
	}
}

// parseCmd splits a command frame into its name and data.
func parseCmd(f []byte) (name string, data []byte, ok bool) {
	if len(f) < 1 || int(f[0]) > len(f)-1 {
		return "", nil, false
	}
	n := int(f[0])
	return string(f[1 : 1+n]), f[1+n:], true
}
