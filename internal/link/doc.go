// Package link is the relay↔relay link: a Sender that drains a spool to
// other relays, and a Receiver that hands what it receives to its relay's
// router, exactly once.
//
// # Exactly once
//
// Every event spooled by the sender enters the receiver's outputs exactly
// once, across link cuts, reconnects, fail-overs and kill -9 of either
// end, as long as both relays' disks survive. The mechanism is Kafka's
// idempotent producer:
//
//   - The sender's identity is a random id created with its spool
//     directory (file link-id); the spool's Seq, strictly increasing and
//     never reused in that directory, is the event's sequence number. A
//     new directory is a new sender.
//   - Batches tile the sequence space: a batch covers First..Last, the
//     next starts at Last+1; the first batch of a session is flagged FIRST
//     (everything below it was acknowledged already).
//   - The receiver keeps per sender a mark: everything up to it is handed
//     off. It moves only contiguously: a batch handed off before an
//     earlier one waits in a set of done ranges, so a batch whose hand-off
//     failed is never skipped. An event at or below the mark (or in a done
//     range) is dropped and counted as a suppressed duplicate.
//   - A batch is acknowledged (cumulatively: ACK n covers everything up to
//     n) only after its own durable hand-off (event.Handoff: every output
//     has it fsync'd in a spool or written to a peer) and after the marks
//     that cover it are fsync'd (two files written alternately, group
//     commit: one fsync covers every batch done since the last).
//   - Between an output's fsync and the marks' fsync a crash leaves events
//     the marks do not cover. Each output spool closes that window with a
//     Ledger: every record carries its origin (sender id, seq) in the
//     spool's Meta, atomically with the data; at open the highest origin
//     per sender is recovered from the segments (a receiver hands a
//     sender's batches over in order, so what survives is a prefix), and
//     before segments are deleted the ledger is saved. A resend of what a
//     spool holds is skipped there.
//   - The sender deletes from its spool only what was acknowledged. After
//     a reconnect, the receiver's WELCOME carries its durable mark: the
//     sender acknowledges what it holds up to it without sending it again,
//     and resends the rest from memory, as they were.
//
// Across two receivers (fail-over) each keeps its own marks: exactly once
// holds per receiver, and the union of what the receivers take holds every
// event. A batch in flight to a receiver that became unreachable is sent
// to the next one; if the first had handed it off (its ACK lost with it),
// those events are in both. The sender counts them as FailoverResent
// (events sent again to another receiver than the one they were last
// sent to): the bound on duplicates across receivers, at most one window.
// Fail-back is planned: the sender stops sending, waits (up to 10 s) for
// the acknowledgements of what is in flight, and only then moves, so it
// duplicates nothing.
//
// # Transport
//
// A ZMTP 3.1 session (internal/zmq's Session: greeting, mechanism
// handshake, framing, the decoder's size limits) on a TCP connection,
// TLS-wrapped for mutual TLS. ZMTP gives the link PING/PONG heartbeats
// (the dead-link detection), a framing with hardened limits we
// already fuzz, and security mechanisms: CURVE is the session's
// mechanism, no TLS needed then. Batches and acks share the
// connection (acks flow the other way), so a cut loses both together and
// a reconnect starts from the marks. The first frame of every message is
// a link header (magic 'L', version, kind, flags); a HELLO of another
// version is answered with REFUSE, and both ends log it.
//
// Messages (big-endian):
//
//	HELLO    [L 1 'H' 0 | sender id 16 | max batch u32 | compressions u32] [name]
//	WELCOME  [L 1 'W' 0 | receiver id 16 | mark u64 | max batch u32] [name]
//	REFUSE   [L v 'R' code] [reason]
//	BATCH    [L 1 'B' flags | first u64 | last u64 | count u32 | raw length u32] [payload]
//	ACK      [L 1 'A' 0 | up to u64]
//
// Flags: 0x01 zstd, 0x04 s2, 0x02 FIRST. The payload (see batch.go)
// holds each record's seq delta, received time delta, stream, input and
// peer (or "same as the previous record") and raw bytes; zstd then
// compresses it per batch.
//
// # Window
//
// The sender keeps batches until acknowledged, within a window of bytes
// on the wire that adapts: twice the bandwidth-delay product measured from
// the acknowledgements (acknowledged bytes per second times the smoothed
// batch-to-ACK time), between 1 MiB and max (64 MiB). A window that limits
// the rate shows as a rate of window/RTT and doubles, so it grows until
// the network or the receiver is the limit; at 100 ms RTT the link is not
// capped at window/RTT but at min(max window/RTT, link bandwidth): 64 MiB
// of compressed batches per 100 ms is 640 MB/s, about 8M events/s at 77
// bytes each. A window no larger than needed keeps what a fail-over can
// send twice small. Batch size follows the rate (what the spool has ready,
// up to half the window, which counts compressed bytes, times the
// compression ratio so far, and max_batch and the receiver's max_batch),
// so a quiet link sends small batches at once and a busy one large ones.
//
// # Compression
//
// Measured with BenchmarkCompression on 4096-event batches of realistic
// ad-platform RFC 5424 traffic with structured data (random user and
// request ids, prices, IPs, URLs; ~490 bytes an event; 2 shared cores):
//
//	zstd fastest   4.45:1   165 MB/s   decompress 705 MB/s   (the default)
//	zstd default   4.31:1   172 MB/s   decompress 570 MB/s
//	zstd better    4.56:1    87 MB/s   decompress 1.1 GB/s
//	s2             2.63:1   874 MB/s   decompress 877 MB/s   (compression: s2)
//	s2 better      2.80:1   329 MB/s
//	snappy         2.55:1   817 MB/s
//	flate 1        3.74:1   100 MB/s
//	flate 6        4.41:1    45 MB/s
//
// zstd (klauspost/compress) at its fastest level gives the best ratio at
// a speed the relay can afford; s2 costs a fifth of the CPU for 60% more
// bytes on the wire; none is there for links inside a data centre.
//
// zstd's options, measured again in CPU time per event (the same batches,
// the benchmark's thread's CPU, so the machine's load does not count):
//
//	fastest (the default)             1.51–1.64 µs   4.45:1
//	fastest, window 1 MiB/256K/64K    1.54/1.75/1.89 µs   4.45–4.48:1
//	fastest, lower encoder memory     1.46–1.56 µs   4.45:1
//	fastest, no entropy coding        1.37–1.41 µs   3.16:1
//	default level                     2.43–2.59 µs   4.31:1
//	fastest, a 100 KB raw dictionary  1.43–1.49 µs   4.45:1 (64-event batches: 1.32 µs and 4.48:1 against 1.14 µs and 4.12:1)
//
// None is worth a change: a dictionary helps only small batches (a quiet
// link) and would have to be shared by both ends; dropping entropy coding
// saves a tenth of the CPU for 40% more bytes. EncodeAll runs on one
// goroutine; the sender can compress several batches at once
// (SenderConfig.CompressWorkers), which on 2 shared cores was slower
// (it starved the spool, the writer and the acks), so it defaults to half
// of GOMAXPROCS.
//
// What compression costs a relay (bench/link.sh on 2 loaded cores,
// ~300-byte events, TLS, fsync'd spool): relay A spends 2.9–3.6 µs of CPU
// per event on the link with zstd, 1.5–1.9 µs with compression: none
// (plain ZeroMQ PUSH: 0.7–0.9), and zstd alone on the same batches costs
// 1.2–1.4 µs: compression is close to half of the sending relay's work,
// and zstd alone caps one core at about 0.75–0.85M events/s.
//
// # Security
//
// Mutual TLS: the receiver verifies the sender's client certificate
// against client_ca itself (so a refusal is counted by its reason:
// unknown_ca, expired, no_client_cert, bad_certificate) and the sender
// verifies the receiver's certificate and server name (unknown_ca,
// server_name, expired; refused_by_peer when the receiver refused ours).
//
// Or CURVE (internal/zmq's mechanism, the session's Security): the
// receiver is the CURVE server and admits the sender keys its
// authorizers list; the sender is the client and knows the receiver's
// public key. Refusals are counted as curve_ and internal/zmq's reason:
// the receiver counts curve_unknown_key for an unlisted sender (which
// counts curve_refused) and curve_bad_box for a HELLO sealed for another
// server key (the sender counts curve_no_welcome); a sender without CURVE
// facing a CURVE receiver counts mechanism. The receiver logs the
// sender's CURVE key with each session.
//
// Both ends log every refusal with its reason. A link with neither TLS
// nor CURVE refuses to start on a non-loopback address unless
// allow_insecure is set. SenderConfig.TLSFunc and CurveClientFunc /
// CurveServerFunc let the relay hand over credentials a reload re-reads,
// for the next connection.
package link
