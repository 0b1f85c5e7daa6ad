package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"
	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// RelayParams is one run of the pipeline with the relay as the ventilator:
// syslog (from this program, or through rsyslogd) → relay → workers → sink,
// and the sink's acks back to the relay's acknowledged PUSH output.
type RelayParams struct {
	Relay string // the relay binary
	Batch int    // events per acknowledged batch
	// Window is ack.window, batches in flight (1 is the seed's pattern);
	// 0 leaves it out of the config: the relay's default, AckWindowFor.
	Window  int
	Count   int // events to send
	Workers int
	Size    int // bytes per syslog message (at least 48)
	// Plain uses a plain PUSH output: no headers, no acks, nothing held;
	// the baseline the acknowledged output is measured against.
	Plain bool
	// Timeout is the output's ack.timeout (resend after).
	Timeout time.Duration
	// Rsyslogd, if set, is the rsyslogd binary events go through (imtcp →
	// omfwd to the relay), as in production; else this program writes
	// them to the relay's syslog input itself.
	Rsyslogd string
	// Python, if set, runs the workers as ackworker.py processes
	// (pass-through; the sink acks) with this interpreter; Script is the
	// path to ackworker.py.
	Python, Script string
	// Stall ends a run that made no progress for this long (default 10s).
	Stall time.Duration
}

// RelayResult is what a relay run measured.
type RelayResult struct {
	Seconds    float64 // first event written to the last new one at the sink
	Received   int     // distinct events at the sink
	Duplicates int     // copies the sink dropped (resent batches)
	Stalled    bool
	// From the relay's /metrics once the sink has every event: the mean
	// ack latency (a batch's first send to its ack), and how long the
	// output's writes waited, in all (Blocked) and for an ack because the
	// window was full (WindowWait). Zero when not scraped (plain PUSH has
	// no acks).
	AckLatency, Blocked, WindowWait time.Duration
	// CPU is the CPU time the relay and this program (feeder, workers,
	// sink) used from the first event written to the last one received:
	// the work a run cost, which other jobs on the machine change less
	// than its time.
	CPU time.Duration
	// Diag says what was seen when a run stalled.
	Diag string
}

// Rate is events per second.
func (r RelayResult) Rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Received) / r.Seconds
}

// freePorts returns n TCP ports free on loopback right now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// AckLine is the output's ack setting for a run, as a user writes it:
// the window only when p sets it.
func AckLine(p RelayParams, port int) string {
	window := ""
	if p.Window > 0 {
		window = fmt.Sprintf(", window: %d", p.Window)
	}
	timeout := ""
	if p.Timeout > 0 {
		timeout = fmt.Sprintf(", timeout: %v", p.Timeout)
	}
	return fmt.Sprintf("ack: {bind: \"tcp://127.0.0.1:%d\", batch: %d%s%s}", port, p.Batch, window, timeout)
}

// window is the output's window in a run: p.Window, or the default.
func (p RelayParams) window() int {
	if p.Window > 0 {
		return p.Window
	}
	return config.AckWindowFor(p.Batch)
}

// relayConfig is the relay's configuration for a run.
func relayConfig(p RelayParams, in, data, ack, httpPort int) string {
	out := fmt.Sprintf(`  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
    hwm: %d
`, data, max(1000, 2*p.Batch))
	if !p.Plain {
		out += "    " + AckLine(p, ack) + "\n"
	}
	return fmt.Sprintf(`inputs:
  - name: feed
    type: syslog
    listen: tcp://127.0.0.1:%d
outputs:
%shttp:
  listen: 127.0.0.1:%d
drain_timeout: 2s
log: {level: warn}
`, in, out, httpPort)
}

