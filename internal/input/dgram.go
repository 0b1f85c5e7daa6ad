package input

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// setupDgram enlarges the socket's receive buffer: a datagram socket has
// no flow control, so the buffer is all that rides out a burst. As root
// SO_RCVBUFFORCE goes past net.core.rmem_max; otherwise the kernel caps it.
func (s *Syslog) setupDgram(c interface {
	syscall.Conn
	SetReadBuffer(int) error
}, udp bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var forced bool
	raw.Control(func(fd uintptr) {
		forced = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, s.cfg.ReadBuffer) == nil
		if udp {
			// The kernel then reports its drop counter with every datagram.
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
		}
	})
	if !forced {
		c.SetReadBuffer(s.cfg.ReadBuffer)
	}
}

// dgramReader reads datagrams straight off the socket, as many as are
// queued (up to a batch), without waiting once it has one.
type dgramReader struct {
	s     *Syslog
	buf   []byte
	oob   []byte
	slab  []byte
	batch []*event.Event
	bytes int
	err   error

	lastFrom syscall.Sockaddr
	lastPeer string
	drops    uint32 // kernel drop counter as last reported
	fn       func(fd uintptr) bool
}

const slabSize = 64 << 10

// dgramBuf sizes the read buffer: the message limit plus its trailing LF,
// but no more than the largest datagram the socket type can carry.
func dgramBuf(pc net.PacketConn, maxMsg int) int {
	n := maxMsg + 1
	if _, ok := pc.(*net.UDPConn); ok {
		return min(n, 1<<16)
	}
	return min(n, 4<<20) // unix datagrams are bounded by the sender's SO_SNDBUF
}

func (s *Syslog) serveDgram(pc net.PacketConn) {
	defer s.wg.Done()
	raw, err := pc.(syscall.Conn).SyscallConn()
	if err != nil {
		s.log.Error("datagram socket unusable", "addr", pc.LocalAddr().String(), "err", err)
		return
	}
	d := &dgramReader{
		s:     s,
		buf:   make([]byte, dgramBuf(pc, s.cfg.MaxMessageSize)),
		oob:   make([]byte, syscall.CmsgSpace(4)),
		batch: make([]*event.Event, 0, MaxBatch),
	}
	d.fn = d.read
	for {
		err := raw.Read(d.fn)
		deliver(s.h, s.cfg.Name, &s.stats, d.batch)
		clear(d.batch)
		d.batch, d.bytes = d.batch[:0], 0
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("datagram socket failed", "addr", pc.LocalAddr().String(), "err", err)
			}
			return
		}
		if d.err != nil {
			s.stats.readErrors.Add(1)
			s.warn.warn("datagram read failed", "addr", pc.LocalAddr().String(), "err", d.err)
			d.err = nil
		}
	}
}

// read is the RawConn callback: false asks the runtime to wait until the
// socket is readable, which it does only while the batch is empty.
func (d *dgramReader) read(fd uintptr) bool {
	for len(d.batch) < MaxBatch && d.bytes < maxBatchBytes {
		n, oobn, _, from, err := syscall.Recvmsg(int(fd), d.buf, d.oob, syscall.MSG_TRUNC)
		switch err {
		case nil:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return len(d.batch) > 0
		default:
			d.err = os.NewSyscallError("recvmsg", err)
			return true
		}
		if oobn > 0 {
			d.countDrops(d.oob[:oobn])
		}
		// MSG_TRUNC: n is the datagram's real length, even past the buffer.
		if n > len(d.buf) {
			d.oversize(n, from)
			continue
		}
		msg := d.buf[:n]
		if n > 0 && msg[n-1] == '\n' {
			msg = msg[:n-1]
		}
		if len(msg) > d.s.cfg.MaxMessageSize {
			d.oversize(n, from)
			continue
		}
		if len(msg) == 0 {
			continue
		}
		e := event.New(d.carve(msg))
		e.Peer = d.peer(from)
		d.batch = append(d.batch, e)
		d.bytes += len(msg)
	}
	return true
}

func (d *dgramReader) oversize(n int, from syscall.Sockaddr) {
	d.s.stats.oversize.Add(1)
	d.s.warn.warn("oversize datagram discarded", "peer", d.peer(from), "size", n, "max_message_size", d.s.cfg.MaxMessageSize)
}

// carve copies msg into a shared slab: one allocation per many datagrams.
// The slab is never reused, so events may outlive the batch.
func (d *dgramReader) carve(msg []byte) []byte {
	if len(msg) > len(d.slab) {
		d.slab = make([]byte, max(slabSize, len(msg)))
	}
	out := d.slab[:len(msg):len(msg)]
	copy(out, msg)
	d.slab = d.slab[len(msg):]
	return out
}

// peer formats the sender's address, reusing the last string for a run
// of datagrams from the same sender.
func (d *dgramReader) peer(from syscall.Sockaddr) string {
	if d.lastFrom != nil && sameSockaddr(d.lastFrom, from) {
		return d.lastPeer
	}
	var p string
	switch a := from.(type) {
	case *syscall.SockaddrInet4:
		p = net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *syscall.SockaddrInet6:
		p = net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *syscall.SockaddrUnix:
		p = a.Name
	}
	d.lastFrom, d.lastPeer = from, p
	return p
}

func sameSockaddr(a, b syscall.Sockaddr) bool {
	switch a := a.(type) {
	case *syscall.SockaddrInet4:
		b, ok := b.(*syscall.SockaddrInet4)
		return ok && a.Port == b.Port && a.Addr == b.Addr
	case *syscall.SockaddrInet6:
		b, ok := b.(*syscall.SockaddrInet6)
		return ok && a.Port == b.Port && a.Addr == b.Addr && a.ZoneId == b.ZoneId
	case *syscall.SockaddrUnix:
		b, ok := b.(*syscall.SockaddrUnix)
		return ok && a.Name == b.Name
	}
	return false
}

// countDrops reads the SO_RXQ_OVFL control message: the socket's running
// total of datagrams dropped for want of buffer space.
func (d *dgramReader) countDrops(oob []byte) {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafePointer(oob))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_RXQ_OVFL && l >= syscall.CmsgLen(4) {
			total := binary.NativeEndian.Uint32(oob[syscall.CmsgLen(0):])
			if delta := total - d.drops; delta > 0 {
				d.s.stats.kernelDrops.Add(uint64(delta))
				d.drops = total
			}
		}
		oob = oob[min(syscall.CmsgSpace(l-syscall.CmsgLen(0)), len(oob)):]
	}
}
