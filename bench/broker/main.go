// Command broker benchmarks the relay's broker outputs side by side with a
// raw client of the same broker, in one run:
//
//   - jetstream: syslog TCP → relay → spooled (fsync always) jetstream
//     output → nats-server, against a Go client publishing asynchronously
//     with a message id on every message (nats.go's jetstream package) to
//     the same server; both wait for every PubAck. Beside them, the relay's
//     own path into a PUSH consumer (the same events, the same spool): the
//     ceiling of the jetstream output.
//   - kafka: the same into a three-broker kfake cluster (franz-go's
//     Kafka in memory, run in a child process of its own so that neither
//     side shares a process with it), against a raw franz-go idempotent
//     producer (acks=all, the same compression, linger and window), the
//     same producer with the relay's key and headers, and the relay's own
//     path into a PUSH consumer instead of Kafka: the ceiling of any
//     output behind the spool.
//
// It prints each rate and the ratio relay/raw, and the CPU per record of
// each side and of kfake.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	relayBin = flag.String("relay", "bin/relay", "the relay binary")
	n        = flag.Int("n", 300000, "events per run")
	size     = flag.Int("size", 200, "event size in bytes")
	which    = flag.String("only", "jetstream,kafka", "what to run")
	runs     = flag.Int("runs", 2, "runs of each side; the best counts")
	pending  = flag.Int("pending", 4096, "window of unconfirmed messages, both sides")
	profile  = flag.String("profile", "", "write CPU profiles of the first run to DIR: the relay into jetstream and into kafka (built with -tags tapprofile), the relay into PUSH of the kafka run, kfake, the raw producer")
)

func main() {
	flag.Parse()
	if *kfakeServe != "" {
		serveKfake(*kfakeServe)
		return
	}
	for _, w := range strings.Split(*which, ",") {
		var err error
		switch w {
		case "jetstream":
			err = benchJetStream()
		case "kafka":
			err = benchKafka()
		default:
			err = fmt.Errorf("unknown %q", w)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "broker bench:", w+":", err)
			os.Exit(1)
		}
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// payloads are built once, before any timing, for the raw clients.
var payloads [][]byte

func payloadsOnce() {
	if payloads == nil {
		payloads = make([][]byte, *n)
		for i := range payloads {
			payloads[i] = payload(i)
		}
	}
}

// payload is a syslog message of about size bytes with seq i.
func payload(i int) []byte {
	m := fmt.Sprintf("<14>1 2026-01-01T00:00:00.000000Z web01 click - - - seq:%08d ", i)
	if pad := *size - len(m); pad > 0 {
		m += strings.Repeat("x", pad)
	}
	return []byte(m)
}

// ratios are each run's relay/raw, run side by side: on a noisy machine
// their median says more than the best of each side.
func ratios(rel, raw []float64) (string, float64) {
	var rs []float64
	var parts []string
	for i := range rel {
		rs = append(rs, rel[i]/raw[i])
		parts = append(parts, fmt.Sprintf("%.0f%%", 100*rel[i]/raw[i]))
	}
	sort.Float64s(rs)
	med := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		med = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	return strings.Join(parts, ", "), med
}

func best(rates []float64) float64 {
	b := 0.0
	for _, r := range rates {
		b = max(b, r)
	}
	return b
}

// runOpts are a relay run's extras.
type runOpts struct {
	// profile, if set, is the prefix of the relay's CPU profile of the
	// measured phase (the relay must be built with -tags tapprofile).
	profile string
	// around, if set, is called as the events start to flow; what it
	// returns is called once they are all confirmed.
	around func() func()
	// delivered, if set, counts the events delivered (instead of the
	// output's confirmed counter).
	delivered func() float64
}

// runResult is what a relay run measured.
type runResult struct {
	rate float64 // events confirmed per second
	cpu  float64 // the relay's CPU seconds over the measured phase
}

// scrapeClient reads the relay's /metrics without gzip: compressing each
// scrape (every 25 ms) cost the relay about 0.25 µs of CPU per event in a
// jetstream run, counted against it; the raw clients have no such cost.
var scrapeClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// relayRun starts the relay on conf, sends n events over TCP, and returns
// the rate at which the output confirmed them (confirmed counter == n).
func relayRun(conf string, syslogPort, httpPort int, output string, o runOpts) (runResult, error) {
	cmd := exec.Command(*relayBin, "-c", conf)
	if o.profile != "" {
		cmd.Env = append(os.Environ(), "TAP_CPUPROFILE="+o.profile)
	}
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return runResult{}, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	metric := func(series string) float64 {
		resp, err := scrapeClient.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort))
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, series+" "); ok {
				v, _ := strconv.ParseFloat(rest, 64)
				return v
			}
		}
		return -1
	}
	series := fmt.Sprintf(`relay_broker_confirmed_total{output=%q}`, output)
	count := func() float64 { return metric(series) }
	if o.delivered != nil {
		series = fmt.Sprintf(`relay_output_info{output=%q,socket="push",type="zmq"}`, output) // the relay is up
		count = o.delivered
	}
	for deadline := time.Now().Add(20 * time.Second); metric(series) < 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return runResult{}, fmt.Errorf("relay not up:\n%s", logb.String())
		}
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", syslogPort))
	if err != nil {
		return runResult{}, err
	}
	var buf bytes.Buffer
	for i := 0; i < *n; i++ {
		p := payload(i)
		buf.WriteString(strconv.Itoa(len(p)))
		buf.WriteByte(' ')
		buf.Write(p)
	}
	if o.profile != "" {
		// tapprofile: SIGUSR1 starts a CPU profile, SIGUSR2 writes it.
		cmd.Process.Signal(syscall.SIGUSR1)
		defer func() { cmd.Process.Signal(syscall.SIGUSR2); time.Sleep(300 * time.Millisecond) }()
	}
	done := func() {}
	if o.around != nil {
		done = o.around()
	}
	cpu0 := cpuSeconds(cmd.Process.Pid)
	start := time.Now()
	go func() { c.Write(buf.Bytes()); c.Close() }()
	// Each scrape of /metrics costs the relay CPU (the registry, the
	// process collector reading /proc): scraping every 25 ms instead of
	// every 5 ms, and taking the moment the count reached n between the
	// last two scrapes (the count grows steadily within 25 ms), keeps that
	// cost off the relay's rate; the raw clients have none.
	ivl := 25 * time.Millisecond
	if o.delivered != nil {
		ivl = time.Millisecond // a counter in this process: free to read
	}
	prevT, prevC := start, 0.0
	var end time.Time
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(ivl) {
		c, t := count(), time.Now()
		if c >= float64(*n) {
			end = t
			if c > prevC {
				end = prevT.Add(time.Duration(float64(t.Sub(prevT)) * (float64(*n) - prevC) / (c - prevC)))
			}
			break
		}
		if c >= 0 {
			prevT, prevC = t, c
		}
		if t.After(deadline) {
			return runResult{}, fmt.Errorf("relay delivered %v of %d:\n%s", c, *n, logb.String())
		}
	}
	rate := float64(*n) / end.Sub(start).Seconds()
	cpu := cpuSeconds(cmd.Process.Pid) - cpu0
	done()
	return runResult{rate: rate, cpu: cpu}, nil
}

