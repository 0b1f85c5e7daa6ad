// Package listen is the connection core every stream input shares (syslog
// over TCP and TLS, RELP, the relay↔relay link): connections flow through
// it from accept to close. It keeps hostile or broken peers from filling
// the input, so a legitimate sender, a reconnecting rsyslog above all,
// always gets in.
//
// A protocol uses it like this:
//
//	l, _ := listen.New(limits, log)
//	go l.Serve(netListener, tlsConfigOrNil, func(c *listen.Conn) {
//		c.OnWait(batchPending, flushBatch) // optional
//		for { frame, err := readFrame(c); …; c.Frame(); … }
//	})
//	…
//	l.Close(); l.Wait(ctx)
//
// What it enforces (Limits; the defaults in brackets):
//
//   - TLS handshake deadline [10 s from accept]: half-open handshakes.
//   - First-frame deadline [10 s from accept, or from the end of the TLS
//     handshake]: connections that connect and never send a complete frame
//     (idle floods). rsyslog opens a connection only when it has something
//     to send, and sends at once.
//   - Frame-completion deadline [30 s]: a frame that stays incomplete
//     (slowloris, a frame claiming 60,000 bytes sent a byte a second).
//   - Idle timeout [5 min without a byte]: connections nobody uses.
//   - Write deadline [30 s]: a peer that does not read our answers
//     (RELP, link acks).
//   - Per-source limit [max_connections/16, at least 8]: one address
//     cannot take the listener; more connections from it are refused.
//   - max_connections [1024]: at the cap a new connection evicts a
//     connection that never sent a complete frame, taken from the address
//     holding the most such connections (a flood's, not a sender that has
//     just connected and is about to send) and the longest idle of those;
//     else the longest-idle connection overall. It is refused only when
//     every connection is busy (none is waiting for its peer).
//
// A new connection gets no goroutine until its peer sends (or closes): it
// is parked in an epoll set of the listener's own, so an idle flood costs
// descriptors and a few hundred bytes each, and no goroutine stacks for
// the garbage collector to scan. The Handler therefore starts once the
// client has spoken: fine for syslog, RELP and TLS, where it speaks first.
//
// Deadlines count only time spent waiting for the peer (the TLS handshake
// excepted): a Handler held up by backpressure is never closed for it, nor
// is a connection whose peer's bytes wait unread in the socket (its reader
// not yet scheduled), and time the process was starved of CPU (the
// sweeper running late) counts against no one.
//
// Idle connections and the rsyslog that owns them: rsyslog's omfwd
// (8.2302, runtime/nsd_ptcp.c CheckConnection) peeks at its socket before
// every send; when it sees our FIN it closes, reconnects and sends on the
// new connection. So the idle timeout and the eviction of an idle sender
// close gracefully: FIN first (shutdown for writing; over TLS too, without
// a close_notify, whose bytes rsyslog's peek would take for a live
// connection), then the connection is still read for CloseGrace [2 s], so anything the
// sender wrote before it saw the FIN is delivered; then it is closed. A
// quiet, healthy rsyslog is closed once per quiet spell longer than the
// idle timeout and reconnects when it next has something to send, with
// nothing lost; TCP keepalive probes carry no bytes and do not count as
// activity. Every other close (deadline passed, refused, evicted without
// a frame) is a reset (SO_LINGER 0): nothing of those peers is kept.
//
// The hot path costs nothing per frame but Frame's branch and store: the
// reader publishes its state (waiting since, frame incomplete since,
// framed) in a few atomic stores only when Read is about to wait for the
// peer, and one sweeper goroutine per listener checks every connection a
// few times a second (an eighth of the shortest deadline, 5–500 ms) and
// advances the coarse clock the readers use (reading the time costs
// 300–500 ns on some virtual machines), by at most two ticks a sweep. No
// per-read deadlines, no timers per connection, no lock per frame.
//
// Counters per Reason (Stats.Closed) and one rate-limited log line per
// reason (at most one a second, with the number held back) show what was
// closed or refused and why.
package listen
