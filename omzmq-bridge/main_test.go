package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// bridgeBin is the omzmq-bridge binary built once for the tests.
var bridgeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "omzmq-bridge-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bridgeBin = filepath.Join(dir, "omzmq-bridge")
	if out, err := exec.Command("go", "build", "-o", bridgeBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build omzmq-bridge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestSettings(t *testing.T) {
	s, err := parseSettings([]string{"--relay", "tcp://127.0.0.1:5555", "--topic-from-field"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.socket != "push" || len(s.connects) != 1 || s.connects[0] != "tcp://127.0.0.1:5555" || !s.topicFromField {
		t.Fatalf("--relay: %+v", s)
	}
	if s.cork != time.Millisecond {
		t.Fatalf("default --cork %v, want 1ms", s.cork)
	}
	if s, err := parseSettings([]string{"--bind", "tcp://*:1", "--cork", "0"}, io.Discard); err != nil || s.cork != 0 {
		t.Fatalf("--cork 0: %v, cork %v", err, s.cork)
	}
	bad := [][]string{
		{}, // no endpoint
		{"--socket", "req", "--bind", "tcp://*:1"}, // unknown socket
		{"--bind", "udp://x:1"},                    // not tcp/ipc
		{"--bind", "tcp://*:1", "--topic", "a", "--topic-from-field"},
		{"--bind", "tcp://*:1", "--hwm", "0"},
		{"--bind", "tcp://*:1", "--confirm", "yes"},
		{"--bind", "tcp://*:1", "--max-wait", "0s"},
		{"--bind", "tcp://*:1", "--cork", "-1ms"},
		{"--bind", "tcp://*:1", "--cork", "1s"},
		{"--bind", "tcp://*:1", "--log-level", "loud"},
		{"--bind", "tcp://*:1", "--config", "/nonexistent/file"},
		{"--nope"},
	}
	for _, args := range bad {
		if _, err := parseSettings(args, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: err = %v, want ErrUsage", args, err)
		}
	}
}

func TestSettingsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bridge.flags")
	if err := os.WriteFile(f, []byte("# comment\n--connect tcp://10.0.0.1:1 --connect tcp://10.0.0.2:1\n--hwm 50 # inline\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := parseSettings([]string{"--connect", "tcp://127.0.0.1:9", "--hwm", "7", "--config", f}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.hwm != 50 || strings.Join(s.connects, ",") != "tcp://10.0.0.1:1,tcp://10.0.0.2:1" {
		t.Fatalf("file must win and replace endpoints: hwm=%d connects=%v", s.hwm, s.connects)
	}
	if err := os.WriteFile(f, []byte("--hwm 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = parseSettings([]string{"--connect", "tcp://127.0.0.1:9", "--config", f}, io.Discard)
	if err != nil || s.hwm != 3 || len(s.connects) != 1 {
		t.Fatalf("a file without endpoints keeps the command line's: %+v, %v", s, err)
	}
}

func TestFraming(t *testing.T) {
	tests := []struct {
		snd  *sender
		line string
		want []string
	}{
		{&sender{}, "a b", []string{"a b"}},
		{&sender{topic: []byte("t")}, "a b", []string{"t", "a b"}},
		{&sender{topicFromField: true}, "impression <14>1 x", []string{"impression", "<14>1 x"}},
		{&sender{topicFromField: true}, "lonely", []string{"lonely", ""}},
		{&sender{topicFromField: true}, " lead", []string{"", "lead"}},
	}
	for _, tc := range tests {
		m := tc.snd.msg([]byte(tc.line))
		var got []string
		for _, f := range m {
			got = append(got, string(f))
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("msg(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestHelpAndExitCodes(t *testing.T) {
	out, err := exec.Command(bridgeBin, "--help").CombinedOutput()
	if exitCode(err) != 0 || !strings.Contains(string(out), `action(type="omprog"`) ||
		!strings.Contains(string(out), "confirmMessages=\"on\"") || !strings.Contains(string(out), "Exit status") {
		t.Fatalf("--help (exit %d) must show a complete omprog action and the exit statuses:\n%s", exitCode(err), out)
	}
	out, err = exec.Command(bridgeBin, "--socket", "dealer", "--bind", "tcp://127.0.0.1:0").CombinedOutput()
	if exitCode(err) != exitUsage || !strings.Contains(string(out), "want push or pub") {
		t.Fatalf("bad --socket: exit %d, want %d:\n%s", exitCode(err), exitUsage, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err = exec.Command(bridgeBin, "--bind", "tcp://"+l.Addr().String()).CombinedOutput()
	if exitCode(err) != exitSetup {
		t.Fatalf("bind to a used port: exit %d, want %d:\n%s", exitCode(err), exitSetup, out)
	}
}

// bridgeProc is the bridge run directly, speaking omprog on pipes.
type bridgeProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *testpeer.SyncBuffer
}

func startBridge(t *testing.T, args ...string) *bridgeProc {
	t.Helper()
	b := &bridgeProc{cmd: exec.Command(bridgeBin, args...), stderr: &testpeer.SyncBuffer{}}
	var err error
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.stdout = bufio.NewReader(out)
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.cmd.Process.Kill(); _ = b.cmd.Wait() })
	return b
}

// status reads one status line, keep-alive dots stripped.
func (b *bridgeProc) status(t *testing.T) string {
	t.Helper()
	l, err := b.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("read status: %v (stderr: %s)", err, b.stderrString())
	}
	return strings.TrimLeft(strings.TrimSuffix(l, "\n"), ".")
}

func (b *bridgeProc) send(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(b.stdin, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// The protocol against a libzmq PULL, without rsyslog: ready OK, one OK
// per message, transactions, and the frames that arrive.
func TestBridgeToLibzmqPull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyzmq")
	}
	pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	b := startBridge(t, "--relay", pull.Endpoint, "--topic-from-field", "--confirm", "on")
	if st := b.status(t); st != "OK" {
		t.Fatalf("ready status %q", st)
	}
	b.send(t, "impression first event")
	if st := b.status(t); st != "OK" {
		t.Fatalf("status %q", st)
	}
	b.send(t, "BEGIN TRANSACTION", "click x", "click y", "COMMIT TRANSACTION")
	for i, want := range []string{"OK", "OK", "OK", "OK"} {
		// transactions are detected on the first line only: here they are messages
		if st := b.status(t); st != want {
			t.Fatalf("status %d = %q, want %q", i, st, want)
		}
	}
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprint(pull.Messages()) }, func() bool { return pull.Count() == 5 })
	got := pull.Messages()
	if g := strings.Join(got[0], "|"); g != "impression|first event" {
		t.Fatalf("first message frames %q", g)
	}
	b.stdin.Close()
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("exit at EOF: %v\n%s", err, b.stderrString())
	}
}

func TestBridgeTransactionsToLibzmqPull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyzmq")
	}
	pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	b := startBridge(t, "--socket", "push", "--connect", pull.Endpoint, "--topic", "bridge", "--confirm", "on")
	b.status(t)
	for tx := 0; tx < 3; tx++ {
		b.send(t, "BEGIN TRANSACTION")
		if st := b.status(t); st != "OK" {
			t.Fatalf("BEGIN: %q", st)
		}
		for i := 0; i < 10; i++ {
			b.send(t, testpeer.Numbered(tx*10+i))
			if st := b.status(t); st != "DEFER_COMMIT" {
				t.Fatalf("message: %q", st)
			}
		}
		b.send(t, "COMMIT TRANSACTION")
		if st := b.status(t); st != "OK" {
			t.Fatalf("COMMIT: %q", st)
		}
		// Confirmed means written to the connection: it arrives.
		testpeer.Eventually(t, 10*time.Second, func() string { return "committed messages" }, func() bool { return pull.Count() == (tx+1)*10 })
	}
	var texts []string
	for _, m := range pull.Messages() {
		if len(m) != 2 || m[0] != "bridge" {
			t.Fatalf("frames %q, want [bridge, payload]", m)
		}
		texts = append(texts, m[1])
	}
	if missing, dups, strays := testpeer.Tally(texts, 30); len(missing)+dups+strays > 0 {
		t.Fatalf("missing %v dups %d strays %d", missing, dups, strays)
	}
}

// SIGHUP re-reads the settings file and moves to the new endpoint.
func TestSIGHUPReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyzmq")
	}
	pull1 := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	pull2 := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	f := filepath.Join(t.TempDir(), "flags")
	if err := os.WriteFile(f, []byte("--connect "+pull1.Endpoint+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, "--config", f, "--confirm", "on")
	b.status(t)
	b.send(t, "one")
	b.status(t)
	testpeer.Eventually(t, 10*time.Second, func() string { return "first message at pull1" }, func() bool { return pull1.Count() == 1 })

	if err := os.WriteFile(f, []byte("--connect "+pull2.Endpoint+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, func() string { return "reload log line: " + b.stderrString() },
		func() bool { return strings.Contains(b.stderrString(), "SIGHUP: reconnected") })
	b.send(t, "two")
	b.status(t)
	testpeer.Eventually(t, 10*time.Second, func() string { return "second message at pull2" }, func() bool { return pull2.Count() == 1 })
	if pull1.Count() != 1 {
		t.Fatalf("pull1 got %d messages after the reload", pull1.Count())
	}

	// A broken file keeps the current settings.
	if err := os.WriteFile(f, []byte("--hwm nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Process.Signal(syscall.SIGHUP)
	testpeer.Eventually(t, 10*time.Second, func() string { return b.stderrString() },
		func() bool { return strings.Contains(b.stderrString(), "settings rejected") })
	b.send(t, "three")
	b.status(t)
	testpeer.Eventually(t, 10*time.Second, func() string { return "third message at pull2" }, func() bool { return pull2.Count() == 2 })
}

// SIGTERM flushes and exits 0.
func TestSIGTERMExitsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyzmq")
	}
	pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	b := startBridge(t, "--relay", pull.Endpoint, "--confirm", "on")
	b.status(t)
	b.send(t, "x")
	b.status(t)
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, b.stderrString())
	}
	if pull.Count() != 1 && !waitCount(pull, 1) {
		t.Fatalf("message lost: %d", pull.Count())
	}
}

