package tap

import (
	"bufio"
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
