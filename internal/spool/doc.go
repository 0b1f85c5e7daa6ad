// Package spool is the relay's durable hand-off point: a crash-safe,
// bounded FIFO of events with one reader, behind one interface (Spool)
// with a memory implementation (Memory) and a disk one (Disk), both under
// one shared test suite.
//
// # Writing
//
// Append encodes records into a pending buffer and returns; the committer
// goroutine writes everything pending with one write(2) and, under
// fsync: always, one fdatasync(2), then fires the durable callbacks of
// every append that write covered (group commit: concurrent appenders
// share one fsync, and one appender that pipelines does not wait for it).
// The fdatasync runs on its own goroutine while the committer goes on
// writing what is appended meanwhile (the next fsync covers that).
// No callback fires before the fsync that covers its records
// (TestNothingDurableBeforeFsync holds the fsync and checks). Under
// fsync: interval a callback fires after the next interval's fdatasync;
// under never, once write(2) put the records in the segment file (a
// killed process loses nothing then, a power loss what the kernel had not
// written). The spooled output (internal/output.Spooled) waits for this
// callback before its Write returns for events that have no hand-off
// (plain syslog): appends from many connections waiting at once still
// share one fsync. A failed
// write or fsync is never reported durable: the segment is cut back to its
// last fsync, closed, and everything not yet durable is written again into
// a new segment, with backoff, until it works (counted in WriteErrors);
// meanwhile appends block once 8 MiB are pending.
//
// # Reading
//
// A record is readable once the committer has written it to the segment
// file (write(2) returned), not before, and not only once it is durable
// (from memory while the reader keeps up, bounded by Options.MemBytes;
// from the segment files when it falls behind). The committer's write
// wakes a waiting reader (signalled under the lock the reader checks
// under, so no wake-up is lost), and the reader re-checks every 200 ms
// besides. What that means:
//
//   - kill -9 (or any crash of the process): the kernel keeps what was
//     written, so nothing the reader was given is missing from the spool
//     after a restart: it is read again (counted in Redelivered when it
//     was marked Sent) or was acknowledged. TestKill9 checks it with a
//     reader that keeps up and one that falls behind.
//   - power loss: a record read, and maybe delivered, before the fsync that
//     covers it can be lost from the spool. Its durable callback had not
//     fired, so its source (an omrelp sender, a link sender) was not told
//     it was safe and sends it again: the destination may get it twice,
//     and no counter shows that duplicate.
//   - a failed write or fsync cuts the segment back to its last fsync
//     (see Writing): records read from the cut part are in no file until
//     they are written again; a kill in that window loses them as a power
//     loss would.
//
// Delivery does not wait for an fsync: while one runs, the committer
// writes what is appended as soon as the reader waits for it (while the
// reader is busy it gathers it into one write, as it does during no
// fsync), and the next fsync covers it (TestNothingDurableBeforeFsync).
// What delivery waits for is the committer's write(2) and a wake-up.
//
// # On disk
//
// A directory holds a lock file (flock, with the holder's pid), the
// checkpoint, the progress file and segment files named by a 20-digit
// number. A segment is a 40-byte header (magic, format version, its
// number, the seq of its first record, CRC-32C) and frames: length, CRC-32C
// of length and payload, then seq, received time, stream, input, peer,
// meta and the raw bytes. Segments roll at SegmentBytes (64 MiB, at most
// MaxBytes/8). Seqs are consecutive within a segment, so corruption costs
// exactly the seqs missing around it.
//
// The checkpoint (two slots, CRC, fsync'd) holds the acknowledged position
// and two reservations: sequence numbers (blocks of 2^20) and segment
// numbers are reserved durably before use, so neither is ever used twice,
// even after a power loss or a lost segment. It is written before
// acknowledged segments are deleted (then the directory is fsync'd), when
// a reservation runs low, at Open and at Close. The progress file (two
// slots, CRC, written without fsync: a killed process keeps the page
// cache) holds the acknowledged ranges, also out of order, and the ranges
// a Sender marked Sent and that were not acknowledged: after a kill -9,
// acknowledged records are not sent again, and the records that may have
// reached a destination unacknowledged are counted as Redelivered when
// they are read again. How exact that count is depends on when the Sender
// marks: the PUSH output's (internal/output.PushSender) marks a record
// just before each write(2) that may take its last byte, and takes the
// mark back (Unsent) while a write waits for the peer's window with it
// unwritten. Nothing can be persisted atomically with a write(2): marking
// after it missed the records of a write(2) that returned in the
// microseconds before its mark (TestLinkChaos saw 244 duplicates counted
// as 0), so the mark goes first and the count is never below the
// duplicates; it exceeds them by what a write(2) did not take when the
// kill landed during it (at most one write, 64 KiB, per connection), and
// by records the kernel took but discarded (a socket closed with unread
// input is reset, not drained; workers send nothing but heartbeats, which
// the relay reads at once).
//
// # Recovery
//
// Open scans every segment: sizes and counts are recomputed from the
// files; a torn or corrupt tail (a half-written record, zeros a file
// system left after a power loss) is truncated, counted and logged with
// file and offset; a corrupt record inside a segment is skipped (the
// scanner resynchronises on the next frame whose CRC holds and whose seq
// fits) and counted in Corrupt; a segment whose header is unreadable is
// moved to quarantine/ and counted; a segment file created but never
// written is removed. A missing checkpoint delivers everything left again
// (at-least-once, logged). A directory another process holds, or written
// in another format version, is refused with an error that says what to
// change. Verify (relay spool verify DIR) runs the same checks offline and
// changes nothing.
//
// # Bounds
//
// MaxBytes (1 GiB) bounds segment files plus what is pending. Full:
// block waits for room (acknowledged segments are deleted, then appends go
// on); drop_oldest gives up the oldest segment's unacknowledged records;
// drop_newest leaves out the records that do not fit, and tells the
// appender (ErrDropped). Every drop is counted by reason.
//
// # Why an own log, not tidwall/wal
//
// Measured with BenchmarkAppend and BenchmarkAppendConcurrent (200-byte
// records, our frame encoding in both, an fsync per batch before the batch
// counts as durable; this 2-core machine was shared and noisy, two runs
// each):
//
//	one writer, batch 64      spool 287-326k rec/s    tidwall/wal 222-250k
//	one writer, batch 1024    spool 770-950k          tidwall/wal 667-905k
//	one writer, batch 4096    spool 1.65-1.67M        tidwall/wal 0.12-1.02M
//	4 writers, batch 64       spool 37-98k            tidwall/wal 9-16k
//	read back from the files  spool 1.7M rec/s        tidwall/wal 6.4M (it holds whole segments in memory)
//
// With one writer they are close; with several writers, the relay's case
// (one per input connection), the spool's group commit covers them with
// one fsync where tidwall/wal serialises WriteBatch, one fsync each. The
// crash behaviour decided it: tidwall/wal frames entries with a length
// and no checksum, so a torn last entry makes it fail with "log corrupt"
// until the files are repaired by hand (TestTidwallTornTail; telegraf#18528,
// the recovery fix is an open pull request), and corrupted bytes inside an
// entry are returned as data. It also fsyncs instead of fdatasync, keeps
// the tail segment in memory, and has no notion of acknowledged ranges,
// reservations or redelivery counts, which the spool would have had to
// build beside it anyway. Its faster read-back comes from reading whole
// segments into memory, which a 1 GiB spool behind a stalled consumer
// cannot afford.
package spool