// RunRelay starts the relay (and rsyslogd), workers and a sink, sends
// p.Count events and waits until the sink has every one.
func RunRelay(ctx context.Context, p RelayParams) (RelayResult, error) {
	var res RelayResult
	if p.Batch <= 0 || p.Count <= 0 || p.Workers <= 0 {
		return res, errors.New("relay run: batch, count and workers must be positive")
	}
	if p.Timeout <= 0 {
		p.Timeout = 5 * time.Second
	}
	if p.Stall <= 0 {
		p.Stall = 10 * time.Second
	}
	p.Size = max(p.Size, 48)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir, err := os.MkdirTemp("", "pipeline-relay")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(4)
	if err != nil {
		return res, err
	}
	inPort, dataPort, ackPort, httpPort := ports[0], ports[1], ports[2], ports[3]
	cfgFile := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(cfgFile, []byte(relayConfig(p, inPort, dataPort, ackPort, httpPort)), 0o600); err != nil {
		return res, err
	}
	relay, err := startProc(dir, "relay", p.Relay, "-c", cfgFile)
	if err != nil {
		return res, err
	}
	defer relay.stop()

	var socks []interface{ Close() error }
	defer func() {
		for i := len(socks) - 1; i >= 0; i-- {
			socks[i].Close()
		}
	}()
	sink := zmq.NewPull(zmq.Options{RecvHWM: 10000})
	socks = append(socks, sink)
	if err := sink.Listen("tcp://127.0.0.1:0"); err != nil {
		return res, fmt.Errorf("sink: %w", err)
	}
	sinkEP := "tcp://" + sink.Addrs()[0].String()
	dataEP := fmt.Sprintf("tcp://127.0.0.1:%d", dataPort)
	ackEP := fmt.Sprintf("tcp://127.0.0.1:%d", ackPort)
	var recv *ackpipe.Receiver
	if !p.Plain {
		ackOut := zmq.NewPush(zmq.Options{})
		socks = append(socks, ackOut)
		if err := ackOut.Dial(ackEP); err != nil {
			return res, err
		}
		recv = ackpipe.NewReceiver(ackOut, ackpipe.ReceiverConfig{MaxBatch: max(p.Batch+1, ackpipe.DefaultMaxBatch), MaxOpen: max(64, 2*p.window())})
	}
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range p.Workers {
		if p.Python != "" {
			w, err := startProc(dir, fmt.Sprintf("worker%d", i), p.Python, p.Script, "worker", "--in", dataEP, "--out", sinkEP)
			if err != nil {
				return res, err
			}
			defer w.kill()
			continue
		}
		in, out := zmq.NewPull(zmq.Options{}), zmq.NewPush(zmq.Options{})
		socks = append(socks, in, out)
		if err := in.Dial(dataEP); err != nil {
			return res, err
		}
		if err := out.Dial(sinkEP); err != nil {
			return res, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runWorker(ctx, in, out, nil)
		}()
	}
	// Start once every worker is a peer of the relay's output (PUSH only
	// round-robins over connected peers) and the acks have a way back.
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort)
	if err := waitUntil(ctx, 20*time.Second, func() bool {
		return relay.alive() && sink.Stats().Peers == p.Workers && metricAtLeast(metrics, `relay_output_peers{output="workers"}`, p.Workers)
	}); err != nil {
		return res, fmt.Errorf("relay run: workers did not connect: %w\n%s", err, relay.output())
	}

	feedPort := inPort
	if p.Rsyslogd != "" {
		rs, port, err := startRsyslogd(dir, p.Rsyslogd, inPort)
		if err != nil {
			return res, err
		}
		defer rs.stop()
		feedPort = port
	}

	seen := make([]bool, p.Count)
	var dups []string // a sample of the copies, for Diag
	got := 0
	sinkDone := make(chan time.Time, 1)
	var sinkErr error
	var progress sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]zmq.Msg, chunk)
		for got < p.Count {
			n, err := sink.RecvBatch(ctx, buf)
			if err != nil {
				return
			}
			progress.Lock()
			for _, m := range buf[:n] {
				pl := m[0]
				if recv != nil {
					f, fresh, err := recv.Handle(ctx, m)
					if err != nil {
						continue
					}
					if !fresh {
						if len(dups) < 10 && len(m) > 1 {
							dups = append(dups, fmt.Sprintf("receiver copy %s %q", headerString(m[0]), m[len(m)-1]))
						}
						continue
					}
					pl = f[0]
				}
				id, ok := eventID(pl)
				if !ok || id >= p.Count {
					sinkErr = fmt.Errorf("sink: unexpected event %q", pl)
					continue
				}
				if seen[id] {
					res.Duplicates++
					if len(dups) < 10 {
						dups = append(dups, fmt.Sprintf("id %d again %s", id, headerString(m[0])))
					}
					continue
				}
				seen[id] = true
				got++
			}
			progress.Unlock()
			if recv != nil {
				if err := recv.Commit(ctx); err != nil {
					return
				}
			}
			clear(buf[:n])
		}
		sinkDone <- time.Now()
	}()

	start := time.Now()
	cpu0 := selfCPU() + procCPU(relay.cmd.Process.Pid)
	feedErr := make(chan error, 1)
	go func() { feedErr <- feed(ctx, feedPort, p.Count, p.Size) }()
	last, lastAt := -1, time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var end time.Time
