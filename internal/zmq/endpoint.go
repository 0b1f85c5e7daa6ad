package zmq

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
)

// endpoint is a parsed ZeroMQ endpoint.
type endpoint struct {
	raw     string
	network string // "tcp" or "unix"
	addr    string
}

func parseEndpoint(ep string) (endpoint, error) {
	scheme, rest, ok := strings.Cut(ep, "://")
	if !ok || rest == "" {
		return endpoint{}, fmt.Errorf("endpoint %q: %w", ep, ErrEndpoint)
	}
	switch scheme {
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil || port == "" {
			return endpoint{}, fmt.Errorf("endpoint %q: %w", ep, ErrEndpoint)
		}
		if host == "*" {
			host = ""
		}
		return endpoint{raw: ep, network: "tcp", addr: net.JoinHostPort(host, port)}, nil
	case "ipc":
		return endpoint{raw: ep, network: "unix", addr: rest}, nil
	}
	return endpoint{}, fmt.Errorf("endpoint %q: unsupported transport %q: %w", ep, scheme, ErrEndpoint)
}

func (e endpoint) listen() (net.Listener, error) {
	if e.network == "unix" && !strings.HasPrefix(e.addr, "@") {
		// As libzmq: a stale socket file from a previous run is replaced.
		if fi, err := os.Lstat(e.addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(e.addr)
		}
	}
	l, err := net.Listen(e.network, e.addr)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", e.raw, err)
	}
	return l, nil
}

func (e endpoint) dial(ctx context.Context, d *net.Dialer) (net.Conn, error) {
	if e.network == "tcp" {
		if host, _, _ := net.SplitHostPort(e.addr); host == "" {
			return nil, fmt.Errorf("dial %q: a host is required to connect: %w", e.raw, ErrEndpoint)
		}
	}
	c, err := d.DialContext(ctx, e.network, e.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", e.raw, err)
	}
	return c, nil
}
