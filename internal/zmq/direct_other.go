//go:build !unix

package zmq

import "syscall"

// Without a raw write, report a full buffer: every message is queued.
func rawWrite(fd uintptr, b []byte) (int, error) { return 0, syscall.EAGAIN }
