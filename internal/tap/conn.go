package tap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// bufferedConn batches a websocket's frames into few write syscalls: the
// writer flushes when its queue runs empty. gorilla/websocket writes every
// frame straight to the connection, which costs a syscall per event.
type bufferedConn struct {
	net.Conn
	mu sync.Mutex // gorilla's control frames (pongs, close) come from other goroutines
	w  *bufio.Writer
}

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}

// writeText writes one unmasked, unfragmented text frame (RFC 6455 5.2)
// under the lock, so it cannot interleave with gorilla's control frames.
// Data frames bypass gorilla: its per-frame write deadline and writer
// allocation cost more than the frame itself.
func (c *bufferedConn) writeText(p []byte) error {
	var hdr [10]byte
	hdr[0] = 0x81 // FIN, text
	n := 2
	switch {
	case len(p) < 126:
		hdr[1] = byte(len(p))
	case len(p) <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(len(p)))
		n = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(len(p)))
		n = 10
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write(hdr[:n]) // a bufio.Writer's error sticks: the second Write reports it
	_, err := c.w.Write(p)
	return err
}

// Flush writes out what is buffered.
func (c *bufferedConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

// bufferedHijacker hands the websocket upgrader a bufferedConn instead of
// the raw connection.
type bufferedHijacker struct {
	http.ResponseWriter
	conn *bufferedConn
}

func (h *bufferedHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("tap: %T cannot hijack the connection", h.ResponseWriter)
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &bufferedConn{Conn: nc, w: bufio.NewWriterSize(nc, 64<<10)}
	return h.conn, brw, nil
}
