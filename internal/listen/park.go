package listen

import (
	"errors"
	"log/slog"
	"syscall"
	"time"
)

// Parking: a new connection gets no goroutine until its peer sends. It
// waits in an epoll set of the listener's own (one goroutine for all of
// them), costing its descriptor and a Conn, no stack: an idle flood of
// thousands of connections then adds no goroutines for the garbage
// collector to scan at every cycle (measured: with 1,000 idle goroutines,
// stack scanning took 18% of the CPU of a connection carrying events).
// When the peer sends (or closes), the connection is handed to a goroutine
// that runs the TLS handshake and the Handler. The deadlines apply to a
// parked connection as to any other waiting for its peer.

// startParking creates the epoll set and its goroutine; without it (an
// error) every connection gets its goroutine at once.
func (l *Listener) startParking() {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		l.log.Warn("no parking of idle connections (each gets a goroutine at once)", "err", err)
		return
	}
	l.epfd = fd
	l.wg.Add(1)
	go l.parkLoop()
}

// parkLocked registers c to be served once its peer sends; false: serve it
// now. The caller holds l.mu.
func (l *Listener) parkLocked(c *Conn, h Handler) bool {
	if l.epfd < 0 || c.rc == nil {
		return false
	}
	l.nextID++
	id := l.nextID
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
	var cerr error
	if err := c.rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil || cerr != nil {
		return false
	}
	c.parkID, c.h = id, h
	l.parked[id] = c
	// Parked is waiting for the peer, since now.
	c.waitSince.Store(c.start.Load())
	return true
}

// parkLoop hands parked connections whose peer sent (or closed) to a
// goroutine each.
func (l *Listener) parkLoop() {
	defer l.wg.Done()
	defer syscall.Close(l.epfd)
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.epfd, events, 200)
		select {
		case <-l.stop:
			return
		default:
		}
		if err != nil {
			if !errors.Is(err, syscall.EINTR) {
				l.acceptLog.Log(l.log, slog.LevelWarn, "epoll_wait of parked connections failed", "err", err)
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		for _, ev := range events[:n] {
			l.unpark(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
		}
	}
}

// unpark serves the parked connection id, unless it was closed meanwhile.
func (l *Listener) unpark(id uint64) {
	l.mu.Lock()
	c := l.parked[id]
	if c == nil {
		l.mu.Unlock()
		return
	}
	delete(l.parked, id)
	c.parkID = 0
	c.rc.Control(func(fd uintptr) { syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
	l.mu.Unlock()
	c.waitSince.Store(0)
	go l.serve(c, c.h)
}

// unparkForClose takes c out of the parking set if it is there: then no
// goroutine will serve it, and the caller, closing it, must release it.
func (l *Listener) unparkForClose(c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.parkID == 0 {
		return false
	}
	delete(l.parked, c.parkID)
	c.parkID = 0
	return true
}
