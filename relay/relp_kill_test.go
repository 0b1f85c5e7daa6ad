package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// relpKills is how many times the tests below stop the relay
// (RELAY_RELP_KILLS, default def).
func relpKills(t *testing.T, def int) int {
	if s := os.Getenv("RELAY_RELP_KILLS"); s != "" {
		k, err := strconv.Atoi(s)
		if err != nil || k < 1 {
			t.Fatalf("RELAY_RELP_KILLS=%q: want a number of kills", s)
		}
		return k
	}
	return def
}

// TestRELPKillRelay: rsyslogd's omrelp sends 100,000 events through the
// relay's RELP input to a PUSH output while the relay is killed with
// SIGKILL 10 times and restarted at once on the same ports. The first
// kill comes while no worker is there yet: the output holds a window of
// events it could not write, unanswered; the worker starts after that
// restart. Every event arrives (0 lost): the relay answers a frame only
// once its event is written to a worker's connection, so what a kill
// takes was never answered and omrelp sends it again. Those resends are
// the only duplicates, at most one window (1024) per kill; the test
// prints both.
//
// The output here has no spool: RELP holding its answers until the write
// is what makes it safe. TestRELPKillRelaySpooled is the same with a disk
// spool.
func TestRELPKillRelay(t *testing.T) { relpKillRelay(t, false, syscall.SIGKILL) }

// TestRELPKillRelaySpooled: the same 100,000 events and 10 kills, with a
// spooled PUSH output (fsync: always). The relay answers a frame once its
// event is fsync'd in the spool, and the spool delivers it after a
// restart; the first kill comes while no worker is there yet, with the
// spool holding events. 0 lost. Duplicates come from omrelp resending
// what was not answered yet (at most one window per kill) and from the
// spool sending again what it had sent but not checkpointed as written
// (its "sent_before_restart" at each open, which relay_spool_redelivered_total
// counts): the test prints both totals and checks that the duplicates at
// the worker are within their sum.
func TestRELPKillRelaySpooled(t *testing.T) { relpKillRelay(t, true, syscall.SIGKILL) }

// TestRELPRestartRelay: the same 100,000 events while the relay is
// stopped with SIGTERM 3 times and started again, the first time with no
// worker there: a stop answers what is handed off within drain_timeout,
// then sends serverclose, and omrelp resends the rest to the restarted
// relay. Every event arrives; the duplicates are omrelp's resends, at
// most one window per restart.
func TestRELPRestartRelay(t *testing.T) { relpKillRelay(t, false, syscall.SIGTERM) }

