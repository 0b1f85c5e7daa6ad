package relay

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rsyslog-zmq/relay/internal/listen"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// maxStreamLabels bounds the per-stream series: a json: or regex: stream
// field could otherwise create one series per distinct value. With
// stream.max_length (128 bytes by default) the labels are bounded in
// bytes too.
const maxStreamLabels = 1000

// otherStream labels the events of streams beyond maxStreamLabels.
const otherStream = "_other"

// metrics exports the relay's counters. Inputs, outputs and sockets keep
// their own atomic counters; a collector reads them at scrape time, so the
// hot path never touches Prometheus except for the per-stream counter.
type metrics struct {
	r        *Relay
	events   *prometheus.CounterVec
	streams  sync.Map // stream → prometheus.Counter
	nstreams atomic.Int32
	reloadOK prometheus.Gauge
	reloadTS prometheus.Gauge
}

func newMetrics(r *Relay) *metrics {
	m := &metrics{
		r: r,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_stream_events_total",
			Help: "Events routed, by stream type (streams past the first 1000 count as _other).",
		}, []string{"stream"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or not (0).",
		}),
		reloadTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last applied successfully.",
		}),
	}
	m.reloadOK.Set(1)
	m.reloadTS.SetToCurrentTime()
	r.reg.MustRegister(m.events, m.reloadOK, m.reloadTS, m, relpCollector{r}, linkCollector{r},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// streamEvents returns the counter of one stream, memoised.
func (m *metrics) streamEvents(stream string) prometheus.Counter {
	if c, ok := m.streams.Load(stream); ok {
		return c.(prometheus.Counter)
	}
	if m.nstreams.Load() >= maxStreamLabels {
		return m.events.WithLabelValues(otherStream)
	}
	c := m.events.WithLabelValues(stream)
	if _, loaded := m.streams.LoadOrStore(stream, c); !loaded {
		m.nstreams.Add(1)
	}
	return c
}

func (m *metrics) reloads(ok bool) {
	if ok {
		m.reloadOK.Set(1)
		m.reloadTS.SetToCurrentTime()
	} else {
		m.reloadOK.Set(0)
	}
}

var (
	descIn = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("relay_input_"+name, help, []string{"input"}, nil)
	}
	inReceived   = descIn("received_total", "Events received.")
	inBytes      = descIn("received_bytes_total", "Payload bytes of the events received.")
	inMalformed  = descIn("malformed_total", "Frames or messages that could not be framed or had too many parts.")
	inOversize   = descIn("oversize_total", "Messages over max_message_size, discarded.")
	inReadErrors = descIn("read_errors_total", "Connections ended by an error other than EOF or shutdown.")
	inKernDrops  = descIn("kernel_drops_total", "Datagrams the kernel dropped because the receive buffer was full (UDP).")
	inSockDrops  = descIn("socket_drops_total", "ZeroMQ messages read from a peer but dropped by the socket (it was closing).")
	inConns      = descIn("connections", "Connections (ZeroMQ: peers) open now.")
	inConnsTotal = descIn("connections_total", "Connections accepted.")
	inRefused    = descIn("connections_refused_total", "Connections refused: over max_connections_per_source, or max_connections with every connection busy.")
	inClosed     = prometheus.NewDesc("relay_input_connections_closed_total", "Stream connections the relay closed or refused, by reason (deadlines, limits, evictions; see README, Hostile senders).", []string{"input", "reason"}, nil)
	inHSErrors   = descIn("handshake_errors_total", "Failed TLS (ZeroMQ: ZMTP) handshakes.")
	inBlocked    = descIn("blocked_seconds_total", "Time the input waited for the outputs to take its events (backpressure; behind a spooled output also each batch's fsync).")
	inCurve      = prometheus.NewDesc("relay_input_curve_refused_total", "ZeroMQ CURVE handshakes refused and CURVE connections dropped, by reason: unknown_key, bad_box, bad_version, bad_nonce, malformed, refused (by the server), no_welcome (wrong server key?).", []string{"input", "reason"}, nil)

	descOut = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("relay_output_"+name, help, []string{"output"}, nil)
	}
	outSent    = descOut("sent_total", "Events handed to the output's socket.")
	outDropped = descOut("dropped_total", "Events dropped (PUB: per slow subscriber; any output: failures).")
	outBlocked = descOut("blocked_seconds_total", "Time spent waiting for a peer with room (PUSH backpressure).")
	outQueue   = descOut("queue_depth", "Messages queued for peers now.")
	outPeers   = descOut("peers", "Peers connected now.")
	outSubs    = descOut("subscribers", "PUB: subscribers whose subscription has reached the relay (connected peers with at least one).")
	outDrops   = prometheus.NewDesc("relay_output_socket_drops_total", "Socket-level drops by reason.", []string{"output", "reason"}, nil)
	outHSFail  = descOut("handshake_failures_total", "ZeroMQ handshakes that failed or timed out.")
	outOversz  = descOut("oversize_total", "Peers disconnected for sending a message over the size limit (max_message_size, or 256 frames).")
	outRefused = descOut("peers_refused_total", "Connections refused because the output had max_peers peers.")
	outSubsRef = descOut("subscriptions_refused_total", "PUB: subscriptions refused because a peer held 64 KiB of them (or 4096).")
	outCurve   = prometheus.NewDesc("relay_output_curve_refused_total", "ZeroMQ CURVE handshakes refused and CURVE connections dropped, by reason: unknown_key, bad_box, bad_version, bad_nonce, malformed, refused (by the server), no_welcome (wrong server key?).", []string{"output", "reason"}, nil)

	tapClients = prometheus.NewDesc("relay_tap_clients", "Websocket tap clients connected now.", nil, nil)
	tapSent    = prometheus.NewDesc("relay_tap_sent_total", "Events written to websocket tap clients.", nil, nil)
	tapDropped = prometheus.NewDesc("relay_tap_dropped_total", "Events dropped because a tap client's queue was full.", nil, nil)
	tapOrigin  = prometheus.NewDesc("relay_tap_origin_refused_total", "Websocket taps refused because a web page from another origin opened them (see http.allowed_origins).", nil, nil)
	tapTimeout = prometheus.NewDesc("relay_tap_timed_out_total", "Tap clients closed because they stopped reading or answering pings.", nil, nil)
	tapThrottl = prometheus.NewDesc("relay_tap_throttled_total", "Events tap clients skipped because their filters were over their CPU share (counted in relay_tap_dropped_total too).", nil, nil)
	httpConns  = prometheus.NewDesc("relay_http_connections", "HTTP connections open now (taps included).", nil, nil)
	httpRefuse = prometheus.NewDesc("relay_http_connections_refused_total", "HTTP connections closed at once: max_connections were open and all busy.", nil, nil)
	httpEvict  = prometheus.NewDesc("relay_http_connections_evicted_total", "Idle HTTP connections closed to make room for a new one at max_connections.", nil, nil)
	hostRefuse = prometheus.NewDesc("relay_http_host_refused_total", "HTTP requests refused because their Host header names a host the relay does not serve (see http.allowed_hosts).", nil, nil)
	overlong   = prometheus.NewDesc("relay_stream_overlong_total", "Events whose stream name was longer than stream.max_length, routed as the _overlong stream.", nil, nil)
	unrouted   = prometheus.NewDesc("relay_unrouted_events_total", "Events whose stream no output's streams match: written to no output (taps still see them).", nil, nil)
	reloadDrop = prometheus.NewDesc("relay_reload_dropped_total", "Events routed to an output that a reload removed or could not recreate.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inReceived, inBytes, inMalformed, inOversize, inReadErrors, inKernDrops, inSockDrops, inConns, inConnsTotal, inRefused, inClosed, inHSErrors, inBlocked,
		outSent, outDropped, outBlocked, outQueue, outPeers, outSubs, outDrops, outHSFail, outOversz, outRefused, outSubsRef, inCurve, outCurve, tapClients, tapSent, tapDropped,
		tapOrigin, tapTimeout, tapThrottl, httpConns, httpRefuse, httpEvict, hostRefuse, overlong, reloadDrop, unrouted} {
		ch <- d
	}
	describeAck(ch)
	for _, d := range spoolDescs {
		ch <- d
	}
	describeBroker(ch)
}

