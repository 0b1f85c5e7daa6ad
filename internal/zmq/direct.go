package zmq

import (
	"syscall"
	"time"
)

// The direct path: a PUSH Send whose peer has nothing queued and an idle
// writer writes the message itself, with one non-blocking write, instead
// of queueing it and waking the writer goroutine. That saves a goroutine
// wake-up per hop, which is most of a round trip's cost in lockstep
// protocols (omprog's confirmMessages, acknowledged batches).

// directMax bounds what a sender encodes and writes itself; bigger
// messages gain nothing from skipping the queue and would cost a copy.
const directMax = 16 << 10

// directGap is how long a peer must have had no direct write before the
// next one: a sender that keeps coming back sooner streams, and its
// messages are better gathered by the writer into few large writes.
const directGap = 5 * time.Microsecond

// encSize is the encoded size of m (see appendMsg).
func encSize(m Msg) int {
	if len(m) == 0 {
		return 2
	}
	n := 0
	for _, f := range m {
		n += len(f) + 2
		if len(f) > 255 {
			n += 7
		}
	}
	return n
}

// direct writes a prefix of ms to the connection from the caller's
// goroutine if nothing else is queued for or being written to this peer,
// and returns how many messages it took (0: queue them as usual). It never
// waits for socket buffer room: what a full buffer does not take goes to
// the writer goroutine, which writes it before anything else.
func (p *peer) direct(ms []Msg) int {
	if p.raw == nil || !p.wmu.TryLock() {
		return 0
	}
	defer p.wmu.Unlock()
	if p.rest != nil || !p.q.idle() || p.closed() {
		return 0
	}
	now := time.Now()
	if now.Sub(p.lastDirect) < directGap {
		p.lastDirect = now
		return 0
	}
	p.lastDirect = now
	buf := p.dbuf[:0]
	k := 0
	for _, m := range ms {
		if len(buf)+encSize(m) > directMax {
			break
		}
		buf = appendMsg(buf, m)
		k++
	}
	p.dbuf = buf
	if k == 0 {
		return 0
	}
	n, err := p.writeNonblock(buf)
	if err != nil {
		// Nothing was written: the caller routes the messages elsewhere.
		p.close(err)
		return 0
	}
	if n == 0 {
		return 0 // socket buffer full: queue as usual
	}
	// Count the messages written whole; the writer counts the rest.
	var written, bytes int
	off := 0
	for _, m := range ms[:k] {
		if off+encSize(m) > n {
			break
		}
		off += encSize(m)
		written++
		bytes += msgWireSize(m)
	}
	p.msgsOut.Add(uint64(written))
	p.bytesOut.Add(uint64(bytes))
	p.s.inflight.Add(-int64(written))
	if n < len(buf) {
		p.rest = append([]byte(nil), buf[n:]...)
		p.restMsgs = k - written
		for _, m := range ms[written:k] {
			p.restBytes += msgWireSize(m)
		}
		p.q.signal()
	}
	return k
}

// writeNonblock makes one write attempt without waiting for buffer room.
// n == 0 with a nil error means the buffer was full.
func (p *peer) writeNonblock(b []byte) (int, error) {
	var n int
	var werr error
	err := p.raw.Write(func(fd uintptr) bool {
		n, werr = rawWrite(fd, b)
		return true // done either way: never wait for room
	})
	switch {
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN || werr == syscall.EINTR:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return max(n, 0), nil
}
