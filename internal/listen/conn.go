package listen

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is one accepted connection, handed to the protocol's Handler. It is
// a net.Conn; reads and writes go through TLS when the listener serves
// TLS (the handshake is done before the Handler is called).
//
// The goroutine that reads must also be the one that calls Frame and
// OnWait: their state is kept in plain fields and published to the
// listener's sweeper only when Read is about to wait for the peer, so a
// frame costs no atomic operation, lock or system call.
type Conn struct {
	l    *Listener
	raw  net.Conn  // as accepted
	tc   *tls.Conn // nil for plain TCP
	side rawSide   // raw with our accounting; what TLS reads from
	peer string
	src  netip.Addr

	// Guarded by l.mu.
	state  connState
	idx    int     // position in l.live while live
	parkID uint64  // in l.parked while not 0
	seq    uint64  // accept order (set once in addLocked)
	h      Handler // for the goroutine that serves it once unparked

	// Owned by the reading goroutine.
	pubFramed bool  // framed has been stored
	partial   bool  // bytes arrived since the last Frame: a frame is incomplete
	pubPart   bool  // partialAt holds a start
	waited    int64 // waiting time (clock units) since the incomplete frame began
	pending   func() bool
	flush     func()
	rc        syscall.RawConn // for the non-blocking read; nil without a descriptor
	rbuf      []byte
	rn        int
	rerrno    error
	rfn       func(fd uintptr) bool

	// Shared with the sweeper and the accept loop.
	start      atomic.Int64 // clock at accept; at the end of a TLS handshake
	waitSince  atomic.Int64 // clock when Read began waiting for the peer; 0: not waiting
	partialAt  atomic.Int64 // while waiting: start of the incomplete frame in waiting time; 0: none
	writeSince atomic.Int64 // clock when a pending Write began; 0: none
	framed     atomic.Bool  // a complete frame has arrived
	// srcN is its source's counts (set once, before anyone else sees c);
	// unframedHeld: it still counts in srcN.unframed.
	srcN         *source
	unframedHeld atomic.Bool
	handshaking  atomic.Bool   // in the TLS handshake
	reason       atomic.Uint32 // why the listener closed it; 0 while it has not
	drainUntil   atomic.Int64  // graceful close: clock at which it is closed for good
}

type connState uint8

const (
	stLive     connState = iota // counted against the limits
	stDraining                  // closed gracefully, still read for CloseGrace; not counted
	stGone                      // closed, or evicted; not counted
)

// rawSide is the accepted connection as the TLS layer (or, for plain TCP,
// Conn.Read) sees it: reads and writes pass through the accounting.
type rawSide struct {
	net.Conn
	c *Conn
}

func (r *rawSide) Read(p []byte) (int, error)  { return r.c.readRaw(p) }
func (r *rawSide) Write(p []byte) (int, error) { return r.c.writeRaw(p) }

func newConn(l *Listener, raw net.Conn, now int64) *Conn {
	c := &Conn{l: l, raw: raw, peer: raw.RemoteAddr().String(), idx: -1}
	c.side = rawSide{Conn: raw, c: c}
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		c.src = ta.AddrPort().Addr().Unmap()
	}
	if sc, ok := raw.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	c.rfn = c.rawRead
	c.start.Store(now)
	return c
}

// Frame tells the listener that a complete frame arrived. It costs a
// branch and a plain store (one atomic store on the first frame): call it
// for every frame, from the goroutine that reads.
func (c *Conn) Frame() {
	if !c.pubFramed {
		c.pubFramed = true
		c.framed.Store(true)
		c.releaseUnframed()
	}
	c.partial = false
}

// releaseUnframed stops counting c among its source's connections
// without a frame (once: at its first frame, or when it goes).
func (c *Conn) releaseUnframed() {
	if c.unframedHeld.CompareAndSwap(true, false) {
		c.srcN.unframed.Add(-1)
	}
}

// OnWait sets what Read does before it waits for the peer: when pending
// reports work held back (a partial batch, unsent answers), Read first
// tries a non-blocking read and, if no data is ready, calls flush. So
// nothing waits on the network, and a busy connection is read without a
// wait. Time spent in flush (backpressure) never counts against the
// peer's deadlines. Call it before the first Read, from the reading
// goroutine.
func (c *Conn) OnWait(pending func() bool, flush func()) {
	c.pending, c.flush = pending, flush
}

// Peer is the remote address as a string, computed once.
func (c *Conn) Peer() string { return c.peer }

// Source is the remote IP address (the per-source limit's key); invalid
// for connections that are not TCP.
func (c *Conn) Source() netip.Addr { return c.src }

// TLS returns the TLS connection state, or nil for plain TCP.
func (c *Conn) TLS() *tls.ConnectionState {
	if c.tc == nil {
		return nil
	}
	st := c.tc.ConnectionState()
	return &st
}

