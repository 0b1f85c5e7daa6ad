package relay

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rsyslog-zmq/relay/internal/broker"
	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// brokerOutput is a spooled output whose Sender publishes to a broker;
// it exposes the Sender's counters for the metrics.
type brokerOutput struct {
	*output.Spooled
	js    *broker.JetStream
	kafka *broker.Kafka
}

// openBrokerSpool opens an output's spool directory, after reading (or
// making) the spool's identity, which message ids are made from.
func openBrokerSpool(c config.Output, log *slog.Logger) (*spool.Disk, *link.Ledger, string, error) {
	id, err := broker.SpoolID(c.Spool.Dir)
	if err != nil {
		return nil, nil, "", fmt.Errorf("output %q: %w", c.Name, err)
	}
	fsync, ivl, err := spool.ParseFsync(c.Spool.Fsync)
	if err != nil {
		return nil, nil, "", fmt.Errorf("output %q: spool: %w", c.Name, err)
	}
	full, err := spool.ParseFull(c.Spool.Full)
	if err != nil {
		return nil, nil, "", fmt.Errorf("output %q: spool: %w", c.Name, err)
	}
	// The ledger keeps events that came over a relay link from entering
	// the spool twice when this relay restarts, as for every spooled output.
	sp, ledger, err := output.OpenLedgerSpool(spool.Options{
		Dir:           c.Spool.Dir,
		MaxBytes:      int64(c.Spool.MaxBytes),
		SegmentBytes:  int64(c.Spool.SegmentBytes),
		Fsync:         fsync,
		FsyncInterval: ivl,
		Full:          full,
		Logger:        log.With("output", c.Name),
	})
	if err != nil {
		return nil, nil, "", fmt.Errorf("output %q: %w", c.Name, err)
	}
	if free := freeBytes(c.Spool.Dir); free >= 0 && int64(c.Spool.MaxBytes) > free+sp.Stats().Bytes {
		log.Warn("spool max_bytes is above the free space: the disk may fill before the spool does (writes are then retried until space frees up)",
			"output", c.Name, "dir", c.Spool.Dir, "max_bytes", c.Spool.MaxBytes, "free", config.ByteSize(free))
	}
	return sp, ledger, id, nil
}

// linkMsgID is the id of an event that came over a relay link: its origin
// (the sending relay's id and sequence), the same whichever relay of the
// receiving side publishes it, so the stream drops a copy that a fail-over
// between receivers brought twice. Other events get their spool's id.
func linkMsgID(r *spool.Record) string {
	id, seq, ok := link.ParseMeta(r.Meta)
	if !ok {
		return ""
	}
	return "l" + hex.EncodeToString(id[:]) + "-" + strconv.FormatUint(seq, 10)
}

func clientTLS(t *config.ClientTLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	return t.Config()
}

// newBrokerOutput builds a jetstream or kafka output: its spool, the
// Sender and the drain loop.
func newBrokerOutput(c config.Output, log *slog.Logger) (output.Output, error) {
	if c.Spool == nil {
		return nil, fmt.Errorf("output %q: a %s output needs a spool", c.Name, c.Type)
	}
	sp, ledger, id, err := openBrokerSpool(c, log)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (output.Output, error) {
		sp.Close()
		return nil, err
	}
	bo := &brokerOutput{}
	var snd output.Sender
	switch {
	case c.JetStream != nil:
		j := c.JetStream
		tc, err := clientTLS(j.TLS)
		if err != nil {
			return fail(fmt.Errorf("output %q: tls: %w", c.Name, err))
		}
		cfg := broker.JetStreamConfig{
			Name:    c.Name,
			Servers: j.Servers,
			Subject: j.Subject,
			Auth:    broker.NATSAuth{Creds: j.Creds, NKey: j.NKey, User: j.User, Password: j.Password, Token: j.Token},
			TLS:     tc, JSON: c.Format == config.FormatJSON,
			MaxPending: j.MaxPending, AckTimeout: j.AckTimeout,
			SpoolID: id, MsgID: linkMsgID, Sent: sp.Sent, OldestUnacked: sp.Stats().OldestUnacked,
			Logger: log,
		}
		if cs := j.CreateStream; cs != nil {
			cfg.Create = &broker.StreamSpec{Name: cs.Name, Subjects: cs.Subjects, Replicas: cs.Replicas, MaxAge: cs.MaxAge,
				MaxBytes: int64(cs.MaxBytes), Duplicates: cs.DuplicateWindow}
		}
		js, err := broker.NewJetStream(cfg)
		if err != nil {
			return fail(err)
		}
		bo.js, snd = js, js
	case c.Kafka != nil:
		k := c.Kafka
		tc, err := clientTLS(k.TLS)
		if err != nil {
			return fail(fmt.Errorf("output %q: tls: %w", c.Name, err))
		}
		cfg := broker.KafkaConfig{
			Name: c.Name, Brokers: k.Brokers, Topic: k.Topic, Compression: k.Compression, TLS: tc,
			CreateTopics: k.CreateTopics, JSON: c.Format == config.FormatJSON, MaxPending: k.MaxPending,
			SpoolID: id, MsgID: linkMsgID, Sent: sp.Sent, Logger: log,
		}
		if s := k.SASL; s != nil {
			cfg.SASL = &broker.KafkaSASL{Mechanism: s.Mechanism, User: s.Username, Password: s.Password}
		}
		kc, err := broker.NewKafka(cfg)
		if err != nil {
			return fail(err)
		}
		bo.kafka, snd = kc, kc
	default:
		return fail(fmt.Errorf("output %q: type %q has no broker settings", c.Name, c.Type))
	}
	so, err := output.NewSpooled(output.SpooledConfig{Name: c.Name, Spool: sp, Sender: snd, Logger: log})
	if err != nil {
		snd.Close(context.Background())
		return fail(err)
	}
	so.SetLedger(ledger)
	bo.Spooled = so
	return bo, nil
}

