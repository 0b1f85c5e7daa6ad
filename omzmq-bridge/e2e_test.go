package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// bridgeConf returns rsyslog-conf/omprog-bridge.conf pointed at this
// test's binary, endpoint and log file, its action limited to the test's
// messages (rsyslog's own stay out of the counts).
func bridgeConf(t *testing.T, endpoint, dir string, transactions bool, more ...string) string {
	t.Helper()
	b, err := os.ReadFile("../rsyslog-conf/omprog-bridge.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	repl := []string{
		"/usr/local/bin/omzmq-bridge", bridgeBin,
		"tcp://127.0.0.1:5555", endpoint,
		"/var/log/omzmq-bridge.log", filepath.Join(dir, "bridge.log"),
	}
	if !transactions {
		repl = append(repl, `useTransactions="on"`, `useTransactions="off"`)
	}
	repl = append(repl, more...)
	for i := 0; i < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("omprog-bridge.conf no longer contains %q", repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	i := strings.Index(s, "\naction(")
	if i < 0 {
		t.Fatal("omprog-bridge.conf has no action")
	}
	return s[:i] + "\nif $msg contains \"msgnum:\" then {" + s[i:] + "\n}\n"
}

func bridgeLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "bridge.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// payloads checks every message is [stream, RFC 5424 line] and returns
// the lines.
func payloads(t *testing.T, msgs [][]string) []string {
	t.Helper()
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if len(m) != 2 || m[0] != "impression" || !strings.HasPrefix(m[1], "<14>1 ") {
			t.Fatalf("message %q, want [impression, <14>1 ...]", m)
		}
		out = append(out, m[1])
	}
	return out
}

// waitAll waits until every number in [0, n) arrived at pull, then reports
// the duplicates.
func waitAll(t *testing.T, pull *testpeer.Pull, n int, timeout time.Duration, dir string) (dups int) {
	t.Helper()
	var missing []int
	testpeer.Eventually(t, timeout, func() string {
		return fmt.Sprintf("%d of %d messages missing (%v); bridge log:\n%s", len(missing), n, missing[:min(len(missing), 20)], bridgeLog(dir))
	}, func() bool {
		if pull.Count() < n {
			missing = make([]int, n-pull.Count())
			return false
		}
		missing, dups, _ = testpeer.Tally(payloads(t, pull.Messages()), n)
		return len(missing) == 0
	})
	return dups
}

// rsyslog omprog → bridge → libzmq PULL: 100,000 messages, exactly once,
// with per-message confirmations and with transactions.
func TestRsyslogOmprogExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd and pyzmq")
	}
	for _, tx := range []bool{false, true} {
		t.Run(fmt.Sprintf("transactions=%v", tx), func(t *testing.T) {
			const n = 100_000
			dir := t.TempDir()
			pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
			r := testpeer.StartRsyslogd(t, dir, bridgeConf(t, pull.Endpoint, dir, tx))
			start := time.Now()
			r.SendNumbered(t, "impression", 0, n)
			dups := waitAll(t, pull, n, 3*time.Minute, dir)
			el := time.Since(start)
			if dups > 0 {
				t.Fatalf("%d duplicates, want exactly once", dups)
			}
			r.Stop()
			if got := pull.Count(); got != n {
				t.Fatalf("%d messages after shutdown, want exactly %d", got, n)
			}
			t.Logf("%d messages exactly once in %v (%.0f msg/s end to end)", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
		})
	}
}

// kill -9 the bridge mid-stream: rsyslog restarts it and retries from its
// disk-assisted queue; every message arrives at least once.
func TestRsyslogOmprogKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd and pyzmq")
	}
	for _, tx := range []bool{false, true} {
		t.Run(fmt.Sprintf("transactions=%v", tx), func(t *testing.T) {
			const n = 50_000
			dir := t.TempDir()
			pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
			r := testpeer.StartRsyslogd(t, dir, bridgeConf(t, pull.Endpoint, dir, tx))
			done := make(chan struct{})
			go func() { defer close(done); r.SendNumbered(t, "impression", 0, n) }()
			testpeer.Eventually(t, time.Minute, func() string { return "first messages; bridge log:\n" + bridgeLog(dir) },
				func() bool { return pull.Count() >= n/10 })
			pids := r.Children("omzmq-bridge")
			if len(pids) != 1 {
				t.Fatalf("want one bridge process under rsyslogd, found %v", pids)
			}
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			atKill := pull.Count()
			<-done
			dups := waitAll(t, pull, n, 3*time.Minute, dir)
			restarted := r.Children("omzmq-bridge")
			if len(restarted) != 1 || restarted[0] == pids[0] {
				t.Fatalf("rsyslog did not restart the bridge: %v", restarted)
			}
			t.Logf("kill -9 after %d of %d messages: all arrived, %d duplicates", atKill, n, dups)
		})
	}
}

// The PULL peer is absent for 10 s, then binds: nothing is lost, nothing
// duplicated (the bridge keeps rsyslog waiting with keep-alive dots).
func TestRsyslogOmprogPeerAbsent10s(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd and pyzmq")
	}
	const n = 20_000
	dir := t.TempDir()
	ep := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	r := testpeer.StartRsyslogd(t, dir, bridgeConf(t, ep, dir, true))
	r.SendNumbered(t, "impression", 0, n)
	time.Sleep(10 * time.Second) // the outage
	pull := testpeer.StartPull(t, ep)
	dups := waitAll(t, pull, n, 3*time.Minute, dir)
	if dups > 0 {
		t.Fatalf("%d duplicates after the outage", dups)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "bridge.log"))
	if c := strings.Count(string(log), "msg=started"); c != 1 {
		t.Fatalf("the bridge started %d times: rsyslog gave up on it during the outage:\n%s", c, log)
	}
	t.Logf("PULL absent 10s: %d messages, none lost, none duplicated", n)
}

// confirmMessages="off": the bridge detects it (stdout and stderr are the
// same file), answers nothing, and delivers.
func TestRsyslogOmprogFireAndForget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd and pyzmq")
	}
	const n = 20_000
	dir := t.TempDir()
	pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	r := testpeer.StartRsyslogd(t, dir, bridgeConf(t, pull.Endpoint, dir, false, `confirmMessages="on"`, `confirmMessages="off"`))
	r.SendNumbered(t, "impression", 0, n)
	if dups := waitAll(t, pull, n, 3*time.Minute, dir); dups > 0 {
		t.Fatalf("%d duplicates", dups)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "bridge.log"))
	if !strings.Contains(string(log), "confirm=false") || strings.Contains(string(log), "\nOK\n") {
		t.Fatalf("the bridge did not detect confirmMessages=off:\n%s", log)
	}
}
