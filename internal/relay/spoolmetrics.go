package relay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// Per spooled output: gauges of what the spool holds now, counters of what
// happened to it (kept across reloads like the other output counters).
var (
	descSpool = func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("relay_spool_"+name, help, append([]string{"output"}, labels...), nil)
	}
	spBytes      = descSpool("bytes", "Bytes in the spool: segment files plus what is queued to be written.")
	spMaxBytes   = descSpool("max_bytes", "The spool's max_bytes: at relay_spool_bytes this high it pushes back (full: block) or drops.")
	spRecords    = descSpool("records", "Events in the spool not yet confirmed by the destination.")
	spSegments   = descSpool("segments", "Segment files in the spool directory.")
	spOldestAge  = descSpool("oldest_unacked_age_seconds", "Age of the oldest event in the spool not yet confirmed (0 when empty): how far delivery is behind.")
	spAppended   = descSpool("appended_total", "Events appended to the spool.")
	spAcked      = descSpool("acked_total", "Events the destination confirmed (removed from the spool).")
	spFsyncs     = descSpool("fsyncs_total", "fdatasync calls on segment files (one covers every append since the last).")
	spFsyncSecs  = descSpool("fsync_duration_seconds", "Latency of the fdatasync calls.")
	spRedeliv    = descSpool("redelivered_total", "Events sent again after a restart that may have reached the destination before it (possible duplicates).")
	spTruncTails = descSpool("truncated_tails_total", "Torn or corrupt segment tails cut off at start (events that were never reported durable).")
	spTruncBytes = descSpool("truncated_bytes_total", "Bytes cut off with torn tails.")
	spCorrupt    = descSpool("corrupt_records_total", "Events lost to corruption inside a segment, skipped. Alert on any increase.")
	spQuarant    = descSpool("quarantined_segments_total", "Segment files moved to quarantine/ (unreadable header): their events are lost. Alert on any increase.")
	spDropped    = descSpool("dropped_total", "Events dropped because the spool was full (full: drop_oldest or drop_newest).", "reason")
	spWriteErrs  = descSpool("write_errors_total", "Failed writes, fsyncs or segment creations (disk full, I/O errors); each is retried in a new segment, nothing is reported durable meanwhile.")
)

var spoolDescs = []*prometheus.Desc{spBytes, spMaxBytes, spRecords, spSegments, spOldestAge, spAppended, spAcked, spFsyncs, spFsyncSecs,
	spRedeliv, spTruncTails, spTruncBytes, spCorrupt, spQuarant, spDropped, spWriteErrs}

// spoolTotals are the counters of a spool, summed over the outputs a
// reload replaced.
type spoolTotals struct {
	seen                                                 bool
	appended, acked, fsyncs, redeliv, truncTails, truncB uint64
	corrupt, quarantined, dropOld, dropNew, writeErrs    uint64
}

func (t *spoolTotals) add(s spool.Stats) {
	t.seen = true
	t.appended += s.Appended
	t.acked += s.Acked
	t.fsyncs += s.Fsyncs
	t.redeliv += s.Redelivered
	t.truncTails += s.TruncatedTails
	t.truncB += s.TruncatedBytes
	t.corrupt += s.Corrupt
	t.quarantined += s.Quarantined
	t.dropOld += s.DroppedOldest
	t.dropNew += s.DroppedNewest
	t.writeErrs += s.WriteErrors
}

func (t *spoolTotals) collect(ch chan<- prometheus.Metric, name string) {
	if !t.seen {
		return
	}
	c := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, l...)...)
	}
	c(spAppended, t.appended)
	c(spAcked, t.acked)
	c(spFsyncs, t.fsyncs)
	c(spRedeliv, t.redeliv)
	c(spTruncTails, t.truncTails)
	c(spTruncBytes, t.truncB)
	c(spCorrupt, t.corrupt)
	c(spQuarant, t.quarantined)
	c(spDropped, t.dropOld, "drop_oldest")
	c(spDropped, t.dropNew, "drop_newest")
	c(spWriteErrs, t.writeErrs)
}

// collectSpoolGauges emits what a live spool holds now.
func collectSpoolGauges(ch chan<- prometheus.Metric, name string, s spool.Stats, maxBytes int64) {
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	g(spBytes, float64(s.Bytes))
	if maxBytes > 0 {
		g(spMaxBytes, float64(maxBytes))
	}
	g(spRecords, float64(s.Records))
	g(spSegments, float64(s.Segments))
	age := 0.0
	if !s.OldestUnacked.IsZero() {
		age = max(time.Since(s.OldestUnacked).Seconds(), 0)
	}
	g(spOldestAge, age)
	buckets := make(map[float64]uint64, len(spool.FsyncBuckets))
	for i, ub := range spool.FsyncBuckets {
		if i < len(s.FsyncSeconds.Counts) {
			buckets[ub] = s.FsyncSeconds.Counts[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(spFsyncSecs, s.FsyncSeconds.Count, s.FsyncSeconds.Sum, buckets, name)
}

type spoolStatser interface{ SpoolStats() spool.Stats }