// newJetStreamInput builds a jetstream input.
func newJetStreamInput(c config.Input, log *slog.Logger) (input.Input, error) {
	j := c.JetStream
	if j == nil {
		return nil, fmt.Errorf("input %q: no jetstream settings", c.Name)
	}
	tc, err := clientTLS(j.TLS)
	if err != nil {
		return nil, fmt.Errorf("input %q: tls: %w", c.Name, err)
	}
	return broker.NewJetStreamInput(broker.JetStreamInputConfig{
		Name: c.Name, Servers: j.Servers, Stream: j.Stream, Consumer: j.Consumer, FilterSubjects: j.FilterSubjects,
		Auth: broker.NATSAuth{Creds: j.Creds, NKey: j.NKey, User: j.User, Password: j.Password, Token: j.Token},
		TLS:  tc, AckWait: j.AckWait, MaxAckPending: j.MaxAckPending, Batch: j.Batch, Logger: log,
	})
}

var (
	descBroker = func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("relay_broker_"+name, help, append([]string{"output"}, labels...), nil)
	}
	brPublished  = descBroker("published_total", "Publish (JetStream) or produce (Kafka) attempts, retries included.")
	brConfirmed  = descBroker("confirmed_total", "Events the broker confirmed (PubAck; Kafka acks=all); the spool lets go of them.")
	brDuplicates = descBroker("duplicates_total", "JetStream PubAcks that said duplicate: events sent again that the stream dropped by message id.")
	brResent     = descBroker("resent_total", "Events sent again after a failed attempt (JetStream: same message id; Kafka: each may be a duplicate).")
	brFailed     = descBroker("failed_total", "Failed attempts by cause (retried with backoff; the spool keeps the events).", "cause")
	brPending    = descBroker("pending", "Events published and not yet confirmed.")
	brConnected  = descBroker("connected", "1 while the JetStream output has a connection to a server.")
	brDataLoss   = descBroker("data_loss_total", "Kafka partitions where the client detected that the brokers lost acknowledged records.")
	brBeyond     = descBroker("resent_beyond_window_total", "JetStream: events sent again longer after their first attempt than the stream's duplicate window; each may be stored twice.")
	brRedeliv    = descBroker("redelivered_total", "Events sent again after a restart of the relay that may have reached the broker before it (the spool's count): JetStream drops them by message id, Kafka may store them twice.")

	descJSIn = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("relay_jetstream_input_"+name, help, []string{"input"}, nil)
	}
	jsInRedelivered = descJSIn("redelivered_total", "Messages the stream delivered more than once (after a restart, a lost ack or a refused hand-off).")
	jsInAcked       = descJSIn("acked_total", "Messages acked after their events' hand-off.")
	jsInNaked       = descJSIn("naked_total", "Messages handed back to the stream because an output did not take their events.")
	jsInPending     = descJSIn("pending", "Events handed to the outputs whose hand-off has not fired.")
	jsInLag         = descJSIn("lag_messages", "Messages the stream holds for the input's consumer beyond the last one delivered: how far the input is behind (0 when it keeps up).")
	jsInRefused     = descJSIn("refused_total", "Connections and requests the NATS server refused for the input's credentials or permissions (it keeps retrying).")
	jsInResub       = descJSIn("resubscribed_total", "Consumers made again after the stream or the input's consumer was deleted while it ran.")
	jsInConnected   = descJSIn("connected", "1 while the input has a connection to a NATS server and consumes its consumer; 0 while it connects, or waits for the stream or the consumer (retried with backoff).")
	jsInFailed      = prometheus.NewDesc("relay_jetstream_input_failed_total", "Failed connection attempts and consumer requests by cause (disconnected, auth, no_stream, consumer_config, timeout, error); each is retried with backoff.", []string{"input", "cause"}, nil)
)

