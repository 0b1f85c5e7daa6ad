package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/ratelog"
)

// readHeaderTimeout bounds the request header, within http.read_timeout.
const readHeaderTimeout = 10 * time.Second

// startHTTP serves /healthz, /metrics, /v1/tap and the web page at /.
// Every request must name a Host the relay serves (hostGuard), there are
// at most maxConns connections (connLimiter), and each is bounded by the
// http timeouts; a tap's websocket, once upgraded, by the tap's own.
func (r *Relay) startHTTP(c config.HTTP, maxConns int) error {
	if c.Listen == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !r.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg}))
	mux.Handle("/v1/tap", r.hub.Handler())
	mux.Handle("/", r.hub.WebHandler())

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("http: listen %s: %w; pick a free address in http.listen", c.Listen, err)
	}
	lim := newConnLimiter(ln, maxConns)
	r.httpConns = lim
	ln = lim
	if c.TLS != nil {
		ln = tls.NewListener(ln, r.secrets.httpTLS.serverConfig())
	}
	guard := newHostGuard(c, &r.hostRefused, r.log)
	r.httpLn = ln
	r.httpSrv = &http.Server{
		Handler:           guard.wrap(mux),
		ReadHeaderTimeout: min(readHeaderTimeout, orNone(c.ReadTimeout)),
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    int(c.MaxHeaderBytes),
		ConnState:         lim.track,
	}
	go func() {
		if err := r.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// orNone maps a zero timeout ("none") to the largest duration, for min.
func orNone(d time.Duration) time.Duration {
	if d <= 0 {
		return 1<<63 - 1
	}
	return d
}

// hostGuard refuses requests whose Host header names a host the relay
// does not serve. A web page can make a browser send requests to the
// relay under its own domain name by pointing that name at 127.0.0.1 (DNS
// rebinding); the browser then treats the relay as that page's origin and
// lets it read /metrics and the tap. Such requests carry the attacker's
// name in Host. IP addresses, localhost (and *.localhost), the machine's
// hostname and http.allowed_hosts are served; a rebinding attack cannot
// make a browser send any of those for a name the attacker controls.
type hostGuard struct {
	names   map[string]bool // lower case, without port
	any     bool
	refused *atomic.Uint64
	log     *slog.Logger
	logged  ratelog.Limiter
}

func newHostGuard(c config.HTTP, refused *atomic.Uint64, log *slog.Logger) *hostGuard {
	g := &hostGuard{names: map[string]bool{"localhost": true}, refused: refused, log: log}
	if h, err := os.Hostname(); err == nil && h != "" {
		g.names[strings.ToLower(h)] = true
		if short, _, ok := strings.Cut(h, "."); ok {
			g.names[strings.ToLower(short)] = true
		}
	}
	if host, _, err := net.SplitHostPort(c.Listen); err == nil && host != "" && net.ParseIP(host) == nil {
		g.names[strings.ToLower(host)] = true // listen: relay.example.com:8080
	}
	for _, h := range c.AllowedHosts {
		if h == "*" {
			g.any = true
		}
		g.names[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	return g
}

// allowed reports whether hostport (a Host header) names this relay.
func (g *hostGuard) allowed(hostport string) bool {
	if g.any {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false // HTTP/1.0 without Host: no browser sends that
	}
	if net.ParseIP(host) != nil {
		return true
	}
	return g.names[host] || strings.HasSuffix(host, ".localhost")
}

func (g *hostGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !g.allowed(req.Host) {
			g.refused.Add(1)
			g.logged.Log(g.log, slog.LevelWarn, "http request refused: the Host header names a host this relay does not serve (DNS rebinding?)",
				"host", req.Host, "peer", req.RemoteAddr)
			http.Error(w, fmt.Sprintf("host %q is not served here; add it to http.allowed_hosts if clients use that name", req.Host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, req)
	})
}
