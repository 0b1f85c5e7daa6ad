package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// notifySocket is a datagram socket standing in for systemd's: systemd is
// not PID 1 here, so the test listens where NOTIFY_SOCKET points.
type notifySocket struct {
	t    *testing.T
	c    *net.UnixConn
	name string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{t: t, c: c, name: name}
}

// next returns the next state message that is not a watchdog ping (those
// are counted into *pings if pings is not nil), or "" after d.
func (s *notifySocket) next(d time.Duration, pings *int) string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	buf := make([]byte, 4096)
	for {
		s.c.SetReadDeadline(deadline)
		n, _, err := s.c.ReadFromUnix(buf)
		if err != nil {
			return ""
		}
		m := string(buf[:n])
		if m == "WATCHDOG=1" {
			if pings != nil {
				*pings++
			}
			continue
		}
		return m
	}
}

func startBinEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{stderr: &testpeer.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(relayBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	p.cmd.Env = append(withoutSystemdEnv(os.Environ()), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("relay output:\n%s", p.stderr.String())
		}
	})
	return p
}

// withoutSystemdEnv drops the notify variables the test process may have
// inherited, so only the test's own reach the relay.
func withoutSystemdEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			out = append(out, kv)
		}
	}
	return out
}

func fields(m string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(m, "\n") {
		k, v, _ := strings.Cut(line, "=")
		f[k] = v
	}
	return f
}

// TestSystemdNotify runs the relay as systemd would (Type=notify,
// WatchdogSec=) and checks what it says: READY=1 only once the inputs
// listen, WATCHDOG=1 pings, RELOADING=1 then READY=1 around each SIGHUP
// (a good and a refused reload), and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	sock := newNotifySocket(t)
	p := freePorts(t)
	conf := relayConf(t, "", p, []string{"*"}, nil, "")
	pr := startBinEnv(t, []string{"NOTIFY_SOCKET=" + sock.name, "WATCHDOG_USEC=300000"},
		"-c", conf, "--log-format", "json", "--log-level", "debug")

	var pings int
	ready := sock.next(20*time.Second, &pings)
	// The moment READY=1 arrives, the input and HTTP must already accept.
	for _, port := range []int{p.syslog, p.http} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Errorf("READY=1 sent before 127.0.0.1:%d listens: %v", port, err)
			continue
		}
		c.Close()
	}
	f := fields(ready)
	if f["READY"] != "1" || !strings.Contains(f["STATUS"], "1 inputs, 1 outputs") {
		t.Fatalf("first notification %q, want READY=1 with a STATUS", ready)
	}
	if pings != 0 {
		t.Errorf("%d watchdog pings before READY=1", pings)
	}
	// WATCHDOG_USEC=300ms: a ping every 150ms.
	if m := sock.next(time.Second, &pings); m != "" || pings < 3 {
		t.Errorf("in 1 s: %d pings (want at least 3), other notifications %q", pings, m)
	}

	// A good reload: RELOADING=1 with MONOTONIC_USEC, then READY=1.
	relayConf(t, conf, p, []string{"click"}, nil, "")
	pr.signal(t, syscall.SIGHUP)
	checkReload(t, sock, "1 inputs, 1 outputs")
	// A refused reload is bracketed the same way and says so.
	if err := os.WriteFile(conf, []byte("inputs: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pr.signal(t, syscall.SIGHUP)
	checkReload(t, sock, "reload refused")

	pr.signal(t, syscall.SIGTERM)
	if m := sock.next(20*time.Second, nil); fields(m)["STOPPING"] != "1" {
		t.Errorf("after SIGTERM: %q, want STOPPING=1", m)
	}
	if code := pr.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	// --log-format json and --log-level debug win over nothing configured
	// (relayConf sets format json too; the level shows they apply).
	lines := strings.Split(strings.TrimSpace(pr.stderr.String()), "\n")
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Errorf("--log-format json: first log line %q: %v", lines[0], err)
	}
	if !strings.Contains(pr.stderr.String(), `"level":"DEBUG"`) {
		t.Errorf("--log-level debug: no debug line in the log")
	}
}

func checkReload(t *testing.T, sock *notifySocket, wantStatus string) {
	t.Helper()
	m := sock.next(20*time.Second, nil)
	f := fields(m)
	usec, err := strconv.ParseInt(f["MONOTONIC_USEC"], 10, 64)
	if f["RELOADING"] != "1" || err != nil || usec <= 0 {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 and MONOTONIC_USEC", m)
	}
	m = sock.next(20*time.Second, nil)
	f = fields(m)
	if f["READY"] != "1" || !strings.Contains(f["STATUS"], wantStatus) {
		t.Fatalf("after the reload: %q, want READY=1 and a STATUS with %q", m, wantStatus)
	}
}

// TestNotifyNoReadyOnFailedStart: a relay that cannot start never says
// READY=1, so systemd reports the start as failed.
func TestNotifyNoReadyOnFailedStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	sock := newNotifySocket(t)
	p := freePorts(t)
	busy, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.a))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	pr := startBinEnv(t, []string{"NOTIFY_SOCKET=" + sock.name}, "-c", relayConf(t, "", p, []string{"*"}, nil, ""))
	if code := pr.wait(t, 20*time.Second); code != 1 {
		t.Errorf("exit code %d with the output's port taken, want 1", code)
	}
	for m := sock.next(time.Second, nil); m != ""; m = sock.next(100*time.Millisecond, nil) {
		if fields(m)["READY"] == "1" {
			t.Errorf("READY=1 sent by a relay that failed to start: %q", m)
		}
	}
}

func TestLogFlagsRefused(t *testing.T) {
	for _, args := range [][]string{{"--log-format", "logfmt"}, {"--log-level", "verbose"}} {
		code, _, errOut := runBin(t, args...)
		if code != 2 || !strings.Contains(errOut, args[0]) || !strings.Contains(errOut, args[1]) {
			t.Errorf("%v: exit %d, %q; want 2 and a message naming the flag", args, code, errOut)
		}
	}
}
