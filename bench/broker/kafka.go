package main

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

var (
	kfakeServe   = flag.String("kfake-serve", "", "internal: be the kfake child process, serving on these comma-separated ports")
	rawLinger    = flag.Duration("raw-linger", 5*time.Millisecond, "the raw producer's linger")
	relayPending = flag.Int("relay-pending", 0, "the relay's max_pending (default: -pending)")
	kfakeWhere   = flag.String("kfake", "process", "where kfake runs: process (a child process of its own, a peer of both the relay and the raw producer) or inproc (in the bench's process, sharing it with the raw producer but not with the relay: the old, lopsided setup)")
)

// kfakeCluster is the three-broker kfake cluster both sides produce to.
type kfakeCluster struct {
	addrs []string
	pid   int // the process kfake runs in (the bench's own when inproc)
	cmd   *exec.Cmd
	stdin io.Closer
	c     *kfake.Cluster
}

func kfakeOpts(ports []int) []kfake.Opt {
	return []kfake.Opt{kfake.NumBrokers(3), kfake.Ports(ports...), kfake.SeedTopics(3, "raw", "events")}
}

// startKfake starts the cluster. In its own process (the default) the
// raw producer, like the relay, shares neither a Go runtime (scheduler,
// GC) nor a process's CPU time with it: in the bench's process it did,
// which made the raw side's goroutine hand-offs to the brokers cheaper
// than the relay's and its GC pressure shared, a comparison unfair in one
// direction.
//
// Each side of each run gets a fresh cluster (name is its profile's
// name): kfake keeps every record in memory, and a cluster that grew over
// the runs cost a later side up to 100 times the CPU per record of the
// first.
func startKfake(name string) (*kfakeCluster, error) {
	ports := []int{freePort(), freePort(), freePort()}
	if *kfakeWhere == "inproc" {
		c, err := kfake.NewCluster(kfakeOpts(ports)...)
		if err != nil {
			return nil, err
		}
		return &kfakeCluster{addrs: c.ListenAddrs(), pid: os.Getpid(), c: c}, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var ps []string
	for _, p := range ports {
		ps = append(ps, strconv.Itoa(p))
	}
	cmd := exec.Command(self, "-kfake-serve", strings.Join(ps, ","))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if *profile != "" {
		cmd.Env = append(os.Environ(), "KFAKE_CPUPROFILE="+filepath.Join(*profile, "kfake-"+name))
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("kfake process: %w", err)
	}
	return &kfakeCluster{addrs: strings.Split(strings.TrimSpace(line), ","), pid: cmd.Process.Pid, cmd: cmd, stdin: in}, nil
}

func (k *kfakeCluster) close() {
	if k.c != nil {
		k.c.Close()
		return
	}
	k.stdin.Close()
	k.cmd.Wait()
}

// profileStart starts kfake's CPU profile (its own process only).
func (k *kfakeCluster) profileStart() {
	if k.cmd != nil {
		k.cmd.Process.Signal(syscall.SIGUSR1)
	}
}

func (k *kfakeCluster) profileStop() {
	if k.cmd != nil {
		k.cmd.Process.Signal(syscall.SIGUSR2)
		time.Sleep(300 * time.Millisecond)
	}
}

// serveKfake is the kfake child process: it serves the cluster on ports,
// writes the listen addresses on a line, and ends when stdin closes.
// KFAKE_CPUPROFILE=PREFIX: SIGUSR1 starts a CPU profile, SIGUSR2 writes
// PREFIX.N.pprof.
func serveKfake(ports string) {
	var ps []int
	for _, p := range strings.Split(ports, ",") {
		v, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kfake-serve:", err)
			os.Exit(2)
		}
		ps = append(ps, v)
	}
	c, err := kfake.NewCluster(kfakeOpts(ps)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake-serve:", err)
		os.Exit(1)
	}
	defer c.Close()
	if prefix := os.Getenv("KFAKE_CPUPROFILE"); prefix != "" {
		go profileOnSignals(prefix)
	}
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	io.Copy(io.Discard, os.Stdin)
}

