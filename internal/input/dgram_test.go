package input

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

func TestUDP(t *testing.T) {
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"udp://127.0.0.1:0"}, MaxMessageSize: 1000})
	conn, err := net.Dial("udp", addrOf(t, s, "udp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 1000
	for i := range n {
		m := msg5424(fmt.Sprintf("u%d", i))
		if i%2 == 0 {
			m += "\n" // one trailing LF is stripped, as omfwd over UDP never sends one
		}
		mustWrite(t, conn, m)
	}
	mustWrite(t, conn, strings.Repeat("x", 1001)) // oversize
	mustWrite(t, conn, "<13>two LFs\n\n")
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("every datagram"), func() bool { return c.len() == n+1 })
	got := c.raws()
	for i := range n {
		if want := msg5424(fmt.Sprintf("u%d", i)); got[i] != want {
			t.Fatalf("datagram %d = %q, want %q", i, got[i], want)
		}
	}
	if got[n] != "<13>two LFs\n" {
		t.Errorf("only one LF is stripped: got %q", got[n])
	}
	for _, e := range c.snapshot() {
		if e.Peer != conn.LocalAddr().String() || e.Input != "test" {
			t.Fatalf("event peer %q input %q, want %q", e.Peer, e.Input, conn.LocalAddr())
		}
	}
	if st := s.Stats(); st.Oversize != 1 || st.Received != n+1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestUnixgram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.sock")
	// A stale socket file from a dead process is replaced.
	stale, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	stale.Close() // unixgram sockets leave their file behind
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}

	s, err := NewSyslog(SyslogConfig{Name: "ux", Listen: []string{"unix://" + path}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	if err := s.Start(c.handle); err != nil {
		t.Fatal(err)
	}
	// A second input on a live socket must not steal it.
	s2, _ := NewSyslog(SyslogConfig{Name: "ux2", Listen: []string{"unix://" + path}}, nil)
	if err := s2.Start(c.handle); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("second listener on a live socket: %v, want ErrSocketInUse", err)
	}

	conn, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// More datagrams than the socket queue holds: a unix datagram sender
	// blocks instead of losing them.
	const n = 5000
	for i := range n {
		mustWrite(t, conn, fmt.Sprintf("<13>Nov 22 05:00:00 host app: ux%d\n", i))
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("every datagram"), func() bool { return c.len() == n })
	for i, r := range c.raws() {
		if want := fmt.Sprintf("<13>Nov 22 05:00:00 host app: ux%d", i); r != want {
			t.Fatalf("datagram %d = %q, want %q", i, r, want)
		}
	}
	for _, e := range c.snapshot() {
		if e.Peer != "" || e.Input != "ux" {
			t.Fatalf("unnamed sender: peer %q input %q", e.Peer, e.Input)
		}
	}
	// A named sender shows as its path.
	from := filepath.Join(filepath.Dir(path), "sender.sock")
	named, err := net.DialUnix("unixgram", &net.UnixAddr{Name: from, Net: "unixgram"}, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	mustWrite(t, named, "<13>named")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("named datagram"), func() bool { return c.len() == n+1 })
	if e := c.snapshot()[n]; e.Peer != from {
		t.Errorf("named sender peer = %q, want %q", e.Peer, from)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Stop: %v", err)
	}

	// A regular file at the path is never removed.
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3, _ := NewSyslog(SyslogConfig{Name: "ux3", Listen: []string{"unix://" + path}}, nil)
	if err := s3.Start(c.handle); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("listener over a regular file: %v, want ErrSocketInUse", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("regular file was touched")
	}
}

// UDP has no flow control: while the handler is blocked the kernel drops
// what the receive buffer cannot hold, and the drops are counted.
func TestUDPKernelDrops(t *testing.T) {
	s, c := startSyslog(t, SyslogConfig{Listen: []string{"udp://127.0.0.1:0"}, ReadBuffer: 64 << 10})
	gate := c.block()
	conn, err := net.Dial("udp", addrOf(t, s, "udp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := []byte(msg5424(strings.Repeat("d", 500)))
	const n = 5000 // 2.5 MB into a 64 KiB buffer
	for range n {
		conn.Write(m)
	}
	close(gate)
	// Probe until one gets through: it carries the drop counter. Probes
	// sent while the buffer is still full may be dropped themselves.
	probes := 0
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("a probe datagram"), func() bool {
		if contains(c.raws(), "<13>probe") {
			return true
		}
		probes++
		mustWrite(t, conn, "<13>probe")
		return false
	})
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("every datagram received or counted as dropped"), func() bool {
		st := s.Stats()
		return st.Received+st.KernelDrops == uint64(n+probes)
	})
	if st := s.Stats(); st.KernelDrops == 0 {
		t.Fatalf("no kernel drops counted: %+v", st)
	}
}
