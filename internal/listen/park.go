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

// parkPollMillis is how long the parking goroutine's epoll_wait blocks
// (-1: until an event). Close wakes it through the wake pipe; the timeout
// is only a safety net.
var parkPollMillis = 200

// wakeID is the epoll event id of the wake pipe (connections' ids start
// at 1).
const wakeID = 0

// startParking creates the epoll set, the pipe that wakes it on Close and
// its goroutine; without them (an error) every connection gets its
// goroutine at once. The caller holds l.mu.
func (l *Listener) startParking() {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		l.log.Warn("no parking of idle connections (each gets a goroutine at once)", "err", err)
		return
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(fd)
		l.log.Warn("no parking of idle connections (each gets a goroutine at once)", "err", err)
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeID}
	if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		syscall.Close(fd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		l.log.Warn("no parking of idle connections (each gets a goroutine at once)", "err", err)
		return
	}
	l.epfd, l.wakeR, l.wakeW = fd, p[0], p[1]
	l.wg.Add(1)
	go l.parkLoop()
}

// wakeParkingLocked makes the parking goroutine's epoll_wait return (at
// Close: it then sees l.closed and ends). The caller holds l.mu.
func (l *Listener) wakeParkingLocked() {
	if l.wakeW >= 0 {
		syscall.Write(l.wakeW, []byte{1})
	}
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
	defer func() {
		// Under l.mu: Close writes to the wake pipe under it.
		l.mu.Lock()
		syscall.Close(l.epfd)
		syscall.Close(l.wakeR)
		syscall.Close(l.wakeW)
		l.epfd, l.wakeR, l.wakeW = -1, -1, -1
		l.mu.Unlock()
	}()
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.epfd, events, parkPollMillis)
		select {
		case <-l.stop:
			return
		default:
		}
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return
		}
		if err != nil {
			if !errors.Is(err, syscall.EINTR) {
				l.acceptLog.Log(l.log, slog.LevelWarn, "epoll_wait of parked connections failed", "err", err)
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		for _, ev := range events[:n] {
			if id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32; id != wakeID {
				l.unpark(id)
			}
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
