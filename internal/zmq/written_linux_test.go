//go:build linux

package zmq

import (
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// notSent returns how many bytes c's socket holds not yet sent
// (SIOCOUTQNSD): what TCP_CORK keeps back.
func notSent(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	const siocoutqnsd = 0x894B
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, siocoutqnsd, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		t.Fatalf("SIOCOUTQNSD: %v %v", err, errno)
	}
	return int(n)
}

// TestSendWrittenCorked: with SetWrittenCork the kernel holds direct
// writes until the uncork timer, which sends them without another write;
// and what a corked socket holds is sent when the socket closes, as when
// the process dies.
func TestSendWrittenCorked(t *testing.T) {
	push, pull := NewPush(Options{}), NewPull(Options{})
	closeAll(t, push, pull)
	push.SetWrittenCork(20 * time.Millisecond)
	if err := push.Dial(bound(t, pull)); err != nil {
		t.Fatal(err)
	}
	pe := onePeer(t, push)
	ctx := testCtx(t, 10*time.Second)
	for i := range 10 {
		if err := push.SendWritten(ctx, msgOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	pe.wmu.Lock()
	corked := pe.corked
	pe.wmu.Unlock()
	if !corked {
		t.Fatal("the TCP connection was not corked")
	}
	for i, g := range recvN(t, ctx, pull, 10) { // the uncork timer sends them
		if g != string(msgOf(i)[0]) {
			t.Fatalf("message %d: got %q", i, g)
		}
	}
	waitFor(t, 5*time.Second, "the socket uncorked", func() bool {
		pe.wmu.Lock()
		defer pe.wmu.Unlock()
		return !pe.corked
	})

	// Corked for an hour, then closed: the kernel sends what it holds.
	push.SetWrittenCork(time.Hour)
	for i := 10; i < 20; i++ {
		if err := push.SendWritten(ctx, msgOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel holds them: written to the socket, not sent.
	if n, want := notSent(t, pe.conn), 10*msgWireSize(msgOf(0))+10*2; n != want {
		t.Fatalf("%d bytes held unsent by the corked socket, want %d", n, want)
	}
	push.Close()
	for i, g := range recvN(t, ctx, pull, 10) {
		if g != string(msgOf(10 + i)[0]) {
			t.Fatalf("message %d after close: got %q", 10+i, g)
		}
	}
}
