// Command relp-bench measures RELP receivers against each other with the
// same sender, in one run: an rsyslogd whose imptcp input the bench feeds
// and whose omrelp action sends to one of
//
//   - relay: the relay's RELP input → PUSH → a libzmq C PULL consumer;
//   - relay-spool: the same with a disk spool on the output (fsync:
//     always): every answer waits for the fdatasync covering its event;
//   - imrelp: rsyslog's imrelp → omczmq PUSH → the same consumer;
//   - noop: an instant no-op RELP server in this process (TCP_NODELAY,
//     every frame answered as soon as it is read): the ceiling of the
//     sender itself.
//
// For each omrelp setting (windowSize:queue.dequeueBatchSize, or
// "default" for omrelp's own), it prints msg/s per target and the
// ratios (goals: ≥ 0.90× the no-op ceiling and ≥ 5× imrelp, with and
// without the spool); then the relay's ack latency (read → answered) at a
// paced rate, from its relay_relp_ack_latency_seconds histogram, beside
// the end-to-end latency at the consumer, for relay and relay-spool.
// bench/relp.sh runs it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rsyslog-zmq/relay/internal/relp"
)

const msgSize = 200

func main() {
	relayBin := flag.String("relay", "bin/relay", "relay binary")
	cpull := flag.String("cpull", "", "the libzmq C consumer (bench/relay/ref/pull.c, built)")
	n := flag.Int("n", 200_000, "messages per throughput run")
	count := flag.Int("count", 2, "runs per case; the best is shown")
	settings := flag.String("settings", "1024:1024,default", "omrelp settings: windowSize:dequeueBatchSize, or default")
	targets := flag.String("targets", "noop,relay,relay-spool,imrelp", "receivers to measure")
	rate := flag.Int("rate", 20_000, "paced rate for the ack latency run, msg/s")
	dur := flag.Duration("dur", 10*time.Second, "length of the latency run")
	defN := flag.Int("default-n", 5_000, "messages per run for omrelp's default window (it is slow)")
	spoolDir := flag.String("spool-dir", "", "where relay-spool's spool goes (a directory on the disk to measure; default: the run's temp dir)")
	flag.Parse()
	b := &bench{relayBin: *relayBin, cpull: *cpull, spoolDir: *spoolDir}
	if err := b.run(*n, *defN, *count, strings.Split(*settings, ","), strings.Split(*targets, ","), *rate, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "relp-bench:", err)
		os.Exit(1)
	}
}

type bench struct{ relayBin, cpull, spoolDir string }

type result struct {
	rate  float64
	count int
	lost  int
	lat   string // consumer's p50 p99 p99.9 max, µs
	ack   string // relay's ack latency p50 p99, µs
}

