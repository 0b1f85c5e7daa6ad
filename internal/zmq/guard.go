package zmq

import (
	"encoding/binary"
	"fmt"
	"net"
)

// guardConn follows the ZMTP byte stream that zmq4.Open reads during the
// handshake (64-byte greeting, then frames) and fails before handing over
// the last byte of a frame size above limit. zmq4 allocates whatever size a
// peer claims, so without this a single header would exhaust memory.
// It passes through only bytes zmq4 asked for, so nothing is read ahead.
type guardConn struct {
	net.Conn
	limit  uint64
	greet  int    // greeting bytes still to pass
	body   uint64 // body bytes of the current frame still to pass
	hdr    [9]byte
	hn     int // header bytes seen
	hneed  int // header length once the flags byte is known
	failed error
}

func newGuardConn(c net.Conn, limit uint64) *guardConn {
	return &guardConn{Conn: c, limit: limit, greet: 64}
}

func (g *guardConn) Read(p []byte) (int, error) {
	if g.failed != nil {
		return 0, g.failed
	}
	n, err := g.Conn.Read(p)
	for i := 0; i < n; {
		switch {
		case g.greet > 0:
			k := min(g.greet, n-i)
			g.greet -= k
			i += k
		case g.body > 0:
			k := min(g.body, uint64(n-i))
			g.body -= k
			i += int(k)
		default:
			b := p[i]
			i++
			g.hdr[g.hn] = b
			g.hn++
			if g.hn == 1 {
				g.hneed = 2
				if b&flagLong != 0 {
					g.hneed = 9
				}
				continue
			}
			if g.hn < g.hneed {
				continue
			}
			size := uint64(g.hdr[1])
			if g.hneed == 9 {
				size = binary.BigEndian.Uint64(g.hdr[1:9])
			}
			g.hn = 0
			if size > g.limit {
				g.failed = fmt.Errorf("frame of %d bytes (limit %d): %w", size, g.limit, ErrHandshakeFrame)
				return 0, g.failed
			}
			g.body = size
		}
	}
	return n, err
}
