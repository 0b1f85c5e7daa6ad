// Command broker benchmarks the relay's broker outputs side by side with a
// raw client of the same broker, in one run:
//
//   - jetstream: syslog TCP → relay → spooled (fsync always) jetstream
//     output → nats-server, against a Go client publishing asynchronously
//     with a message id on every message (nats.go's jetstream package) to
//     the same server; both wait for every PubAck.
//   - kafka: the same into a three-broker kfake cluster (franz-go's
//     in-process Kafka, memory only), against a raw franz-go idempotent
//     producer (acks=all, the same compression).
//
// It prints each rate and the ratio relay/raw.
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
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	relayBin = flag.String("relay", "bin/relay", "the relay binary")
	n        = flag.Int("n", 300000, "events per run")
	size     = flag.Int("size", 200, "event size in bytes")
	which    = flag.String("only", "jetstream,kafka", "what to run")
	runs     = flag.Int("runs", 2, "runs of each side; the best counts")
	pending  = flag.Int("pending", 4096, "window of unconfirmed messages, both sides")
)

func main() {
	flag.Parse()
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

// relayRun starts the relay on conf, sends n events over TCP, and returns
// the rate at which the output confirmed them (confirmed counter == n).
func relayRun(conf string, syslogPort, httpPort int, output string) (float64, error) {
	cmd := exec.Command(*relayBin, "-c", conf)
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	metric := func(series string) float64 {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort))
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
	for deadline := time.Now().Add(20 * time.Second); metric(series) < 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("relay not up:\n%s", logb.String())
		}
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", syslogPort))
	if err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	for i := 0; i < *n; i++ {
		p := payload(i)
		buf.WriteString(strconv.Itoa(len(p)))
		buf.WriteByte(' ')
		buf.Write(p)
	}
	start := time.Now()
	go func() { c.Write(buf.Bytes()); c.Close() }()
	for deadline := time.Now().Add(5 * time.Minute); metric(series) < float64(*n); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("relay confirmed %v of %d:\n%s", metric(series), *n, logb.String())
		}
	}
	return float64(*n) / time.Since(start).Seconds(), nil
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
	var raw, rel []float64
	for r := 0; r < *runs; r++ {
		// Raw client: its own connection, PublishAsync with a msg id, every
		// PubAck checked.
		rate, err := rawJetStream(url, r)
		if err != nil {
			return err
		}
		raw = append(raw, rate)
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
		rate, err = relayRun(rc, sp, hp, "nats")
		if err != nil {
			return err
		}
		rel = append(rel, rate)
		fmt.Printf("  run %d: raw client %.0f msg/s, relay %.0f ev/s\n", r+1, raw[r], rel[r])
		for _, s := range []string{"RAW", "EVENTS"} {
			st, _ := js.Stream(ctx, s)
			st.Purge(ctx)
		}
	}
	b, rb := best(rel), best(raw)
	fmt.Printf("%-62s %12s %12s %7s\n", "jetstream (200 B, file stream R1, every PubAck awaited)", "relay ev/s", "raw msg/s", "ratio")
	fmt.Printf("%-62s %12.0f %12.0f %6.0f%%  (best of each side)\n", "syslog TCP -> relay -> spool (fsync always) -> jetstream", b, rb, 100*b/rb)
	per, med := ratios(rel, raw)
	fmt.Printf("%-62s %12s %12s %6.0f%%  (goal >= 90%%; runs: %s)\n", "  median of the side-by-side runs", "", "", 100*med, per)
	return nil
}

func rawJetStream(url string, run int) (float64, error) {
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

func benchKafka() error {
	ports := []int{freePort(), freePort(), freePort()}
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.Ports(ports...), kfake.SeedTopics(3, "raw", "events"))
	if err != nil {
		return err
	}
	defer c.Close()
	dir, err := os.MkdirTemp("", "bench-kafka")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var raw, rel, txn []float64
	for r := 0; r < *runs; r++ {
		rate, err := rawKafka(c.ListenAddrs())
		if err != nil {
			return err
		}
		raw = append(raw, rate)
		// What exactly-once by transactions would cost: the same producer,
		// transactional, one commit per window of records (the spool
		// position would be committed with them).
		trate, err := rawKafkaTxn(c.ListenAddrs(), r)
		if err != nil {
			return err
		}
		txn = append(txn, trate)
		sp, hp := freePort(), freePort()
		rc := filepath.Join(dir, fmt.Sprintf("relay%d.yaml", r))
		os.WriteFile(rc, fmt.Appendf(nil, `inputs: [{name: in, type: syslog, listen: "tcp://127.0.0.1:%d"}]
outputs:
  - name: kafka
    type: kafka
    brokers: [%s]
    topic: events
    compression: zstd
    max_pending: %d
    spool: {dir: %s, fsync: always}
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, sp, strings.Join(c.ListenAddrs(), ", "), *pending, filepath.Join(dir, fmt.Sprintf("spool%d", r)), hp), 0o600)
		rate, err = relayRun(rc, sp, hp, "kafka")
		if err != nil {
			return err
		}
		rel = append(rel, rate)
		fmt.Printf("  run %d: raw franz-go %.0f rec/s, transactional %.0f rec/s, relay %.0f ev/s\n", r+1, raw[r], txn[r], rel[r])
	}
	b, rb := best(rel), best(raw)
	defer fmt.Printf("%-62s %12s %12.0f %6.0f%%  (exactly once to read_committed consumers, not shipped)\n", "raw franz-go, transactional, a commit per window", "", best(txn), 100*best(txn)/rb)
	fmt.Printf("%-62s %12s %12s %7s\n", "kafka (200 B, kfake: 3 brokers in memory, acks=all, zstd)", "relay ev/s", "raw rec/s", "ratio")
	fmt.Printf("%-62s %12.0f %12.0f %6.0f%%  (best of each side)\n", "syslog TCP -> relay -> spool (fsync always) -> kafka", b, rb, 100*b/rb)
	per, med := ratios(rel, raw)
	fmt.Printf("%-62s %12s %12s %6.0f%%  (goal >= 70%%; runs: %s)\n", "  median of the side-by-side runs", "", "", 100*med, per)
	return nil
}

func rawKafka(brokers []string) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("raw"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.MaxBufferedRecords(2**pending), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var failed atomic.Int64
	payloadsOnce()
	start := time.Now()
	for i := 0; i < *n; i++ {
		cl.Produce(context.Background(), &kgo.Record{Key: []byte("click"), Value: payloads[i]}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		return 0, err
	}
	if failed.Load() > 0 {
		return 0, fmt.Errorf("raw producer: %d records failed", failed.Load())
	}
	return float64(*n) / time.Since(start).Seconds(), nil
}

func rawKafkaTxn(brokers []string, run int) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("raw"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.MaxBufferedRecords(2**pending), kgo.ProducerLinger(5*time.Millisecond),
		kgo.TransactionalID(fmt.Sprintf("bench-%d-%d", os.Getpid(), run)))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx := context.Background()
	var failed atomic.Int64
	start := time.Now()
	for i := 0; i < *n; i += *pending {
		if err := cl.BeginTransaction(); err != nil {
			return 0, err
		}
		for j := i; j < min(i+*pending, *n); j++ {
			cl.Produce(ctx, &kgo.Record{Key: []byte("click"), Value: payloads[j]}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return 0, err
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return 0, err
		}
	}
	if failed.Load() > 0 {
		return 0, fmt.Errorf("transactional producer: %d records failed", failed.Load())
	}
	return float64(*n) / time.Since(start).Seconds(), nil
}
