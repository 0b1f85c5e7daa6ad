// Package testpeer is the tests' shared harness for the real peers they
// talk to: an unprivileged foreground rsyslogd fed over TCP, libzmq
// (pyzmq) PULL, SUB and PUSH sockets, a plain or TLS syslog receiver, and
// a raw ZMTP handshake for tests that then misbehave on the wire. A
// missing peer fails the test with what to install; it never skips.
package testpeer

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Python is the interpreter with pyzmq; `python3` on PATH may be a shim
// without it.
const Python = "/usr/bin/python3"

// Need returns the path of binary, failing the test with install when it
// is missing.
func Need(t testing.TB, binary, install string) string {
	t.Helper()
	p, err := exec.LookPath(binary)
	if err != nil {
		if _, serr := os.Stat(binary); serr == nil {
			return binary
		}
		t.Fatalf("%s not found: %s", binary, install)
	}
	return p
}

// NeedRsyslogd returns rsyslogd's path, looking in PATH and then in
// /usr/sbin (which a non-root PATH often lacks), or fails the test.
func NeedRsyslogd(t testing.TB, install string) string {
	t.Helper()
	if p, err := exec.LookPath("rsyslogd"); err == nil {
		return p
	}
	return Need(t, "/usr/sbin/rsyslogd", install)
}

// NeedPyzmq fails the test unless Python imports zmq.
func NeedPyzmq(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(Python, "-c", "import zmq").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import zmq (%v: %s): apt-get install python3-zmq", Python, err, out)
	}
}

// Eventually polls cond every few milliseconds until it holds or timeout
// passes, then fails with what.
func Eventually(t testing.TB, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, what())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Text is a constant description for Eventually.
func Text(s string) func() string { return func() string { return s } }

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a peer that must come and go on a fixed address.
func FreePort(t testing.TB) int { return FreePorts(t, 1)[0] }

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago (they are held together, so no two are the same).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// Validate runs `rsyslogd -N1` on file and returns its output; err is
// non-nil when rsyslogd rejects the configuration. A module the file (or
// a file it includes) needs but that is not installed fails the test
// first, with the package to install: -N1 does not load stream drivers.
func Validate(t testing.TB, file string) (string, error) {
	t.Helper()
	bin := NeedRsyslogd(t, "apt-get install rsyslog rsyslog-czmq rsyslog-gnutls")
	conf, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	NeedRsyslogModules(t, string(conf))
	out, err := exec.Command(bin, "-N1", "-f", file).CombinedOutput()
	return string(out), err
}

// Rsyslogd is a foreground rsyslogd run for one test.
type Rsyslogd struct {
	Dir  string // workDirectory and scratch space; survives Stop for restarts
	Port int    // the imtcp port (0 when StartRsyslogdConf had no port file)

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	out  *SyncBuffer
}

// StartRsyslogd writes dir/rsyslog.conf (global workDirectory, an imtcp
// input on port 0, then body) and runs rsyslogd on it in the foreground.
// Reuse dir to restart on the same disk queues.
func StartRsyslogd(t testing.TB, dir, body string) *Rsyslogd {
	t.Helper()
	portFile := filepath.Join(dir, "imtcp.port")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="0" listenPortFileName=%q)
%s
`, dir, portFile, body)
	return StartRsyslogdConf(t, dir, conf, portFile)
}

// StartRsyslogdConf writes conf as it is to dir/rsyslog.conf, checks that
// the modules it needs are installed (NeedRsyslogModules), has `rsyslogd
// -N1` check it, and runs rsyslogd on it in the foreground until the test
// ends. When portFile is not empty (conf's imtcp listenPortFileName), it
// waits until imtcp accepts on the port written there and sets Port.
func StartRsyslogdConf(t testing.TB, dir, conf, portFile string) *Rsyslogd {
	t.Helper()
	bin := NeedRsyslogd(t, "apt-get install rsyslog rsyslog-czmq rsyslog-gnutls")
	if portFile != "" {
		_ = os.Remove(portFile) // a restart in dir must not read the old port
	}
	NeedRsyslogModules(t, conf)
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", confFile).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 rejects the test config: %v\n%s\n--- config:\n%s", err, out, conf)
	}
	r := &Rsyslogd{Dir: dir, t: t, done: make(chan struct{}), out: &SyncBuffer{}}
	r.cmd = exec.Command(bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill its omprog children too
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", r.out.String())
		}
	})
	if portFile == "" {
		return r
	}
	Eventually(t, 20*time.Second, func() string { return "rsyslogd's imtcp port; output:\n" + r.out.String() }, func() bool {
		b, err := os.ReadFile(portFile)
		if err != nil {
			return false
		}
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || p <= 0 {
			return false
		}
		// The port file is written as imtcp binds, a moment before it
		// accepts: ready means a connection goes through.
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		_ = c.Close()
		r.Port = p
		return true
	})
	return r
}