// Collect implements prometheus.Collector: it reads every component's
// counters at scrape time.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	r := m.r
	r.mu.Lock()
	defer r.mu.Unlock()
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	// Live inputs plus what the ones of the same name that reloads
	// stopped had counted.
	for name, ri := range r.inputs {
		gauge(inConns, float64(ri.in.Stats().Connections), name)
	}
	for name, t := range r.inputTotalsNow() {
		counter(inReceived, float64(t.received), name)
		counter(inBytes, float64(t.bytes), name)
		counter(inMalformed, float64(t.malformed), name)
		counter(inOversize, float64(t.oversize), name)
		counter(inReadErrors, float64(t.readErrors), name)
		counter(inKernDrops, float64(t.kernelDrops), name)
		counter(inSockDrops, float64(t.socketDrops), name)
		counter(inConnsTotal, float64(t.connsTotal), name)
		counter(inRefused, float64(t.refused), name)
		if t.stream { // stream inputs: internal/listen's reasons
			for _, r := range listen.Reasons() {
				counter(inClosed, float64(t.closed[r]), name, r.String())
			}
		}
		counter(inHSErrors, float64(t.hsErrors), name)
		counter(inBlocked, t.blocked.Seconds(), name)
		for reason, n := range t.curve {
			counter(inCurve, float64(n), name, reason)
		}
	}
	// Live outputs plus what retired ones of the same name counted.
	totals := map[string]outputTotals{}
	for name, t := range r.retired {
		t.drops = maps.Clone(t.drops)
		t.ack = t.ack.clone()
		t.curve = maps.Clone(t.curve)
		t.broker = t.broker.clone()
		totals[name] = t
	}
	for _, ro := range r.lingering {
		t := totals[ro.cfg.Name]
		t.add(ro.out)
		totals[ro.cfg.Name] = t
	}
	for name, ro := range r.outputs {
		t := totals[name]
		t.add(ro.out)
		totals[name] = t
		s := ro.out.Stats()
		gauge(outQueue, float64(s.Queued), name)
		gauge(outPeers, float64(s.Peers), name)
		if so, ok := ro.out.(interface{ Socket() zmq.Stats }); ok {
			if ss := so.Socket(); ss.Type == "PUB" {
				n := 0
				for _, p := range ss.PeerStats {
					if p.Subscriptions > 0 {
						n++
					}
				}
				gauge(outSubs, float64(n), name)
			}
		}
		collectAckGauges(ch, name, ro.out)
		if so, ok := ro.out.(spoolStatser); ok {
			var maxBytes int64
			if ro.cfg.Spool != nil {
				maxBytes = int64(ro.cfg.Spool.MaxBytes)
			}
			collectSpoolGauges(ch, name, so.SpoolStats(), maxBytes)
		}
	}
	for name, t := range totals {
		counter(outSent, float64(t.sent), name)
		counter(outDropped, float64(t.dropped), name)
		counter(outBlocked, t.blocked.Seconds(), name)
		for reason, n := range t.drops {
			counter(outDrops, float64(n), name, reason)
		}
		counter(outHSFail, float64(t.hsFail), name)
		counter(outOversz, float64(t.oversize), name)
		collectAckTotals(ch, name, t.ack)
		counter(outRefused, float64(t.peersRefused), name)
		counter(outSubsRef, float64(t.subsRefused), name)
		t.spool.collect(ch, name)
		t.broker.collect(ch, name, t.spool.redeliv)
		for reason, n := range t.curve {
			counter(outCurve, float64(n), name, reason)
		}
	}
	counter(reloadDrop, float64(r.reloadDropped.Load()))
	counter(unrouted, float64(r.unrouted.Load()))
	if r.hub != nil {
		s := r.hub.Stats()
		gauge(tapClients, float64(s.Clients))
		counter(tapSent, float64(s.Sent))
		counter(tapDropped, float64(s.Dropped))
		counter(tapOrigin, float64(s.OriginRefused))
		counter(tapTimeout, float64(s.TimedOut))
		counter(tapThrottl, float64(s.Throttled))
	}
	if r.httpConns != nil {
		open, _, refused, evicted := r.httpConns.stats()
		gauge(httpConns, float64(open))
		counter(httpRefuse, float64(refused))
		counter(httpEvict, float64(evicted))
	}
	counter(hostRefuse, float64(r.hostRefused.Load()))
	counter(overlong, float64(r.overlong.Load()))
	collectBroker(ch, r)
}
