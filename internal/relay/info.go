package relay

import "github.com/prometheus/client_golang/prometheus"

var outInfo = prometheus.NewDesc("relay_output_info",
	"Always 1, one series per output: its type and socket (push or pub), so alerts can tell a PUSH output with no peers (stalled) from a PUB one (nobody tapping).",
	[]string{"output", "type", "socket"}, nil)

// infoCollector exports relay_output_info.
type infoCollector struct{ r *Relay }

func (c infoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- outInfo }

func (c infoCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	for name, ro := range c.r.outputs {
		ch <- prometheus.MustNewConstMetric(outInfo, prometheus.GaugeValue, 1, name, ro.cfg.Type, ro.cfg.Socket)
	}
}
