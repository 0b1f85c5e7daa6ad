package broker

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// checkNATSServers checks the server URLs before nats.go sees them: with
// RetryOnFailedConnect, nats.go takes a URL it can never dial (a port
// with two colons, say) and keeps trying it, so the output would start
// and wait forever for a server that does not exist.
func checkNATSServers(servers []string) error {
	for _, s := range servers {
		u := s
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("server %q is not a URL (%v); write nats://host:4222", s, err)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("server %q: scheme %q is not NATS; write nats://host:4222 (or tls://host:4222)", s, p.Scheme)
		}
		if err := checkHostPort(p.Host, true); err != nil {
			return fmt.Errorf("server %q: %v; write nats://host:4222", s, err)
		}
	}
	return nil
}

// checkKafkaBrokers checks that each seed broker is host:port.
func checkKafkaBrokers(brokers []string) error {
	for _, b := range brokers {
		if err := checkHostPort(b, false); err != nil {
			return fmt.Errorf("broker %q: %v; write host:9092", b, err)
		}
	}
	return nil
}

// checkHostPort checks host[:port] (the port may be left out when
// optional).
func checkHostPort(hp string, portOptional bool) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		if !portOptional || (strings.Contains(hp, ":") && !strings.HasPrefix(hp, "[")) {
			return err
		}
		host, port = strings.Trim(hp, "[]"), ""
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	if port == "" {
		if portOptional {
			return nil
		}
		return fmt.Errorf("no port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