func relpKillRelay(t *testing.T, spooled bool, sig syscall.Signal) {
	if testing.Short() {
		t.Skip("runs the binary, rsyslogd and libzmq peers")
	}
	const n, window = 100_000, 1024
	kills := relpKills(t, 10)
	if sig != syscall.SIGKILL {
		kills = relpKills(t, 3) // each stop waits for drain_timeout
	}
	pp := testpeer.FreePorts(t, 3)
	relpPort, workerPort, httpPort := pp[0], pp[1], pp[2]
	p := ports{http: httpPort}
	spoolYAML, logYAML := "", "log: {level: warn}"
	if spooled {
		spoolYAML = fmt.Sprintf("\n    spool: {dir: %s, fsync: always}", filepath.Join(t.TempDir(), "spool"))
		logYAML = "log: {format: json}" // info: the spool's open line
	}
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
    connect: [tcp://127.0.0.1:%d]
    hwm: 1000%s
http:
  listen: 127.0.0.1:%d
%s
`, relpPort, workerPort, spoolYAML, httpPort, logYAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := startRelay(t, conf, p)
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

	// Feed 10,000 events a second, so the kills land during ingest.
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; i < n; i += 2000 {
			rs.SendNumbered(t, "killapp", i, 2000)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	// No worker yet: the output fills its queue, and omrelp's window
	// fills with unanswered frames; a spooled output spools them.
	heldSeries := `relay_output_queue_depth{output="workers"}`
	if spooled {
		heldSeries = `relay_spool_records{output="workers"}`
	}
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("events held for the absent worker"), func() bool {
		return metric(t, p, heldSeries) >= window/2
	})
	held := int(metric(t, p, heldSeries))
	var sentBefore []int64 // per restart: what the spool had sent without knowing it written
	var worker *testpeer.Pull
	arrived := func() int {
		if worker == nil {
			return 0
		}
		return worker.Count()
	}
	for k := 0; k < kills; k++ {
		if k > 0 {
			at := arrived()
			testpeer.Eventually(t, 60*time.Second, func() string {
				return fmt.Sprintf("progress before kill %d: %d events at the worker\nrsyslogd:\n%s", k+1, arrived(), rs.Output())
			}, func() bool { return arrived() >= min(at+n/(2*kills), n) })
		}
		relay.signal(t, sig)
		relay.wait(t, 20*time.Second)
		relay = startRelay(t, conf, p)
		if spooled {
			sentBefore = append(sentBefore, spoolSentBeforeRestart(t, relay))
		}
		if worker == nil {
			worker = testpeer.StartPull(t, fmt.Sprintf("tcp://127.0.0.1:%d", workerPort))
		}
	}
	<-fed
	seen := make([]int, n)
	var strays []string
	count := func() int {
		clear(seen)
		strays = strays[:0]
		distinct := 0
		for _, m := range worker.Messages() {
			i := testpeer.MsgNum(m[0])
			if i < 0 || i >= n {
				strays = append(strays, m[0])
				continue
			}
			if seen[i] == 0 {
				distinct++
			}
			seen[i]++
		}
		return distinct
	}
	testpeer.Eventually(t, 180*time.Second, func() string {
		return fmt.Sprintf("all %d events after %d kills; %d distinct arrived\nrsyslogd:\n%s", n, kills, count(), rs.Output())
	}, func() bool { return count() == n })
	dups := 0
	for _, c := range seen {
		dups += max(c-1, 0)
	}
	if len(strays) > 0 {
		t.Errorf("%d messages that are not the test's events, e.g. %q", len(strays), strays[0])
	}
	if !spooled {
		t.Logf("%v x%d of the relay during 100,000 events over RELP (the first with %d events queued for an absent worker): 0 lost; %d duplicates at the worker; bound from omrelp's resends: %d stops x window %d = %d; no spool, so no spool redeliveries",
			sig, kills, held, dups, kills, window, kills*window)
		if dups > kills*window {
			t.Errorf("%d duplicates: more than omrelp can resend (%d kills x window %d)", dups, kills, window)
		}
	} else {
		var spoolSent int64
		for _, k := range sentBefore {
			spoolSent += k
		}
		t.Logf("kill -9 x%d of the relay during 100,000 events over RELP into a spooled PUSH output (the first with %d events spooled for an absent worker): 0 lost; %d duplicates at the worker; bounds: omrelp's resends %d kills x window %d = %d, plus the spool's sent-but-not-checkpointed records %d (per restart %v) = %d",
			kills, held, dups, kills, window, kills*window, spoolSent, sentBefore, int64(kills*window)+spoolSent)
		if int64(dups) > int64(kills*window)+spoolSent {
			t.Errorf("%d duplicates: more than omrelp can resend (%d) plus what the spool sent again (%d)", dups, kills*window, spoolSent)
		}
		if got := metric(t, p, `relay_spool_redelivered_total{output="workers"}`); got != float64(sentBefore[len(sentBefore)-1]) {
			t.Errorf("relay_spool_redelivered_total %v after the last restart, want the %d its spool found at open", got, sentBefore[len(sentBefore)-1])
		}
	}
	if m := worker.Messages()[0][0]; !strings.Contains(m, " killapp ") {
		t.Errorf("payload %q", m)
	}
}

// spoolSentBeforeRestart reads the relay's JSON "spool opened" line: how
// many records the spool had sent without learning they were written
// (what it sends again).
func spoolSentBeforeRestart(t *testing.T, pr *proc) int64 {
	t.Helper()
	var so struct {
		SentBeforeRestart *int64 `json:"sent_before_restart"`
	}
	testpeer.Eventually(t, 10*time.Second, func() string { return "the spool opened line in:\n" + pr.stderr.String() }, func() bool {
		for _, line := range strings.Split(pr.stderr.String(), "\n") {
			if strings.Contains(line, `"msg":"spool opened"`) {
				if err := json.Unmarshal([]byte(line), &so); err != nil || so.SentBeforeRestart == nil {
					t.Fatalf("%q: %v", line, err)
				}
				return true
			}
		}
		return false
	})
	return *so.SentBeforeRestart
}
