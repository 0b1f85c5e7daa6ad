// Command relay-bench measures the relay against rsyslogd in one run:
// 200-byte RFC 5424 messages on one TCP connection, octet-counted, into
// either the relay (syslog input → PUSH output, format raw) or rsyslogd
// (imptcp → omczmq PUSH, default settings), both connecting to the same
// kind of bound PULL consumer. It prints msg/s, the ratio, loss, RSS, and
// latency percentiles at a paced rate. bench/relay.sh runs it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

const msgSize = 200

func main() {
	relayBin := flag.String("relay", "bin/relay", "relay binary")
	cpull := flag.String("cpull", "", "the libzmq C consumer (bench/relay/ref/pull.c, built)")
	pypull := flag.String("pypull", "bench/relay/pull.py", "the pyzmq consumer")
	python := flag.String("python", "/usr/bin/python3", "python with pyzmq")
	n := flag.Int("n", 1_000_000, "messages per throughput run")
	count := flag.Int("count", 3, "throughput runs per case; the best is shown (neighbours only ever slow a run)")
	consumers := flag.String("consumers", "c,py,go", "throughput consumers: c (libzmq), py (pyzmq), go (internal/zmq)")
	rate := flag.Int("rate", 50_000, "paced rate for the latency run, msg/s")
	dur := flag.Duration("dur", 10*time.Second, "length of the latency run")
	tmpl := flag.String("rsyslog-template", "raw", `omczmq template: "raw" (%rawmsg%, what the relay sends) or "" (omczmq's default)`)
	targets := flag.String("targets", "rsyslog,relay", "targets compared, the first is the base of the ratios: rsyslog, relay, "+
		"relay-spool (PUSH behind a disk spool, fsync always), rsyslog-disk (a Disk action queue in front of omczmq), rsyslog-disk-sync (the same, syncQueueFiles on, checkpointInterval 1)")
	latency := flag.Bool("latency", true, "also run the paced latency comparison")
	latTargets := flag.String("latency-targets", "rsyslog,relay", "targets of the latency comparison")
	stall := flag.Int("stall", 0, "if > 0: relay-spool with no consumer: ingest rate of this many messages into the spool, then the drain rate once the consumer connects")
	spoolDir := flag.String("spool-dir", "", "where spool directories go (default: the temp dir); the disk under test")
	flag.Parse()
	b := &bench{relayBin: *relayBin, cpull: *cpull, pypull: *pypull, python: *python, template: *tmpl,
		targets: strings.Split(*targets, ","), latency: *latency, latTargets: strings.Split(*latTargets, ","), spoolDir: *spoolDir}
	if err := b.run(*n, *count, strings.Split(*consumers, ","), *rate, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "relay-bench:", err)
		os.Exit(1)
	}
	if *stall > 0 {
		if err := b.stall(*stall); err != nil {
			fmt.Fprintln(os.Stderr, "relay-bench: stall:", err)
			os.Exit(1)
		}
	}
}

type bench struct {
	relayBin, cpull, pypull, python string
	template                        string // omczmq's template; "" for its default
	targets                         []string
	latency                         bool
	latTargets                      []string
	spoolDir                        string
}

type result struct {
	rate     float64     // msg/s, first write to last message at the consumer
	count    int         // messages at the consumer
	unique   int         // distinct sequence numbers (-1: not checked)
	maxRSS   int64       // of the relay or rsyslogd
	steadRSS int64       // median RSS over the second half (latency runs)
	cpu      float64     // CPU seconds (user+system) the target used in the run
	lat      string      // p50 p99 p99.9 max, µs
	spool    spoolScrape // relay-spool: what its spool did over the run (from /metrics)
}

