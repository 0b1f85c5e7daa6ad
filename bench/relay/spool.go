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
