package relay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// linkCollector exports the relay link's metrics: per link output (the
// sender) and per link input (the receiver), read at scrape time.
type linkCollector struct{ r *Relay }

var (
	lo = func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("relay_link_"+name, help, append([]string{"output"}, labels...), nil)
	}
	li = func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("relay_link_input_"+name, help, append([]string{"input"}, labels...), nil)
	}
	linkUp         = lo("up", "Whether the link output has a session with this receiver (1) or not (0).", "endpoint")
	linkConnFail   = lo("connect_failures_total", "Connection attempts to this receiver that failed.", "endpoint")
	linkRTT        = lo("rtt_seconds", "Round trip to the receiver (ZMTP PING/PONG), smoothed.")
	linkAckRTT     = lo("ack_rtt_seconds", "Batch sent to ACK received, smoothed: the round trip plus the receiver's hand-off and fsync.")
	linkWindow     = lo("window_bytes", "Bytes the sender may keep unacknowledged now (adapts to the bandwidth-delay product).")
	linkInFlight   = lo("batches_in_flight", "Batches sent or queued and not yet acknowledged.")
	linkInFlightB  = lo("bytes_in_flight", "Bytes (compressed) of those batches.")
	linkBatches    = lo("batches_total", "Batches made.")
	linkRecords    = lo("records_total", "Events put in batches.")
	linkAcked      = lo("acked_total", "Events the receiver acknowledged (handed off durably).")
	linkResent     = lo("resent_total", "Events sent again on a later session.")
	linkSkipped    = lo("skipped_total", "Events not sent again after a reconnect because the receiver's mark said it had them.")
	linkBytes      = lo("bytes_total", "Batch bytes before (stage=raw) and after (stage=wire) compression.", "stage")
	linkFailovers  = lo("failovers_total", "Sessions established on another receiver than the last one, unplanned.")
	linkFailbacks  = lo("failbacks_total", "Planned moves back to an earlier receiver in the connect list.")
	linkFoResent   = lo("failover_resent_total", "Events sent again to another receiver than the one they were last sent to: what a fail-over may have duplicated across receivers.")
	linkRefused    = lo("refused_total", "TLS and protocol refusals by reason.", "reason")
	linkSpoolRecs  = lo("spool_records", "Events in the link's spool not yet acknowledged by the receiver.")
	linkSpoolBytes = lo("spool_bytes", "Bytes of the link's spool.")
	linkLag        = lo("spool_lag_seconds", "Age of the oldest event in the spool not yet acknowledged (0 when none).")
	linkRedeliv    = lo("spool_redelivered_total", "Events read again from the spool after a restart that had been sent before it.")

	linkInSessions = li("sessions", "Sender sessions open now.")
	linkInRecords  = li("records_total", "Events received in batches, duplicates included.")
	linkInSuppr    = li("suppressed_duplicates_total", "Events dropped because this receiver had handed them off already (resends).")
	linkInBatches  = li("batches_total", "Batches received.")
	linkInBytes    = li("bytes_total", "Batch bytes as received (stage=wire) and uncompressed (stage=raw).", "stage")
	linkInAcks     = li("acks_total", "ACKs sent.")
	linkInFsyncs   = li("mark_fsyncs_total", "Writes of the receiver's marks (each fsync'd before the ACKs it covers).")
	linkInHoFail   = li("handoff_failures_total", "Batches whose hand-off to the outputs failed (the sender sends them again).")
	linkInMalf     = li("malformed_total", "Sessions closed for a protocol error.")
	linkInRefused  = li("refused_total", "Sessions and TLS handshakes refused, by reason.", "reason")
	linkInSenders  = li("sender_mark", "Per sender: the highest sequence handed off and durably marked.", "sender", "name")
	linkLedger     = lo("ledger_skipped_total", "Events from a link input that this output's spool already held (resent after this relay's crash): not appended again.")
)

// The refusal reasons, exported at 0 before the first one so alerts see
// the series.
var (
	senderReasons = append([]string{link.ReasonUnknownCA, link.ReasonServerName, link.ReasonExpired, link.ReasonBadCert,
		link.ReasonPeerRefused, link.ReasonHandshake, "version", "refused", link.ReasonMechanism}, link.CurveReasons...)
	receiverReasons = append([]string{link.ReasonUnknownCA, link.ReasonExpired, link.ReasonNoClientCert, link.ReasonBadCert,
		"version", "busy", "zmtp_handshake"}, link.CurveReasons...)
)