// Dial opens a TCP connection to rsyslogd's imtcp port, retrying for up
// to 10 s (a refused connection is how a busy imtcp looks for a moment).
func (r *Rsyslogd) Dial(t testing.TB) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port))); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("dial rsyslogd's imtcp: %v\n%s", err, r.Output())
	}
	return c
}

// Output is what rsyslogd printed so far.
func (r *Rsyslogd) Output() string { return r.out.String() }

// Stop sends SIGTERM, waits, then kills the process group. rsyslogd
// 8.2302 sometimes crashes on SIGTERM: callers judge by what arrived.
func (r *Rsyslogd) Stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

// Exited reports whether rsyslogd has exited.
func (r *Rsyslogd) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Send writes one RFC 5424 message per text, octet-counted, from app.
func (r *Rsyslogd) Send(t testing.TB, app string, texts ...string) {
	t.Helper()
	c := r.Dial(t)
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	for _, text := range texts {
		m := fmt.Sprintf("<14>1 2026-01-01T00:00:00Z testhost %s - - - %s", app, text)
		fmt.Fprintf(w, "%d %s", len(m), m)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("send to rsyslogd: %v", err)
	}
}

// SendNumbered sends n messages "msgnum:%08d" numbered from first.
func (r *Rsyslogd) SendNumbered(t testing.TB, app string, first, n int) {
	t.Helper()
	const chunk = 5000
	for i := first; i < first+n; i += chunk {
		texts := make([]string, 0, chunk)
		for j := i; j < min(i+chunk, first+n); j++ {
			texts = append(texts, Numbered(j))
		}
		r.Send(t, app, texts...)
	}
}

// Numbered is the text SendNumbered sends for i.
func Numbered(i int) string { return fmt.Sprintf("msgnum:%08d", i) }

// MsgNum extracts the number of a "msgnum:" text from s, or -1.
func MsgNum(s string) int { return numberAfter(s, "msgnum:") }

// Seq is the text "seq:%08d" that numbers the relay tests' events; SeqOf
// finds i again.
func Seq(i int) string { return fmt.Sprintf("seq:%08d", i) }

// SeqOf extracts the number of a "seq:" text from s, or -1.
func SeqOf(s string) int { return numberAfter(s, "seq:") }

// numberAfter reads the eight digits after the first prefix in s, or -1.
func numberAfter(s, prefix string) int {
	i := strings.Index(s, prefix)
	if i < 0 || len(s) < i+len(prefix)+8 {
		return -1
	}
	n, err := strconv.Atoi(s[i+len(prefix) : i+len(prefix)+8])
	if err != nil {
		return -1
	}
	return n
}

// Pull is a pyzmq (libzmq) PULL socket recording every message it gets.
type Pull struct {
	Endpoint string

	t     testing.TB
	cmd   *exec.Cmd
	done  chan struct{}
	mu    sync.Mutex
	msgs  [][]string
	count int
	errb  *SyncBuffer
}

const pullScript = `
import json, sys, zmq
ctx = zmq.Context()
mode = sys.argv[2] if len(sys.argv) > 2 else "record"
ep = sys.argv[1]
if mode.startswith("sub:"):
    s = ctx.socket(zmq.SUB)
    for t in mode[4:].split(","):
        s.setsockopt(zmq.SUBSCRIBE, t.encode())
    s.connect(ep)
elif ep.endswith(":0"):
    s = ctx.socket(zmq.PULL)
    port = s.bind_to_random_port(ep[:-2])
    ep = ep[:-2] + ":" + str(port)
else:
    s = ctx.socket(zmq.PULL)
    s.bind(ep)
s.setsockopt(zmq.LINGER, 0)
count_only = mode == "count"
out = sys.stdout
out.write("READY " + ep + "\n"); out.flush()
poller = zmq.Poller(); poller.register(s, zmq.POLLIN)
n = 0
while True:
    if not poller.poll(50):
        out.flush()
        continue
    while True:
        try:
            frames = s.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        if count_only:
            n += 1
        else:
            out.write(json.dumps([f.decode("utf-8", "replace") for f in frames]) + "\n")
    if count_only:
        out.write("C %d\n" % n); out.flush()
`

// StartPull binds a libzmq PULL socket on endpoint ("tcp://127.0.0.1:0"
// picks a port) and records what arrives.
func StartPull(t testing.TB, endpoint string) *Pull { return startPull(t, endpoint, false) }

// StartCountingPull is StartPull that only counts (for benchmarks):
// Messages stays empty.
func StartCountingPull(t testing.TB, endpoint string) *Pull { return startPull(t, endpoint, true) }

// StartSub connects a libzmq SUB socket to endpoint, subscribed to the
// topic prefixes, and records what arrives (use it like a Pull).
func StartSub(t testing.TB, endpoint string, topics ...string) *Pull {
	return startPeer(t, endpoint, "sub:"+strings.Join(topics, ","))
}