func describeBroker(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{brPublished, brConfirmed, brDuplicates, brResent, brFailed, brPending, brConnected, brDataLoss, brRedeliv, brBeyond,
		jsInRedelivered, jsInAcked, jsInNaked, jsInPending, jsInLag, jsInRefused, jsInResub, jsInConnected, jsInFailed} {
		ch <- d
	}
}

// brokerTotals are a broker output's counters, summed over the outputs
// of its name that reloads replaced, so that relay_broker_*_total neither
// restart from zero nor count twice when a reload rebuilds the output.
type brokerTotals struct {
	jetstream, kafka                                 bool // kinds seen under this name
	published, confirmed, duplicates, resent, beyond uint64
	dataLoss                                         uint64
	failed                                           map[string]uint64
}

func (t *brokerTotals) add(bo *brokerOutput) {
	var failed map[string]uint64
	switch {
	case bo.js != nil:
		s := bo.js.Stats()
		t.jetstream = true
		t.published += s.Published
		t.confirmed += s.Confirmed
		t.duplicates += s.Duplicates
		t.beyond += s.BeyondWindow
		t.resent += s.Resent
		failed = s.Failed
	case bo.kafka != nil:
		s := bo.kafka.Stats()
		t.kafka = true
		t.published += s.Produced
		t.confirmed += s.Confirmed
		t.resent += s.Resent
		t.dataLoss += s.DataLoss
		failed = s.Failed
	}
	for cause, n := range failed {
		if t.failed == nil {
			t.failed = map[string]uint64{}
		}
		t.failed[cause] += n
	}
}

func (t brokerTotals) clone() brokerTotals {
	t.failed = maps.Clone(t.failed)
	return t
}

// collect reports the totals; redelivered is the spool's count (kept
// across reloads with the spool's other counters).
func (t *brokerTotals) collect(ch chan<- prometheus.Metric, name string, redelivered uint64) {
	if !t.jetstream && !t.kafka {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, l...)...)
	}
	counter(brRedeliv, redelivered)
	counter(brPublished, t.published)
	counter(brConfirmed, t.confirmed)
	counter(brResent, t.resent)
	failed := maps.Clone(t.failed)
	if failed == nil {
		failed = map[string]uint64{}
	}
	for _, kind := range []struct {
		seen   bool
		causes []string
	}{{t.jetstream, broker.JetStreamCauses}, {t.kafka, broker.KafkaCauses}} {
		for _, c := range kind.causes {
			if _, ok := failed[c]; kind.seen && !ok {
				failed[c] = 0 // before the first failure, so that rate() sees it
			}
		}
	}
	for cause, n := range failed {
		counter(brFailed, n, cause)
	}
	if t.jetstream {
		counter(brDuplicates, t.duplicates)
		counter(brBeyond, t.beyond)
	}
	if t.kafka {
		counter(brDataLoss, t.dataLoss)
	}
}

// collectBroker reports the live broker outputs' gauges and the
// jetstream inputs' counters (r.mu held); the outputs' counters are
// reported with their totals (brokerTotals).
func collectBroker(ch chan<- prometheus.Metric, r *Relay) {
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for name, ro := range r.outputs {
		bo, ok := ro.out.(*brokerOutput)
		if !ok {
			continue
		}
		switch {
		case bo.js != nil:
			s := bo.js.Stats()
			gauge(brPending, float64(s.Pending), name)
			conn := 0.0
			if s.Connected {
				conn = 1
			}
			gauge(brConnected, conn, name)
		case bo.kafka != nil:
			gauge(brPending, float64(bo.kafka.Stats().Pending), name)
		}
	}
	for name, ri := range r.inputs {
		in, ok := ri.in.(*broker.JetStreamInput)
		if !ok {
			continue
		}
		s := in.JetStreamStats()
		gauge(jsInPending, float64(s.Pending), name)
		gauge(jsInLag, float64(s.Lag), name)
		conn := 0.0
		if s.Connected {
			conn = 1
		}
		gauge(jsInConnected, conn, name)
	}
	// The counters go on across reloads that rebuilt the input.
	for name, t := range r.inputTotalsNow() {
		if !t.jetstream {
			continue
		}
		counter(jsInRedelivered, t.jsRedelivered, name)
		counter(jsInAcked, t.jsAcked, name)
		counter(jsInNaked, t.jsNaked, name)
		counter(jsInRefused, t.jsRefused, name)
		counter(jsInResub, t.jsResub, name)
		for _, c := range broker.JetStreamInputCauses {
			counter(jsInFailed, t.jsFailed[c], name, c) // 0 before the first failure, so that rate() sees it
		}
		for c, n := range t.jsFailed {
			if !slices.Contains(broker.JetStreamInputCauses, c) {
				counter(jsInFailed, n, name, c)
			}
		}
	}
}