func profileOnSignals(prefix string) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	var f *os.File
	n := 0
	for s := range sigs {
		switch {
		case s == syscall.SIGUSR1 && f == nil:
			var err error
			if f, err = os.Create(fmt.Sprintf("%s.%d.pprof", prefix, n)); err != nil {
				fmt.Fprintln(os.Stderr, "kfake profile:", err)
				continue
			}
			n++
			pprof.StartCPUProfile(f)
		case s == syscall.SIGUSR2 && f != nil:
			pprof.StopCPUProfile()
			f.Close()
			f = nil
		}
	}
}

// kafkaRun is one side of a run: its rate and the CPU per record of the
// producing process and of kfake.
type kafkaRun struct {
	rate       float64
	prodUS     float64 // µs of CPU per record: the relay, or the raw producer's process
	kfakeUS    float64 // µs of kfake's CPU per record
	kfakeInOwn bool
}

func benchKafka() error {
	dir, err := os.MkdirTemp("", "bench-kafka")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			return err
		}
	}
	payloadsOnce()
	per := func(cpu float64) float64 { return 1e6 * cpu / float64(*n) }
	var raw, hdr, rel, txn, ceil []float64
	var rawR, hdrR, relR, ceilR []kafkaRun
	for r := 0; r < *runs; r++ {
		prof := *profile != "" && r == 0
		// side runs one raw producer on a fresh kfake; f calls started
		// when its timing starts (the records are built before).
		side := func(name string, f func(addrs []string, started func()) (float64, error)) (kafkaRun, error) {
			kc, err := startKfake(name)
			if err != nil {
				return kafkaRun{}, err
			}
			defer kc.close()
			if prof {
				pf, err := os.Create(filepath.Join(*profile, name+".pprof"))
				if err != nil {
					return kafkaRun{}, err
				}
				defer pf.Close()
				pprof.StartCPUProfile(pf)
				defer pprof.StopCPUProfile()
				kc.profileStart()
				defer kc.profileStop()
			}
			var self0, k0 float64
			rate, err := f(kc.addrs, func() { self0, k0 = cpuSeconds(os.Getpid()), cpuSeconds(kc.pid) })
			self, kf := cpuSeconds(os.Getpid())-self0, cpuSeconds(kc.pid)-k0
			if kc.cmd == nil {
				kf = 0 // inproc: kfake's CPU is in the producer's
			}
			return kafkaRun{rate: rate, prodUS: per(self), kfakeUS: per(kf), kfakeInOwn: kc.cmd != nil}, err
		}
		res, err := side("raw", func(addrs []string, started func()) (float64, error) { return rawKafka(addrs, false, started) })
		if err != nil {
			return err
		}
		raw, rawR = append(raw, res.rate), append(rawR, res)
		// The same producer with the relay's records: its key and five
		// headers (id, stream, input, peer, received time).
		res, err = side("raw-headers", func(addrs []string, started func()) (float64, error) { return rawKafka(addrs, true, started) })
		if err != nil {
			return err
		}
		hdr, hdrR = append(hdr, res.rate), append(hdrR, res)
		// What exactly-once by transactions would cost: the same producer,
		// transactional, one commit per window of records (the spool
		// position would be committed with them).
		res, err = side("transactional", func(addrs []string, started func()) (float64, error) { return rawKafkaTxn(addrs, r, started) })
		if err != nil {
			return err
		}
		txn = append(txn, res.rate)
		rr, err := relayKafka(dir, r, prof, per)
		if err != nil {
			return err
		}
		// The ceiling of the relay's own path: the same input and spool
		// (fsync always) into a PUSH output and a PULL in this process,
		// no Kafka. The Kafka output cannot beat it.
		pr, err := pushRun(dir, r, prof)
		if err != nil {
			return err
		}
		ceil, ceilR = append(ceil, pr.rate), append(ceilR, kafkaRun{rate: pr.rate, prodUS: per(pr.cpu)})
		rel, relR = append(rel, rr.rate), append(relR, rr)
		fmt.Printf("  run %d: raw franz-go %.0f rec/s (%.2f µs CPU/rec, kfake %.2f), with the relay's headers %.0f rec/s (%.2f, kfake %.2f), transactional %.0f rec/s, relay to PUSH %.0f ev/s (%.2f µs CPU/ev), relay %.0f ev/s (relay %.2f µs CPU/ev, kfake %.2f): %.0f%%\n",
			r+1, raw[r], rawR[r].prodUS, rawR[r].kfakeUS, hdr[r], hdrR[r].prodUS, hdrR[r].kfakeUS, txn[r], ceil[r], ceilR[r].prodUS, rel[r], relR[r].prodUS, relR[r].kfakeUS, 100*rel[r]/raw[r])
	}
	where := "kfake in a process of its own, fresh for each side"
	if *kfakeWhere == "inproc" {
		where = "kfake in the raw producer's process"
	}
	b, rb := best(rel), best(raw)
	defer fmt.Printf("%-62s %12s %12.0f %6.0f%%  (exactly once to read_committed consumers, not shipped)\n", "raw franz-go, transactional, a commit per window", "", best(txn), 100*best(txn)/rb)
	fmt.Printf("%-62s %12s %12s %7s\n", "kafka (200 B, kfake: 3 brokers in memory, acks=all, zstd)", "relay ev/s", "raw rec/s", "ratio")
	fmt.Printf("%-62s %12.0f %12.0f %6.0f%%  (best of each side; %s)\n", "syslog TCP -> relay -> spool (fsync always) -> kafka", b, rb, 100*b/rb, where)
	pr, med := ratios(rel, raw)
	fmt.Printf("%-62s %12s %12s %6.0f%%  (goal >= 70%%; runs: %s)\n", "  median of the side-by-side runs", "", "", 100*med, pr)
	hr, hmed := ratios(rel, hdr)
	fmt.Printf("%-62s %12s %12.0f %6.0f%%  (median; runs: %s)\n", "  against raw franz-go producing the relay's key and 5 headers", "", best(hdr), 100*hmed, hr)
	cr, cmed := ratios(ceil, raw)
	fmt.Printf("%-62s %12.0f %12s %6.0f%%  (median; runs: %s)\n", "  ceiling: the same relay path into PUSH, no Kafka, against raw", best(ceil), "", 100*cmed, cr)
	kr, kmed := ratios(rel, ceil)
	fmt.Printf("%-62s %12s %12s %6.0f%%  (median; runs: %s)\n", "  relay into kafka against that ceiling", "", "", 100*kmed, kr)
	fmt.Printf("%-62s %12s %12s %7s\n", "  CPU per record, median (µs)", "producer", "kfake", "")
	for _, s := range []struct {
		name string
		rs   []kafkaRun
	}{{"raw franz-go", rawR}, {"raw franz-go, the relay's headers", hdrR}, {"relay into PUSH (TCP in, spool, fsync, send)", ceilR}, {"relay into kafka (TCP in, spool, fsync, produce)", relR}} {
		var p, k []float64
		for _, x := range s.rs {
			p, k = append(p, x.prodUS), append(k, x.kfakeUS)
		}
		fmt.Printf("    %-58s %12.2f %12.2f\n", s.name, median(p), median(k))
	}
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := range s { // insertion sort: a handful of runs
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// rawKafka produces n records with franz-go's idempotent producer, acks
// all, zstd and the relay's window, waiting for every acknowledgement.
// headers: each record carries the relay's key and five headers (an id
// per record, the stream, input, peer and received time), as the relay's.
func rawKafka(brokers []string, headers bool, started func()) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("raw"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.MaxBufferedRecords(*pending), kgo.ProducerLinger(*rawLinger))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var failed atomic.Int64
	recs := make([]kgo.Record, *n)
	recv := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	for i := range recs {
		recs[i] = kgo.Record{Key: []byte("click"), Value: payloads[i]}
		if headers {
			recs[i].Headers = []kgo.RecordHeader{{Key: "relay-id", Value: fmt.Appendf(nil, "0123456789abcdef0123456789abcdef-%d", i)},
				{Key: "relay-stream", Value: []byte("click")}, {Key: "relay-input", Value: []byte("in")},
				{Key: "relay-peer", Value: []byte("127.0.0.1:40000")}, {Key: "relay-received", Value: recv}}
		}
	}
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	started()
	start := time.Now()
	for i := range recs {
		cl.Produce(context.Background(), &recs[i], promise)
	}
	if err := cl.Flush(context.Background()); err != nil {
		return 0, err
	}
	if failed.Load() > 0 {
		return 0, fmt.Errorf("raw producer: %d records failed", failed.Load())
	}
	return float64(*n) / time.Since(start).Seconds(), nil
}

