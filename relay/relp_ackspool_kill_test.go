package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// ackWorkerProc is a Go ackworker of examples/pipeline as a child
// process: it pulls from the relay, prints each event (its "work") and
// acknowledges a batch once the events it printed are written to its
// stdout. Its stdout is the test's record of every copy it processed.
type ackWorkerProc struct {
	cmd  *exec.Cmd
	out  *testpeer.SyncBuffer
	done chan struct{}
}

func startAckWorkerProc(t *testing.T, goBin, data, ack, id string) *ackWorkerProc {
	t.Helper()
	w := &ackWorkerProc{out: &testpeer.SyncBuffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(goBin, "ackworker", "-in", data, "-ack", ack, "-id", id, "-print")
	w.cmd.Stdout = w.out
	stderr := &testpeer.SyncBuffer{}
	w.cmd.Stderr = stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start ackworker %s: %v", id, err)
	}
	go func() { w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			w.cmd.Process.Signal(syscall.SIGKILL)
			<-w.done
		}
		if t.Failed() && stderr.String() != "" {
			t.Logf("ackworker %s stderr:\n%s", id, stderr.String())
		}
	})
	return w
}

// TestRELPAckSpoolKillRelay: rsyslogd's omrelp (windowSize 1024,
// LinkedList queue, resumeRetryCount -1) → the relay binary's RELP input
// → an acknowledged PUSH output with a disk spool (fsync: always) → two Go
// ackworkers, while the relay is killed with SIGKILL and restarted on the
// same ports RELAY_RELP_ACK_KILLS times (default 3). The relay answers a
// frame once its event is fsync'd in the spool; the spool sends it to a
// worker and keeps it until the worker acknowledges it.
//
// Proves: 0 lost. Duplicates come from omrelp resending frames the dead
// relay had not answered (at most its window, 1024, per kill) and from
// the spool sending again, after a restart, what it had sent but had not
// seen acknowledged (counted at each open as sent_before_restart and in
// relay_spool_redelivered_total); the test asserts the duplicates stay
// within their sum and logs both.
func TestRELPAckSpoolKillRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary, rsyslogd and Go ackworkers")
	}
	const n, window = 30_000, 1024
	kills := envInt("RELAY_RELP_ACK_KILLS", 3)
	goBin := filepath.Join(t.TempDir(), "pipeline")
	if out, err := exec.Command("go", "build", "-o", goBin, "../examples/pipeline").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/pipeline: %v\n%s", err, out)
	}
	pp := testpeer.FreePorts(t, 4)
	relpPort, dataPort, ackPort, httpPort := pp[0], pp[1], pp[2], pp[3]
	p := ports{http: httpPort}
	conf := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
inputs:
  - name: relp
    type: relp
    listen: tcp://127.0.0.1:%d
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
    ack: {bind: "tcp://127.0.0.1:%d", batch: 100, window: 8, timeout: 2s}
    spool: {dir: %s, fsync: always}
http:
  listen: 127.0.0.1:%d
log: {format: json}
`, relpPort, dataPort, ackPort, filepath.Join(t.TempDir(), "spool"), httpPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := startRelay(t, conf, p)
	data, ack := fmt.Sprintf("tcp://127.0.0.1:%d", dataPort), fmt.Sprintf("tcp://127.0.0.1:%d", ackPort)
	ws := []*ackWorkerProc{startAckWorkerProc(t, goBin, data, ack, "w1"), startAckWorkerProc(t, goBin, data, ack, "w2")}

	dir := t.TempDir()
	portFile := filepath.Join(dir, "imtcp.port")
	rs := testpeer.StartRsyslogdConf(t, dir, fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
module(load="omrelp")
input(type="imtcp" port="0" listenPortFileName=%q ruleset="fwd")
ruleset(name="fwd") {
  action(type="omrelp" target="127.0.0.1" port="%d" windowSize="%d"
         template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="%d"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
`, dir, portFile, relpPort, window, window), portFile)

	seen := make([]int, n)
	var strays []string
	count := func() (distinct, copies int) {
		clear(seen)
		strays = strays[:0]
		for _, w := range ws {
			for _, line := range strings.Split(w.out.String(), "\n") {
				if line == "" {
					continue
				}
				i := testpeer.MsgNum(line)
				if i < 0 || i >= n {
					strays = append(strays, line)
					continue
				}
				if seen[i] == 0 {
					distinct++
				}
				seen[i]++
				copies++
			}
		}
		return distinct, copies
	}
	// Feed 10,000 events a second, so the kills land during ingest.
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; i < n; i += 1000 {
			rs.SendNumbered(t, "relpack", i, 1000)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var sentBefore []int64
	for k := 0; k < kills; k++ {
		target := min((k+1)*n/(kills+1), n)
		testpeer.Eventually(t, 60*time.Second, func() string {
			d, _ := count()
			return fmt.Sprintf("%d events processed before kill %d, have %d\nrsyslogd:\n%s", target, k+1, d, rs.Output())
		}, func() bool { d, _ := count(); return d >= target })
		relay.signal(t, syscall.SIGKILL)
		relay.wait(t, 20*time.Second)
		relay = startRelay(t, conf, p)
		sentBefore = append(sentBefore, spoolSentBeforeRestart(t, relay))
	}
	<-fed
	testpeer.Eventually(t, 120*time.Second, func() string {
		d, c := count()
		return fmt.Sprintf("all %d events after %d kills: %d distinct, %d copies\nrsyslogd:\n%s", n, kills, d, c, rs.Output())
	}, func() bool { d, _ := count(); return d == n })
	// Let the last redeliveries settle before counting duplicates.
	lastCopies, stable := -1, time.Now()
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("the workers to settle"), func() bool {
		_, c := count()
		if c != lastCopies {
			lastCopies, stable = c, time.Now()
		}
		return time.Since(stable) > 500*time.Millisecond
	})
	distinct, copies := count()
	dups := copies - distinct
	var spoolSent int64
	for _, k := range sentBefore {
		spoolSent += k
	}
	bound := int64(kills*window) + spoolSent
	t.Logf("kill -9 x%d of the relay during %d events over RELP into a spooled acknowledged PUSH output: %d of %d arrived (0 lost); %d duplicates at the workers; bound: omrelp's resends %d kills x window %d = %d, plus the spool's sent-but-unacknowledged records %d (per restart %v) = %d; relay_spool_redelivered_total after the last restart %v",
		kills, n, distinct, n, dups, kills, window, kills*window, spoolSent, sentBefore, bound,
		metric(t, p, `relay_spool_redelivered_total{output="workers"}`))
	if distinct != n {
		t.Fatalf("%d events lost", n-distinct)
	}
	if len(strays) > 0 {
		t.Errorf("%d lines that are not the test's events, e.g. %q", len(strays), strays[0])
	}
	if int64(dups) > bound {
		t.Errorf("%d duplicates: more than omrelp can resend (%d) plus what the spool sent again (%d)", dups, kills*window, spoolSent)
	}
	if got := metric(t, p, `relay_spool_redelivered_total{output="workers"}`); got != float64(sentBefore[len(sentBefore)-1]) {
		t.Errorf("relay_spool_redelivered_total %v after the last restart, want the %d its spool found at open", got, sentBefore[len(sentBefore)-1])
	}
}
