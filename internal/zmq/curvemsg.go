package zmq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// Flags inside a MESSAGE box (libzmq's msg_t flags).
const (
	boxMore    = 0x01
	boxCommand = 0x02
)

const curveMsgName = "\x07MESSAGE"

// appendFrame boxes one frame as a MESSAGE, a data frame without flags as
// libzmq writes it, and appends it to dst. The frame is copied once, into
// dst, and encrypted there. Callers serialise (the peer's write lock), so
// short nonces go out in the order they were drawn.
func (cc *curveConn) appendFrame(dst []byte, flags byte, data []byte) []byte {
	dst = appendHeader(dst, 0, curveFrameExtra+len(data))
	cc.send.nonce++
	n := cc.send.nonce
	dst = append(dst, curveMsgName...)
	dst = binary.BigEndian.AppendUint64(dst, n)
	tag := len(dst)
	dst = append(dst, make([]byte, boxOverhead)...)
	dst = append(dst, flags)
	dst = append(dst, data...)
	cc.send.seal(n, dst[tag:tag+boxOverhead], dst[tag+boxOverhead:])
	return dst
}

// appendMsg boxes m frame by frame, as appendMsg encodes it in the clear.
func (cc *curveConn) appendMsg(dst []byte, m Msg) []byte {
	if len(m) == 0 {
		return cc.appendFrame(dst, 0, nil)
	}
	last := len(m) - 1
	for i, f := range m {
		var fl byte
		if i < last {
			fl = boxMore
		}
		dst = cc.appendFrame(dst, fl, f)
	}
	return dst
}

// appendCmds boxes command frames already encoded in the clear (the
// peer's pending PING and PONG, from appendCmd).
func (cc *curveConn) appendCmds(dst, cmds []byte) []byte {
	for len(cmds) >= 2 {
		size, hdr := uint64(cmds[1]), 2
		if cmds[0]&flagLong != 0 {
			size, hdr = binary.BigEndian.Uint64(cmds[1:9]), 9
		}
		dst = cc.appendFrame(dst, boxCommand, cmds[hdr:hdr+int(size)])
		cmds = cmds[hdr+int(size):]
	}
	return dst
}

// curveReader turns the MESSAGE frames the decoder reads back into
// messages and commands: it checks each short nonce, opens each box in
// place (the returned frames point into the read buffer, as on a NULL
// connection) and joins frames by their boxed more flag.
type curveReader struct {
	d         *decoder
	cc        *curveConn
	max       uint64
	maxFrames int
	frames    [][]byte // slab multi-frame messages are carved from
	first     int      // start of the message being joined in frames
	joined    bool     // frames[first:] holds part of a message
	total     uint64   // the joined message's cost, as the decoder counts it
	pinned    int      // bytes the slab's frames keep reachable (see decoder.pinned)

	// A message (or error) complete() already read, for next().
	ready    Msg
	readyCmd bool
	err      error
}

// newCurveReader reads messages of at most max bytes (counted as the
// decoder counts them: payload plus FrameOverhead per extra frame) and
// maxFrames frames from the MESSAGE frames d reads.
func newCurveReader(d *decoder, cc *curveConn, max int64, maxFrames int) *curveReader {
	return &curveReader{d: d, cc: cc, max: uint64(max), maxFrames: maxFrames}
}

// next returns the next message or command, like decoder.next.
func (r *curveReader) next() (Msg, bool, error) {
	if r.ready != nil || r.err != nil {
		m, cmd, err := r.ready, r.readyCmd, r.err
		r.ready, r.err = nil, nil
		return m, cmd, err
	}
	for {
		m, cmd, done, err := r.step()
		if err != nil || done {
			return m, cmd, err
		}
	}
}

// complete reports whether next can return without reading from the
// connection. Boxed flags are only known once a box is open, so it opens
// the buffered frames (work next would do anyway) until a message is
// whole or the buffer runs out.
func (r *curveReader) complete() bool {
	for r.ready == nil && r.err == nil {
		if !r.d.complete() {
			return false
		}
		m, cmd, done, err := r.step()
		switch {
		case err != nil:
			r.err = err
		case done:
			r.ready, r.readyCmd = m, cmd
		}
	}
	return true
}

// step reads and opens one MESSAGE; done reports that m is a whole
// message or command.
func (r *curveReader) step() (m Msg, cmd, done bool, err error) {
	w, _, err := r.d.next()
	if err != nil {
		return nil, false, false, err
	}
	if len(w) != 1 {
		return nil, false, false, curveErr(CurveMalformed, "a %d-frame ZMTP message on a CURVE connection; every frame must be its own MESSAGE", len(w))
	}
	f := w[0]
	if len(f) < curveFrameExtra || string(f[:8]) != curveMsgName {
		return nil, false, false, curveErr(CurveMalformed, "a %d-byte frame that is not a MESSAGE on a CURVE connection", len(f))
	}
	n := binary.BigEndian.Uint64(f[8:16])
	if n <= r.cc.recv.nonce {
		return nil, false, false, curveErr(CurveBadNonce, "MESSAGE short nonce %d not above the last accepted %d (replayed or reordered)", n, r.cc.recv.nonce)
	}
	body := f[curveMsgHeader+boxOverhead:]
	if !r.cc.recv.open(n, f[curveMsgHeader:curveMsgHeader+boxOverhead], body) {
		return nil, false, false, curveErr(CurveBadBox, "MESSAGE box %d does not open (forged or damaged)", n)
	}
	r.cc.recv.nonce = n
	flags, data := body[0], body[1:len(body):len(body)]
	if flags&boxCommand != 0 {
		if r.joined || flags&boxMore != 0 {
			return nil, false, false, curveErr(CurveMalformed, "command inside a multipart message")
		}
		w[0] = data
		return w, true, true, nil
	}
	cost := uint64(len(data))
	if r.joined {
		if len(r.frames)-r.first >= r.maxFrames {
			return nil, false, false, fmt.Errorf("more than %d frames in one CURVE message: %w", r.maxFrames, ErrOversize)
		}
		cost += FrameOverhead
	}
	r.total += cost
	if r.total > r.max {
		return nil, false, false, fmt.Errorf("CURVE message of at least %d bytes (limit %d, %d per extra frame): %w", r.total, r.max, FrameOverhead, ErrOversize)
	}
	if !r.joined && flags&boxMore == 0 {
		// One frame: reuse the decoder's frame slot.
		r.total = 0
		w[0] = data
		return w, false, true, nil
	}
	if !r.joined {
		if r.pinned > maxPinned {
			// As the decoder: don't let the slab keep old buffers alive.
			r.frames, r.pinned = make([][]byte, 0, frameSlabLen), 0
		}
		r.joined, r.first = true, len(r.frames)
	}
	r.pinned += len(data)
	if len(r.frames) == cap(r.frames) {
		ns := make([][]byte, 0, frameSlabLen)
		ns = append(ns, r.frames[r.first:]...)
		r.frames, r.first = ns, 0
	}
	r.frames = append(r.frames, data)
	if flags&boxMore != 0 {
		return nil, false, false, nil
	}
	m = r.frames[r.first:len(r.frames):len(r.frames)]
	r.joined, r.total = false, 0
	return m, false, true, nil
}

// isReset reports a connection reset by the peer.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