func (b *bench) run(n, count int, consumers []string, rate int, dur time.Duration) error {
	// Tail latency on a shared machine is mostly scheduling: show the load.
	fmt.Printf("load average at start: %s\n", loadAvg())
	defer func() { fmt.Printf("load average at end: %s\n", loadAvg()) }()
	fmt.Printf("throughput: %d messages of %d bytes, one TCP connection, octet-counted; best of %d; rsyslog omczmq template %q\n", n, msgSize, count, b.template)
	fmt.Printf("%-10s %-17s %12s %10s %12s %8s %10s %10s\n", "consumer", "target", "msg/s", "vs "+b.targets[0], "delivered", "lost", "max RSS", "CPU ns/msg")
	for _, c := range consumers {
		best := map[string]result{}
		for i := 0; i < count; i++ {
			for _, target := range b.targets {
				if c == "go" && strings.HasPrefix(target, "rsyslog") && i > 0 {
					continue
				}
				r, err := b.once(target, c, n, 0, 0)
				if err != nil {
					return fmt.Errorf("%s → %s: %w", target, c, err)
				}
				if r.rate > best[target].rate || best[target].count == 0 {
					best[target] = r
				}
			}
		}
		base := best[b.targets[0]].rate
		for _, target := range b.targets {
			r := best[target]
			lost := n - r.count
			if r.unique >= 0 {
				lost = n - r.unique
			}
			fmt.Printf("%-10s %-17s %12.0f %9.2fx %12d %8d %7.1fMiB %10.0f\n", c, target, r.rate, r.rate/base, r.count, lost, mib(r.maxRSS), r.cpu*1e9/float64(n))
		}
		if slices.Contains(b.targets, "relay") && slices.Contains(b.targets, "relay-spool") {
			printSpoolFloor(c, best["relay"], best["relay-spool"], n)
		}
	}
	if !b.latency {
		return nil
	}
	fmt.Printf("\nlatency: paced %d msg/s for %v, send timestamp in each message, libzmq C consumer\n", rate, dur)
	fmt.Printf("%-11s %10s %10s %10s %10s %12s %10s %8s\n", "target", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "steady RSS", "max RSS", "lost")
	for _, target := range b.latTargets {
		total := int(float64(rate) * dur.Seconds())
		r, err := b.once(target, "c", total, rate, dur)
		if err != nil {
			return fmt.Errorf("latency %s: %w", target, err)
		}
		f := strings.Fields(r.lat)
		if len(f) != 4 {
			f = []string{"-", "-", "-", "-"}
		}
		fmt.Printf("%-11s %10s %10s %10s %10s %10.1fMiB %8.1fMiB %8d\n", target, f[0], f[1], f[2], f[3], mib(r.steadRSS), mib(r.maxRSS), total-r.unique)
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// once runs one target into one consumer: n messages, as fast as possible
// (rate 0) or paced.
func (b *bench) once(target, consumer string, n, rate int, dur time.Duration) (result, error) {
	tmp, err := os.MkdirTemp("", "relay-bench")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	mode := "count"
	if rate > 0 {
		mode = "latency"
	}
	cons, err := b.startConsumer(consumer, n, mode)
	if err != nil {
		return result{}, err
	}
	defer cons.stop()
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	var proc *exec.Cmd
	hport := 0 // relay-spool: its /metrics
	switch target {
	case "relay":
		proc, _, err = b.startRelay(tmp, port, cons.endpoint, "")
	case "relay-spool":
		proc, hport, err = b.startRelay(tmp, port, cons.endpoint, b.spoolYAML(tmp))
	case "rsyslog":
		proc, err = startRsyslog(tmp, port, cons.endpoint, b.template, "")
	case "rsyslog-disk":
		proc, err = startRsyslog(tmp, port, cons.endpoint, b.template, rsyslogDiskQueue)
	case "rsyslog-disk-sync":
		proc, err = startRsyslog(tmp, port, cons.endpoint, b.template, rsyslogDiskQueue+rsyslogDiskSync)
	default:
		return result{}, fmt.Errorf("unknown target %q", target)
	}
	if err != nil {
		return result{}, err
	}
	defer stopProc(proc)
	rss := newSampler(proc.Process.Pid)
	defer rss.stop()
	cpu0 := cpuSeconds(proc.Process.Pid)

	conn, err := dialRetry(fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second)
	if err != nil {
		return result{}, fmt.Errorf("%s input: %w", target, err)
	}
	var sp0 spoolScrape
	if hport != 0 {
		if sp0, err = scrapeSpool(hport); err != nil {
			return result{}, err
		}
	}
	start := time.Now()
	if rate == 0 {
		err = sendFast(conn, n)
	} else {
		err = sendPaced(conn, n, rate)
	}
	conn.Close()
	if err != nil {
		return result{}, fmt.Errorf("send: %w", err)
	}
	done, err := cons.wait(2 * time.Minute)
	if err != nil {
		return result{}, err
	}
	r := result{count: done.count, unique: done.unique, lat: done.lat, maxRSS: rss.max(), steadRSS: rss.steady(), cpu: cpuSeconds(proc.Process.Pid) - cpu0}
	if hport != 0 {
		sp1, err := scrapeSpoolSettled(hport)
		if err != nil {
			return result{}, err
		}
		r.spool = sp1.since(sp0)
	}
	if secs := float64(done.last-start.UnixNano()) / 1e9; secs > 0 {
		r.rate = float64(done.count) / secs
	}
	return r, nil
}

// message writes message seq, stamped ts, octet-counted, into dst
// (len(dst) == 4+msgSize).
var msgTemplate = func() []byte {
	m := []byte("<14>1 2026-11-22T05:00:00.000000Z benchhost bench 1234 - - seq:0000000000 ts:0000000000000000000 ")
	for len(m) < msgSize {
		m = append(m, 'x')
	}
	return append([]byte(strconv.Itoa(msgSize)+" "), m...)
}()

var (
	seqOff = strings.Index(string(msgTemplate), "seq:") + 4
	tsOff  = strings.Index(string(msgTemplate), "ts:") + 3
)

func putDigits(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

func sendFast(c net.Conn, n int) error {
	const chunk = 2000
	buf := make([]byte, 0, chunk*len(msgTemplate))
	for i := 0; i < n; {
		buf = buf[:0]
		ts := time.Now().UnixNano()
		for j := 0; j < chunk && i < n; j, i = j+1, i+1 {
			off := len(buf)
			buf = append(buf, msgTemplate...)
			putDigits(buf[off+seqOff:off+seqOff+10], int64(i))
			putDigits(buf[off+tsOff:off+tsOff+19], ts)
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func sendPaced(c net.Conn, n, rate int) error {
	w := bufio.NewWriterSize(c, 64<<10)
	msg := slices.Clone(msgTemplate)
	start := time.Now()
	for i := 0; i < n; {
		due := int(time.Since(start).Seconds() * float64(rate))
		if due <= i {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		ts := time.Now().UnixNano()
		for ; i < min(due, n); i++ {
			putDigits(msg[seqOff:seqOff+10], int64(i))
			putDigits(msg[tsOff:tsOff+19], ts)
			w.Write(msg)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// --- consumers ---

type consumer struct {
	endpoint string
	cmd      *exec.Cmd
	out      *bufio.Scanner
	done     chan doneLine
}

type doneLine struct {
	count, unique int
	first, last   int64
	lat           string
	err           error
}

func (b *bench) startConsumer(kind string, n int, mode string) (*consumer, error) {
	switch kind {
	case "go":
		return startGoConsumer(n, mode)
	case "py":
		return startProcConsumer(exec.Command(b.python, b.pypull, "tcp://127.0.0.1:0", strconv.Itoa(n), mode))
	case "c":
		if b.cpull == "" {
			return nil, errors.New("-cpull is not set")
		}
		return startProcConsumer(exec.Command(b.cpull, "tcp://127.0.0.1:0", strconv.Itoa(n), mode))
	}
	return nil, fmt.Errorf("unknown consumer %q; use c, py or go", kind)
}

func startProcConsumer(cmd *exec.Cmd) (*consumer, error) {
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &consumer{cmd: cmd, out: bufio.NewScanner(stdout), done: make(chan doneLine, 1)}
	if !c.out.Scan() || !strings.HasPrefix(c.out.Text(), "READY ") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s did not start", cmd.Path)
	}
	c.endpoint = strings.TrimPrefix(c.out.Text(), "READY ")
	go func() {
		var d doneLine
		d.err = errors.New("consumer ended without DONE")
		for c.out.Scan() {
			f := strings.Fields(c.out.Text())
			switch {
			case len(f) == 5 && f[0] == "DONE":
				d.count, _ = strconv.Atoi(f[1])
				d.first, _ = strconv.ParseInt(f[2], 10, 64)
				d.last, _ = strconv.ParseInt(f[3], 10, 64)
				d.unique, _ = strconv.Atoi(f[4])
				d.err = nil
			case len(f) == 5 && f[0] == "LAT":
				d.lat = strings.Join(f[1:], " ")
			}
		}
		c.done <- d
	}()
	return c, nil
}

// startGoConsumer is a PULL on internal/zmq in this process.
func startGoConsumer(n int, mode string) (*consumer, error) {
	p := zmq.NewPull(zmq.Options{})
	if err := p.Listen("tcp://127.0.0.1:0"); err != nil {
		return nil, err
	}
	c := &consumer{endpoint: "tcp://" + p.Addrs()[0].String(), done: make(chan doneLine, 1)}
	go func() {
		defer p.Close()
		var d doneLine
		seen := make([]bool, n)
		var lats []int64
		buf := make([]zmq.Msg, 256)
		for d.count < n {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if d.count == 0 {
				ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
			}
			k, err := p.RecvBatch(ctx, buf)
			cancel()
			if err != nil {
				break
			}
			now := time.Now().UnixNano()
			if d.count == 0 {
				d.first = now
			}
			d.last = now
			for _, m := range buf[:k] {
				d.count++
				f := m[len(m)-1]
				if s := num(f, "seq:", 10); s >= 0 && s < int64(n) && !seen[s] {
					seen[s] = true
					d.unique++
				}
				if mode == "latency" {
					lats = append(lats, now-num(f, "ts:", 19))
				}
			}
		}
		if len(lats) > 0 {
			slices.Sort(lats)
			k := len(lats)
			d.lat = fmt.Sprintf("%.1f %.1f %.1f %.1f", float64(lats[k/2])/1e3, float64(lats[k*99/100])/1e3, float64(lats[k*999/1000])/1e3, float64(lats[k-1])/1e3)
		}
		c.done <- d
	}()
	return c, nil
}

func num(b []byte, tag string, digits int) int64 {
	i := strings.Index(string(b), tag)
	if i < 0 || i+len(tag)+digits > len(b) {
		return -1
	}
	v, err := strconv.ParseInt(string(b[i+len(tag):i+len(tag)+digits]), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

func (c *consumer) wait(d time.Duration) (doneLine, error) {
	select {
	case r := <-c.done:
		return r, r.err
	case <-time.After(d):
		return doneLine{}, fmt.Errorf("consumer did not finish within %v", d)
	}
}

func (c *consumer) stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

// --- targets ---

func (b *bench) startRelay(dir string, port int, consumer, spool string) (*exec.Cmd, int, error) {
	hport, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	conf := fmt.Sprintf(`inputs:
  - name: in
    type: syslog
    listen: tcp://127.0.0.1:%d
outputs:
  - name: out
    type: zmq
    socket: push
    connect: %s
    format: raw
%s
http:
  listen: 127.0.0.1:%d
log: {level: warn}
`, port, consumer, spool, hport)
	file := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(b.relayBin, "-c", file)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", hport))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, hport, nil
			}
		}
		if time.Now().After(deadline) {
			stopProc(cmd)
			return nil, 0, errors.New("relay not healthy within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRsyslog runs rsyslogd: imptcp → omczmq PUSH connecting to the
// consumer, default queue and action settings. The template "raw" is the
// raw message, the least work rsyslog can do per message (the relay sends
// the raw message too); "" leaves omczmq's default.
func startRsyslog(dir string, port int, consumer, template, queue string) (*exec.Cmd, error) {
	if template != "" {
		template = fmt.Sprintf(" template=%q", template)
	}
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		return nil, errors.New("rsyslogd not found: apt-get install rsyslog rsyslog-czmq")
	}
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imptcp")
module(load="omczmq")
template(name="raw" type="string" string="%%rawmsg%%")
input(type="imptcp" address="127.0.0.1" port="%d" ruleset="bench")
ruleset(name="bench") {
  action(type="omczmq" endpoints=">%s" socktype="PUSH"%s%s)
}
`, dir, port, consumer, template, queue)
	file := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-n", "-f", file, "-i", filepath.Join(dir, "rsyslogd.pid"))
	// rsyslogd reports its worker threads' comings and goings on stderr:
	// noise here, so it goes to a file in dir.
	logf, err := os.Create(filepath.Join(dir, "rsyslogd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// stopProc sends SIGTERM and waits, then kills. rsyslogd 8.2302 sometimes
// crashes on SIGTERM; the exit status is ignored.
func stopProc(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func dialRetry(addr string, d time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(d)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sampler records a process's VmRSS every 100 ms.
type sampler struct {
	mu   sync.Mutex
	rss  []int64
	quit chan struct{}
	wg   sync.WaitGroup
}

func newSampler(pid int) *sampler {
	s := &sampler{quit: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmRSS(pid); v > 0 {
				s.mu.Lock()
				s.rss = append(s.rss, v)
				s.mu.Unlock()
			}
			select {
			case <-t.C:
			case <-s.quit:
				return
			}
		}
	}()
	return s
}

func (s *sampler) stop() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.wg.Wait()
}

func (s *sampler) max() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m int64
	for _, v := range s.rss {
		m = max(m, v)
	}
	return m
}

// steady is the median RSS over the second half of the samples.
func (s *sampler) steady() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rss) == 0 {
		return 0
	}
	h := slices.Clone(s.rss[len(s.rss)/2:])
	slices.Sort(h)
	return h[len(h)/2]
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ") + fmt.Sprintf(" (%d CPUs)", runtime.NumCPU())
}

// cpuSeconds is the user+system CPU time of a process (all threads).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15, in clock ticks (100 Hz on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
