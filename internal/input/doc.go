// Package input holds the relay's listeners: they turn syslog connections
// and datagrams, and ZeroMQ PULL messages, into batches of events.
//
// Every input implements [Input]. Start sets up the listeners before it
// returns (so a health check can go green), then serves in goroutines and
// calls the [Handler] with batches of events:
//
//   - syslog over TCP and TLS ("tcp://host:port", "tls://host:port"): one
//     goroutine per connection reads frames with internal/frame (octet
//     counting or LF-delimited, detected per frame). A batch holds up to
//     [MaxStreamBatch] events and is handed over as soon as the socket has no more
//     data ready, so a partial batch never waits on the network. A Handler
//     that blocks stops the reading, and TCP flow control carries the
//     backpressure to rsyslog.
//   - syslog over UDP and unix datagram sockets ("udp://host:port",
//     "unix:///path", what rsyslog's omuxsock sends): one datagram is one
//     message; one trailing LF is stripped. Datagrams already queued in the
//     kernel are read back to back into one batch.
//   - ZeroMQ PULL (bind and/or connect, internal/zmq): a one-frame message
//     is one event; a two-frame message is [stream, payload] and, with
//     ZMQConfig.StreamFrame, sets Event.Stream, which the router then keeps
//     instead of deriving one. Without StreamFrame the first of two frames
//     is ignored. Three or more frames are malformed and counted. Messages
//     over MaxMessageSize are refused inside internal/zmq (the peer is
//     disconnected before anything is allocated) and show in Stats.Oversize.
//
// Malformed and oversized messages are counted in [Stats] and logged at
// most once a second per input (with the number of lines suppressed); the
// connection resynchronises and nothing else is affected.
//
// The Handler is called from many goroutines at once (one per connection
// or socket). Events carry Raw, Input, Peer (source address; empty for
// unnamed unix senders and ZeroMQ) and Received (one clock reading per
// batch).
//
// TCP and TLS connections are accepted by internal/listen, which does the
// TLS handshake and enforces SyslogConfig.Limits (first-frame, frame,
// idle and handshake deadlines, the per-source limit, eviction at
// max_connections); the input calls Conn.Frame for every frame and hands
// its batch over through Conn.OnWait. A connection that never sends holds
// no goroutine (the core parks it until its peer sends) and no buffers;
// Stop closes every connection.
//
// Stop closes the listeners and the connections (ZeroMQ: the socket), then
// waits until every event already read has been handed to the Handler.
//
// The datagram code uses Linux socket options (SO_RCVBUFFORCE,
// SO_RXQ_OVFL, MSG_TRUNC).
package input
