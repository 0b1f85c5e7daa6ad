package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rsyslog-zmq/relay/internal/config"
)

// startHTTP serves /healthz, /metrics, /v1/tap and the web page at /.
func (r *Relay) startHTTP(c config.HTTP) error {
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
	if c.TLS != nil {
		tc, err := c.TLS.ServerConfig()
		if err != nil {
			ln.Close()
			return fmt.Errorf("http.tls: %w", err)
		}
		ln = tls.NewListener(ln, tc)
	}
	r.httpLn = ln
	r.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := r.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}
