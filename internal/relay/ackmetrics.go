package relay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rsyslog-zmq/relay/internal/output"
)

// ackOutput is an output whose batches are acknowledged (output.AckPush).
type ackOutput interface {
	AckStats() output.AckStats
}

// ackTotals are an acknowledged output's cumulative counters, kept across
// reloads like the other output counters.
type ackTotals struct {
	seen                                          bool
	batches, acked, ackedEvents, resent, resentEv uint64
	abandoned, orphaned                           uint64
	ignored                                       [4]uint64 // by ackReasons
	latCounts                                     []uint64
	latSum                                        time.Duration
	windowWait                                    time.Duration
}

var ackReasons = [4]string{"malformed", "unknown", "duplicate", "future"}

func (t *ackTotals) add(s output.AckStats) {
	t.seen = true
	t.batches += s.Batches
	t.acked += s.Acked
	t.ackedEvents += s.AckedEvents
	t.resent += s.Resent
	t.resentEv += s.ResentEvents
	t.abandoned += s.Abandoned
	t.orphaned += s.Orphaned
	for i, n := range [4]uint64{s.AcksMalformed, s.AcksUnknown, s.AcksDuplicate, s.AcksFuture} {
		t.ignored[i] += n
	}
	if t.latCounts == nil {
		t.latCounts = make([]uint64, len(s.Latency.Counts))
	}
	for i, n := range s.Latency.Counts {
		t.latCounts[i] += n
	}
	t.latSum += s.Latency.Sum
	t.windowWait += s.WindowWait
}

func (t ackTotals) clone() ackTotals {
	t.latCounts = append([]uint64(nil), t.latCounts...)
	return t
}

var (
	ackInFlight     = descOut("ack_batches_in_flight", "Batches sent (or being filled) and not acknowledged yet (acknowledged PUSH).")
	ackEvInFlight   = descOut("ack_events_in_flight", "Events in unacknowledged batches: what the output holds in memory.")
	ackWindowFull   = descOut("ack_window_full", "1 while the window is full and writes wait for an ack (backpressure).")
	ackBatches      = descOut("ack_batches_total", "Batches closed and sent.")
	ackAcked        = descOut("ack_batches_acked_total", "Batches acknowledged by a worker or a sink.")
	ackAckedEvents  = descOut("ack_events_acked_total", "Events in acknowledged batches: their hand-off fired.")
	ackResent       = descOut("ack_batches_resent_total", "Batches sent again because no ack came within ack.timeout.")
	ackResentEvents = descOut("ack_events_resent_total", "Events sent again in resent batches: duplicates delivered because of resends (a first copy lost with a worker is delivered once).")
	ackAbandoned    = descOut("ack_events_abandoned_total", "Events of batches still unacknowledged when the output closed (released as not safe).")
	ackOrphaned     = descOut("ack_orphaned_total", "Messages queued for a worker that went away: their batches were resent at once, whole.")
	ackWindowWait   = descOut("ack_window_wait_seconds_total", "Time writes waited for an ack because the window was full: if it grows while workers are idle, raise ack.window.")
	ackIgnored      = prometheus.NewDesc("relay_output_ack_ignored_total", "Ack frames ignored: malformed, of an unknown sender stream, duplicated, or for a batch not sent yet (future).", []string{"output", "reason"}, nil)
	ackLatency      = prometheus.NewDesc("relay_output_ack_latency_seconds", "Time from a batch's first send to its ack.", []string{"output"}, nil)
)

func describeAck(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ackInFlight, ackEvInFlight, ackWindowFull, ackBatches, ackAcked, ackAckedEvents, ackResent, ackResentEvents, ackAbandoned, ackOrphaned, ackWindowWait, ackIgnored, ackLatency} {
		ch <- d
	}
}

// collectAckGauges reports what a live acknowledged output holds now.
func collectAckGauges(ch chan<- prometheus.Metric, name string, o output.Output) {
	ao, ok := o.(ackOutput)
	if !ok {
		return
	}
	s := ao.AckStats()
	full := 0.0
	if s.WindowFull {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(ackInFlight, prometheus.GaugeValue, float64(s.InFlight), name)
	ch <- prometheus.MustNewConstMetric(ackEvInFlight, prometheus.GaugeValue, float64(s.EventsInFlight), name)
	ch <- prometheus.MustNewConstMetric(ackWindowFull, prometheus.GaugeValue, full, name)
}

// collectAckTotals reports an acknowledged output's counters, retired
// instances included.
func collectAckTotals(ch chan<- prometheus.Metric, name string, t ackTotals) {
	if !t.seen {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, l...)...)
	}
	counter(ackBatches, t.batches)
	counter(ackAcked, t.acked)
	counter(ackAckedEvents, t.ackedEvents)
	counter(ackResent, t.resent)
	counter(ackResentEvents, t.resentEv)
	counter(ackAbandoned, t.abandoned)
	counter(ackOrphaned, t.orphaned)
	ch <- prometheus.MustNewConstMetric(ackWindowWait, prometheus.CounterValue, t.windowWait.Seconds(), name)
	for i, r := range ackReasons {
		counter(ackIgnored, t.ignored[i], r)
	}
	buckets := make(map[float64]uint64, len(output.AckLatencyBounds))
	var cum uint64
	for i, b := range output.AckLatencyBounds {
		cum += t.latCounts[i]
		buckets[b] = cum
	}
	count := cum + t.latCounts[len(t.latCounts)-1]
	ch <- prometheus.MustNewConstHistogram(ackLatency, count, t.latSum.Seconds(), buckets, name)
}
