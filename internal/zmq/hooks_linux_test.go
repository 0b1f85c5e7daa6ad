//go:build linux

package zmq

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
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

// TestWritingPrecedesTheKernel: Writing reports messages before the
// kernel has the last byte of any of them (a mark made there is never
// late), every message Taken was reported by Writing and not taken back by
// Waiting since, and while a write waits for the peer exactly the taken
// messages are still reported (Waiting took back the rest), so a mark is
// neither late nor, while the write waits, early.
func TestWritingPrecedesTheKernel(t *testing.T) {
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
	idx := func(m Msg) int { i, _ := strconv.Atoi(string(m[0][:6])); return i }
	var read atomic.Int64 // bytes the reader consumed
	s := NewPush(Options{})
	defer s.Close()
	var mu sync.Mutex
	marked := map[int]bool{}
	taken := 0
	var errs []string
	s.SetWriteHooks(WriteHooks{
		Writing: func(got []Msg) {
			// Before the write(2): the kernel has not got the last byte
			// of any of these. What it has is at least what the sender
			// has unacknowledged, and at least what the reader read or
			// holds (the two overlap until the reader's ack arrives).
			in := max(sockQueue(t, w, siocoutq), int(read.Load())+sockQueue(t, r, siocinq))
			mu.Lock()
			defer mu.Unlock()
			for _, m := range got {
				i := idx(m)
				if ends[i] <= in {
					errs = append(errs, fmt.Sprintf("message %d reported by Writing with its last byte already in the kernel (%d ≤ %d)", i, ends[i], in))
				}
				marked[i] = true
			}
		},
		Waiting: func(got []Msg) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range got {
				delete(marked, idx(m))
			}
		},
		Taken: func(got []Msg) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range got {
				if i := idx(m); !marked[i] {
					errs = append(errs, fmt.Sprintf("message %d taken without being reported by Writing", i))
				}
				taken++
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- s.write(w, buf, ms, ends) }()
	state := func() (int, int) { mu.Lock(); defer mu.Unlock(); return taken, len(marked) }
	last, since := -1, time.Now()
	for time.Since(since) < 200*time.Millisecond {
		if k, _ := state(); k != last {
			last, since = k, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	tk, mk := state()
	if tk <= 0 || tk >= n {
		t.Fatalf("%d of %d taken while stalled: want some, not all", tk, n)
	}
	if mk != tk {
		t.Fatalf("stalled with %d messages taken, but %d still reported as maybe written: Waiting did not take back the rest", tk, mk)
	}
	go io.Copy(io.Discard, readCounter{r, &read})
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
	for _, e := range errs {
		t.Error(e)
	}
	if taken != n || len(marked) != n {
		t.Fatalf("%d taken, %d marked, want %d", taken, len(marked), n)
	}
}

// readCounter counts what its reader returned.
type readCounter struct {
	r net.Conn
	n *atomic.Int64
}

func (c readCounter) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}
