package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// chaosScale returns the chaos run's length and rate: LINK_CHAOS_SECONDS
// (default 20) and LINK_CHAOS_RATE (default 5000 events/s); the issue's
// run is LINK_CHAOS_SECONDS=180 LINK_CHAOS_RATE=50000.
func chaosScale(t *testing.T) (time.Duration, int) {
	secs, rate := 20, 5000
	for _, v := range []struct {
		env string
		p   *int
	}{{"LINK_CHAOS_SECONDS", &secs}, {"LINK_CHAOS_RATE", &rate}} {
		if s := os.Getenv(v.env); s != "" {
			k, err := strconv.Atoi(s)
			if err != nil || k < 1 {
				t.Fatalf("%s=%q: want a positive number", v.env, s)
			}
			*v.p = k
		}
	}
	return time.Duration(secs) * time.Second, rate
}

// TestLinkChaos: rsyslogd's omrelp → sender relay (RELP input → link
// output, spooled) → a proxy → receiver relay (link input → spooled PUSH)
// → libzmq PULL, the real binaries. During the run the proxy blackholes
// the link (a fifth of the run), then resets it; the sender relay is
// killed with SIGKILL and restarted; the receiver relay is restarted with
// SIGTERM; the proxy throttles the link to 256 KB/s (a sixth of the run).
// At the end every event is at the collector: 0 lost. The link adds no
// duplicate: the only ones allowed are omrelp's resends after the sender
// relay's kill (frames it had sent but whose answers died with the relay;
// at most its window, 1024), which entered the sender's spool twice.
//
// receiver-kill: the same with the receiver relay killed with SIGKILL
// instead of the sender: 0 lost, and the collector's duplicates equal the
// receiver's own spool redeliveries (relay_spool_redelivered_total: what
// its PUSH had written to the collector without a checkpoint); the link
// adds none (its marks and the spool's ledger drop the resends).
func TestLinkChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binaries, rsyslogd and libzmq")
	}
	t.Run("sender-kill", func(t *testing.T) { linkChaos(t, false) })
	t.Run("receiver-kill", func(t *testing.T) { linkChaos(t, true) })
}

