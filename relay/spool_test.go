package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// envInt reads a test scale from the environment: short in make test, the
// issue's size by hand (e.g. SPOOL_STALL_SECONDS=60).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// spoolRelayConf writes a config with a syslog TCP input and one spooled
// PUSH output "a" on p.a.
func spoolRelayConf(t *testing.T, file string, p ports, spoolYAML, extra string) string {
	t.Helper()
	if file == "" {
		file = filepath.Join(t.TempDir(), "relay.yaml")
	}
	conf := fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:%d
stream: {from: app-name, default: unknown}
outputs:
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
    hwm: 1000
    spool: %s
http:
  listen: 127.0.0.1:%d
log: {format: json}
%s`, p.syslog, p.a, spoolYAML, p.http, extra)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// pacedSender writes n seq events from first at rate ev/s on one
// connection; sent counts what was written.
func pacedSender(t *testing.T, addr string, app string, first, n, rate int, sent *atomic.Int64) chan error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer c.Close()
		const chunk = 1000
		start := time.Now()
		for i := first; i < first+n; i += chunk {
			k := min(chunk, first+n-i)
			if _, err := c.Write(seqMsgs(app, i, k)); err != nil {
				done <- err
				return
			}
			sent.Add(int64(k))
			if rate > 0 {
				due := start.Add(time.Duration(float64(i-first+k) / float64(rate) * float64(time.Second)))
				time.Sleep(time.Until(due))
			}
		}
		done <- nil
	}()
	return done
}

// countSeqs counts how often each seq in [from, from+n) arrived at ws.
func countSeqs(ws []*testpeer.Peer, from, n int) (missing, dups int) {
	seen := make([]int, n)
	for _, w := range ws {
		for _, m := range w.Messages() {
			if s := testpeer.SeqOf(m[0]) - from; s >= 0 && s < n {
				seen[s]++
			}
		}
	}
	for _, k := range seen {
		switch {
		case k == 0:
			missing++
		case k > 1:
			dups += k - 1
		}
	}
	return missing, dups
}

func total(ws []*testpeer.Peer) int {
	n := 0
	for _, w := range ws {
		n += w.Count()
	}
	return n
}

// TestSpoolStalledConsumers: every worker stalled (none connected) while
// events arrive at a steady rate: the spool takes them on disk without
// pushing back on the sender, the relay's RSS stays bounded, /healthz
// stays 200; then 3 workers get every event exactly once.
// SPOOL_STALL_SECONDS (default 3) and SPOOL_STALL_RATE (default 100000
// ev/s): the size is 60 and 100000.
func TestSpoolStalledConsumers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and libzmq peers")
	}
	secs, rate := envInt("SPOOL_STALL_SECONDS", 3), envInt("SPOOL_STALL_RATE", 100_000)
	n := secs * rate
	const rssLimit = 100 << 20
	// The relay's GOGC (400, for throughput) lets its heap grow to five
	// times what it holds: with 15-35 MB live (the spool's memory tail,
	// events until their fsync, queues to workers; more while a loaded
	// disk delays fsyncs) its RSS went from 70 to 157 MiB between runs.
	// With GOGC=100 RSS follows what the relay holds (36-50 MiB here,
	// loaded), which is what this test bounds: holding the 32 MiB of
	// events spooled, with their structures, would take it over the limit.
	t.Setenv("GOGC", "100")
	p := freePorts(t)
	dir := filepath.Join(t.TempDir(), "spool")
	pr := startRelay(t, spoolRelayConf(t, "", p, fmt.Sprintf("{dir: %s, max_bytes: 4GiB}", dir), ""), p)
	pid := pr.cmd.Process.Pid
	var sent atomic.Int64
	start := time.Now()
	done := pacedSender(t, fmt.Sprintf("127.0.0.1:%d", p.syslog), "stall", 0, n, rate, &sent)
	var maxRSS int64
	sample := func() {
		if r := vmRSS(t, pid); r > maxRSS {
			maxRSS = r
		}
	}
	var sendErr error
	for waiting := true; waiting; {
		select {
		case sendErr = <-done:
			waiting = false
		case <-time.After(100 * time.Millisecond):
			sample()
			if code, _ := httpGet(p, "/healthz"); code != http.StatusOK {
				t.Errorf("/healthz %d while the spool fills", code)
			}
		}
	}
	took := time.Since(start)
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("every event in the spool"), func() bool {
		return metric(t, p, `relay_spool_appended_total{output="a"}`) == float64(n)
	})
	spooled := metric(t, p, `relay_spool_bytes{output="a"}`)
	inBlocked := time.Duration(metric(t, p, `relay_input_blocked_seconds_total{input="syslog"}`) * float64(time.Second))
	blocked := time.Duration(metric(t, p, `relay_output_blocked_seconds_total{output="a"}`) * float64(time.Second))
	t.Logf("stalled %.1fs: sent %d at %.0f ev/s (asked %d), output blocked %v (input waited %v, fsyncs included), spool %.1f MiB, max RSS %.1f MiB",
		took.Seconds(), n, float64(n)/took.Seconds(), rate, blocked.Round(time.Millisecond), inBlocked.Round(time.Millisecond), spooled/(1<<20), mib(maxRSS))
	// Not pushed back: the output hardly waited for room. (The input
	// waits for each batch's fsync besides: plain TCP has no other way to
	// keep a kill from taking it; that is not backpressure from the stalled
	// workers. The sender's pace shows the machine's speed as much: on a
	// loaded one it took 4-15 s. Without a spool the relay waits for a
	// worker all along: TestBackpressure.)
	if blocked > took/4 {
		t.Errorf("the input waited %v for the spooled output in %v: the relay pushed back before max_bytes", blocked, took)
	}
	if got := metric(t, p, `relay_spool_records{output="a"}`); got != float64(n) {
		t.Errorf("relay_spool_records = %v, want %d", got, n)
	}
	ws := []*testpeer.Peer{}
	for range 3 {
		ws = append(ws, testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", p.a)))
	}
	drainStart := time.Now()
	testpeer.Eventually(t, time.Duration(secs)*10*time.Second+60*time.Second, func() string { return fmt.Sprintf("%d events at the workers, have %d", n, total(ws)) }, func() bool {
		sample()
		return total(ws) >= n
	})
	t.Logf("drained %d in %.1fs; max RSS %.1f MiB", n, time.Since(drainStart).Seconds(), mib(maxRSS))
	if missing, dups := countSeqs(ws, 0, n); missing+dups > 0 {
		t.Errorf("%d missing, %d duplicated", missing, dups)
	}
	if maxRSS > rssLimit {
		t.Errorf("relay RSS reached %.1f MiB, want at most %d MiB", mib(maxRSS), rssLimit>>20)
	}
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the spool empty"), func() bool {
		return metric(t, p, `relay_spool_records{output="a"}`) == 0
	})
	pr.signal(t, syscall.SIGTERM)
	if code := pr.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// TestSpoolSIGTERMFullRestart: a full spool (full: block) and no worker;
// SIGTERM gives up after drain_timeout and leaves the spool; the next
// start delivers all of it once a worker comes. Events the relay had read
// but could not spool when it stopped are counted as dropped in its last
// log line (plain TCP syslog has no acknowledgement to hold them back).
func TestSpoolSIGTERMFullRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and libzmq peers")
	}
	p := freePorts(t)
	dir := filepath.Join(t.TempDir(), "spool")
	conf := spoolRelayConf(t, "", p, fmt.Sprintf("{dir: %s, max_bytes: 4MiB, full: block}", dir), "drain_timeout: 1s\n")
	pr := startRelay(t, conf, p)
	var sent atomic.Int64
	done := pacedSender(t, fmt.Sprintf("127.0.0.1:%d", p.syslog), "full", 0, 200_000, 0, &sent)
	// Full: the spool stops growing and the sender is held back.
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("a full spool"), func() bool {
		b := metric(t, p, `relay_spool_bytes{output="a"}`)
		return b > 3<<20
	})
	time.Sleep(500 * time.Millisecond)
	if sent.Load() >= 200_000 {
		t.Fatal("the sender was never held back by the full spool")
	}
	if code, _ := httpGet(p, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d with a full spool", code)
	}
	spooled := metric(t, p, `relay_spool_records{output="a"}`)
	pr.signal(t, syscall.SIGTERM)
	if code := pr.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	<-done
	st := stopped(t, pr.stderr.String())
	t.Logf("received %d, spooled %v, dropped at stop %d", st.Received, spooled, st.Dropped)
	// Restart: the spool is still there, and delivered.
	pr = startRelay(t, conf, p)
	if got := metric(t, p, `relay_spool_records{output="a"}`); got < spooled {
		t.Errorf("after restart the spool holds %v, had %v", got, spooled)
	}
	w := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", p.a))
	want := int(st.Received - st.Dropped)
	testpeer.Eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d events, have %d", want, w.Count()) }, func() bool { return w.Count() >= want })
	time.Sleep(200 * time.Millisecond)
	// Exactly what was spooled arrives: every event received, less the
	// ones counted as dropped at the stop, each once.
	missing, dups := countSeqs([]*testpeer.Peer{w}, 0, int(st.Received))
	if w.Count() != want || missing != int(st.Dropped) || dups != 0 {
		t.Errorf("worker got %d, want %d: %d of the %d received missing (dropped at stop: %d), %d duplicated", w.Count(), want, missing, st.Received, st.Dropped, dups)
	}
	pr.signal(t, syscall.SIGTERM)
	pr.wait(t, 20*time.Second)
}

// TestSpoolKill9WhileDraining: rsyslog omfwd → relay (spooled PUSH) with
// no worker until all events are spooled; a worker drains, the relay is
// kill -9'ed halfway and restarted at once: every event arrives, and the
// duplicates at the worker equal relay_spool_redelivered_total.
func TestSpoolKill9WhileDraining(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary, rsyslogd and libzmq peers")
	}
	n := envInt("SPOOL_KILL_EVENTS", 100_000)
	p := freePorts(t)
	dir := filepath.Join(t.TempDir(), "spool")
	conf := spoolRelayConf(t, "", p, fmt.Sprintf("{dir: %s}", dir), "")
	pr := startRelay(t, conf, p)
	rs := testpeer.StartRsyslogd(t, t.TempDir(), fmt.Sprintf(`action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp"
  TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
  action.resumeRetryCount="-1" queue.type="LinkedList" queue.size="500000")`, p.syslog))
	rs.SendNumbered(t, "kill", 0, n)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("every event spooled"), func() bool {
		return metric(t, p, `relay_spool_appended_total{output="a"}`) == float64(n)
	})
	w := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", p.a))
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("a third drained"), func() bool { return w.Count() >= n/3 })
	pr.cmd.Process.Signal(syscall.SIGKILL)
	pr.wait(t, 10*time.Second)
	atKill := w.Count()
	pr = startRelay(t, conf, p)
	testpeer.Eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d distinct events, have %d", n, w.Count()) }, func() bool {
		if w.Count() < n {
			return false
		}
		missing, _ := countMsgnums(w, n)
		return missing == 0
	})
	time.Sleep(300 * time.Millisecond) // anything still in flight
	missing, dups := countMsgnums(w, n)
	redelivered := metric(t, p, `relay_spool_redelivered_total{output="a"}`)
	t.Logf("%d events, %d at the worker when killed; after restart: %d missing, %d duplicates at the worker, relay_spool_redelivered_total %v",
		n, atKill, missing, dups, redelivered)
	if missing != 0 {
		t.Errorf("%d events lost", missing)
	}
	// Records are marked sent before each write(2) that may take them,
	// the mark taken back while a write waits for the worker
	// (output.PushSender): the count is never below the duplicates, and
	// above them only when the kill landed during a write(2), by at most
	// that write's records (64 KiB of them).
	if float64(dups) > redelivered || redelivered > float64(dups+maxWriteRecords(w.Messages())) {
		t.Errorf("duplicates %d, redelivered %v: the counter must be at least the duplicates, and at most one write (64 KiB) more", dups, redelivered)
	}
	pr.signal(t, syscall.SIGTERM)
	pr.wait(t, 20*time.Second)
}

// countMsgnums counts the rsyslog-numbered events 0..n-1 at w.
func countMsgnums(w *testpeer.Peer, n int) (missing, dups int) {
	seen := make([]int, n)
	for _, m := range w.Messages() {
		if s := testpeer.MsgNum(m[0]); s >= 0 && s < n {
			seen[s]++
		}
	}
	for _, k := range seen {
		if k == 0 {
			missing++
		} else {
			dups += k - 1
		}
	}
	return missing, dups
}

// TestSpoolDiskFull: the spool on a small tmpfs that fills before
// max_bytes: writes fail, are counted and retried, nothing is lost or
// reported durable, the sender is held back; once space is freed the flow
// resumes and a worker gets every event once.
func TestSpoolDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and libzmq peers")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs: run it as root (CI does)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 5<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t)
	conf := spoolRelayConf(t, "", p, fmt.Sprintf("{dir: %s/spool, max_bytes: 6MiB, segment_bytes: 256KiB}", mnt), "")
	pr := startRelay(t, conf, p)
	const n = 150_000 // ~13 MB: more than the disk has
	var sent atomic.Int64
	done := pacedSender(t, fmt.Sprintf("127.0.0.1:%d", p.syslog), "full", 0, n, 0, &sent)
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("write errors"), func() bool {
		return metric(t, p, `relay_spool_write_errors_total{output="a"}`) > 2
	})
	time.Sleep(300 * time.Millisecond)
	held := sent.Load()
	if held >= n {
		t.Fatal("the sender was not held back by the full disk")
	}
	if !strings.Contains(pr.stderr.String(), "write failed") {
		t.Error("the write errors were not logged")
	}
	if code, _ := httpGet(p, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d with a full disk", code)
	}
	// Free the space: the spool resumes; a worker drains everything.
	os.Remove(filler)
	w := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", p.a))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d events, have %d", n, w.Count()) }, func() bool { return w.Count() >= n })
	time.Sleep(200 * time.Millisecond)
	missing, dups := countSeqs([]*testpeer.Peer{w}, 0, n)
	t.Logf("sender held at %d of %d; write errors %v", held, n, metric(t, p, `relay_spool_write_errors_total{output="a"}`))
	if missing+dups > 0 {
		t.Errorf("%d missing, %d duplicated", missing, dups)
	}
	pr.signal(t, syscall.SIGTERM)
	pr.wait(t, 20*time.Second)
}

// TestSpoolReload: SIGHUP that changes a spooled output's settings (fsync,
// max_bytes, hwm) reopens the same directory: nothing is lost, nothing
// duplicated. A reload that would strand a non-empty spool (another dir)
// is refused and the old config keeps running.
func TestSpoolReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and libzmq peers")
	}
	p := freePorts(t)
	dir := filepath.Join(t.TempDir(), "spool")
	conf := spoolRelayConf(t, "", p, fmt.Sprintf("{dir: %s}", dir), "drain_timeout: 1s\n")
	pr := startRelay(t, conf, p)
	var sent atomic.Int64
	if err := <-pacedSender(t, fmt.Sprintf("127.0.0.1:%d", p.syslog), "reload", 0, 20_000, 0, &sent); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("20,000 spooled"), func() bool {
		return metric(t, p, `relay_spool_records{output="a"}`) == 20_000
	})
	// Another directory while this one holds events: refused.
	spoolRelayConf(t, conf, p, fmt.Sprintf("{dir: %s-other}", dir), "drain_timeout: 1s\n")
	pr.signal(t, syscall.SIGHUP)
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the reload refused"), func() bool {
		return metric(t, p, `relay_config_last_reload_successful`) == 0
	})
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the refusal logged with its reason"), func() bool {
		return strings.Contains(pr.stderr.String(), "still holds 20000 events")
	})
	// Other settings, same directory: applied, nothing lost.
	spoolRelayConf(t, conf, p, fmt.Sprintf("{dir: %s, fsync: 5ms, max_bytes: 2GiB}", dir), "drain_timeout: 1s\n")
	pr.signal(t, syscall.SIGHUP)
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the reload applied"), func() bool {
		return metric(t, p, `relay_config_last_reload_successful`) == 1
	})
	if err := <-pacedSender(t, fmt.Sprintf("127.0.0.1:%d", p.syslog), "reload", 20_000, 20_000, 0, &sent); err != nil {
		t.Fatal(err)
	}
	w := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", p.a))
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprintf("40000 events, have %d", w.Count()) }, func() bool { return w.Count() >= 40_000 })
	time.Sleep(200 * time.Millisecond)
	if missing, dups := countSeqs([]*testpeer.Peer{w}, 0, 40_000); missing+dups > 0 || w.Count() != 40_000 {
		t.Errorf("worker got %d: %d missing, %d duplicated", w.Count(), missing, dups)
	}
	pr.signal(t, syscall.SIGTERM)
	pr.wait(t, 20*time.Second)
}

// TestSpoolWithAck: a spooled acknowledged PUSH output starts, and
// /metrics serves both its spool and its ack series.
func TestSpoolWithAck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	p := freePorts(t)
	ackPort := testpeer.FreePort(t)
	dir := filepath.Join(t.TempDir(), "spool")
	pr := startRelay(t, spoolRelayConf(t, "", p, fmt.Sprintf("{dir: %s}\n    ack: {bind: tcp://127.0.0.1:%d}", dir, ackPort), ""), p)
	for _, s := range []string{`relay_spool_records{output="a"}`, `relay_output_ack_batches_total{output="a"}`} {
		if v := metric(t, p, s); v != 0 {
			t.Errorf("%s = %v, want 0", s, v)
		}
	}
	pr.signal(t, syscall.SIGTERM)
	if code := pr.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// maxWriteRecords is how many of msgs one socket write of the PUSH output
// can hold at most: 64 KiB of the smallest of them, plus the one that
// crosses the 64 KiB mark.
func maxWriteRecords(msgs [][]string) int {
	smallest := 64 << 10
	for _, m := range msgs {
		if len(m) > 0 {
			smallest = min(smallest, max(len(m[0]), 1))
		}
	}
	return (64<<10)/smallest + 1
}
