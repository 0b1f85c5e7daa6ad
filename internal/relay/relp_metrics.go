package relay

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rsyslog-zmq/relay/internal/relp"
)

// relpInput is an input that speaks RELP (internal/input.RELP).
type relpInput interface{ RELPStats() relp.Stats }

// relpCollector exports the counters of every RELP input at scrape time.
type relpCollector struct{ r *Relay }

var (
	descRELP = func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("relay_relp_"+name, help, append([]string{"input"}, labels...), nil)
	}
	relpSessions     = descRELP("sessions", "RELP sessions open now.")
	relpSessionsTot  = descRELP("sessions_total", "RELP sessions served.")
	relpFrames       = descRELP("frames_total", "RELP frames received, by command (open, syslog, close, other).", "command")
	relpAcked        = descRELP("acked_total", "syslog frames answered 200 OK, each once its event was handed off.")
	relpResendCloses = descRELP("resend_closes_total", "Sessions closed with serverclose while frames were unanswered, so the client resends them (duplicates by design), by cause.", "cause")
	relpBad          = descRELP("bad_frames_total", "Frames and sessions refused, by reason; the session is closed.", "reason")
	relpErrAnswers   = descRELP("error_answers_total", "Frames answered 500 (frames that could not be parsed or served; never a parsed syslog frame).")
	relpWindow       = descRELP("window_frames", "Frames read and not yet answered, now: the part of the clients' windows the relay holds.")
	relpWindowFull   = descRELP("window_full_seconds_total", "Time sessions waited for the client with its window full of unanswered frames.")
	relpAckLatency   = descRELP("ack_latency_seconds", "Time from reading a syslog frame to answering it 200 OK.")
	relpTLSRefused   = descRELP("tls_refused_total", "TLS handshakes refused, by reason (no_cert, untrusted, name: not a permitted peer, handshake).", "reason")
)

func (c relpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{relpSessions, relpSessionsTot, relpFrames, relpAcked, relpResendCloses, relpBad, relpErrAnswers, relpWindow, relpWindowFull, relpAckLatency, relpTLSRefused} {
		ch <- d
	}
}

func (c relpCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	for name, ri := range c.r.inputs {
		if ri, ok := ri.in.(relpInput); ok {
			s := ri.RELPStats()
			ch <- prometheus.MustNewConstMetric(relpSessions, prometheus.GaugeValue, float64(s.Sessions), name)
			ch <- prometheus.MustNewConstMetric(relpWindow, prometheus.GaugeValue, float64(s.Window), name)
		}
	}
	// The counters go on across reloads that rebuilt the input.
	for name, t := range c.r.inputTotalsNow() {
		if t.relp == nil {
			continue
		}
		s := t.relp
		counter(relpSessionsTot, float64(s.SessionsTotal), name)
		for cmd, n := range s.Frames {
			counter(relpFrames, float64(n), name, cmd)
		}
		counter(relpAcked, float64(s.Acked), name)
		for cause, n := range s.ResendCloses {
			counter(relpResendCloses, float64(n), name, cause)
		}
		for reason, n := range s.BadFrames {
			counter(relpBad, float64(n), name, string(reason))
		}
		counter(relpErrAnswers, float64(s.Refused500), name)
		counter(relpWindowFull, s.WindowFull.Seconds(), name)
		if s.AckLatency.Counts != nil {
			ch <- prometheus.MustNewConstHistogram(relpAckLatency, s.AckLatency.Count, s.AckLatency.Sum.Seconds(), s.AckLatency.Cumulative(), name)
		}
		for reason, n := range s.TLSRefused {
			counter(relpTLSRefused, float64(n), name, reason)
		}
	}
}
