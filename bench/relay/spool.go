package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rsyslog-zmq/relay/internal/input"
)

// rsyslog's disk-only action queue in front of omczmq, and its synced
// variant (every message fsync'd: the same promise as fsync: always).
const (
	rsyslogDiskQueue = ` queue.type="Disk" queue.filename="benchq" queue.maxDiskSpace="8g" queue.saveOnShutdown="on"`
	rsyslogDiskSync  = ` queue.syncQueueFiles="on" queue.checkpointInterval="1"`
)

// spoolYAML is the spool section of a relay-spool target: fsync always,
// in the spool dir (the disk under test).
func (b *bench) spoolYAML(tmp string) string {
	dir := filepath.Join(tmp, "spool")
	if b.spoolDir != "" {
		d, err := os.MkdirTemp(b.spoolDir, "relay-bench-spool")
		if err == nil {
			dir = d
		}
	}
	return fmt.Sprintf("    spool: {dir: %s, max_bytes: 4GiB, fsync: always}", dir)
}

// metric reads one series from the relay's /metrics, or -1.
func metric(hport int, series string) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", hport))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return -1
}

// stall measures the spooled relay with its consumer stalled (not
// connected): how fast n messages go into the spool (fsync always), and
// how fast the spool drains once a libzmq consumer connects.
func (b *bench) stall(n int) error {
	tmp, err := os.MkdirTemp("", "relay-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	port, err := freePort()
	if err != nil {
		return err
	}
	cport, err := freePort()
	if err != nil {
		return err
	}
	endpoint := fmt.Sprintf("tcp://127.0.0.1:%d", cport)
	proc, hport, err := b.startRelay(tmp, port, endpoint, b.spoolYAML(tmp))
	if err != nil {
		return err
	}
	defer stopProc(proc)
	rss := newSampler(proc.Process.Pid)
	defer rss.stop()
	conn, err := dialRetry(fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := sendFast(conn, n); err != nil {
		return err
	}
	conn.Close()
	for metric(hport, `relay_spool_appended_total{output="out"}`) < float64(n) {
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("%d messages not spooled within 5 minutes", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ingest := time.Since(start)
	// Durable too: every append covered by an fsync (group commit).
	bytes := metric(hport, `relay_spool_bytes{output="out"}`)
	fsyncs := metric(hport, `relay_spool_fsyncs_total{output="out"}`)
	stallRSS := rss.max()
	cons, err := startProcConsumer(exec.Command(b.cpull, endpoint, strconv.Itoa(n), "count"))
	if err != nil {
		return err
	}
	defer cons.stop()
	done, err := cons.wait(5 * time.Minute)
	if err != nil {
		return err
	}
	// From the first message to the last: the relay's reconnect backoff
	// before the consumer was there is not the drain's.
	drain := time.Duration(done.last - done.first)
	fmt.Printf("\nstalled consumer: %d messages of %d bytes into relay-spool (fsync always) with no consumer, then a libzmq C consumer connects\n", n, msgSize)
	fmt.Printf("%-28s %12.0f msg/s  (%.1f MiB spooled, %.0f fsyncs, %.0f messages per fsync, RSS %.1f MiB)\n",
		"ingest into the spool", float64(n)/ingest.Seconds(), bytes/(1<<20), fsyncs, float64(n)/max(fsyncs, 1), mib(stallRSS))
	fmt.Printf("%-28s %12.0f msg/s  (%d delivered, %d distinct, max RSS %.1f MiB)\n",
		"drain to the consumer", float64(done.count)/drain.Seconds(), done.count, done.unique, mib(rss.max()))
	return nil
}

// spoolScrape is what relay-spool's spool reports on /metrics (output
// "out"), or the difference of two scrapes.
type spoolScrape struct {
	appended, fsyncs     float64 // relay_spool_appended_total, relay_spool_fsyncs_total
	fsyncSum, fsyncCount float64 // relay_spool_fsync_duration_seconds _sum and _count
}

func (s spoolScrape) since(s0 spoolScrape) spoolScrape {
	return spoolScrape{s.appended - s0.appended, s.fsyncs - s0.fsyncs, s.fsyncSum - s0.fsyncSum, s.fsyncCount - s0.fsyncCount}
}

// scrapeSpool reads the spool's counters from one /metrics scrape.
func scrapeSpool(hport int) (spoolScrape, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", hport))
	if err != nil {
		return spoolScrape{}, fmt.Errorf("relay-spool /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return spoolScrape{}, fmt.Errorf("relay-spool /metrics: %w", err)
	}
	vals := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && strings.HasPrefix(k, "relay_spool_") {
			vals[k], _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	var s spoolScrape
	for _, m := range []struct {
		series string
		dst    *float64
	}{
		{`relay_spool_appended_total{output="out"}`, &s.appended},
		{`relay_spool_fsyncs_total{output="out"}`, &s.fsyncs},
		{`relay_spool_fsync_duration_seconds_sum{output="out"}`, &s.fsyncSum},
		{`relay_spool_fsync_duration_seconds_count{output="out"}`, &s.fsyncCount},
	} {
		v, ok := vals[m.series]
		if !ok {
			return spoolScrape{}, fmt.Errorf("relay-spool /metrics has no %s (renamed? see internal/relay/spoolmetrics.go)", m.series)
		}
		*m.dst = v
	}
	return s, nil
}

// scrapeSpoolSettled scrapes until the fsync count holds still for 20 ms
// (at most 1 s): the consumer can have every event before the fsync that
// makes the last batch durable has ended.
func scrapeSpoolSettled(hport int) (spoolScrape, error) {
	s, err := scrapeSpool(hport)
	for deadline := time.Now().Add(time.Second); err == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		var s2 spoolScrape
		if s2, err = scrapeSpool(hport); err == nil && s2 == s {
			break
		}
		s = s2
	}
	return s, err
}

// printSpoolFloor prints the floor that one connection into a spooled
// output (fsync always) cannot pass, from relay-spool's own run: the
// connection reads a batch (at most input.MaxStreamBatch events), the
// output's Write returns once it is fdatasync'd, then the next batch is
// read, so each batch costs the relay's time for it without a spool plus
// one fsync. The share of the ceiling that relay-spool misses is its other
// costs (encoding and writing records, the hand-offs to the committer).
func printSpoolFloor(consumer string, base, sp result, n int) {
	s := sp.spool
	if base.rate <= 0 || sp.rate <= 0 || s.fsyncs <= 0 || s.fsyncCount <= 0 {
		fmt.Printf("floor (%s): relay-spool's run reported no fsyncs; no floor\n", consumer)
		return
	}
	epf := s.appended / s.fsyncs
	mean := s.fsyncSum / s.fsyncCount
	ceil := epf / (epf/base.rate + mean)
	fmt.Printf("floor (%s): relay-spool's run above (its /metrics, over the run): %.0f events appended, %.0f fdatasyncs (histogram count %.0f), mean fsync %.3f ms, %.0f events per fsync (a connection's read batch is at most %d)\n",
		consumer, s.appended, s.fsyncs, s.fsyncCount, 1e3*mean, epf, input.MaxStreamBatch)
	note := ""
	if sp.rate > ceil {
		// The model charges relay-spool the relay's whole time per event
		// in series with the fsync, but its drain (the PUSH send) runs on
		// another core during the fsync; or the relay's run was slowed.
		note = " (above 100%: the drain's PUSH send overlaps the fsync, which the model charges in series; or the relay's run was the slower of a noisy pair)"
	}
	fmt.Printf("floor (%s): one connection waits one fsync per batch: ceiling = epf / (epf / relay rate + mean fsync) = %.0f / (%.0f / %.0f + %.6f s) = %.0f msg/s (%.2fx relay); relay-spool %.0f msg/s = %.0f%% of that ceiling%s\n",
		consumer, epf, epf, base.rate, mean, ceil, ceil/base.rate, sp.rate, 100*sp.rate/ceil, note)
	// rate = epf / (epf/U + t) >= g*U  <=>  t <= (epf/U) (1/g - 1)  <=>  epf >= t U g/(1-g)
	const goal = 0.70
	allow := epf / base.rate * (1/goal - 1)
	need := mean * base.rate * goal / (1 - goal)
	fmt.Printf("floor (%s): the %.0f%% goal (%.0f msg/s) would need at most %.3f ms of fsync per %.0f-event batch (measured %.3f ms, with no other spool cost), or at %.3f ms per fsync at least %.0f events per fsync\n",
		consumer, 100*goal, goal*base.rate, 1e3*allow, epf, 1e3*mean, 1e3*mean, need)
}