func rawKafkaTxn(brokers []string, run int, started func()) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("raw"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.MaxBufferedRecords(*pending), kgo.ProducerLinger(5*time.Millisecond),
		kgo.TransactionalID(fmt.Sprintf("bench-%d-%d", os.Getpid(), run)))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx := context.Background()
	var failed atomic.Int64
	started()
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

// pushRun is the relay's path without Kafka: syslog TCP into a spooled
// (fsync always) PUSH output that connects to a PULL in this process.
// prof: the relay's CPU profile into -profile as push.N.pprof.
func pushRun(dir string, r int, prof bool) (runResult, error) {
	pull := zmq.NewPull(zmq.Options{RecvHWM: 16384})
	defer pull.Close()
	pp := freePort()
	if err := pull.Listen(fmt.Sprintf("tcp://127.0.0.1:%d", pp)); err != nil {
		return runResult{}, err
	}
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		buf := make([]zmq.Msg, 1024)
		for {
			k, err := pull.RecvBatch(ctx, buf)
			if err != nil {
				return
			}
			got.Add(int64(k))
		}
	}()
	sp, hp := freePort(), freePort()
	rc := filepath.Join(dir, fmt.Sprintf("push%d.yaml", r))
	os.WriteFile(rc, fmt.Appendf(nil, `inputs: [{name: in, type: syslog, listen: "tcp://127.0.0.1:%d"}]
outputs:
  - name: push
    type: zmq
    socket: push
    connect: tcp://127.0.0.1:%d
    format: raw
    spool: {dir: %s, fsync: always}
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, sp, pp, filepath.Join(dir, fmt.Sprintf("pushspool%d", r)), hp), 0o600)
	o := runOpts{delivered: func() float64 { return float64(got.Load()) }}
	if prof {
		o.profile = filepath.Join(*profile, "push")
	}
	return relayRun(rc, sp, hp, "push", o)
}

// relayKafka is the relay's side of run r: syslog TCP into the spooled
// (fsync always) kafka output, into a fresh kfake.
func relayKafka(dir string, r int, prof bool, per func(float64) float64) (kafkaRun, error) {
	kc, err := startKfake("relay")
	if err != nil {
		return kafkaRun{}, err
	}
	defer kc.close()
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
`, sp, strings.Join(kc.addrs, ", "), cmp.Or(*relayPending, *pending), filepath.Join(dir, fmt.Sprintf("spool%d", r)), hp), 0o600)
	var kf float64
	o := runOpts{around: func() func() {
		k0 := cpuSeconds(kc.pid)
		if prof {
			kc.profileStart()
		}
		return func() {
			kf = cpuSeconds(kc.pid) - k0
			if prof {
				kc.profileStop()
			}
		}
	}}
	if prof {
		o.profile = filepath.Join(*profile, "relay")
	}
	rr, err := relayRun(rc, sp, hp, "kafka", o)
	if err != nil {
		return kafkaRun{}, err
	}
	if kc.cmd == nil {
		kf = 0 // inproc: kfake's CPU is the bench's
	}
	return kafkaRun{rate: rr.rate, prodUS: per(rr.cpu), kfakeUS: per(kf), kfakeInOwn: kc.cmd != nil}, nil
}
