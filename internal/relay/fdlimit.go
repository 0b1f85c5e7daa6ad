package relay

import (
	"github.com/rsyslog-zmq/relay/internal/config"
)

// fdReserve is what the relay keeps for itself beyond its connections:
// listeners, the log, a spool, an fd Go needs for a moment.
const fdReserve = 64

// fdBudget raises the soft limit on open files to the hard limit, logs
// how the limit is shared between the inputs, the ZeroMQ sockets and
// HTTP, and returns the HTTP connection cap to use: http.max_connections,
// or a quarter of the limit if that is lower, so idle HTTP clients cannot
// take the descriptors the stream inputs need.
func (r *Relay) fdBudget(cfg *config.Config) int {
	limit, raised, err := raiseFDLimit()
	if err != nil {
		r.log.Warn("cannot read or raise the open files limit", "err", err)
	}
	var streamConns, zmqPeers int
	for _, in := range cfg.Inputs {
		switch in.Type {
		case config.InputSyslog, config.InputRELP, config.InputLink:
			streamConns += in.MaxConnections
		case config.InputZMQ:
			zmqPeers += in.MaxPeers
		}
	}
	for _, o := range cfg.Outputs {
		zmqPeers += o.MaxPeers + len(o.Connect)
	}
	httpConns := cfg.HTTP.MaxConnections
	if cfg.HTTP.Listen == "" {
		httpConns = 0
	}
	if limit > 0 && httpConns > int(limit/4) {
		capped := max(int(limit/4), cfg.HTTP.TapMaxClients+1)
		r.log.Warn("http.max_connections is more than a quarter of the open files limit; capping it so HTTP clients cannot starve the inputs",
			"max_connections", httpConns, "capped_to", capped, "fd_limit", limit)
		httpConns = capped
	}
	if limit == 0 {
		return httpConns
	}
	r.log.Info("file descriptor budget", "fd_limit", limit, "raised", raised,
		"stream_max_connections", streamConns, "zmq_max_peers", zmqPeers, "http_max_connections", httpConns, "reserve", fdReserve)
	if total := uint64(streamConns + zmqPeers + httpConns + fdReserve); total > limit {
		r.log.Warn("the connection limits add up to more than the open files limit; past it, new connections are refused (EMFILE): raise the limit (systemd LimitNOFILE=) or lower max_connections and max_peers",
			"needed", total, "fd_limit", limit)
	}
	return httpConns
}
