package zmq

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
)

// writeBufSize is how much encoded data a writer gathers before a write
// syscall; it writes earlier whenever its queue runs empty.
const writeBufSize = 64 << 10

// peer is one connected ZMTP peer: a reader goroutine, a writer goroutine
// with its bounded queue, and an optional heartbeat goroutine.
type peer struct {
	s        *socket
	conn     net.Conn
	endpoint string // the Listen/Dial endpoint it came through
	remote   string
	since    time.Time
	q        *outq
	done     chan struct{}
	exited   chan struct{} // all its goroutines have returned
	pipe     bool          // q belongs to a Dial endpoint and outlives the peer
	// acceptedSlot: the peer holds one of the socket's MaxPeers slots.
	acceptedSlot bool
	once         sync.Once
	err          error // why it closed; written once before done closes
	refs         atomic.Int32

	// wmu is held by the writer from taking its queue until the write
	// returns; Push.SendWritten writes directly only while it holds it.
	wmu  sync.Mutex
	dbuf []byte // SendWritten's encoding buffer, under wmu
	// SendWritten's corking (Push.SetWrittenCork), under wmu.
	corked, corkArmed bool
	corkTimer         *time.Timer

	// curve boxes every frame after a CURVE handshake; nil for NULL and
	// PLAIN, which cost one nil check per message for it.
	curve *curveConn

	subs atomic.Pointer[subSet] // PUB: what this subscriber wants
	// draft is subs as the reader changes it, published by publishSubs
	// (readLoop only).
	draft      *subSet
	draftDirty bool
	pong       []byte // the PONG being encoded, by readLoop

	msgsIn, msgsOut, bytesIn, bytesOut atomic.Uint64
	cmdsIn                             atomic.Uint64
	ttl                                atomic.Int64  // from the peer's PINGs: silence allowed, ns
	drops                              atomic.Uint64 // PUB: queue full
}

func newPeer(s *socket, conn net.Conn, ep string, pipe *outq) *peer {
	q := pipe
	if q == nil {
		q = newOutq(s.opts.HWM)
	}
	p := &peer{
		s:        s,
		conn:     conn,
		endpoint: ep,
		remote:   conn.RemoteAddr().String(),
		since:    time.Now(),
		q:        q,
		pipe:     pipe != nil,
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	p.subs.Store(&subSet{})
	return p
}

// close ends the peer once; the goroutines notice and clean up.
func (p *peer) close(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.done)
		_ = p.conn.Close()
		p.s.unlist(p)
	})
}

func (p *peer) closed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// release runs when one of the peer's goroutines exits; the last one
// folds the peer's counters into the socket's.
func (p *peer) release() {
	if p.refs.Add(-1) == 0 {
		p.s.retire(p)
	}
}

func (p *peer) start(heartbeat bool) {
	n := int32(2)
	if heartbeat {
		n = 3
	}
	p.refs.Store(n)
	go p.readLoop()
	go p.writeLoop()
	if heartbeat {
		go p.heartbeatLoop()
	}
}

func (p *peer) readLoop() {
	defer p.release()
	// A NULL or PLAIN peer's decoder stays on this goroutine's stack; a
	// CURVE peer's belongs to its curveReader, which sees MESSAGE frames
	// and checks the size and frame count of the messages inside them.
	var d *decoder
	var cr *curveReader
	if p.curve != nil {
		cr = newCurveReader(newDecoder(ttlReader{p}, p.s.opts.MaxMsgSize+curveFrameExtra), p.curve, p.s.opts.MaxMsgSize, p.s.opts.MaxFrames)
	} else {
		d = newDecoderFrames(ttlReader{p}, p.s.opts.MaxMsgSize, p.s.opts.MaxFrames)
	}
	var batch []Msg
	if p.s.deliver != nil {
		batch = make([]Msg, 0, 256)
	}
	for {
		var m Msg
		var isCmd bool
		var err error
		if cr != nil {
			m, isCmd, err = cr.next()
		} else {
			m, isCmd, err = d.next()
		}
		if err != nil {
			if p.s.countCurve(err) {
				p.s.log.Warn("peer disconnected", "endpoint", p.endpoint, "remote", p.remote, "err", err)
			}
			if errors.Is(err, ErrOversize) {
				p.s.stat.oversize.Add(1)
				p.s.log.Warn("peer disconnected: message over MaxMsgSize", "endpoint", p.endpoint, "remote", p.remote, "err", err)
			}
			if len(batch) > 0 {
				p.countIn(batch)
				p.s.deliver(p, batch)
			}
			if errors.Is(err, io.EOF) || p.closed() {
				err = nil
			}
			p.close(err)
			return
		}
		switch {
		case isCmd:
			p.cmdsIn.Add(1)
			p.command(m[0])
		case p.s.deliver == nil:
			p.msgsIn.Add(1)
			p.bytesIn.Add(uint64(msgWireSize(m)))
			p.s.handle(p, m)
		default:
			batch = append(batch, m)
		}
		if p.draftDirty && !complete(d, cr) {
			p.publishSubs() // a burst of subscriptions costs one copy
		}
		// Hand the batch over before the next read could block.
		if len(batch) > 0 && (len(batch) == cap(batch) || !complete(d, cr)) {
			p.countIn(batch)
			ok := p.s.deliver(p, batch)
			clear(batch)
			batch = batch[:0]
			if !ok {
				p.close(nil)
				return
			}
		}
	}
}

// complete reports whether the next message is already buffered.
func complete(d *decoder, cr *curveReader) bool {
	if cr != nil {
		return cr.complete()
	}
	return d.complete()
}

