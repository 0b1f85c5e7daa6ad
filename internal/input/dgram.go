package input

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"unsafe"

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
	s      *Syslog
	buf    []byte
	oob    []byte
	slab   []byte
	events event.Slab // 64 events per allocation
	batch  []*event.Event
	bytes  int
	err    error

	// recvmsg arguments, kept here so a datagram costs no allocation
	hdr  syscall.Msghdr
	iov  syscall.Iovec
	name syscall.RawSockaddrAny

	lastName []byte // raw address of the last sender, and its string
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
			s.warn.Warn("datagram read failed", "addr", pc.LocalAddr().String(), "err", d.err)
			d.err = nil
		}
	}
}

// recv reads one datagram with recvmsg(2) into d.buf, the sender into
// d.name and control messages into d.oob. With MSG_TRUNC, n is the
// datagram's real length even when it did not fit.
func (d *dgramReader) recv(fd uintptr) (n int, err error) {
	d.iov.Base = &d.buf[0]
	d.iov.SetLen(len(d.buf))
	d.hdr.Name = (*byte)(unsafe.Pointer(&d.name))
	d.hdr.Namelen = syscall.SizeofSockaddrAny
	d.hdr.Iov = &d.iov
	d.hdr.Iovlen = 1
	d.hdr.Control = &d.oob[0]
	d.hdr.SetControllen(len(d.oob))
	r, _, e := syscall.Syscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&d.hdr)), syscall.MSG_TRUNC)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// read is the RawConn callback: false asks the runtime to wait until the
// socket is readable, which it does only while the batch is empty.
func (d *dgramReader) read(fd uintptr) bool {
	for len(d.batch) < MaxBatch && d.bytes < maxBatchBytes {
		n, err := d.recv(fd)
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
		if oobn := int(d.hdr.Controllen); oobn > 0 {
			d.countDrops(d.oob[:oobn])
		}
		if n > len(d.buf) {
			d.oversize(n)
			continue
		}
		msg := d.buf[:n]
		if n > 0 && msg[n-1] == '\n' {
			msg = msg[:n-1]
		}
		if len(msg) > d.s.cfg.MaxMessageSize {
			d.oversize(n)
			continue
		}
		if len(msg) == 0 {
			continue
		}
		e := d.events.New(d.carve(msg))
		e.Peer = d.peer()
		d.batch = append(d.batch, e)
		d.bytes += len(msg)
	}
	return true
}

func (d *dgramReader) oversize(n int) {
	d.s.stats.oversize.Add(1)
	d.s.warn.Warn("oversize datagram discarded", "peer", d.peer(), "size", n, "max_message_size", d.s.cfg.MaxMessageSize)
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
func (d *dgramReader) peer() string {
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&d.name)), min(int(d.hdr.Namelen), syscall.SizeofSockaddrAny))
	if d.lastName != nil && bytes.Equal(raw, d.lastName) {
		return d.lastPeer
	}
	var p string
	switch d.name.Addr.Family {
	case syscall.AF_INET:
		a := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&d.name))
		p = net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(int(ntohs(a.Port))))
	case syscall.AF_INET6:
		a := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&d.name))
		p = net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(int(ntohs(a.Port))))
	case syscall.AF_UNIX:
		a := (*syscall.RawSockaddrUnix)(unsafe.Pointer(&d.name))
		path := unsafe.Slice((*byte)(unsafe.Pointer(&a.Path[0])), len(a.Path))
		if l := len(raw) - 2; l > 0 && l <= len(path) { // unnamed senders have no path
			path = path[:l]
			if i := bytes.IndexByte(path, 0); i >= 0 {
				path = path[:i]
			}
			p = string(path)
		}
	}
	d.lastName = append(d.lastName[:0], raw...)
	d.lastPeer = p
	return p
}

// ntohs converts a port from network byte order as the kernel stores it.
func ntohs(port uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&port))
	return uint16(b[0])<<8 | uint16(b[1])
}

// countDrops reads the SO_RXQ_OVFL control message: the socket's running
// total of datagrams dropped for want of buffer space.
func (d *dgramReader) countDrops(oob []byte) {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
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