// Reason is why the listener closed the connection, or None.
func (c *Conn) Reason() Reason { return Reason(c.reason.Load()) }

// Read reads from the connection (decrypted for TLS).
func (c *Conn) Read(p []byte) (int, error) {
	if c.tc == nil {
		return c.readRaw(p)
	}
	n, err := c.tc.Read(p)
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

// Write writes to the connection (encrypted for TLS). A Write the peer
// does not take within WriteTimeout makes the listener close the
// connection.
func (c *Conn) Write(p []byte) (int, error) {
	if c.tc == nil {
		return c.writeRaw(p)
	}
	n, err := c.tc.Write(p)
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

// Close closes the connection. The listener also closes it when the
// Handler returns.
func (c *Conn) Close() error { return c.raw.Close() }

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline implements net.Conn; the listener's own deadlines apply too.
func (c *Conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// WaitData blocks until the peer has sent something, or the connection
// ends, without taking a buffer; the deadlines apply while it waits. Call
// it before allocating a connection's buffers, so that a connection that
// never sends (an idle flood) costs a goroutine and no buffers. A TLS
// connection returns at once: its handshake has read already.
func (c *Conn) WaitData() error {
	if c.tc != nil || c.rc == nil {
		return nil
	}
	var perr error
	c.waitSince.Store(c.l.clock.Load())
	err := c.rc.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until readable
			}
			perr = e // nil: data, or the peer's EOF (Read reports it)
			return true
		}
	})
	c.waitSince.Store(0)
	if err == nil {
		err = perr
	}
	if err != nil {
		return c.mapErr(err)
	}
	return nil
}

// inputPending reports whether the peer's bytes (or its FIN) wait in the
// socket, unread: then the connection is not waiting for its peer, though
// its reader, not yet scheduled, has not cleared its stamp. The sweeper
// asks before closing for a deadline that counts waiting for the peer.
func (c *Conn) inputPending() bool {
	if c.rc == nil {
		return false
	}
	pending := false
	c.rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EINTR {
				continue
			}
			pending = err == nil // a byte, or the peer's FIN (0 bytes)
			return
		}
	})
	return pending
}

// rawRead is the non-blocking read, run by RawConn.Read on the descriptor.
func (c *Conn) rawRead(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.rbuf)
		if err == syscall.EINTR {
			continue
		}
		c.rn, c.rerrno = n, err
		return true // never wait here: EAGAIN is an answer
	}
}

// readRaw reads from the socket. Before it waits for the peer it runs the
// OnWait hook and publishes the connection's state to the sweeper: that
// is the only place the reader touches shared memory, once per wait, not
// per frame.
func (c *Conn) readRaw(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.pending != nil && c.pending() {
		if c.rc != nil {
			c.rbuf = p
			err := c.rc.Read(c.rfn)
			c.rbuf = nil
			// err != nil: closed, or a deadline; take the slow path,
			// which reports the first and resets the second.
			if err == nil {
				switch {
				case c.rerrno == nil && c.rn > 0:
					c.arrived(0)
					return c.rn, nil
				case c.rerrno == nil:
					return 0, c.mapErr(io.EOF)
				case c.rerrno != syscall.EAGAIN:
					return 0, c.mapErr(c.rerrno)
				}
			}
		}
		c.flush()
	}
	now := c.l.clock.Load()
	switch {
	case c.partial:
		c.partialAt.Store(now - c.waited)
		c.pubPart = true
	case c.pubPart:
		c.partialAt.Store(0)
		c.pubPart = false
	}
	c.waitSince.Store(now)
	n, err := c.raw.Read(p)
	c.waitSince.Store(0)
	if n > 0 {
		c.arrived(c.l.clock.Load() - now)
	}
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

// arrived accounts for bytes read after waiting for them: the first bytes
// after a complete frame start a new one, whose clock runs only while the
// reader waits for more of it.
func (c *Conn) arrived(waited int64) {
	if c.partial {
		c.waited += waited
		return
	}
	c.partial = true
	c.waited = 0
}

func (c *Conn) writeRaw(p []byte) (int, error) {
	mine := c.writeSince.CompareAndSwap(0, c.l.clock.Load())
	n, err := c.raw.Write(p)
	if mine {
		c.writeSince.Store(0)
	}
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

// mapErr turns the error of a connection the listener closed into a
// CloseError.
func (c *Conn) mapErr(err error) error {
	r := c.Reason()
	if r == None || errors.Is(err, ErrClosed) {
		return err
	}
	if r.graceful() && errors.Is(err, io.EOF) {
		return err // the peer answered our FIN: a clean end
	}
	return &CloseError{Reason: r, Err: err}
}