// cpuSeconds is the CPU time (user and system) process pid has used.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}

func benchJetStream() error {
	dir, err := os.MkdirTemp("", "bench-broker")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port := freePort()
	conf := filepath.Join(dir, "nats.conf")
	os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\njetstream {store_dir: %q, max_file_store: 16GB}\n", port, filepath.Join(dir, "js")), 0o600)
	srv := exec.Command("nats-server", "-c", conf)
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("nats-server: %w (apt-get install nats-server)", err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	var nc *nats.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if nc, err = nats.Connect(url); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for _, s := range []string{"RAW", "EVENTS"} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{strings.ToLower(s) + ".>"}, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err != nil {
			return err
		}
	}
	per := func(cpu float64) float64 { return 1e6 * cpu / float64(*n) }
	srvCPU := func() float64 { return cpuSeconds(srv.Process.Pid) }
	var raw, rel, ceil []float64
	var rawUS, rawSrvUS, relUS, relSrvUS, ceilUS []float64
	for r := 0; r < *runs; r++ {
		// Raw client: its own connection, PublishAsync with a msg id, every
		// PubAck checked.
		var self0, s0 float64
		rate, err := rawJetStream(url, r, func() { self0, s0 = cpuSeconds(os.Getpid()), srvCPU() })
		if err != nil {
			return err
		}
		raw = append(raw, rate)
		rawUS, rawSrvUS = append(rawUS, per(cpuSeconds(os.Getpid())-self0)), append(rawSrvUS, per(srvCPU()-s0))
		sp, hp := freePort(), freePort()
		rc := filepath.Join(dir, fmt.Sprintf("relay%d.yaml", r))
		os.WriteFile(rc, fmt.Appendf(nil, `inputs: [{name: in, type: syslog, listen: "tcp://127.0.0.1:%d"}]
outputs:
  - name: nats
    type: jetstream
    servers: [%s]
    subject: "events.{stream}"
    max_pending: %d
    spool: {dir: %s, fsync: always}
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, sp, url, *pending, filepath.Join(dir, fmt.Sprintf("spool%d", r)), hp), 0o600)
		var srvUS float64
		o := runOpts{around: func() func() {
			s0 := srvCPU()
			return func() { srvUS = per(srvCPU() - s0) }
		}}
		if *profile != "" && r == 0 {
			o.profile = filepath.Join(*profile, "relay-jetstream")
		}
		res, err := relayRun(rc, sp, hp, "nats", o)
		if err != nil {
			return err
		}
		rel, relUS, relSrvUS = append(rel, res.rate), append(relUS, per(res.cpu)), append(relSrvUS, srvUS)
		// The ceiling of the relay's own path, as in the kafka bench: the
		// same input and spool (fsync always), the same events, into a
		// PUSH output and a PULL in this process, no JetStream.
		pr, err := pushRun(dir, r, false)
		if err != nil {
			return err
		}
		ceil, ceilUS = append(ceil, pr.rate), append(ceilUS, per(pr.cpu))
		fmt.Printf("  run %d: raw client %.0f msg/s (%.2f µs CPU/msg, nats-server %.2f), relay to PUSH %.0f ev/s (%.2f µs CPU/ev), relay %.0f ev/s (relay %.2f µs CPU/ev, nats-server %.2f): %.0f%%, %.0f%% of relay to PUSH\n",
			r+1, raw[r], rawUS[r], rawSrvUS[r], ceil[r], ceilUS[r], rel[r], relUS[r], relSrvUS[r], 100*rel[r]/raw[r], 100*rel[r]/ceil[r])
		for _, s := range []string{"RAW", "EVENTS"} {
			st, _ := js.Stream(ctx, s)
			st.Purge(ctx)
		}
	}
	b, rb := best(rel), best(raw)
	fmt.Printf("%-62s %12s %12s %7s\n", "jetstream (200 B, file stream R1, every PubAck awaited)", "relay ev/s", "raw msg/s", "ratio")
	fmt.Printf("%-62s %12.0f %12.0f %6.0f%%  (best of each side)\n", "syslog TCP -> relay -> spool (fsync always) -> jetstream", b, rb, 100*b/rb)
	pr, med := ratios(rel, raw)
	fmt.Printf("%-62s %12s %12s %6.0f%%  (goal >= 90%%; runs: %s)\n", "  median of the side-by-side runs", "", "", 100*med, pr)
	cr, cmed := ratios(ceil, raw)
	fmt.Printf("%-62s %12.0f %12s %6.0f%%  (median; runs: %s)\n", "  ceiling: the relay path into PUSH, no JetStream, against raw", best(ceil), "", 100*cmed, cr)
	jr, jmed := ratios(rel, ceil)
	fmt.Printf("%-62s %12s %12s %6.0f%%  (median; runs: %s)\n", "  relay into jetstream against that ceiling", "", "", 100*jmed, jr)
	fmt.Printf("%-62s %12s %12s %7s\n", "  CPU per event, median (µs)", "client/relay", "nats-server", "")
	fmt.Printf("    %-58s %12.2f %12.2f\n", "raw client (the bench's process)", median(rawUS), median(rawSrvUS))
	fmt.Printf("    %-58s %12.2f %12s\n", "relay into PUSH (TCP in, spool, fsync, send)", median(ceilUS), "-")
	fmt.Printf("    %-58s %12.2f %12.2f\n", "relay into jetstream (TCP in, spool, fsync, publish)", median(relUS), median(relSrvUS))
	// On a machine whose cores the two processes saturate, the rates go
	// inversely as the CPU per event of client and server together.
	rawT, relT := median(rawUS)+median(rawSrvUS), median(relUS)+median(relSrvUS)
	if relT > 0 {
		fmt.Printf("%-62s %12.2f %12.2f %6.0f%%  (raw/relay CPU per event, client+server: the ratio if CPU-bound on %d cores)\n",
			"  CPU floor: client+server µs per event, relay vs raw", relT, rawT, 100*rawT/relT, runtime.NumCPU())
	}
	return nil
}

// rawJetStream publishes n messages with ids; started is called as the
// timing starts (the messages and ids are built before).
func rawJetStream(url string, run int, started func()) (float64, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	var failed atomic.Int64
	payloadsOnce()
	ids := make([]string, *n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%d-%d", run, i)
	}
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(*pending), jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	started()
	start := time.Now()
	for i := 0; i < *n; i++ {
		if _, err := js.PublishAsync("raw.click", payloads[i], jetstream.WithMsgID(ids[i]), jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("raw client: acks missing")
	}
	rate := float64(*n) / time.Since(start).Seconds()
	if failed.Load() > 0 {
		return 0, fmt.Errorf("raw client: %d publishes failed", failed.Load())
	}
	return rate, nil
}
