// Package ackpipe is the batch-acknowledged pipeline: a Sender that sends
// messages in numbered batches and never has more than Window batches
// unacknowledged, and a Receiver that acknowledges each batch once it
// holds every message of it and the application has processed them
// (Receiver.Commit, called after handling what Receiver.Handle returned).
//
// This bounds what a crash can lose, and the memory a slow consumer can
// pin, to Window*BatchSize messages, while messages still stream without
// a round trip each: the sender waits for an acknowledgement once per
// batch, not per message. With ResendAfter set, a batch that is not
// acknowledged in time is sent again (flagged RESENT) and the Receiver
// drops the copies it already has, so delivery is exactly once as long
// as the sender survives.
//
// # Wire format
//
// A data message is the application's frames behind one header frame of
// 20 bytes, big-endian:
//
//	0      version (1)
//	1      kind 'D'
//	2      flags: 0x01 LAST (closes the batch), 0x02 RESENT, 0x04 MARKER
//	3      reserved (0)
//	4..7   stream: a random id per Sender, so a restarted sender is new
//	8..15  batch sequence number, from 1
//	16..19 index of the message within its batch, from 0
//
// A batch is complete when the receiver holds indexes 0..i of a stream
// and sequence and index i carried LAST. A batch closed before it is full
// (Flush, FlushAfter) ends with a MARKER message: a header frame alone,
// never delivered to the application.
//
// An ack is one frame of 16 bytes: version (1), kind 'A', two zero bytes,
// stream, batch sequence. Intermediaries (the pipeline's workers) pass
// the header frame through unchanged.
//
// In Whole mode (Config.Whole) a Sender holds a batch until it is closed
// and then sends it in one run, to one peer when the Conn can
// (*zmq.Push.SendWhole), with LAST on its final message and no MARKER: a
// worker then sees whole batches and can acknowledge them itself. The
// relay's acknowledged PUSH output (internal/output) works so. SendTagged
// attaches a tag to each message; a batch's tags come back in Config.OnAck
// once it is acknowledged, or in Config.OnAbandon if Close gives it up.
//
// Both ends take and give zmq.Msg so a *zmq.Push and a *zmq.Pull plug in
// directly (see Conn, AckConn, AckSource).
package ackpipe