func waitCount(p *testpeer.Pull, n int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if p.Count() >= n {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// A bound socket nobody connects to cannot take a message: keep-alive
// dots, then after --max-wait an ERROR line (rsyslog suspends and retries;
// the message was not queued, so the retry duplicates nothing).
func TestNoPeerBoundAnswersError(t *testing.T) {
	b := startBridge(t, "--socket", "push", "--bind", "tcp://127.0.0.1:0", "--confirm", "on",
		"--keepalive", "100ms", "--max-wait", "500ms")
	b.status(t)
	b.send(t, "nobody takes this")
	raw, err := b.stdout.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, ".") || !strings.Contains(raw, "ERROR ") || !strings.Contains(raw, "not handed off") {
		t.Fatalf("status = %q, want keep-alive dots then an ERROR line", raw)
	}
}

// A connect endpoint queues the message for its peer (as libzmq does), and
// the bridge confirms only once it is written: dots while the peer is
// absent, OK once it binds.
func TestNoPeerConnectWaitsWithDots(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyzmq")
	}
	ep := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	b := startBridge(t, "--relay", ep, "--confirm", "on", "--keepalive", "100ms", "--max-wait", "200ms")
	b.status(t)
	b.send(t, "waits for the peer")
	for dots := 0; dots < 5; { // well past --max-wait: still no ERROR
		c, err := b.stdout.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		if c != '.' {
			t.Fatalf("got %q while the peer is absent, want only keep-alive dots", c)
		}
		dots++
	}
	pull := testpeer.StartPull(t, ep)
	if st := b.status(t); st != "OK" {
		t.Fatalf("status once the peer is there: %q", st)
	}
	if pull.Count() != 1 && !waitCount(pull, 1) {
		t.Fatalf("confirmed but not delivered")
	}
}

