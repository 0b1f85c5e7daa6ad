package cli

// Live tests: a real relay binary, fed over its TCP syslog input by a load
// generator, tapped by the real tap binary and raw websocket clients.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds relay and tap once per test run.
func binaries(t testing.TB) (relayBin, tapBin string) {
	t.Helper()
	if testing.Short() {
		t.Skip("live relay test: skipped with -short")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "taplive")
		if buildErr != nil {
			return
		}
		var tags []string
		if os.Getenv("TAP_BENCH_PROFILE") != "" {
			tags = []string{"-tags", "tapprofile"} // see internal/tap/profile_tag.go
		}
		for _, pkg := range []string{"relay", "tap"} {
			args := append(append([]string{"build"}, tags...), "-o", filepath.Join(binDir, pkg), "github.com/rsyslog-zmq/relay/"+pkg)
			out, err := exec.Command("go", args...).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "relay"), filepath.Join(binDir, "tap")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// liveRelay is a running relay binary.
type liveRelay struct {
	t                 testing.TB
	cmd               *exec.Cmd
	syslog, pub, http string
	token, conf, logf string
	tapBin, relayBin  string
	stderr            *bytes.Buffer
	env               []string // added to the relay's environment
}

const liveToken = "t0ken-for-tests"

func startRelay(t testing.TB, extraHTTP string) *liveRelay {
	relayBin, tapBin := binaries(t)
	dir := t.TempDir()
	r := &liveRelay{t: t, relayBin: relayBin, tapBin: tapBin, token: liveToken,
		syslog: fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)),
		pub:    fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t)),
		http:   fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)),
		conf:   filepath.Join(dir, "relay.yaml"),
	}
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(liveToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`inputs:
  - name: gen
    type: syslog
    listen: tcp://%s
stream:
  from: app-name
  default: unknown
outputs:
  - name: taps
    type: zmq
    socket: pub
    bind: %s
    hwm: 200000
http:
  listen: %s
  tap_token_file: %s
%s`, r.syslog, r.pub, r.http, tokFile, extraHTTP)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *liveRelay) start() {
	r.stderr = &bytes.Buffer{}
	r.cmd = exec.Command(r.relayBin, "-c", r.conf)
	r.cmd.Stderr = r.stderr
	if r.env != nil {
		r.cmd.Env = append(os.Environ(), r.env...)
	}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	eventually(r.t, 10*time.Second, "relay /healthz answers", func() bool {
		resp, err := http.Get("http://" + r.http + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (r *liveRelay) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// metric reads one sample from /metrics, e.g. `relay_tap_clients` or
// `relay_output_peers{output="taps"}`.
func (r *liveRelay) metric(name string) float64 {
	resp, err := http.Get("http://" + r.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, within, testpeer.Text(what), cond)
}

// genEvent is one generated event: stream (= app-name), user, sequence.
type genEvent struct {
	stream, user string
	seq          int
}

func (g genEvent) line(pad int) []byte {
	msg := fmt.Sprintf(`<134>1 2026-11-22T06:00:00.000Z genhost %s 1 - [u@32473 id="%s" seq="%d"] seq=%d %s`,
		g.stream, g.user, g.seq, g.seq, strings.Repeat("p", pad))
	return []byte(strconv.Itoa(len(msg)) + " " + msg)
}

// generator sends events over one TCP connection, octet-counted.
type generator struct {
	t    testing.TB
	conn net.Conn
	w    *bufio.Writer
}

func newGenerator(t testing.TB, addr string) *generator {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("generator: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &generator{t: t, conn: c, w: bufio.NewWriterSize(c, 64<<10)}
}

func (g *generator) send(evs []genEvent, pad int) {
	for _, e := range evs {
		if _, err := g.w.Write(e.line(pad)); err != nil {
			g.t.Errorf("generator: %v", err)
			return
		}
	}
	if err := g.w.Flush(); err != nil {
		g.t.Errorf("generator: %v", err)
	}
}

// tapProc is a running tap binary with its stdout collected line by line.
type tapProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func startTap(t testing.TB, bin string, args ...string) *tapProc {
	p := &tapProc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *tapProc) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

func (p *tapProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *tapProc) exitCode() int {
	<-p.done
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// feedUntil sends rounds of events (streams click, view, buy in turn)
// until stop reports true. It returns everything it sent.
func feedUntil(t testing.TB, g *generator, users int, stop func() bool) []genEvent {
	var sent []genEvent
	streams := []string{"click", "view", "buy"}
	deadline := time.Now().Add(30 * time.Second)
	for !stop() {
		if time.Now().After(deadline) {
			t.Fatal("feedUntil: the condition did not hold within 30s")
		}
		batch := make([]genEvent, 0, 300)
		for range 300 {
			n := len(sent) + len(batch)
			batch = append(batch, genEvent{streams[n%3], strconv.Itoa(n % users), n})
		}
		g.send(batch, 0)
		sent = append(sent, batch...)
		time.Sleep(5 * time.Millisecond)
	}
	return sent
}

var seqRE = regexp.MustCompile(`seq=(\d+)`)

func seqOf(t testing.TB, s string) int {
	m := seqRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no seq in %q", s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The acceptance line: exactly 100 JSON lines of stream click, exit 0.
func TestLiveLimitJSON(t *testing.T) {
	r := startRelay(t, "")
	p := startTap(t, r.tapBin, r.pub, "--stream", "click", "--limit", "100", "--format", "json")
	g := newGenerator(t, r.syslog)
	feedUntil(t, g, 10, p.exited)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, p.stderr.String())
	}
	lines := p.snapshot()
	if len(lines) != 100 {
		t.Fatalf("%d lines, want 100", len(lines))
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if m["stream"] != "click" || m["app_name"] != "click" {
			t.Fatalf("line %d: %s", i, l)
		}
	}
}

// checkExact verifies that lines are exactly the events of sent that pass
// keep, in order, over the range of sequence numbers they cover: nothing
// extra, nothing missing in between.
func checkExact(t testing.TB, name string, lines []string, sent []genEvent, keep func(genEvent) bool) {
	t.Helper()
	if len(lines) == 0 {
		t.Fatalf("%s: no output", name)
	}
	first, last := seqOf(t, lines[0]), seqOf(t, lines[len(lines)-1])
	var want []int
	for _, e := range sent {
		if e.seq >= first && e.seq <= last && keep(e) {
			want = append(want, e.seq)
		}
	}
	if len(want) != len(lines) {
		t.Fatalf("%s: %d lines over seq %d..%d, want %d", name, len(lines), first, last, len(want))
	}
	for i, l := range lines {
		if got := seqOf(t, l); got != want[i] {
			t.Fatalf("%s: line %d has seq %d, want %d: %s", name, i, got, want[i], l)
		}
	}
}

func TestLiveFiltersExact(t *testing.T) {
	r := startRelay(t, "")
	keep := func(e genEvent) bool { return e.stream == "view" && e.user == "7" && e.seq%10 == 7 }
	args := []string{"--stream", "v*", "--match", "sd:u@32473.id=7", "--grep", "seq=[0-9]*7 ", "--limit", "30"}
	pub := startTap(t, r.tapBin, append([]string{r.pub, "--format", "raw"}, args...)...)
	ws := startTap(t, r.tapBin, append([]string{"ws://" + r.http, "--format", "json", "--token", liveToken}, args...)...)
	sampled := startTap(t, r.tapBin, r.pub, "--stream", "buy", "--sample", "1/4", "--limit", "20", "--format", "json")
	g := newGenerator(t, r.syslog)
	sent := feedUntil(t, g, 20, func() bool { return pub.exited() && ws.exited() && sampled.exited() })
	for name, p := range map[string]*tapProc{"pub": pub, "ws": ws, "sample": sampled} {
		if code := p.exitCode(); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, p.stderr.String())
		}
	}
	checkExact(t, "pub raw", pub.snapshot(), sent, keep)
	checkExact(t, "ws json", ws.snapshot(), sent, keep)
	// Sampling keeps every 4th buy event: consecutive outputs are 4 buys apart.
	lines := sampled.snapshot()
	if len(lines) != 20 {
		t.Fatalf("sample: %d lines, want 20", len(lines))
	}
	for i := 1; i < len(lines); i++ {
		if d := seqOf(t, lines[i]) - seqOf(t, lines[i-1]); d != 12 {
			t.Fatalf("sample: seq step %d between lines %d and %d, want 12 (every 4th of every 3rd)", d, i-1, i)
		}
	}
}

func TestLiveFor(t *testing.T) {
	r := startRelay(t, "")
	start := time.Now()
	p := startTap(t, r.tapBin, r.pub, "--for", "1500ms", "--format", "raw")
	g := newGenerator(t, r.syslog)
	feedUntil(t, g, 10, p.exited)
	el := time.Since(start)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	if el < 1500*time.Millisecond {
		t.Errorf("--for 1500ms exited after %v", el)
	}
	if len(p.snapshot()) == 0 {
		t.Error("no events printed")
	}
}

func TestLiveWebsocketNoToken(t *testing.T) {
	r := startRelay(t, "")
	for _, u := range []string{"/v1/tap", "/v1/tap?token=wrong"} {
		req, _ := http.NewRequest("GET", "http://"+r.http+u, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", u, resp.StatusCode)
		}
	}
	p := startTap(t, r.tapBin, "ws://"+r.http, "--limit", "1")
	if code := p.exitCode(); code != ExitAuth {
		t.Errorf("tap without a token: exit %d, want %d; stderr %s", code, ExitAuth, p.stderr.String())
	}
}

var _ = context.Background