wait:
	for {
		select {
		case end = <-sinkDone:
			break wait
		case err := <-feedErr:
			if err != nil {
				return res, fmt.Errorf("feed: %w", err)
			}
			feedErr = nil
		case now := <-tick.C:
			progress.Lock()
			g := got
			progress.Unlock()
			if g != last {
				last, lastAt = g, now
			} else if now.Sub(lastAt) > p.Stall {
				res.Stalled, end = true, lastAt
				progress.Lock()
				res.Diag = fmt.Sprintf("missing %s; copies: %s; ", missing(seen), strings.Join(dups, ", "))
				progress.Unlock()
				res.Diag += fmt.Sprintf("stalled at %d of %d events; relay alive: %v; relay metrics:\n%s\nrelay output:\n%s", g, p.Count, relay.alive(), outputMetrics(metrics), relay.output())
				break wait
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Seconds = end.Sub(start).Seconds()
	res.CPU = selfCPU() + procCPU(relay.cmd.Process.Pid) - cpu0
	scrapeOutput(metrics, &res)
	cancel()
	wg.Wait()
	res.Received = got
	if recv != nil {
		res.Duplicates += int(recv.Stats().Duplicates)
	}
	if sinkErr != nil {
		return res, sinkErr
	}
	return res, nil
}

// eventID reads the 10-digit id at the end of an event.
func eventID(b []byte) (int, bool) {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	if len(b) < 10 {
		return 0, false
	}
	id, err := strconv.Atoi(string(b[len(b)-10:]))
	return id, err == nil
}

// feed writes count RFC 5424 events of size bytes, octet-counted, to the
// syslog input on port, each ending with its 10-digit id.
func feed(ctx context.Context, port, count, size int) error {
	var c net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	const head = "<13>1 2026-01-01T00:00:00Z host app - - - "
	pad := strings.Repeat("x", max(0, size-len(head)-10))
	w := bufio.NewWriterSize(c, 256<<10)
	for i := range count {
		msg := head + pad + fmt.Sprintf("%010d", i)
		if _, err := fmt.Fprintf(w, "%d %s", len(msg), msg); err != nil {
			return err
		}
	}
	return w.Flush()
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time process pid has used (Linux /proc, in clock
// ticks of 10 ms), or 0 if it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends with the last ')': state
	// is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// scrapeOutput reads the output's wait and ack latency counters into r.
func scrapeOutput(url string, r *RelayResult) {
	resp, err := http.Get(url)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	vals := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(line, `{output="workers"} `)
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			vals[name] = f
		}
	}
	secs := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	if n := vals["relay_output_ack_latency_seconds_count"]; n > 0 {
		r.AckLatency = secs(vals["relay_output_ack_latency_seconds_sum"] / n)
	}
	r.Blocked = secs(vals["relay_output_blocked_seconds_total"])
	r.WindowWait = secs(vals["relay_output_ack_window_wait_seconds_total"])
}

// headerString describes an ackpipe header frame.
func headerString(b []byte) string {
	h, err := ackpipe.ParseHeader(b)
	if err != nil {
		return fmt.Sprintf("[not a header: %v]", err)
	}
	return fmt.Sprintf("[stream %d batch %d index %d flags %#x]", h.Stream, h.Seq, h.Index, h.Flags)
}

// missing lists the ids not seen, as ranges (at most 20).
func missing(seen []bool) string {
	var out []string
	for i := 0; i < len(seen) && len(out) < 20; i++ {
		if seen[i] {
			continue
		}
		j := i
		for j+1 < len(seen) && !seen[j+1] {
			j++
		}
		out = append(out, fmt.Sprintf("%d-%d", i, j))
		i = j
	}
	return strings.Join(out, " ")
}

// outputMetrics returns the lines of url's /metrics about the output.
func outputMetrics(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var b strings.Builder
	for _, line := range strings.Split(string(body), "\n") {
		if strings.Contains(line, `output="workers"`) && !strings.Contains(line, "_bucket") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// metricAtLeast reports whether the series line in url's /metrics text
// has a value of at least want.
func metricAtLeast(url, series string, want int) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && f >= float64(want)
		}
	}
	return false
}

// proc is a child process of a run.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func startProc(dir, name, bin string, args ...string) (*proc, error) {
	p := &proc{out: &lockedBuffer{}, done: make(chan struct{})}
	if strings.Contains(bin, "/") {
		abs, err := filepath.Abs(bin) // the child runs in dir
		if err != nil {
			return nil, err
		}
		bin = abs
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) output() string {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.out.b.String()
}

// stop sends SIGTERM and waits up to 10s, then kills the process group.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// startRsyslogd runs rsyslogd in the foreground with an imtcp input on a
// free port, forwarding to the relay's syslog input on relayPort as the
// rsyslog-conf/forward-tcp.conf snippet does (in memory only here).
func startRsyslogd(dir, bin string, relayPort int) (*proc, int, error) {
	portFile := filepath.Join(dir, "imtcp.port")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="0" listenPortFileName=%q)
template(name="raw" type="string" string="%%rawmsg%%")
action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" TCP_Framing="octet-counted"
       template="raw" queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="1024"
       action.resumeRetryCount="-1" action.resumeInterval="1")