func startPull(t testing.TB, endpoint string, countOnly bool) *Pull {
	mode := "record"
	if countOnly {
		mode = "count"
	}
	return startPeer(t, endpoint, mode)
}

func startPeer(t testing.TB, endpoint, mode string) *Pull {
	t.Helper()
	NeedPyzmq(t)
	p := &Pull{t: t, done: make(chan struct{}), errb: &SyncBuffer{}}
	p.cmd = exec.Command(Python, "-u", "-c", pullScript, endpoint, mode)
	p.cmd.Stderr = p.errb
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pyzmq PULL: %v", err)
	}
	t.Cleanup(p.Stop)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY ") {
		p.Stop()
		t.Fatalf("pyzmq PULL did not start: %s", p.errb.String())
	}
	p.Endpoint = strings.TrimPrefix(sc.Text(), "READY ")
	go func() {
		defer close(p.done)
		for sc.Scan() {
			if c, ok := strings.CutPrefix(sc.Text(), "C "); ok {
				k, _ := strconv.Atoi(c)
				p.mu.Lock()
				p.count = k
				p.mu.Unlock()
				continue
			}
			var frames []string
			if err := json.Unmarshal(sc.Bytes(), &frames); err != nil {
				continue
			}
			p.mu.Lock()
			p.msgs = append(p.msgs, frames)
			p.count++
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
	}()
	return p
}

// Count is how many messages arrived.
func (p *Pull) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// Messages returns a copy of the messages so far, frames in order.
func (p *Pull) Messages() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]string(nil), p.msgs...)
}

// Stop kills the consumer (abruptly, like a crash) and waits for it.
func (p *Pull) Stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// Tally counts how often each msgnum in [0, n) appears in texts; it
// returns the numbers missing, the duplicate deliveries and strays (texts
// outside the range or without a number).
func Tally(texts []string, n int) (missing []int, dups, strays int) {
	seen := make([]int, n)
	for _, s := range texts {
		k := MsgNum(s)
		if k < 0 || k >= n {
			strays++
			continue
		}
		seen[k]++
	}
	for i, c := range seen {
		switch {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dups += c - 1
		}
	}
	return missing, dups, strays
}

// SyslogReceiver is a TCP listener counting octet-counted syslog frames, a
// stand-in for the relay's syslog input.
type SyslogReceiver struct {
	Addr *net.TCPAddr

	l     net.Listener
	mu    sync.Mutex
	msgs  []string
	bad   int
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	handshakeFailures int
}

// HandshakeFailures counts TLS handshakes that failed (e.g. the client
// rejected the certificate).
func (r *SyslogReceiver) HandshakeFailures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handshakeFailures
}

// StartSyslogReceiver listens on 127.0.0.1:port (0 picks one).
func StartSyslogReceiver(t testing.TB, port int) *SyslogReceiver {
	return StartTLSSyslogReceiver(t, port, nil)
}

// StartTLSSyslogReceiver is StartSyslogReceiver speaking TLS with cfg
// (nil: plain TCP).
func StartTLSSyslogReceiver(t testing.TB, port int, cfg *tls.Config) *SyslogReceiver {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	r := &SyslogReceiver{Addr: l.Addr().(*net.TCPAddr), l: l, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns[c] = struct{}{}
			r.mu.Unlock()
			r.wg.Add(1)
			go func() { defer r.wg.Done(); r.read(c) }()
		}
	}()
	t.Cleanup(r.Close)
	return r
}

func (r *SyslogReceiver) read(c net.Conn) {
	defer c.Close()
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			r.mu.Lock()
			r.handshakeFailures++
			r.mu.Unlock()
			return
		}
	}
	br := bufio.NewReader(c)
	for {
		lenStr, err := br.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(lenStr))
		if err != nil || n <= 0 || n > 1<<20 {
			r.mu.Lock()
			r.bad++
			r.mu.Unlock()
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, string(buf))
		r.mu.Unlock()
	}
}

// Messages returns the frames received so far; bad counts frames that
// were not octet-counted.
func (r *SyslogReceiver) Messages() (msgs []string, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...), r.bad
}

// Close stops listening, drops the connections and waits for the readers.
func (r *SyslogReceiver) Close() {
	_ = r.l.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// SyncBuffer is a goroutine-safe output sink, e.g. for a command's
// stdout and stderr read while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Pid is rsyslogd's process id.
func (r *Rsyslogd) Pid() int { return r.cmd.Process.Pid }

// Children returns the ids of rsyslogd's child processes named comm (as
// in /proc/PID/comm, at most 15 bytes), e.g. its omprog programs.
func (r *Rsyslogd) Children(comm string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(r.Pid()) || s[j+1:i] != comm {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// ExpectClosed reads c until the other side closes it (EOF, or a reset
// when it closed with our data unread) and reports an error if it is still
// open after within. It uses t.Errorf, so goroutines of the test may call it.
func ExpectClosed(t testing.TB, c net.Conn, within time.Duration, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s: still open after %v", what, within)
	}
}
