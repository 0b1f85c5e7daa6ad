// Package relp is the server side of RELP, rsyslog's reliable event
// logging protocol, written from librelp's behaviour (src/relpframe.c,
// src/relpsess.c, src/copen.c, src/scrsp.c, src/tcp.c), so rsyslog's
// omrelp can send to the relay without losing anything.
//
// # Frames
//
// Reader parses TXNR SP COMMAND SP DATALEN [SP DATA] LF as it streams in:
// TXNR and DATALEN are 1 to 9 digits, COMMAND 1 to 32 letters; DATALEN 0
// is followed by the LF at once. Every problem is a *FrameError with a
// Reason (txnr, command, datalen, oversize, trailer, truncated) and, when
// it was read, the frame's TXNR. RELP has no resynchronisation point: a
// bad frame ends the session.
//
// # Sessions
//
// Server.ServeConn serves one connection its caller accepted (plain TCP,
// or TLS already handshaken), so any accept loop can host it; the relay's
// input runs it on internal/listen. A session:
//
//   - expects "open" as transaction 1, with offers relp_version (any
//     number: answered with the lower of it and ours, 0, librelp's
//     current version) and commands including syslog; it answers
//     "200 OK" with relp_version, relp_software and commands=syslog
//     (librelp's client breaks the session when commands lacks syslog).
//   - checks that every transaction number is the next one (1, 2, …,
//     999,999,999, then 1 as the spec says; librelp's own client computes
//     1,000,000,000 after 999,999,999, which its frame builder refuses, so
//     its session breaks and starts again at 1 before that).
//   - turns syslog frames into events (one trailing LF of the data is not
//     part of the message) and hands them to the Handler in batches, with
//     one event.Handoff per batch.
//   - answers "200 OK" to each syslog frame only when its batch's hand-off
//     fires, and always in transaction order: a later batch handed off
//     first waits for the earlier ones.
//   - answers the client's "close" after every frame before it, then
//     closes.
//
// Never a 500 to a syslog frame it parsed: librelp's client drops a frame
// answered with anything but 200 (src/scrsp.c), so a 500 is a lost event.
// When a hand-off fails (an output could not take the event), or the
// oldest unanswered frame waits longer than AckTimeout, or the server
// shuts down, the session answers what is handed off, in order, up to the
// first frame that is not, then sends the serverclose hint and closes:
// librelp then reconnects and resends every unanswered frame under new
// transaction numbers (relpSessTryReestablish). Those resends are the
// only duplicates RELP makes; they are counted (Stats.ResendCloses).
//
// A 500 goes only to a frame that cannot be served: one that did not
// parse (an oversized DATALEN, a missing trailer, a bad command), a
// second open, an unknown command, an open without syslog; then
// serverclose and close. A frame before open, a bad TXNR or one out of
// sequence get serverclose only. Everything is counted by Reason.
//
// # Backpressure and the window
//
// The window (omrelp's windowSize, 128 by default) is not negotiated:
// the client stops sending when it has that many frames unanswered, so
// holding answers is backpressure. The session counts the frames it holds
// (Stats.Window); it takes the largest number a session has had
// unanswered as that client's window (exact once the client has filled
// it) and counts the time it waited for the client's next frame with that
// many unanswered as time with a full window (Stats.WindowFull). A client
// that ignores the window is stopped reading at MaxWindow; one that does
// not read its answers is closed after WriteTimeout (not_reading).
//
// # TLS
//
// PeerCheck verifies client certificates as librelp's tls.authMode="name"
// does: chained to the client CA, then a subjectAltName dNSName, or else
// the subject's CN, matching a permitted peer, '*' standing for a domain
// component or its start or end. Refusals are counted by reason.
package relp
