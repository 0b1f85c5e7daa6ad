package spool

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Record is one event as a spool keeps it: what is needed to route and
// send it again after a restart.
type Record struct {
	// Seq is assigned by Append: strictly increasing within a spool
	// directory and never reused, across restarts too.
	Seq      uint64
	Raw      []byte
	Stream   string
	Input    string
	Peer     string
	Received time.Time
	// Meta is opaque to the spool, for later users (the link's sender id
	// and sequence).
	Meta []byte
}

// Range is an inclusive range of sequence numbers.
type Range struct{ First, Last uint64 }

// Spool is a bounded FIFO of records with one reader. Memory and Disk
// implement it and share one test suite.
type Spool interface {
	// Append adds recs at the tail, assigning their Seq (recs is updated in
	// place), and returns once they are queued in the spool: written to
	// the file by the committer right after, and readable then (it does
	// not wait for the fsync, so one caller can pipeline). While the spool is
	// full it blocks (full: block) until there is room or ctx ends; then it
	// returns ctx's error and has appended nothing. drop_oldest and
	// drop_newest drop and count instead. The records' byte slices must not
	// change after Append.
	//
	// durable, if not nil, is called exactly once when Append returned nil:
	// when every kept record of recs is durable under the fsync policy
	// (group commit: one fdatasync covers every append since the last), with
	// nil, or with an error wrapping ErrDropped if full: drop_newest left some
	// of recs out, or ErrClosed if the spool closed first. A write or fsync
	// error is never reported durable: the spool starts a new segment and
	// writes the records again until it succeeds (counted in WriteErrors).
	// durable runs on the spool's goroutine and must not block.
	Append(ctx context.Context, recs []Record, durable func(error)) error
	// Read waits until a record past the read cursor exists (disk: is
	// written to the segment file, so a crash of the process cannot take
	// back what was read), then returns up to max of them in order and
	// advances the cursor. The returned records
	// and their bytes belong to the caller; they must not be modified. After
	// a restart reading resumes at the oldest record not acknowledged
	// (at-least-once); records that had been marked Sent before the restart
	// and are read again are counted in Stats.Redelivered.
	Read(ctx context.Context, max int) ([]Record, error)
	// Sent records that the given records may have gone on the wire. A
	// Sender calls it before a destination's transport may take them (the
	// PUSH output: before the write(2) that may accept their last byte;
	// nothing can be persisted atomically with a write(2), so the mark
	// goes first), so that after a crash every record that may have
	// reached the destination without an ack is counted as a redelivery.
	// It is persisted before it returns (without fsync: a killed process
	// keeps the page cache). Memory spools ignore it.
	Sent(rs ...Range) error
	// Unsent takes back Sent for records the transport did not take (the
	// PUSH output: a write waiting for the peer's TCP window with them
	// unwritten), persisted before it returns, so that a crash while it
	// waits does not count them. Memory spools ignore it.
	Unsent(rs ...Range) error
	// Ack marks records first..last (inclusive) as delivered; ranges may
	// arrive out of order and repeat. Everything below the lowest
	// unacknowledged Seq is checkpointed durably, then whole segments behind
	// it are deleted.
	Ack(first, last uint64) error
	// Durable reports whether Append's durable callback means "survives a
	// crash" (disk) or only "stored in memory" (memory: then only the
	// destination's ack makes an event safe).
	Durable() bool
	// Stats returns a snapshot of the counters.
	Stats() Stats
	// Close stops the spool: blocked Appends and Reads return ErrClosed,
	// what was appended is written (and synced, unless fsync: never), and
	// the read position is checkpointed. Unacknowledged records stay for the
	// next Open.
	Close() error
}

// Stats are a spool's gauges and counters (counters since Open).
type Stats struct {
	Bytes    int64 // on disk (segments, what is queued to be written) or in memory
	Records  int64 // appended and not yet acknowledged (or dropped)
	Segments int   // segment files (disk)
	// OldestUnacked is when the oldest unacknowledged record was received
	// (disk: to within one index step of 64 KiB); zero when there is none.
	OldestUnacked time.Time

	Appended       uint64 // records appended
	Acked          uint64 // records acknowledged
	Read           uint64 // records returned by Read
	Fsyncs         uint64 // fdatasync calls on segments
	Redelivered    uint64 // records read again after a restart that had been Sent before it
	TruncatedTails uint64 // torn or corrupt segment tails cut off at open
	TruncatedBytes uint64 // bytes cut off with them
	Corrupt        uint64 // records lost to corruption inside a segment, skipped
	Quarantined    uint64 // segment files moved aside because their header was unreadable
	DroppedOldest  uint64 // records dropped by full: drop_oldest
	DroppedNewest  uint64 // records dropped by full: drop_newest
	WriteErrors    uint64 // failed writes, fsyncs and segment creations (each retried)
	// FsyncSeconds is the latency histogram of the fdatasyncs on segments.
	FsyncSeconds Histogram
}

// FsyncBuckets are the upper bounds, in seconds, of Stats.FsyncSeconds.
var FsyncBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}