func (c linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{linkUp, linkConnFail, linkRTT, linkAckRTT, linkWindow, linkInFlight, linkInFlightB, linkBatches, linkRecords,
		linkAcked, linkResent, linkSkipped, linkBytes, linkFailovers, linkFailbacks, linkFoResent, linkRefused, linkSpoolRecs, linkSpoolBytes, linkLag, linkRedeliv,
		linkInSessions, linkInRecords, linkInSuppr, linkInBatches, linkInBytes, linkInAcks, linkInFsyncs, linkInHoFail, linkInMalf, linkInRefused, linkInSenders, linkLedger} {
		ch <- d
	}
}

func (c linkCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for name, ro := range r.outputs {
		if l, ok := ro.out.(interface{ LedgerSkipped() uint64 }); ok {
			counter(linkLedger, float64(l.LedgerSkipped()), name)
		}
	}
	for name, ro := range r.outputs {
		lo, ok := ro.out.(interface {
			LinkStats() link.SenderStats
			SpoolStats() spool.Stats
		})
		if !ok {
			continue
		}
		s, sp := lo.LinkStats(), lo.SpoolStats()
		for _, ep := range s.Endpoints {
			up := 0.0
			if ep.Connected {
				up = 1
			}
			gauge(linkUp, up, name, ep.Addr)
			counter(linkConnFail, float64(ep.Failures), name, ep.Addr)
		}
		gauge(linkRTT, s.RTT.Seconds(), name)
		gauge(linkAckRTT, s.AckRTT.Seconds(), name)
		gauge(linkWindow, float64(s.Window), name)
		gauge(linkInFlight, float64(s.InFlightBatches), name)
		gauge(linkInFlightB, float64(s.InFlightBytes), name)
		counter(linkBatches, float64(s.Batches), name)
		counter(linkRecords, float64(s.Records), name)
		counter(linkAcked, float64(s.AckedRecords), name)
		counter(linkResent, float64(s.ResentRecords), name)
		counter(linkSkipped, float64(s.SkippedRecords), name)
		counter(linkBytes, float64(s.RawBytes), name, "raw")
		counter(linkBytes, float64(s.WireBytes), name, "wire")
		counter(linkFailovers, float64(s.Failovers), name)
		counter(linkFailbacks, float64(s.Failbacks), name)
		counter(linkFoResent, float64(s.FailoverResent), name)
		for _, reason := range senderReasons {
			counter(linkRefused, float64(s.Refused[reason]), name, reason)
		}
		gauge(linkSpoolRecs, float64(sp.Records), name)
		gauge(linkSpoolBytes, float64(sp.Bytes), name)
		lag := 0.0
		if !sp.OldestUnacked.IsZero() {
			lag = time.Since(sp.OldestUnacked).Seconds()
		}
		gauge(linkLag, lag, name)
		counter(linkRedeliv, float64(sp.Redelivered), name)
	}
	for name, ri := range r.inputs {
		li, ok := ri.in.(linkInput)
		if !ok {
			continue
		}
		s := li.LinkStats()
		gauge(linkInSessions, float64(s.Sessions), name)
		for _, ss := range s.Senders {
			gauge(linkInSenders, float64(ss.Persisted), name, ss.ID.String(), ss.Name)
		}
	}
	// The counters go on across reloads that rebuilt the input.
	for name, t := range r.inputTotalsNow() {
		s := t.link
		if s == nil {
			continue
		}
		counter(linkInRecords, float64(s.Records), name)
		counter(linkInSuppr, float64(s.Suppressed), name)
		counter(linkInBatches, float64(s.Batches), name)
		counter(linkInBytes, float64(s.WireBytes), name, "wire")
		counter(linkInBytes, float64(s.RawBytes), name, "raw")
		counter(linkInAcks, float64(s.Acks), name)
		counter(linkInFsyncs, float64(s.MarkFsyncs), name)
		counter(linkInHoFail, float64(s.HandoffFailures), name)
		counter(linkInMalf, float64(s.Malformed), name)
		for _, reason := range receiverReasons {
			counter(linkInRefused, float64(s.Refused[reason]), name, reason)
		}
	}
}
