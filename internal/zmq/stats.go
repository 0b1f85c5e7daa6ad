package zmq

import (
	"time"
)

// Drop reasons, the keys of Stats.Drops.
const (
	// DropPubQueueFull: a PUB subscriber's queue was full (slow subscriber).
	DropPubQueueFull = "pub_queue_full"
	// DropPeerGone: a PUB subscriber left with messages still queued for it.
	DropPeerGone = "peer_gone"
	// DropLostInFlight: PUSH messages in a write that failed when the peer
	// vanished; part may have reached the peer (as with libzmq).
	DropLostInFlight = "lost_in_flight"
	// DropSocketClosed: messages still queued to peers when Close was
	// called. (PULL and SUB keep what they read for Recv, even past
	// RecvHWM while closing.)
	DropSocketClosed = "socket_closed"
	// DropUnexpected: data a peer must not send (e.g. a PULL writing to PUSH).
	DropUnexpected = "unexpected_msg"
)

// Stats is a snapshot of a socket's counters. Totals include peers that
// have gone away.
type Stats struct {
	Type                 string            // PUSH, PULL, PUB or SUB
	Peers                int               // connected now
	MsgsIn, MsgsOut      uint64            // messages received from / written to peers
	BytesIn, BytesOut    uint64            // message payload bytes (frame bodies)
	Drops                map[string]uint64 // by reason, see Drop…
	HandshakeFailures    uint64            // includes refused and timed-out handshakes
	Oversize             uint64            // peers disconnected for exceeding MaxMsgSize or MaxFrames
	PeersRefused         uint64            // connections refused at accept over MaxPeers
	SubscriptionsRefused uint64            // PUB: peers' subscriptions over the per-peer limits (MaxSubscriptionBytes, 4096)
	Reconnects           uint64            // dial attempts after the first, per Dial
	HeartbeatTimeouts    uint64            // peers dropped for silence
	Connects             uint64            // handshakes completed
	Disconnects          uint64            // peers lost
	QueueDepth           int               // PULL/SUB: receive queue; PUSH/PUB: sum of send queues (incl. Dial pipes waiting to reconnect)
	PeerStats            []PeerStats       // one per connected peer
	// Curve counts CURVE handshakes refused and CURVE connections
	// dropped, by reason (see CurveReasons); nil unless the socket uses
	// CURVE.
	Curve map[string]uint64
}

// PeerStats are one connected peer's counters.
type PeerStats struct {
	Endpoint          string // the Listen or Dial endpoint
	Remote            string // the peer's address
	Since             time.Time
	MsgsIn, MsgsOut   uint64
	BytesIn, BytesOut uint64
	Drops             uint64 // PUB: pub_queue_full for this subscriber
	QueueDepth        int    // its send queue
	Subscriptions     int    // PUB: distinct prefixes this subscriber has subscribed to
}

func (s *socket) stats(recvDepth int) Stats {
	st := Stats{
		Type:                 string(s.typ),
		HandshakeFailures:    s.stat.handshakeFail.Load(),
		Oversize:             s.stat.oversize.Load(),
		PeersRefused:         s.stat.peersRefused.Load(),
		SubscriptionsRefused: s.stat.subsRefused.Load(),
		Reconnects:           s.stat.reconnects.Load(),
		HeartbeatTimeouts:    s.stat.hbTimeouts.Load(),
		Connects:             s.stat.connects.Load(),
		Disconnects:          s.stat.disconnects.Load(),
		QueueDepth:           max(recvDepth, 0),
		Drops: map[string]uint64{
			DropPubQueueFull: s.stat.dropPubFull.Load(),
			DropPeerGone:     s.stat.dropPeerGone.Load(),
			DropLostInFlight: s.stat.dropLost.Load(),
			DropSocketClosed: s.stat.dropClosed.Load(),
			DropUnexpected:   s.stat.dropUnexpected.Load(),
		},
	}
	if _, ok := s.opts.Security.(*curveSecurity); ok {
		st.Curve = make(map[string]uint64, len(CurveReasons))
		for i, r := range CurveReasons {
			st.Curve[r] = s.stat.curve[i].Load()
		}
	}
	live := *s.list.Load()
	s.mu.Lock()
	st.MsgsIn, st.MsgsOut = s.retired.msgsIn, s.retired.msgsOut
	st.BytesIn, st.BytesOut = s.retired.bytesIn, s.retired.bytesOut
	for p := range s.peers {
		st.MsgsIn += p.msgsIn.Load()
		st.MsgsOut += p.msgsOut.Load()
		st.BytesIn += p.bytesIn.Load()
		st.BytesOut += p.bytesOut.Load()
	}
	s.mu.Unlock()
	st.Peers = len(live)
	for _, p := range live {
		ps := PeerStats{
			Endpoint:   p.endpoint,
			Remote:     p.remote,
			Since:      p.since,
			MsgsIn:     p.msgsIn.Load(),
			MsgsOut:    p.msgsOut.Load(),
			BytesIn:    p.bytesIn.Load(),
			BytesOut:   p.bytesOut.Load(),
			Drops:      p.drops.Load(),
			QueueDepth: p.q.len(),

			Subscriptions: len(p.subs.Load().counts),
		}
		if recvDepth < 0 {
			st.QueueDepth += ps.QueueDepth
		}
		st.PeerStats = append(st.PeerStats, ps)
	}
	if recvDepth < 0 {
		for _, q := range *s.parked.Load() {
			st.QueueDepth += q.len()
		}
	}
	return st
}

// countCurve counts the CURVE failure in err's chain by its reason and
// reports whether there was one.
func (s *socket) countCurve(err error) bool {
	reason, ok := curveReason(err)
	if !ok {
		return false
	}
	if i := curveReasonIndex(reason); i >= 0 {
		s.stat.curve[i].Add(1)
	}
	return true
}
