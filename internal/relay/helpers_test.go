package relay

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return nil
}

// startRelay parses yaml as a config file, starts a relay on it and shuts
// it down when the test ends.
func startRelay(t testing.TB, yaml string) *Relay {
	t.Helper()
	file := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	r, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, r) })
	return r
}

// shutdown stops r and fails the test if the drain did not complete: an
// input that could not hand over what it read, or an output that could
// not flush, is a test failure, not a log line.
func shutdown(t testing.TB, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// inputAddr returns the address of input name on network ("tcp", "udp").
func inputAddr(t testing.TB, r *Relay, name, network string) string {
	t.Helper()
	in, ok := r.Inputs()[name]
	if !ok {
		t.Fatalf("no input %q", name)
	}
	for _, a := range in.Addrs() {
		if a.Network() == network {
			return a.String()
		}
	}
	t.Fatalf("input %q has no %s address among %v", name, network, in.Addrs())
	return ""
}

// outputEndpoint returns "tcp://ADDR" of output name's first bind.
func outputEndpoint(t testing.TB, r *Relay, name string) string {
	t.Helper()
	as := r.OutputAddrs(name)
	if len(as) == 0 {
		t.Fatalf("output %q has no bound address", name)
	}
	return "tcp://" + as[0].String()
}

// metric returns the value of the series name{labels} (labels as k=v)
// from the relay's registry, or 0 when it does not exist.
func metric(t testing.TB, r *Relay, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				return value(m)
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()) // its observations
	}
	return 0
}

// startRsyslogd runs rsyslogd on conf, with DIR replaced by a work
// directory. When conf contains PORTFILE (an imtcp listenPortFileName),
// it waits until imtcp accepts on that port.
func startRsyslogd(t testing.TB, conf string) *testpeer.Rsyslogd {
	t.Helper()
	dir := t.TempDir()
	portFile := filepath.Join(dir, "imtcp.port")
	conf = strings.ReplaceAll(conf, "PORTFILE", portFile)
	conf = strings.ReplaceAll(conf, "DIR", dir)
	if !strings.Contains(conf, portFile) {
		portFile = ""
	}
	return testpeer.StartRsyslogdConf(t, dir, conf, portFile)
}

// sendTCP writes msgs to addr on one connection, octet-counted or
// LF-terminated, and closes it.
func sendTCP(t testing.TB, addr string, octet bool, msgs []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	for _, m := range msgs {
		if octet {
			fmt.Fprintf(w, "%d %s", len(m), m)
		} else {
			w.WriteString(m)
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("send to %s: %v", addr, err)
	}
}

// checkExactlyOnce checks that the last frame of the peers' messages
// carry every sequence number in [0, n) exactly once, and returns each
// peer's count.
func checkExactlyOnce(t testing.TB, n int, peers ...*testpeer.Peer) []int {
	t.Helper()
	seen := make([]int, n)
	counts := make([]int, len(peers))
	var bad []string
	for i, p := range peers {
		for _, m := range p.Messages() {
			counts[i]++
			s := testpeer.SeqOf(m[len(m)-1])
			if s < 0 || s >= n {
				if len(bad) < 5 {
					bad = append(bad, m[len(m)-1])
				}
				continue
			}
			seen[s]++
		}
	}
	if len(bad) > 0 {
		t.Errorf("messages without a valid sequence number, e.g. %q", bad)
	}
	var missing, dup []int
	for i, c := range seen {
		switch {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dup = append(dup, i)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Errorf("%d missing (first %v), %d duplicated (first %v)", len(missing), first(missing), len(dup), first(dup))
	}
	return counts
}

func first(s []int) []int { return s[:min(len(s), 10)] }

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

// sortedKeys lists a map's keys in order, for stable failure messages.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
