// Package zmq is this project's ZeroMQ socket layer: PUSH, PULL, PUB and
// SUB over tcp:// and ipc://, speaking ZMTP 3 to libzmq and to each other.
//
// Only the handshake comes from github.com/go-zeromq/zmq4 (zmq4.Open on a
// connection we own, behind a guard that refuses any handshake frame over
// 64 KiB). Framing, queues, routing and reconnection are ours, because
// zmq4's sockets duplicate PUSH messages to every peer, share one PUB
// queue, allocate any frame size a peer claims and block accept on a
// silent client.
//
// # Semantics per socket type
//
// PUSH: Send queues a message to exactly one peer, round-robin over
// connected peers whose queue (Options.HWM messages) has room, so a peer
// that cannot keep up gets less, as with libzmq; it never drops and never
// duplicates. As in libzmq (without ZMQ_IMMEDIATE), each
// Dial endpoint owns its queue from the moment Dial is called: while that
// endpoint is disconnected, Send still fills its queue (after trying the
// connected peers), and the messages go out once it reconnects; meanwhile
// they move to connected peers as those get room. With no room anywhere
// Send blocks until there is, ctx ends or the socket closes. When an
// accepted (Listen) peer goes away, messages it had queued but not yet
// written are re-routed to the other peers. Messages already written to
// the kernel for a vanished peer are lost with it, as in libzmq; a write
// that fails mid-way counts its messages in Drops["lost_in_flight"].
// SendBatch queues a slice with fewer lock round trips; Flush waits until
// every accepted message has been written.
//
// PULL: one reader per peer feeds a single bounded queue (Options.RecvHWM).
// When it is full the readers stop reading, so TCP flow control pushes
// back on the senders; blocked readers are woken in turn (fair queueing).
// Besides RecvHWM, each peer's reader may hold one batch (at most 256
// messages already read from its socket) while it waits; when the socket
// closes, that batch joins the queue, so Recv still yields every message
// read from a peer.
//
// PUB: Send never blocks. A message goes to each subscriber with a
// matching prefix subscription on frame 0; its frames are shared
// read-only, never copied. A subscriber whose queue (HWM) is full misses
// the message, counted per subscriber and in Drops["pub_queue_full"]; the
// others are not slowed. A message nobody subscribes to costs a prefix
// match per subscriber and nothing else. Subscriptions are accepted both
// as ZMTP 3.1 SUBSCRIBE/CANCEL commands and as ZMTP 3.0 \x01topic/\x00topic
// messages, and are a multiset as in libzmq (two identical subscriptions
// need two cancels). At most 4096 distinct subscriptions per subscriber.
//
// SUB: Subscribe/Unsubscribe are counted locally; a publisher sees one
// subscription per distinct prefix (sent as \x01topic messages, which
// every ZMTP 3.x peer understands), re-sent on every (re)connect. Received
// messages are filtered again locally, so nothing cancelled is delivered.
//
// # Connections
//
// Listen binds (many endpoints per socket); Dial connects in the
// background and reconnects forever with capped, jittered exponential
// backoff (ReconnectMin..ReconnectMax). Both sides run the handshake under
// HandshakeTimeout; accepted connections handshake in their own goroutine
// (at most 512 at once), so a silent client delays nobody. A failed
// handshake closes its connection and is counted.
//
// A peer that sends a message larger than MaxMsgSize (summed over its
// frames, checked before allocating) is disconnected and counted in
// Stats.Oversize. PINGs are always answered with PONG, and a PING's TTL is
// honoured as in libzmq (a peer silent past the TTL it announced is
// dropped); with HeartbeatIvl set, we send PINGs (TTL = HeartbeatTimeout)
// and drop a peer silent for HeartbeatTimeout.
//
// Security: NULL (default), PLAIN (PlainClient, PlainServer with a real
// credential check and an ERROR command on refusal) and CURVE (CurveClient,
// CurveServer with an allow-list of client keys; see curve.go). The
// mechanism role is independent of bind/connect, as in ZMTP. CURVE runs
// its own greeting and handshake (zmq4 cannot frame its boxes) and boxes
// every frame after it in place in the peer's write and read buffers;
// NULL and PLAIN peers pay one nil check per message for it. Session runs
// the same on a connection the caller owns.
//
// # Differences from libzmq
//
//   - Our greeting announces ZMTP 3.0 (zmq4's handshake), so libzmq peers
//     use 3.0-style subscription messages with us.
//   - A received message's frames may share one read buffer with other
//     messages (no per-frame allocation); holding one frame keeps that
//     buffer (up to 64 KiB) alive. Copy frames you keep for long.
//   - A PUSH peer's queue is swapped out whole by its writer, so up to 2*HWM
//     messages can be in process per peer (HWM queued + HWM being written).
//   - No empty messages: a Msg with no frames is sent as one empty frame.
//   - Close discards queued messages (no linger); use Push.Flush first.
//
// # API beyond docs/architecture.md
//
// Push.SendBatch, Push.Flush, Pull.RecvBatch, Sub.RecvBatch,
// PlainPassword, the CURVE API and Session are additions; the contract's
// API is unchanged.
package zmq
