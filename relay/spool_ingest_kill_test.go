package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestSpoolKill9WhileIngesting is the original scenario with a
// spool: rsyslogd's omfwd (octet-counted, LinkedList action queue,
// action.resumeRetryCount="-1") forwards numbered events at ~50k/s over
// plain TCP into the relay, whose PUSH output has a disk spool (fsync:
// always, format json) and a libzmq PULL collector that counts every
// event. The relay is kill -9'ed once, 40% into the feed, and restarted at
// once on the same ports.
//
// Duplicates are told apart by the JSON "received" stamp (one clock
// reading per input batch, kept in the spool record): the same event with
// the same stamp twice is the spool sending a record again (counted in
// relay_spool_redelivered_total: at least these, at most one write more); the same event with another stamp is
// rsyslog sending it again after the connection broke (omfwd retries the
// batch whose send failed), which no relay counter can see. Both printed.
//
// Loss: plain TCP syslog has no acknowledgements, so what omfwd handed to
// its kernel and the relay had not made durable is lost, and omfwd
// cannot know. With a spool, the relay reports a batch written only once it
// is fsync'd (output.Spooled.Write), so a kill takes at most:
//   - the bytes in the kernel's queues of the connection: the relay's
//     receive queue and omfwd's send queue. The test measures them at the
//     moment of the kill: it stops rsyslogd and then the relay with
//     SIGSTOP, reads both queues from /proc/net/tcp (nothing moves while
//     both are stopped), kill -9s the relay and resumes rsyslogd;
//   - in the relay: the batch its connection is handing over (at most
//     input.MaxStreamBatch events) plus what its frame reader has read
//     ahead (at most 64 KiB).
//
// The bound asserted is their sum in events (bytes over the smallest frame
// omfwd can send for these messages). Before Write waited for the fsync,
// a kill could also take everything queued for the spool's committer (up
// to 16 MiB). SPOOL_INGEST_ROUNDS (default 1) repeats the run;
// SPOOL_INGEST_EVENTS (200,000) and SPOOL_INGEST_RATE (50,000/s) size it.
func TestSpoolKill9WhileIngesting(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary, rsyslogd and libzmq peers")
	}
	rounds := envInt("SPOOL_INGEST_ROUNDS", 1)
	var lost, spoolDups, srcDups int
	for r := range rounds {
		t.Run(fmt.Sprintf("round%d", r), func(t *testing.T) {
			l, sd, rd := spoolKillIngest(t)
			lost, spoolDups, srcDups = lost+l, spoolDups+sd, srcDups+rd
		})
	}
	t.Logf("%d rounds: %d lost, %d duplicates from the spool, %d from rsyslog's resends", rounds, lost, spoolDups, srcDups)
}

// ingestText is the text of event i: fixed length, so that a frame's
// size is known to within the header omfwd adds.
func ingestText(i int) string {
	s := testpeer.Numbered(i) + " "
	return s + strings.Repeat("x", 150-len(s))
}

