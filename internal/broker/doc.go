// Package broker delivers the relay's events to distributed logs and reads
// them back: NATS JetStream and Kafka outputs, each a Sender that drains a
// spool, a JetStream input that acks the broker only once the relay's own
// durable hand-off fired, and the replaying source of `tap nats://…`.
//
// # Outputs
//
// An output is a spool Sender (internal/output's Sender shape): Send takes
// records read from the output's disk spool, publishes them asynchronously
// within a bounded window of unacknowledged messages, and calls ack for
// each seq range the broker confirmed. What the broker refuses, times out
// or loses in a reconnect is published again (capped backoff, logged once
// per cause, counted); the spool keeps every record until its ack, so a
// crash, a stall or an outage of the broker costs nothing but backlog.
// Refused credentials never end the connection for good (nats.go would
// give up after two refusals): fixed on the server, the output resumes
// without a restart. franz-go waits silently when no broker answers or
// the brokers refuse the SASL credentials: the Kafka output's watch asks
// the cluster why once records wait unconfirmed, and counts the answer.
//
// JetStream: every message carries a Nats-Msg-Id made from a stable
// identity of its record: the spool's identity (a random id kept in the
// spool directory, made anew when the spool itself is new) and the record's
// Seq, which the spool never reuses. Whatever is sent again (after a crash
// of the relay, a reconnect, a leader change) carries the same id, and the
// stream drops it as a duplicate if the first copy was stored within its
// duplicate window; such a PubAck is counted as a suppressed duplicate and
// treated as the confirmation it is. The output publishes on core NATS
// with a reply subscription of its own (jspublish.go) rather than through
// nats.go's asynchronous jetstream publisher, which cost it a third more
// CPU per event (JSON decoding of each PubAck, a timer per message).
//
// Kafka: franz-go's idempotent producer (acks=all) deduplicates retries
// within one producer session. Across a restart of the relay, records that
// were on the wire without an acknowledgement are produced again: at least
// once, and every such record is counted (the spool's Redelivered, and
// Resent for records produced again after a failed attempt).
//
// # Input and replay
//
// The JetStream input reads a stream through a durable pull consumer and
// acks each message only when the event's hand-off fires (every output
// that must not lose it has it); redeliveries are counted from the
// consumer's delivery count. A stream (or consumer) deleted while the
// input runs is waited for and its consumer made again. Replay (tap nats://HOST/STREAM) reads a
// stream from a time, a sequence or the last N messages with an ordered,
// ephemeral consumer and acks nothing.
package broker
