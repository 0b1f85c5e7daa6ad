//go:build linux

package zmq

import (
	"net"
	"syscall"
)

// setCork sets TCP_CORK on a TCP connection: while set, the kernel holds
// partial frames (up to 200 ms) instead of sending each write at once.
// Data it holds is in the socket already and is sent on close, also when
// the process is killed. It reports false for other connections.
func setCork(c net.Conn, on bool) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	}); err != nil {
		return false
	}
	return serr == nil
}