func (b *bridgeProc) stderrString() string { return b.stderr.String() }

// PUB: the topic frame routes; a libzmq SUB gets only what it subscribed to.
func TestBridgePubToLibzmqSub(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyzmq")
	}
	ep := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	b := startBridge(t, "--socket", "pub", "--bind", ep, "--topic-from-field", "--confirm", "on")
	if st := b.status(t); st != "OK" {
		t.Fatalf("ready: %q", st)
	}
	sub := testpeer.StartSub(t, ep, "impression")
	// PUB drops until the subscription has arrived (ZeroMQ's slow joiner).
	testpeer.Eventually(t, 10*time.Second, func() string { return "subscription to take effect" }, func() bool {
		b.send(t, "impression warm-up")
		if st := b.status(t); st != "OK" {
			t.Fatalf("status %q", st)
		}
		return sub.Count() > 0
	})
	b.send(t, "click not for this subscriber", "impression wanted")
	b.status(t)
	b.status(t)
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprint(sub.Messages()) }, func() bool {
		msgs := sub.Messages()
		return msgs[len(msgs)-1][1] == "wanted"
	})
	for _, m := range sub.Messages() {
		if len(m) != 2 || m[0] != "impression" {
			t.Fatalf("SUB got %q, want only [impression, ...]", m)
		}
	}
}

