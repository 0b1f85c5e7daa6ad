//go:build linux

package zmq

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

const (
	siocinq  = 0x541B // FIONREAD: bytes received, not yet read
	siocoutq = 0x5411 // TIOCOUTQ: bytes written, not yet acknowledged by the peer
)

// sockQueue returns the byte count ioctl req reports for c's socket.
func sockQueue(t *testing.T, c net.Conn, req uintptr) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		t.Fatalf("ioctl %#x: %v %v", req, err, errno)
	}
	return int(n)
}

// TestTakenFollowsTheKernel writes 1000 messages (1 MiB) over a TCP
// connection with small buffers whose reader does not read: the write
// blocks part-way, and Taken has reported exactly the messages whose last
// byte the kernel accepted, a prefix, no more; as the reader reads, the
// rest is reported, each message once, in order, before the write returns.
func TestTakenFollowsTheKernel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := <-acc
	if r == nil {
		t.Fatal("accept failed")
	}
	defer r.Close()
	w.(*net.TCPConn).SetWriteBuffer(64 << 10)
	r.(*net.TCPConn).SetReadBuffer(64 << 10)

	const n, size = 1000, 1024
	var buf []byte
	ms := make([]Msg, n)
	ends := make([]int, n)
	for i := range ms {
		ms[i] = Msg{fmt.Appendf(nil, "%06d%s", i, bytes.Repeat([]byte{'x'}, size-6))}
		buf = appendMsg(buf, ms[i])
		ends[i] = len(buf)
	}
	s := NewPush(Options{})
	defer s.Close()
	var mu sync.Mutex
	var taken []int // indexes, in the order reported
	s.SetWriteHooks(WriteHooks{Taken: func(got []Msg) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			i, _ := strconv.Atoi(string(m[0][:6]))
			taken = append(taken, i)
		}
	}})
	done := make(chan error, 1)
	go func() { done <- s.write(w, buf, ms, ends) }()
	nTaken := func() int { mu.Lock(); defer mu.Unlock(); return len(taken) }
	// Stalled: the count stops moving while the write has not returned.
	last, since := -1, time.Now()
	for time.Since(since) < 200*time.Millisecond {
		if k := nTaken(); k != last {
			last, since = k, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the write returned (%v) though nothing was read", err)
	default:
	}
	if last <= 0 || last >= n {
		t.Fatalf("%d of %d taken while stalled: want some, not all", last, n)
	}
	// The kernel took every byte of the messages reported, and not the
	// last byte of the next one: nothing was read, so what it took is what
	// the sender's queue and the receiver's hold.
	inKernel := sockQueue(t, w, siocoutq) + sockQueue(t, r, siocinq)
	if inKernel < ends[last-1] || inKernel >= ends[last] {
		t.Fatalf("%d messages reported taken (ending at byte %d, the next at %d), the kernel took %d bytes", last, ends[last-1], ends[last], inKernel)
	}
	t.Logf("stalled with %d of %d messages taken: the kernel took %d bytes, message %d ends at %d", last, n, inKernel, last, ends[last])
	// Now read the rest: every message reported once, in order.
	go io.Copy(io.Discard, r)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not finish once read")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(taken) != n {
		t.Fatalf("%d reported, want %d", len(taken), n)
	}
	for i, k := range taken {
		if k != i {
			t.Fatalf("report %d is message %d", i, k)
		}
	}
}