func spoolKillIngest(t *testing.T) (lost, spoolDups, srcDups int) {
	n := envInt("SPOOL_INGEST_EVENTS", 200_000)
	rate := envInt("SPOOL_INGEST_RATE", 50_000)
	p := freePorts(t)
	conf := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
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
    format: json
    spool: {dir: %s, fsync: always}
http:
  listen: 127.0.0.1:%d
log: {level: warn}
`, p.syslog, p.a, filepath.Join(t.TempDir(), "spool"), p.http)), 0o600); err != nil {
		t.Fatal(err)
	}
	pr := startRelay(t, conf, p)
	w := testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", p.a))
	rsDir := t.TempDir()
	rs := testpeer.StartRsyslogd(t, rsDir, fmt.Sprintf(`action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp"
  TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
  action.resumeRetryCount="-1" action.resumeInterval="1" queue.type="LinkedList" queue.size="500000")`, p.syslog))
	rsPid := readPid(t, filepath.Join(rsDir, "rsyslogd.pid"))

	// The feed: n events into rsyslogd's imtcp at rate, in 10 ms steps.
	var fed atomic.Int64
	feedDone := make(chan error, 1)
	c := rs.Dial(t)
	go func() {
		defer c.Close()
		bw := bufio.NewWriterSize(c, 64<<10)
		per := max(rate/100, 1)
		start := time.Now()
		for i := 0; i < n; i += per {
			for j := i; j < min(i+per, n); j++ {
				m := fmt.Sprintf("<14>1 2026-01-01T00:00:00Z testhost ingest - - - %s", ingestText(j))
				fmt.Fprintf(bw, "%d %s", len(m), m)
			}
			if err := bw.Flush(); err != nil {
				feedDone <- err
				return
			}
			fed.Store(int64(min(i+per, n)))
			time.Sleep(time.Until(start.Add(time.Duration(i+per) * time.Second / time.Duration(rate))))
		}
		feedDone <- nil
	}()

	testpeer.Eventually(t, 60*time.Second, testpeer.Text("40% of the events at the collector"), func() bool { return w.Count() >= n*4/10 })
	// Freeze both ends, read the connection's kernel queues, kill.
	if err := syscall.Kill(rsPid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pr.signal(t, syscall.SIGSTOP)
	time.Sleep(50 * time.Millisecond) // loopback segments in flight land
	queued := tcpQueued(t, p.syslog)
	killed := time.Now() // every batch the first relay stamped is before this
	pr.signal(t, syscall.SIGKILL)
	pr.wait(t, 10*time.Second)
	if err := syscall.Kill(rsPid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	atKill := w.Count()
	pr = startRelay(t, conf, p)

	if err := <-feedDone; err != nil {
		t.Fatalf("feeding rsyslogd: %v", err)
	}
	// Everything rsyslogd still has is forwarded (omfwd retries its
	// connection every second: action.resumeInterval), spooled and
	// delivered: wait until every event arrived, or the collector got
	// nothing new for 5 s, and the spool is empty.
	last, still := -1, time.Now()
	testpeer.Eventually(t, 120*time.Second, func() string { return fmt.Sprintf("the collector to settle (%d of %d)", w.Count(), n) }, func() bool {
		c := w.Count()
		if c != last {
			last, still = c, time.Now()
		}
		if c < n && time.Since(still) < 5*time.Second {
			return false
		}
		return metric(t, p, `relay_spool_records{output="a"}`) == 0 && (c >= n || time.Since(still) >= 5*time.Second)
	})
	if c := w.Count(); c >= n {
		time.Sleep(300 * time.Millisecond) // duplicates still in flight
	}
	redelivered := metric(t, p, `relay_spool_redelivered_total{output="a"}`)

	// Count: per event, how often it came with each received stamp.
	stamps := make([]map[string]int, n)
	for _, m := range w.Messages() {
		i := testpeer.MsgNum(m[0])
		if i < 0 || i >= n {
			continue
		}
		if stamps[i] == nil {
			stamps[i] = map[string]int{}
		}
		stamps[i][receivedOf(m[0])]++
	}
	for _, s := range stamps {
		if len(s) == 0 {
			lost++
			continue
		}
		srcDups += len(s) - 1
		for st, k := range s {
			// The spool sends a record again only after the kill, and only
			// a record the first relay had stamped. A second copy with a
			// stamp of the restarted relay is rsyslog sending the event
			// twice and the relay reading both copies in one batch.
			if ts, err := time.Parse(time.RFC3339Nano, st); err == nil && ts.Before(killed) {
				spoolDups += k - 1
			} else {
				srcDups += k - 1
			}
		}
	}

	// The smallest frame omfwd sends for these texts: "NNN <14>1 TS H APP - - - text".
	minFrame := len(ingestText(0)) + len("<14>1 - - - - - - ") + 4
	const readAhead = 64 << 10
	bound := queued/minFrame + input.MaxStreamBatch + readAhead/minFrame + 1
	t.Logf("%d events at %d/s, %d at the collector at the kill, %d bytes in the connection's kernel queues then; lost %d (bound %d), duplicates: %d from the spool (relay_spool_redelivered_total %v), %d from rsyslog's resends",
		n, rate, atKill, queued, lost, bound, spoolDups, redelivered, srcDups)
	if lost > bound {
		t.Errorf("%d events lost, more than the %d a kill can take from a TCP connection (its kernel queues, one batch, the read-ahead)", lost, bound)
	}
	// The PUSH output marks records sent before the write(2) that may take
	// them: the count is at least the spool's duplicates, and more only by
	// what a write(2) did not take when the kill landed during it.
	if float64(spoolDups) > redelivered || redelivered > float64(spoolDups+maxWriteRecords(w.Messages())) {
		t.Errorf("the spool sent %d events twice, relay_spool_redelivered_total says %v: want at least that, at most one write (64 KiB) more", spoolDups, redelivered)
	}
	pr.signal(t, syscall.SIGTERM)
	pr.wait(t, 20*time.Second)
	return lost, spoolDups, srcDups
}

// receivedOf returns the "received" member of a JSON event.
func receivedOf(s string) string {
	const key = `"received":"`
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	rest := s[i+len(key):]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return rest
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	var pid int
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("rsyslogd's pid file "+file), func() bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

// tcpQueued sums, over the IPv4 connections to port, the receiving side's
// unread bytes (rx_queue) and the sending side's unacknowledged ones
// (tx_queue), from /proc/net/tcp.
func tcpQueued(t *testing.T, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	hexPort := fmt.Sprintf(":%04X", port)
	total := 0
	for _, line := range bytes.Split(b, []byte("\n"))[1:] {
		f := strings.Fields(string(line))
		if len(f) < 5 || f[3] != "01" { // established only
			continue
		}
		tx, rx, ok := strings.Cut(f[4], ":")
		if !ok {
			continue
		}
		txN, _ := strconv.ParseInt(tx, 16, 64)
		rxN, _ := strconv.ParseInt(rx, 16, 64)
		switch {
		case strings.HasSuffix(f[1], hexPort): // the relay's side
			total += int(rxN) + int(txN)
		case strings.HasSuffix(f[2], hexPort): // omfwd's side
			total += int(txN) + int(rxN)
		}
	}
	return total
}