func linkChaos(t *testing.T, receiverKill bool) {
	dur, rate := chaosScale(t)
	n := int(dur.Seconds()) * rate
	const window = 1024
	pp := testpeer.FreePorts(t, 5)
	relpPort, linkPort, workerPort := pp[0], pp[1], pp[2]
	ps, pr := ports{http: pp[3]}, ports{http: pp[4]}
	dir := t.TempDir()
	px, err := testpeer.NewProxy(fmt.Sprintf("127.0.0.1:%d", linkPort))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	write := func(name, body string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	senderConf := write("sender.yaml", fmt.Sprintf(`
inputs:
  - name: relp
    type: relp
    listen: tcp://127.0.0.1:%d
stream: {from: app-name, default: unknown}
outputs:
  - name: to-dc2
    type: link
    connect: [tcp://%s]
    spool: {dir: %s/spool}
    heartbeat: 200ms
http:
  listen: 127.0.0.1:%d
log: {level: warn}
`, relpPort, px.Addr(), dir, ps.http))
	receiverConf := write("receiver.yaml", fmt.Sprintf(`
inputs:
  - name: from-dc1
    type: link
    bind: [tcp://127.0.0.1:%d]
    state_dir: %s/state
outputs:
  - name: workers
    type: zmq
    socket: push
    connect: [tcp://127.0.0.1:%d]
    hwm: 10000
    spool: {dir: %s/rspool}
http:
  listen: 127.0.0.1:%d
log: {level: warn}
`, linkPort, dir, workerPort, dir, pr.http))
	collector := testpeer.StartPull(t, fmt.Sprintf("tcp://127.0.0.1:%d", workerPort))
	recv := startRelay(t, receiverConf, pr)
	send := startRelay(t, senderConf, ps)
	rdir := t.TempDir()
	portFile := filepath.Join(rdir, "imtcp.port")
	rs := testpeer.StartRsyslogdConf(t, rdir, fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
module(load="omrelp")
input(type="imtcp" port="0" listenPortFileName=%q ruleset="fwd")
ruleset(name="fwd") {
  action(type="omrelp" target="127.0.0.1" port="%d" windowSize="%d"
         template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="%d"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
`, rdir, portFile, relpPort, window, window), portFile)

	// Feed at rate for dur, in tenths of a second.
	start := time.Now()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		chunk := max(rate/10, 1)
		for i := 0; i < n; i += chunk {
			rs.SendNumbered(t, "chaosapp", i, min(chunk, n-i))
			time.Sleep(time.Until(start.Add(time.Duration(i+chunk) * time.Second / time.Duration(rate))))
		}
	}()
	at := func(frac float64) { time.Sleep(time.Until(start.Add(time.Duration(frac * float64(dur))))) }
	var sent, skipped, suppressed float64
	collect := func() {
		sent += max(metric(t, ps, `relay_link_acked_total{output="to-dc2"}`), 0)
		skipped += max(metric(t, ps, `relay_link_skipped_total{output="to-dc2"}`), 0)
	}
	collectRecv := func() {
		suppressed += max(metric(t, pr, `relay_link_input_suppressed_duplicates_total{input="from-dc1"}`), 0)
	}

	at(0.10)
	px.Blackhole(true)
	t.Logf("%v: link blackholed", time.Since(start).Round(time.Second))
	testpeer.Eventually(t, 15*time.Second, testpeer.Text("the sender relay did not notice the blackhole"), func() bool {
		return metric(t, ps, fmt.Sprintf(`relay_link_up{endpoint="tcp://%s",output="to-dc2"}`, px.Addr())) == 0
	})
	at(0.30)
	px.Blackhole(false)
	px.Reset()
	t.Logf("%v: blackhole over, link reset", time.Since(start).Round(time.Second))
	var redelivered float64
	at(0.40)
	if receiverKill {
		collectRecv()
		redelivered += max(metric(t, pr, `relay_spool_redelivered_total{output="workers"}`), 0)
		if err := recv.cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		recv.wait(t, 10*time.Second)
		recv = startRelay(t, receiverConf, pr)
		t.Logf("%v: receiver relay killed (SIGKILL) and restarted", time.Since(start).Round(time.Second))
	} else {
		collect()
		if err := send.cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		send.wait(t, 10*time.Second)
		send = startRelay(t, senderConf, ps)
		t.Logf("%v: sender relay killed (SIGKILL) and restarted", time.Since(start).Round(time.Second))
	}
	at(0.55)
	collectRecv()
	redelivered += max(metric(t, pr, `relay_spool_redelivered_total{output="workers"}`), 0)
	recv.signal(t, syscall.SIGTERM)
	if code := recv.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("receiver relay exited %d on SIGTERM", code)
	}
	recv = startRelay(t, receiverConf, pr)
	t.Logf("%v: receiver relay restarted (SIGTERM)", time.Since(start).Round(time.Second))
	at(0.70)
	px.Throttle(256 << 10)
	t.Logf("%v: link throttled to 256 KB/s", time.Since(start).Round(time.Second))
	at(0.85)
	px.Throttle(0)
	<-fed

	seen := make([]int, n)
	distinct := func() int {
		clear(seen)
		d := 0
		for _, m := range collector.Messages() {
			if i := testpeer.MsgNum(m[0]); i >= 0 && i < n {
				if seen[i] == 0 {
					d++
				}
				seen[i]++
			}
		}
		return d
	}
	testpeer.Eventually(t, 5*time.Minute, func() string {
		return fmt.Sprintf("%d of %d events at the collector\nrsyslogd:\n%s", distinct(), n, rs.Output())
	}, func() bool { return distinct() == n })
	time.Sleep(time.Second) // anything extra would show now
	distinct()
	dups := 0
	for _, c := range seen {
		dups += max(c-1, 0)
	}
	collect()
	collectRecv()
	redelivered += max(metric(t, pr, `relay_spool_redelivered_total{output="workers"}`), 0)
	ledger := max(metric(t, pr, `relay_link_ledger_skipped_total{output="workers"}`), 0)
	t.Logf("%d events at %d/s over %v: 0 lost, %d duplicates at the collector, the receiver's spool redelivered %.0f; link: %.0f acknowledged, %.0f not resent after reconnects (the receiver's mark had them), %.0f resends suppressed by the receiver's marks (last run), %.0f by its spool's ledger (last run)",
		n, rate, dur, dups, redelivered, sent, skipped, suppressed, ledger)
	if receiverKill {
		if float64(dups) != redelivered {
			t.Errorf("%d duplicates at the collector, but the receiver's spool redelivered %.0f: the difference came from the link", dups, redelivered)
		}
		return
	}
	if float64(dups) > window+redelivered {
		t.Errorf("%d duplicates: more than omrelp can resend after one kill (window %d) plus the receiver's spool redeliveries (%.0f): the link added some", dups, window, redelivered)
	}
}