`, dir, portFile, relayPort)
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return nil, 0, err
	}
	p, err := startProc(dir, "rsyslogd", bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
	if err != nil {
		return nil, 0, err
	}
	var port int
	err = waitUntil(context.Background(), 20*time.Second, func() bool {
		b, err := os.ReadFile(portFile)
		if err != nil {
			return false
		}
		port, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && port > 0
	})
	if err != nil {
		p.stop()
		return nil, 0, fmt.Errorf("rsyslogd did not start: %w\n%s", err, p.output())
	}
	return p, port, nil
}

// dialOrListen binds "tcp://*:port" and ipc endpoints, connects the rest,
// as ackworker.py does.
func dialOrListen(s interface {
	Listen(string) error
	Dial(string) error
}, ep string) error {
	if strings.Contains(ep, "*") || strings.HasPrefix(ep, "ipc://") {
		return s.Listen(ep)
	}
	return s.Dial(ep)
}

// ackWorkerMain is the ackworker command, the Go twin of ackworker.py's
// worker: with ack it takes each event once (ackpipe.Receiver drops the
// copies of resent batches), passes it on to out or prints it, and acks
// every batch it completed once it has done so: passed on means written
// to the kernel, so a kill -9 loses no acknowledged event (ackworker.py
// cannot tell that much: libzmq does not say when a message is written);
// if a write to out fails it returns an error without acking. Without
// ack it passes every message on unchanged and a sink acks. id, if set,
// is appended to what it passes on, so tests can tell workers apart.
//
// report, if set (with ack), gets a line "holding N SEQ…" for every round
// of events taken for the first time, before they are passed on or
// processed (N events, of the batches SEQ…), and "acking" before the acks
// of that round are sent, each line in one Write. Whatever report has
// received is what the worker did before that point: a worker frozen (or
// killed) after writing "holding" last has acknowledged none of those
// batches, so a test can tell which worker holds unacknowledged batches.
func ackWorkerMain(ctx context.Context, in, out, ack, id string, print bool, stdout, report io.Writer) error {
	pull := zmq.NewPull(zmq.Options{})
	defer pull.Close()
	if err := dialOrListen(pull, in); err != nil {
		return fmt.Errorf("ackworker: -in %q: %w", in, err)
	}
	var push *zmq.Push
	if out != "" {
		push = zmq.NewPush(zmq.Options{})
		defer push.Close()
		if err := dialOrListen(push, out); err != nil {
			return fmt.Errorf("ackworker: -out %q: %w", out, err)
		}
	}
	var recv *ackpipe.Receiver
	if ack != "" {
		acks := zmq.NewPush(zmq.Options{})
		defer acks.Close()
		if err := dialOrListen(acks, ack); err != nil {
			return fmt.Errorf("ackworker: -ack %q: %w", ack, err)
		}
		recv = ackpipe.NewReceiver(acks, ackpipe.ReceiverConfig{})
	}
	if push == nil && recv == nil {
		return errors.New("ackworker: set -ack (the worker acks) or -out (a sink acks)")
	}
	var tag [][]byte
	if id != "" {
		tag = [][]byte{[]byte(id)}
	}
	if recv == nil {
		report = nil
	}
	w := bufio.NewWriter(stdout)
	buf := make([]zmq.Msg, chunk)
	fwd := make([]zmq.Msg, 0, chunk)
	var held holding
	for {
		n, err := pull.RecvBatch(ctx, buf)
		if err != nil {
			return nil
		}
		fwd = fwd[:0]
		held.reset()
		for _, m := range buf[:n] {
			if recv != nil {
				p, fresh, err := recv.Handle(ctx, m)
				if err != nil || !fresh {
					continue
				}
				if report != nil {
					held.add(m[0])
				}
				if push == nil {
					// The work: a real worker would transform or store p.
					if print {
						w.Write(p[0])
						w.WriteByte('\n')
					}
					continue
				}
			}
			fwd = append(fwd, append(m[:len(m):len(m)], tag...))
		}
		if report != nil && held.n > 0 {
			if _, err := report.Write(held.line()); err != nil {
				return fmt.Errorf("ackworker: report: %w", err)
			}
		}
		if push != nil && len(fwd) > 0 {
			if recv == nil {
				// Pass-through: the sink acks what it got.
				if _, err := push.SendBatch(ctx, fwd); err != nil {
					return nil
				}
			} else if err := sendWritten(ctx, push, fwd); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				// The Receiver counts these batches as done, so a resend
				// would be dropped here as copies: stop, ack nothing more,
				// and the relay resends them to the other workers.
				return fmt.Errorf("ackworker: pass on to -out %q: %w (their batches are not acked)", out, err)
			}
		}
		w.Flush()
		if recv != nil {
			// Ack only what was passed on (or processed). Passed on means
			// written to the kernel (sendWritten above), not queued in
			// push: a kill -9 loses the queue, while the kernel still
			// delivers what it has.
			if report != nil && held.n > 0 {
				if _, err := report.Write([]byte("acking\n")); err != nil {
					return fmt.Errorf("ackworker: report: %w", err)
				}
			}
			if err := recv.Commit(ctx); err != nil {
				return nil
			}
		}
		clear(buf[:n])
	}
}

// holding is what one round of an ackworker took for the first time: the
// events and the batches they belong to, for its report.
type holding struct {
	n    int
	seqs []uint64
}

func (h *holding) reset() { h.n, h.seqs = 0, h.seqs[:0] }

// add counts a fresh message by its header frame.
func (h *holding) add(header []byte) {
	h.n++
	hd, err := ackpipe.ParseHeader(header)
	if err != nil || slices.Contains(h.seqs, hd.Seq) {
		return
	}
	h.seqs = append(h.seqs, hd.Seq)
}

// line is the report line "holding N SEQ…\n".
func (h *holding) line() []byte {
	b := fmt.Appendf(nil, "holding %d", h.n)
	for _, s := range h.seqs {
		b = fmt.Appendf(b, " %d", s)
	}
	return append(b, '\n')
}

// sendWritten queues ms on push and waits until every one of them is
// written to the next stage's connection, in the kernel: that survives a
// kill -9 of this process, a message still queued in push does not. (The
// kernel sends what it holds after the process dies, unless it resets the
// connection for unread input; push reads everything its peer sends.) A
// write that failed with its connection, or a socket that closed first,
// is an error: those messages may not have arrived.
func sendWritten(ctx context.Context, push *zmq.Push, ms []zmq.Msg) error {
	written := make(chan error, 1)
	if _, err := push.SendBatchTracked(ctx, ms, func(_ int, err error) { written <- err }); err != nil {
		return err
	}
	select {
	case err := <-written:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ackSinkMain is the acksink command: it takes the workers' results,
// drops copies, prints the events with print, and acks each complete
// batch to ack once it has them.
func ackSinkMain(ctx context.Context, in, ack string, print bool, stdout io.Writer) error {
	return ackWorkerMain(ctx, in, "", ack, "", print, stdout, nil)
}
