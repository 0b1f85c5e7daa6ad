package input

import "github.com/rsyslog-zmq/relay/internal/zmq"

// addSocketStats folds in the socket's own counters: peers, handshakes,
// oversize messages and drops are handled inside internal/zmq.
func addSocketStats(st *Stats, ss zmq.Stats) {
	st.Oversize += ss.Oversize
	st.Connections = int64(ss.Peers)
	st.ConnectionsTotal = ss.Connects
	st.HandshakeErrors = ss.HandshakeFailures
	st.ConnectionsRefused = ss.PeersRefused
	for _, n := range ss.Drops {
		st.SocketDrops += n
	}
	st.CurveRefused = ss.Curve
}