// The counters reach the log (omprog's output file) every --stats-interval
// and on SIGUSR1, not only at exit.
func TestBridgeStatsLog(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyzmq")
	}
	pull := testpeer.StartPull(t, "tcp://127.0.0.1:0")
	b := startBridge(t, "--relay", pull.Endpoint, "--confirm", "on", "--stats-interval", "0")
	if st := b.status(t); st != "OK" {
		t.Fatalf("ready status %q", st)
	}
	b.send(t, "a", "b", "c")
	for range 3 {
		if st := b.status(t); st != "OK" {
			t.Fatalf("status %q", st)
		}
	}
	if err := b.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 5*time.Second, b.stderrString, func() bool {
		return strings.Contains(b.stderrString(), "msg=stats lines=3 messages=3 failed=0")
	})
	if strings.Count(b.stderrString(), "msg=stats") != 1 {
		t.Fatalf("--stats-interval 0 logged stats by itself:\n%s", b.stderrString())
	}
	b.stdin.Close()
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("exit at EOF: %v\n%s", err, b.stderrString())
	}

	b = startBridge(t, "--relay", pull.Endpoint, "--confirm", "on", "--stats-interval", "20ms")
	if st := b.status(t); st != "OK" {
		t.Fatalf("ready status %q", st)
	}
	testpeer.Eventually(t, 5*time.Second, b.stderrString, func() bool {
		return strings.Count(b.stderrString(), "msg=stats") >= 2
	})
}

// A Flush waiting on a socket that a reload closes with the message still
// unwritten must fail (rsyslog retries it), not confirm it; and the
// counters keep the replaced socket's drop.
func TestFlushAcrossReloadThatDrops(t *testing.T) {
	s, err := parseSettings([]string{"--connect", "tcp://127.0.0.1:1", "--confirm", "on"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBridge(s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.close(context.Background())
	b.written = true
	// As omprog's first try: a done context, so the message is queued (for
	// a peer that never comes) and left to Flush.
	tried, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Send(tried, []byte("never written")); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- b.Flush(t.Context()) }()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("Flush to wait"), func() bool { return b.flushing.Load() == 1 })
	if err := b.reload(s, s, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; !errors.Is(err, ErrDroppedOnReload) {
		t.Fatalf("Flush across the reload = %v, want ErrDroppedOnReload", err)
	}
	if d := b.stats().Drops[zmq.DropSocketClosed]; d != 1 {
		t.Fatalf("socket_closed drops after the reload = %d, want 1", d)
	}
	if err := b.Flush(t.Context()); err != nil { // nothing sent since: nothing to fail
		t.Fatalf("the next Flush = %v, want nil", err)
	}
}
