package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/rsyslog-zmq/relay/internal/config"
)

// python is the interpreter with pyzmq; `python3` on PATH may be a pyenv
// shim without it.
const python = "/usr/bin/python3"

// waitFor polls cond until it holds or d passes, then fails with what.
func waitFor(t testing.TB, what func() string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func str(s string) func() string { return func() string { return s } }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return nil
}

// startRelay parses yaml as a config file, starts a relay on it and shuts
// it down when the test ends.
func startRelay(t testing.TB, yaml string) *Relay {
	t.Helper()
	file := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	r, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Logf("shutdown: %v", err)
		}
	})
	return r
}

// inputAddr returns the address of input name on network ("tcp", "udp").
func inputAddr(t testing.TB, r *Relay, name, network string) string {
	t.Helper()
	in, ok := r.Inputs()[name]
	if !ok {
		t.Fatalf("no input %q", name)
	}
	for _, a := range in.Addrs() {
		if a.Network() == network {
			return a.String()
		}
	}
	t.Fatalf("input %q has no %s address among %v", name, network, in.Addrs())
	return ""
}

// outputEndpoint returns "tcp://ADDR" of output name's first bind.
func outputEndpoint(t testing.TB, r *Relay, name string) string {
	t.Helper()
	as := r.OutputAddrs(name)
	if len(as) == 0 {
		t.Fatalf("output %q has no bound address", name)
	}
	return "tcp://" + as[0].String()
}

// metric returns the value of the series name{labels} (labels as k=v)
// from the relay's registry, or 0 when it does not exist.
func metric(t testing.TB, r *Relay, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				return value(m)
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// needPython fails the test unless /usr/bin/python3 imports zmq.
func needPython(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import zmq").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import zmq (%v: %s): apt-get install python3-zmq", python, err, out)
	}
}

// pyPeer is a libzmq peer (testdata/peer.py) recording every message.
type pyPeer struct {
	Endpoint string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	errb  *syncBuffer

	mu   sync.Mutex
	msgs [][]string
}

// startPeer runs testdata/peer.py MODE ENDPOINT ARGS… and waits until it
// has set up its socket.
func startPeer(t testing.TB, mode, endpoint string, args ...string) *pyPeer {
	t.Helper()
	needPython(t)
	p := &pyPeer{done: make(chan struct{}), errb: &syncBuffer{}}
	p.cmd = exec.Command(python, append([]string{"-u", "testdata/peer.py", mode, endpoint}, args...)...)
	p.cmd.Stderr = p.errb
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pyzmq %s: %v", mode, err)
	}
	t.Cleanup(p.stop)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 32<<20)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY ") {
		p.stop()
		t.Fatalf("pyzmq %s did not start: %s", mode, p.errb.String())
	}
	p.Endpoint = strings.TrimPrefix(sc.Text(), "READY ")
	go func() {
		defer close(p.done)
		for sc.Scan() {
			var frames []string
			if err := json.Unmarshal(sc.Bytes(), &frames); err != nil {
				continue
			}
			p.mu.Lock()
			p.msgs = append(p.msgs, frames)
			p.mu.Unlock()
		}
	}()
	return p
}

// stop closes the peer's stdin, which ends it, and waits.
func (p *pyPeer) stop() {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd.Wait()
}

func (p *pyPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// messages returns a copy of what arrived, each message as its frames.
func (p *pyPeer) messages() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]string(nil), p.msgs...)
}

// syncBuffer is a goroutine-safe output sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rsyslogd is a foreground rsyslogd run for one test.
type rsyslogd struct {
	dir  string
	port int // imtcp port, when the config has one
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startRsyslogd runs rsyslogd on conf, with DIR replaced by a work
// directory. When conf contains PORTFILE (an imtcp listenPortFileName),
// it waits for that port.
func startRsyslogd(t testing.TB, conf string) *rsyslogd {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		t.Fatal("rsyslogd not found: apt-get install rsyslog rsyslog-czmq")
	}
	dir := t.TempDir()
	portFile := filepath.Join(dir, "imtcp.port")
	conf = strings.ReplaceAll(conf, "PORTFILE", portFile)
	conf = strings.ReplaceAll(conf, "DIR", dir)
	file := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 rejects the test config: %v\n%s\n--- config:\n%s", err, out, conf)
	}
	r := &rsyslogd{dir: dir, out: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "-n", "-f", file, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", r.out.String())
		}
	})
	if strings.Contains(conf, portFile) {
		waitFor(t, func() string { return "rsyslogd's imtcp port; output:\n" + r.out.String() }, 20*time.Second, func() bool {
			b, err := os.ReadFile(portFile)
			if err != nil {
				return false
			}
			r.port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			if r.port <= 0 {
				return false
			}
			// The port file is written as imtcp binds, a moment before it
			// accepts: ready means a connection goes through.
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
			if err != nil {
				return false
			}
			c.Close()
			return true
		})
	}
	return r
}

// stop sends SIGTERM and waits; rsyslogd 8.2302 sometimes crashes on
// SIGTERM, so callers judge by what arrived, never by its exit status.
func (r *rsyslogd) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

// sendTCP writes msgs to addr on one connection, octet-counted or
// LF-terminated, and closes it.
func sendTCP(t testing.TB, addr string, octet bool, msgs []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	for _, m := range msgs {
		if octet {
			fmt.Fprintf(w, "%d %s", len(m), m)
		} else {
			w.WriteString(m)
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("send to %s: %v", addr, err)
	}
}

// seqText is the text of message i; seqOf finds i again.
func seqText(i int) string { return fmt.Sprintf("seq:%08d", i) }

func seqOf(s string) int {
	i := strings.Index(s, "seq:")
	if i < 0 || len(s) < i+12 {
		return -1
	}
	n, err := strconv.Atoi(s[i+4 : i+12])
	if err != nil {
		return -1
	}
	return n
}

// checkExactlyOnce checks that the last frame of the peers' messages
// carry every sequence number in [0, n) exactly once, and returns each
// peer's count.
func checkExactlyOnce(t testing.TB, n int, peers ...*pyPeer) []int {
	t.Helper()
	seen := make([]int, n)
	counts := make([]int, len(peers))
	var bad []string
	for i, p := range peers {
		for _, m := range p.messages() {
			counts[i]++
			s := seqOf(m[len(m)-1])
			if s < 0 || s >= n {
				if len(bad) < 5 {
					bad = append(bad, m[len(m)-1])
				}
				continue
			}
			seen[s]++
		}
	}
	if len(bad) > 0 {
		t.Errorf("messages without a valid sequence number, e.g. %q", bad)
	}
	var missing, dup []int
	for i, c := range seen {
		switch {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dup = append(dup, i)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Errorf("%d missing (first %v), %d duplicated (first %v)", len(missing), first(missing), len(dup), first(dup))
	}
	return counts
}

func first(s []int) []int { return s[:min(len(s), 10)] }

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

// sortedKeys lists a map's keys in order, for stable failure messages.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