func (b *bench) run(n, defN, count int, settings, targets []string, rate int, dur time.Duration) error {
	fmt.Printf("load average at start: %s\n", loadAvg())
	defer func() { fmt.Printf("load average at end: %s\n", loadAvg()) }()
	fmt.Printf("one omrelp sender (rsyslogd, template %%rawmsg%%, %d-byte messages fed to its imptcp); best of %d\n", msgSize, count)
	fmt.Printf("relay-spool: the relay's PUSH output with a disk spool (fsync: always; answers wait for the fdatasync); goals: relay and relay-spool >= 0.90x noop and >= 5x imrelp\n")
	fmt.Printf("%-12s %-11s %10s %12s %10s %10s %8s\n", "omrelp", "target", "messages", "msg/s", "vs noop", "vs imrelp", "lost")
	for _, s := range settings {
		best := map[string]result{}
		msgs := n
		if s == "default" {
			msgs = defN
		}
		for i := 0; i < count; i++ {
			for _, target := range targets {
				r, err := b.once(target, s, msgs, 0, 0)
				if err != nil {
					return fmt.Errorf("%s with omrelp %s: %w", target, s, err)
				}
				if r.rate > best[target].rate {
					best[target] = r
				}
			}
		}
		for _, target := range targets {
			r := best[target]
			fmt.Printf("%-12s %-11s %10d %12.0f %9.2fx %9.2fx %8d\n", s, target, msgs, r.rate, ratio(r.rate, best["noop"].rate), ratio(r.rate, best["imrelp"].rate), r.lost)
		}
	}
	s := settings[0]
	fmt.Printf("\nack latency: omrelp %s paced at %d msg/s for %v; relay: read → answered (histogram buckets, interpolated); end to end: imptcp send → libzmq consumer\n", s, rate, dur)
	for _, target := range []string{"relay", "relay-spool"} {
		if !slices.Contains(targets, target) {
			continue
		}
		r, err := b.once(target, s, int(float64(rate)*dur.Seconds()), rate, dur)
		if err != nil {
			return fmt.Errorf("latency run of %s: %w", target, err)
		}
		fmt.Printf("%-11s ack p50 / p99: %s µs; end to end p50 p99 p99.9 max: %s µs; lost %d\n", target, r.ack, r.lat, r.lost)
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// once sends n messages through the omrelp sender to target.
func (b *bench) once(target, setting string, n, rate int, dur time.Duration) (result, error) {
	tmp, err := os.MkdirTemp("", "relp-bench")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	relpPort, err := freePort()
	if err != nil {
		return result{}, err
	}
	mode := "count"
	if rate > 0 {
		mode = "latency"
	}
	var cons *consumer
	var noop *noopServer
	var hport int
	switch target {
	case "noop":
		noop, err = startNoop(relpPort, n)
	case "relay", "relay-spool", "imrelp":
		cons, err = startConsumer(b.cpull, n, mode)
		if err != nil {
			return result{}, err
		}
		defer cons.stop()
		var proc *exec.Cmd
		if target != "imrelp" {
			sdir := ""
			if target == "relay-spool" {
				sdir = filepath.Join(tmp, "spool")
				if b.spoolDir != "" {
					if sdir, err = os.MkdirTemp(b.spoolDir, "relp-bench-spool"); err != nil {
						return result{}, err
					}
					// Removed after the relay stopped (defers run last first).
					defer os.RemoveAll(sdir)
				}
			}
			hport, err = freePort()
			if err == nil {
				proc, err = b.startRelay(tmp, relpPort, hport, cons.endpoint, sdir)
			}
		} else {
			proc, err = startImrelp(tmp, relpPort, cons.endpoint)
		}
		if err == nil {
			defer stopProc(proc)
		}
	default:
		err = fmt.Errorf("unknown target %q; use noop, relay, relay-spool or imrelp", target)
	}
	if err != nil {
		return result{}, err
	}
	if noop != nil {
		defer noop.close()
	}
	if err := waitListening(relpPort); err != nil {
		return result{}, fmt.Errorf("%s: %w", target, err)
	}
	inPort, err := freePort()
	if err != nil {
		return result{}, err
	}
	sender, err := startSender(filepath.Join(tmp, "sender"), inPort, relpPort, setting)
	if err != nil {
		return result{}, err
	}
	defer stopProc(sender)
	conn, err := dialRetry(fmt.Sprintf("127.0.0.1:%d", inPort), 20*time.Second)
	if err != nil {
		return result{}, fmt.Errorf("sender's imptcp: %w", err)
	}
	start := time.Now()
	if rate == 0 {
		err = sendFast(conn, n)
	} else {
		err = sendPaced(conn, n, rate)
	}
	conn.Close()
	if err != nil {
		return result{}, fmt.Errorf("feed the sender: %w", err)
	}
	var r result
	var last int64
	if noop != nil {
		got, at, err := noop.wait(5 * time.Minute)
		if err != nil {
			return result{}, err
		}
		r.count, r.lost, last = got, n-got, at
	} else {
		d, err := cons.wait(5 * time.Minute)
		if err != nil {
			return result{}, err
		}
		r.count, r.lost, last, r.lat = d.count, n-d.unique, d.last, d.lat
	}
	if secs := float64(last-start.UnixNano()) / 1e9; secs > 0 {
		r.rate = float64(r.count) / secs
	}
	if hport > 0 && rate > 0 {
		r.ack, err = ackQuantiles(hport)
		if err != nil {
			return result{}, err
		}
	}
	return r, nil
}

// --- the sender ---

// startSender runs rsyslogd: imptcp on inPort → omrelp to relpPort.
func startSender(dir string, inPort, relpPort int, setting string) (*exec.Cmd, error) {
	params := ""
	if setting != "default" {
		w, batch, ok := strings.Cut(setting, ":")
		if !ok {
			return nil, fmt.Errorf("omrelp setting %q: want windowSize:dequeueBatchSize or default", setting)
		}
		params = fmt.Sprintf(` windowSize="%s" queue.type="LinkedList" queue.size="500000" queue.dequeueBatchSize="%s"`, w, batch)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imptcp")
module(load="omrelp")
template(name="raw" type="string" string="%%rawmsg%%")
input(type="imptcp" address="127.0.0.1" port="%d" ruleset="send")
ruleset(name="send") {
  action(type="omrelp" target="127.0.0.1" port="%d" template="raw"%s
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
`, dir, inPort, relpPort, params)
	return startRsyslogd(dir, conf)
}

// --- targets ---

func (b *bench) startRelay(dir string, port, hport int, consumer, spoolDir string) (*exec.Cmd, error) {
	spool := ""
	if spoolDir != "" {
		spool = fmt.Sprintf("\n    spool: {dir: %s, fsync: always}", spoolDir)
	}
	conf := fmt.Sprintf(`inputs:
  - name: relp
    type: relp
    listen: tcp://127.0.0.1:%d
outputs:
  - name: out
    type: zmq
    socket: push
    connect: %s
    format: raw%s
http:
  listen: 127.0.0.1:%d
log: {level: warn}
`, port, consumer, spool, hport)
	file := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(b.relayBin, "-c", file)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// startImrelp runs rsyslogd: imrelp on port → omczmq PUSH to consumer.
func startImrelp(dir string, port int, consumer string) (*exec.Cmd, error) {
	d := filepath.Join(dir, "imrelp")
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imrelp")
module(load="omczmq")
template(name="raw" type="string" string="%%rawmsg%%")
input(type="imrelp" port="%d" address="127.0.0.1" ruleset="out")
ruleset(name="out") {
  action(type="omczmq" endpoints=">%s" socktype="PUSH" template="raw")
}
`, d, port, consumer)
	return startRsyslogd(d, conf)
}

func startRsyslogd(dir, conf string) (*exec.Cmd, error) {
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr != nil {
			return nil, errors.New("rsyslogd not found: apt-get install rsyslog rsyslog-relp rsyslog-czmq")
		}
		bin = "/usr/sbin/rsyslogd"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-n", "-f", file, "-i", filepath.Join(dir, "rsyslogd.pid"))
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

// noopServer answers every RELP frame as soon as it is read.
type noopServer struct {
	l    net.Listener
	n    int
	got  atomic.Int64
	last atomic.Int64
	done chan struct{}
}

func startNoop(port, n int) (*noopServer, error) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	s := &noopServer{l: l, n: n, done: make(chan struct{})}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s, nil
}

func (s *noopServer) serve(c net.Conn) {
	defer c.Close()
	rd := relp.NewReader(c, 1<<20)
	w := bufio.NewWriterSize(c, 64<<10)
	open := []byte("200 OK\nrelp_version=0\nrelp_software=noop\ncommands=syslog")
	for {
		f, err := rd.Next()
		if err != nil {
			return
		}
		var out []byte
		switch f.Command {
		case relp.CmdOpen:
			out = relp.AppendFrame(w.AvailableBuffer(), f.Txnr, relp.CmdRsp, open)
		case relp.CmdSyslog:
			out = relp.AppendOK(w.AvailableBuffer(), f.Txnr)
			s.last.Store(time.Now().UnixNano())
			if s.got.Add(1) == int64(s.n) {
				close(s.done)
			}
		default:
			out = relp.AppendOK(w.AvailableBuffer(), f.Txnr)
		}
		w.Write(out)
		if rd.Buffered() == 0 { // answer before waiting for more
			if w.Flush() != nil {
				return
			}
		}
	}
}

func (s *noopServer) wait(d time.Duration) (int, int64, error) {
	select {
	case <-s.done:
	case <-time.After(d):
		return int(s.got.Load()), s.last.Load(), fmt.Errorf("no-op server got %d of %d within %v", s.got.Load(), s.n, d)
	}
	return int(s.got.Load()), s.last.Load(), nil
}

func (s *noopServer) close() { s.l.Close() }

// ackQuantiles reads the relay's ack latency histogram and interpolates
// its p50 and p99.
func ackQuantiles(hport int) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", hport))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	type bucket struct {
		le  float64
		cum float64
	}
	var bs []bucket
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "relay_relp_ack_latency_seconds_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line[i+4:], `"`)
		le, _ := strconv.ParseFloat(line[i+4:i+4+j], 64)
		f := strings.Fields(line)
		cum, _ := strconv.ParseFloat(f[len(f)-1], 64)
		bs = append(bs, bucket{le, cum})
	}
	sort.Slice(bs, func(a, b int) bool { return bs[a].le < bs[b].le })
	if len(bs) == 0 || bs[len(bs)-1].cum == 0 {
		return "", errors.New("no ack latency in the relay's metrics")
	}
	total := bs[len(bs)-1].cum
	q := func(p float64) float64 {
		rank := p * total
		lower, prev := 0.0, 0.0
		for _, b := range bs {
			if b.cum >= rank {
				if math.IsInf(b.le, 1) {
					return lower
				}
				return lower + (b.le-lower)*(rank-prev)/(b.cum-prev)
			}
			lower, prev = b.le, b.cum
		}
		return lower
	}
	return fmt.Sprintf("%.0f / %.0f", q(0.5)*1e6, q(0.99)*1e6), nil
}

// --- feeding the sender ---

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

// --- the consumer (bench/relay/ref/pull.c) ---

type consumer struct {
	endpoint string
	cmd      *exec.Cmd
	done     chan doneLine
}

type doneLine struct {
	count, unique int
	last          int64
	lat           string
	err           error
}

func startConsumer(bin string, n int, mode string) (*consumer, error) {
	if bin == "" {
		return nil, errors.New("-cpull is not set")
	}
	cmd := exec.Command(bin, "tcp://127.0.0.1:0", strconv.Itoa(n), mode)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY ") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s did not start", bin)
	}
	c := &consumer{endpoint: strings.TrimPrefix(sc.Text(), "READY "), cmd: cmd, done: make(chan doneLine, 1)}
	go func() {
		d := doneLine{err: errors.New("consumer ended without DONE")}
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 5 && f[0] == "DONE":
				d.count, _ = strconv.Atoi(f[1])
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

func (c *consumer) wait(d time.Duration) (doneLine, error) {
	select {
	case r := <-c.done:
		return r, r.err
	case <-time.After(d):
		return doneLine{}, fmt.Errorf("consumer did not finish within %v", d)
	}
}

func (c *consumer) stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// --- helpers ---

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

// waitListening waits until something accepts on port (then closes the
// probe at once: a RELP server sees a connection that sends nothing).
func waitListening(port int) error {
	c, err := dialRetry(fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second)
	if err != nil {
		return err
	}
	io.WriteString(c, "")
	return c.Close()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ") + fmt.Sprintf(" (%d CPUs)", runtime.NumCPU())
}