// appendMsg encodes m for this peer: boxed after a CURVE handshake.
func (p *peer) appendMsg(dst []byte, m Msg) []byte {
	if p.curve != nil {
		return p.curve.appendMsg(dst, m)
	}
	return appendMsg(dst, m)
}

// ttlReader reads from the peer's connection under the deadline its
// PINGs asked for, so a peer that announced heartbeats and went silent is
// dropped even when we send no PINGs ourselves.
type ttlReader struct{ p *peer }

func (r ttlReader) Read(b []byte) (int, error) {
	if ttl := r.p.ttl.Load(); ttl > 0 {
		_ = r.p.conn.SetReadDeadline(time.Now().Add(time.Duration(ttl)))
	}
	n, err := r.p.conn.Read(b)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.p.s.stat.hbTimeouts.Add(1)
		err = fmt.Errorf("no traffic within the peer's heartbeat TTL: %w", ErrHeartbeatTimeout)
	}
	return n, err
}

func (p *peer) countIn(batch []Msg) {
	var b uint64
	for _, m := range batch {
		b += uint64(msgWireSize(m))
	}
	p.msgsIn.Add(uint64(len(batch)))
	p.bytesIn.Add(b)
}

// command handles a ZMTP command after the handshake.
func (p *peer) command(f []byte) {
	name, data, ok := parseCmd(f)
	if !ok {
		return
	}
	switch name {
	case zmq4.CmdPing:
		// PING: 2-byte TTL, then up to 16 bytes of context to echo.
		if len(data) >= 2 {
			// As libzmq: the pinger tells us how long it may stay silent
			// before we should consider it dead (deciseconds, 0: no limit).
			p.ttl.Store(int64(uint16(data[0])<<8|uint16(data[1])) * int64(100*time.Millisecond))
			ctx := data[2:]
			if len(ctx) > 16 {
				ctx = ctx[:16]
			}
			p.pong = appendCmd(p.pong[:0], zmq4.CmdPong, ctx) // pushCtrl copies it
			p.q.pushCtrl(ctrlPong, p.pong)
		}
	case zmq4.CmdSubscribe, zmq4.CmdCancel:
		if p.s.typ == zmq4.Pub {
			p.subscribe(name == zmq4.CmdSubscribe, data)
		}
	case zmq4.CmdError:
		p.close(ErrPeerError)
	}
}

func (p *peer) writeLoop() {
	defer p.release()
	buf := make([]byte, 0, writeBufSize)
	var spare, msgs []qmsg
	var hm []Msg   // the messages of a write, for the write hooks
	var ends []int // where each of them ends in buf
	var ctrl []byte
	for {
		p.wmu.Lock()
		msgs, ctrl = p.q.take(spare, ctrl)
		spare = nil
		if len(msgs) == 0 && len(ctrl) == 0 {
			p.wmu.Unlock()
			spare = msgs // the queue now holds the old spare
			select {
			case <-p.q.wake:
				continue
			case <-p.done:
				p.s.orphaned(p, nil)
				return
			}
		}
		if len(msgs) > 0 {
			p.s.roomFreed()
		}
		if p.curve != nil {
			buf = p.curve.appendCmds(buf[:0], ctrl)
		} else {
			buf = append(buf[:0], ctrl...)
		}
		ends = ends[:0]
		start := 0 // msgs[start:i+1] are encoded in buf, not yet written
		var bytes uint64
		for i, qm := range msgs {
			buf = p.appendMsg(buf, qm.m)
			ends = append(ends, len(buf))
			bytes += uint64(msgWireSize(qm.m))
			if len(buf) >= writeBufSize || i == len(msgs)-1 {
				hm = p.s.beforeWrite(msgs[start:i+1], hm)
				if err := p.s.write(p.conn, buf, hm, ends); err != nil {
					p.s.afterWrite(hm, err)
					p.s.lost(msgs[start : i+1])
					p.close(err)
					p.wmu.Unlock()
					clear(msgs[:i+1])
					p.s.orphaned(p, msgs[i+1:])
					return
				}
				p.s.afterWrite(hm, nil)
				p.msgsOut.Add(uint64(i + 1 - start))
				p.bytesOut.Add(bytes)
				p.s.settle(int64(i + 1 - start))
				settleTracked(msgs[start:i+1], nil)
				start, bytes = i+1, 0
				buf, ends = buf[:0], ends[:0]
			}
		}
		if len(buf) > 0 { // only commands
			if _, err := p.conn.Write(buf); err != nil {
				p.close(err)
				p.wmu.Unlock()
				p.s.orphaned(p, nil)
				return
			}
		}
		p.wmu.Unlock()
		if cap(buf) > 4*writeBufSize {
			buf = make([]byte, 0, writeBufSize) // don't keep a huge message's buffer
		}
		clear(msgs)
		spare = msgs[:0]
	}
}

// heartbeatLoop sends PINGs and closes the peer once nothing at all has
// arrived for HeartbeatTimeout.
func (p *peer) heartbeatLoop() {
	defer p.release()
	ivl, timeout := p.s.opts.HeartbeatIvl, p.s.opts.HeartbeatTimeout
	t := time.NewTicker(ivl)
	defer t.Stop()
	ttl := uint16(min(timeout/(100*time.Millisecond), 0xffff))
	ping := appendCmd(nil, zmq4.CmdPing, []byte{byte(ttl >> 8), byte(ttl)})
	last, lastChange := uint64(0), time.Now()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			seen := p.msgsIn.Load() + p.cmdsIn.Load()
			if seen != last {
				last, lastChange = seen, now
			} else if now.Sub(lastChange) > timeout {
				p.s.stat.hbTimeouts.Add(1)
				p.close(ErrHeartbeatTimeout)
				return
			}
			p.q.pushCtrl(ctrlPing, ping)
		}
	}
}
