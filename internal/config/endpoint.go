package config

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Syslog listen URL schemes.
const (
	SchemeTCP  = "tcp"  // syslog over TCP, octet-counted or LF-framed
	SchemeUDP  = "udp"  // one message per datagram
	SchemeTLS  = "tls"  // syslog over TLS (RFC 5425)
	SchemeUnix = "unix" // unix datagram socket, as rsyslog's omuxsock sends
)

// maxSunPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSunPath = 107

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)

// Listener is a parsed syslog listen URL.
type Listener struct {
	URL     string // as written
	Scheme  string // SchemeTCP, SchemeUDP, SchemeTLS or SchemeUnix
	Address string // host:port for net.Listen, or the socket path for unix
}

// ParseListen parses a syslog listen URL: tcp://host:port, udp://host:port,
// tls://host:port or unix:///path. A host of "*" or "" means all interfaces.
func ParseListen(s string) (Listener, error) {
	if s == "" {
		return Listener{}, fmt.Errorf("empty listen URL; write e.g. tcp://127.0.0.1:10514")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Listener{}, fmt.Errorf("%q has no scheme; write tcp://%s, udp://%s, tls://%s or unix:///path", s, s, s, s)
	}
	l := Listener{URL: s, Scheme: scheme}
	switch scheme {
	case SchemeTCP, SchemeUDP, SchemeTLS:
		addr, err := hostPort(rest, true)
		if err != nil {
			return Listener{}, fmt.Errorf("%q: %v; write %s://host:port, e.g. %s://127.0.0.1:10514", s, err, scheme, scheme)
		}
		l.Address = addr
	case SchemeUnix:
		if err := checkSocketPath(rest); err != nil {
			return Listener{}, fmt.Errorf("%q: %v; write unix:///path/to/socket", s, err)
		}
		l.Address = rest
	default:
		return Listener{}, fmt.Errorf("%q: scheme %q is not supported; use tcp, udp, tls or unix", s, scheme)
	}
	return l, nil
}

// checkZMQEndpoint checks a ZeroMQ endpoint as internal/zmq accepts it:
// tcp://host:port, tcp://*:port (bind only) or ipc:///path.
func checkZMQEndpoint(ep string, bind bool) error {
	if ep == "" {
		return fmt.Errorf("empty endpoint; write tcp://host:port or ipc:///path")
	}
	scheme, rest, ok := strings.Cut(ep, "://")
	if !ok {
		return fmt.Errorf("%q has no scheme; write tcp://%s or ipc:///path", ep, ep)
	}
	switch scheme {
	case "tcp":
		if !bind && strings.HasPrefix(rest, "*:") {
			return fmt.Errorf("%q: connect needs a host, not *; write tcp://host:port", ep)
		}
		if _, err := hostPort(rest, bind); err != nil {
			if bind {
				return fmt.Errorf("%q: %v; write tcp://host:port or tcp://*:port", ep, err)
			}
			return fmt.Errorf("%q: %v; write tcp://host:port", ep, err)
		}
		if !bind && strings.HasPrefix(rest, ":") {
			return fmt.Errorf("%q: connect needs a host; write tcp://host:port", ep)
		}
	case "ipc":
		if err := checkSocketPath(rest); err != nil {
			return fmt.Errorf("%q: %v; write ipc:///path/to/socket", ep, err)
		}
	default:
		return fmt.Errorf("%q: transport %q is not supported; use tcp://host:port or ipc:///path", ep, scheme)
	}
	return nil
}

// hostPort checks host:port and returns it with a host of "*" made empty
// (all interfaces). Port 0 (any free port) is allowed only when binding.
func hostPort(s string, bind bool) (string, error) {
	if strings.ContainsAny(s, "/?#") {
		return "", fmt.Errorf("a path or query does not belong here")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("not host:port")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if n == 0 && !bind {
		return "", fmt.Errorf("port 0 is only valid when binding")
	}
	if host == "*" {
		host = ""
	}
	if host != "" && net.ParseIP(strings.SplitN(host, "%", 2)[0]) == nil && !hostnameRE.MatchString(host) {
		return "", fmt.Errorf("host %q is not a host name or IP address", host)
	}
	return net.JoinHostPort(host, port), nil
}

func checkSocketPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("the socket path is empty")
	case len(p) > maxSunPath:
		return fmt.Errorf("the socket path is %d bytes, longer than the %d the kernel accepts", len(p), maxSunPath)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("the socket path contains a NUL byte")
	}
	return nil
}

// checkHTTPListen checks the http.listen host:port.
func checkHTTPListen(s string) error {
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		return fmt.Errorf("%q: write host:port without %s://, e.g. 127.0.0.1:8080; use http.tls for HTTPS", s, scheme)
	}
	if _, err := hostPort(s, true); err != nil {
		return fmt.Errorf("%q: %v; write host:port, e.g. 127.0.0.1:8080", s, err)
	}
	return nil
}

// isLoopback reports whether host only accepts local connections. Names
// other than localhost count as reachable: they may resolve anywhere.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