// Histogram is a snapshot of a latency histogram: Counts[i] observations
// at most FsyncBuckets[i] (cumulative), Count in all, Sum their total.
type Histogram struct {
	Counts []uint64
	Count  uint64
	Sum    float64
}

// latency accumulates a Histogram.
type latency struct {
	mu     sync.Mutex
	counts [16]uint64
	count  uint64
	sum    float64
}

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	l.mu.Lock()
	for i, ub := range FsyncBuckets {
		if s <= ub {
			l.counts[i]++
		}
	}
	l.count++
	l.sum += s
	l.mu.Unlock()
}

func (l *latency) snapshot() Histogram {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Histogram{Counts: append([]uint64(nil), l.counts[:len(FsyncBuckets)]...), Count: l.count, Sum: l.sum}
}

// FsyncPolicy says when appended records are fsync'd.
type FsyncPolicy int

const (
	// FsyncAlways reports no record durable before an fdatasync covers it.
	// One fdatasync covers every append since the previous one.
	FsyncAlways FsyncPolicy = iota
	// FsyncInterval fsyncs at most once per interval (and when 64 MiB are
	// unsynced); records are reported durable after that fsync, so appenders
	// wait up to one interval.
	FsyncInterval
	// FsyncNever reports records durable once written to the file: a crash
	// of the process loses nothing, a crash of the machine loses what the
	// kernel had not written.
	FsyncNever
)

func (p FsyncPolicy) String() string {
	switch p {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("FsyncPolicy(%d)", int(p))
}

// FullPolicy says what Append does when the spool is at MaxBytes.
type FullPolicy int

const (
	// FullBlock waits for room: backpressure to the inputs, exactly as a
	// PUSH output without room.
	FullBlock FullPolicy = iota
	// FullDropOldest discards the oldest records (whole segments on disk) to
	// make room, counted in DroppedOldest.
	FullDropOldest
	// FullDropNewest discards the records that do not fit, counted in
	// DroppedNewest.
	FullDropNewest
)

func (p FullPolicy) String() string {
	switch p {
	case FullBlock:
		return "block"
	case FullDropOldest:
		return "drop_oldest"
	case FullDropNewest:
		return "drop_newest"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

// ParseFsync parses "always", "never" or a duration such as "10ms"
// (interval).
func ParseFsync(s string) (FsyncPolicy, time.Duration, error) {
	switch s {
	case "", "always":
		return FsyncAlways, 0, nil
	case "never":
		return FsyncNever, 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("fsync %q is not known; use always, never or an interval such as 10ms", s)
	}
	return FsyncInterval, d, nil
}

// ParseFull parses "block", "drop_oldest" or "drop_newest".
func ParseFull(s string) (FullPolicy, error) {
	switch s {
	case "", "block":
		return FullBlock, nil
	case "drop_oldest":
		return FullDropOldest, nil
	case "drop_newest":
		return FullDropNewest, nil
	}
	return 0, fmt.Errorf("full %q is not known; use block, drop_oldest or drop_newest", s)
}

// Defaults.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 64 << 20
	DefaultMemBytes     = 4 << 20
	// MinMaxBytes is the smallest MaxBytes accepted.
	MinMaxBytes = 1 << 20
)

// Options configure a spool. Memory spools use MaxBytes and Full only.
type Options struct {
	// Dir is the spool directory (disk); one process and one spool per
	// directory.
	Dir string
	// MaxBytes bounds the spool: segment files plus what is queued to be
	// written (disk) or the records held (memory). Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is rolled; default 64
	// MiB, at most MaxBytes/8 so that acknowledged segments free room.
	SegmentBytes int64
	Fsync        FsyncPolicy
	// FsyncInterval is the interval of FsyncInterval.
	FsyncInterval time.Duration
	Full          FullPolicy
	// MemBytes bounds the records kept in memory for the reader, so that a
	// reader that keeps up never reads the file back. Default 4 MiB.
	MemBytes int64
	Logger   *slog.Logger
	// OnFsync, if set, observes the duration of each fdatasync (for a
	// latency histogram). It is called on the committer's goroutine.
	OnFsync func(time.Duration)
	// Recovered, if set, is called by Open (disk) for every record found
	// in the segment files that carries Meta, in order, before any file is
	// deleted: a user of Meta (the link's ledger) rebuilds its state from
	// what survived. meta is only valid during the call.
	Recovered func(seq uint64, meta []byte)
	// BeforeDelete, if set, is called before segment files are deleted
	// (acknowledged, or at Open): a user of Meta persists what it must not
	// forget with them. An error keeps the files until the next try.
	BeforeDelete func() error

	hooks *hooks // fault injection, tests only
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	o.SegmentBytes = max(min(o.SegmentBytes, o.MaxBytes/8), 64<<10)
	if o.MemBytes <= 0 {
		o.MemBytes = DefaultMemBytes
	}
	if o.Fsync == FsyncInterval && o.FsyncInterval <= 0 {
		o.FsyncInterval = 10 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
