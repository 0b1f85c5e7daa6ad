//go:build unix

package zmq

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// writeRaw writes buf with its own write(2) calls on conn's descriptor,
// calling took with the bytes written so far after each one that wrote
// something, so a caller learns what the kernel has taken while the rest
// of a large write still waits for the peer's window. writing is called
// before the first write(2) and before the first one after each wait;
// waiting when a write(2) could not take the rest and the write waits. It
// waits for writability as conn.Write does (the runtime's poller,
// deadlines and Close apply). handled is false for a connection without a
// descriptor.
func writeRaw(conn net.Conn, buf []byte, writing func(), took func(off int), waiting func()) (handled bool, err error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	off := 0
	announced := false // writing reported what the next write(2) may take
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for off < len(buf) {
			if !announced {
				writing()
				announced = true
			}
			n, e := syscall.Write(int(fd), buf[off:])
			switch {
			case errors.Is(e, syscall.EINTR):
				continue
			case errors.Is(e, syscall.EAGAIN):
				waiting()
				announced = false
				return false // wait until writable, then called again
			case e != nil:
				werr = e
				return true
			case n <= 0:
				werr = syscall.EIO // write(2) returns 0 only for a 0-byte write
				return true
			}
			off += n
			took(off)
		}
		return true
	})
	if err == nil && werr != nil {
		err = &net.OpError{Op: "write", Net: conn.LocalAddr().Network(), Source: conn.LocalAddr(), Addr: conn.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	}
	return true, err
}
