// Command link is bench/link.sh's driver: the relay link next to the plain
// relay-to-relay ZeroMQ path, in one run.
//
//	plain:    syslog TCP → relay A (PUSH) → relay B (PULL input → PUSH) → libzmq PULL
//	link:     syslog TCP → relay A (link output: TLS, zstd, acks, fsync'd spool)
//	          → relay B (link input: TLS, fsync'd marks → PUSH) → libzmq PULL
//	link+rtt: the same through a proxy that delays each direction by RTT/2
//	link-nofsync: the link with relay A's spool not fsync'd (the disk's share)
//	link-none: the link with compression: none (the compressor's share)
//
// Beside them it measures the floor the link's compression puts under
// relay A: zstd alone, at the link's settings, on the same events in the
// link's batches, with as many goroutines as the machine has cores.
//
// Each case sends N realistic RFC 5424 events (about 430 bytes, structured
// data) on one TCP connection and times them at the consumer, which checks
// every sequence number. Prints events/s, the ratio to the plain path (and
// link+rtt to link), loss, each relay's CPU per event, and the link's
// compression.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

func main() {
	relayBin := flag.String("relay", "bin/relay", "relay binary")
	cpull := flag.String("cpull", "", "the libzmq C consumer (bench/relay/ref/pull.c, built)")
	n := flag.Int("n", 1_000_000, "events per run")
	count := flag.Int("count", 3, "runs per case; the best is shown")
	rtt := flag.Duration("rtt", 100*time.Millisecond, "round trip added by the proxy in the link+rtt case")
	rxSpool := flag.Bool("rx-spool", true, "link cases: relay B's PUSH output is spooled (fsync always), so both ends fsync")
	compression := flag.String("compression", "zstd", "link compression: zstd, s2 or none")
	only := flag.String("cases", "", "comma-separated cases to run (default: all)")
	profile := flag.String("profile", "", "write CPU profiles of relays A and B of each case's first run to DIR/CASE.{A,B}.0.pprof (the relay binary must be built with -tags tapprofile)")
	flag.Parse()
	b := &bench{relay: *relayBin, cpull: *cpull, rxSpool: *rxSpool, compression: *compression, profile: *profile}
	if *only != "" {
		b.cases = strings.Split(*only, ",")
	}
	if err := b.run(*n, *count, *rtt); err != nil {
		fmt.Fprintln(os.Stderr, "bench/link:", err)
		os.Exit(1)
	}
}

type bench struct {
	relay, cpull string
	rxSpool      bool
	compression  string
	certs        string
	profile      string
	profiled     map[string]bool
	cases        []string
}

type result struct {
	rate        float64
	count, uniq int
	cpuA, cpuB  float64 // CPU seconds
	raw, wire   float64 // link bytes before and after compression
	batches     float64 // link batches made
}

func (b *bench) run(n, count int, rtt time.Duration) error {
	dir, err := os.MkdirTemp("", "link-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.certs = dir
	if err := writeCerts(dir); err != nil {
		return err
	}
	fmt.Printf("load average at start: %s\n", loadAvg())
	fmt.Printf("%d RFC 5424 events of ~%d bytes with structured data, one TCP connection into relay A; best of %d\n", n, len(line(0)), count)
	fmt.Printf("link: mutual TLS, compression %s, relay A's spool fsync always, relay B's marks fsync'd before each ack", b.compression)
	if b.rxSpool {
		fmt.Printf(", relay B's PUSH output spooled (fsync always; plain: not)")
	}
	fmt.Printf("\n\n%-13s %12s %10s %10s %8s %12s %12s %8s %9s\n", "case", "events/s", "ratio", "delivered", "lost", "A ns/event", "B ns/event", "wire B/ev", "ev/batch")
	// link-nofsync is the floor of this machine's disk: the same link with
	// relay A's spool not fsync'd, to tell the disk's share from the link's.
	cases := []string{"plain", "link", "link+rtt", "link-nofsync", "link-none"}
	if b.cases != nil {
		cases = b.cases
	}
	best := map[string]result{}
	for i := 0; i < count; i++ {
		for _, c := range cases {
			r, err := b.once(c, n, rtt)
			if err != nil {
				return fmt.Errorf("%s: %w", c, err)
			}
			if r.rate > best[c].rate {
				best[c] = r
			}
		}
	}
	for _, c := range cases {
		r := best[c]
		pct := func(of string) string {
			if best[of].rate == 0 {
				return "" // that case was not run
			}
			return fmt.Sprintf("%.0f%% %s", 100*r.rate/best[of].rate, of)
		}
		ratio := ""
		switch c {
		case "link", "link-nofsync", "link-none":
			ratio = pct("plain")
		case "link+rtt":
			ratio = pct("link")
		}
		wire := "-"
		if r.wire > 0 {
			wire = fmt.Sprintf("%.0f", r.wire/float64(n))
		}
		perBatch := "-"
		if r.batches > 0 {
			perBatch = fmt.Sprintf("%.0f", float64(n)/r.batches)
		}
		fmt.Printf("%-13s %12.0f %10s %10d %8d %12.0f %12.0f %8s %9s\n", c, r.rate, ratio, r.count, n-r.uniq, r.cpuA*1e9/float64(n), r.cpuB*1e9/float64(n), wire, perBatch)
	}
	if l := best["link"]; l.wire > 0 {
		fmt.Printf("\nlink compression: %.2f:1 (%.0f bytes per event before, %.0f after)\n", l.raw/l.wire, l.raw/float64(n), l.wire/float64(n))
	}
	if b.compression == "zstd" {
		f := zstdFloor(2 * time.Second)
		fmt.Printf("floor: zstd alone at the link's level on these events (%d-event batches), %d goroutines on %d cores: %.0f events/s, %.0f CPU-ns/event (at most %.0f events/s per core), %.2f:1\n",
			floorBatch, f.goroutines, runtime.NumCPU(), f.rate, f.cpuNs, 1e9/f.cpuNs, f.ratio)
		if l, nz := best["link"], best["link-none"]; l.rate > 0 && nz.rate > 0 {
			fmt.Printf("relay A's CPU per event: link %.0f ns, link-none %.0f ns: compression's share %.0f ns; zstd alone %.0f ns\n",
				l.cpuA*1e9/float64(n), nz.cpuA*1e9/float64(n), (l.cpuA-nz.cpuA)*1e9/float64(n), f.cpuNs)
		}
	}
	cores := float64(runtime.NumCPU())
	perEv := func(r result) (a, ab float64) {
		return r.cpuA * 1e9 / float64(n), (r.cpuA + r.cpuB) * 1e9 / float64(n)
	}
	if p, l := best["plain"], best["link"]; p.rate > 0 && l.rate > 0 {
		_, pab := perEv(p)
		la, lab := perEv(l)
		fmt.Printf("CPU bounds on these %.0f cores from the CPU per event measured: plain (A+B) %.0f events/s, link (A+B) %.0f events/s; link with relay A alone on every core %.0f events/s (1M events/s needs relay A at <= %.0f ns/event)\n",
			cores, cores*1e9/pab, cores*1e9/lab, cores*1e9/la, cores*1e3)
	}
	fmt.Printf("goals: link >= 1M events/s and >= 60%% of plain; link+rtt (%v) >= 50%% of link\n", rtt)
	fmt.Printf("load average at end: %s\n", loadAvg())
	return nil
}

// once runs one case.
func (b *bench) once(c string, n int, rtt time.Duration) (result, error) {
	dir, err := os.MkdirTemp("", "link-bench-run")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	cons, err := startConsumer(b.cpull, n)
	if err != nil {
		return result{}, err
	}
	defer cons.stop()
	pB, _ := freePort()
	pA, _ := freePort()
	hA, _ := freePort()
	hB, _ := freePort()
	var confA, confB string
	target := fmt.Sprintf("127.0.0.1:%d", pB)
	fsync := "always"
	if c == "link-nofsync" {
		fsync = "never"
	}
	comp := b.compression
	if c == "link-none" {
		comp = "none"
	}
	if c == "link+rtt" {
		px, err := testpeer.NewProxy(target)
		if err != nil {
			return result{}, err
		}
		defer px.Close()
		px.Delay(rtt / 2)
		target = px.Addr()
	}
	outB := fmt.Sprintf(`
  - name: out
    type: zmq
    socket: push
    connect: [%s]
    hwm: 100000`, cons.endpoint)
	if b.rxSpool && c != "plain" {
		outB += fmt.Sprintf("\n    spool: {dir: %s/spoolB, fsync: always}", dir)
	}
	switch c {
	case "plain":
		confB = fmt.Sprintf(`inputs:
  - name: in
    type: zmq
    socket: pull
    bind: [tcp://127.0.0.1:%d]
    hwm: 100000
outputs:%s
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, pB, outB, hB)
		confA = fmt.Sprintf(`inputs:
  - name: in
    type: syslog
    listen: [tcp://127.0.0.1:%d]
outputs:
  - name: out
    type: zmq
    socket: push
    connect: [tcp://127.0.0.1:%d]
    hwm: 100000
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, pA, pB, hA)
	default:
		confB = fmt.Sprintf(`inputs:
  - name: in
    type: link
    bind: [tcp://127.0.0.1:%d]
    state_dir: %s/state
    tls: {cert: %s/dc2.pem, key: %s/dc2.key, client_ca: %s/ca.pem}
outputs:%s
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, pB, dir, b.certs, b.certs, b.certs, outB, hB)
		confA = fmt.Sprintf(`inputs:
  - name: in
    type: syslog
    listen: [tcp://127.0.0.1:%d]
outputs:
  - name: out
    type: link
    connect: [tcp://%s]
    spool: {dir: %s/spoolA, fsync: %s, max_bytes: 4GiB}
    tls: {ca: %s/ca.pem, cert: %s/dc1.pem, key: %s/dc1.key, server_name: relay.dc2}
    compression: %s
http: {listen: "127.0.0.1:%d"}
log: {level: warn}
`, pA, target, dir, fsync, b.certs, b.certs, b.certs, comp, hA)
	}
	prof := b.profile != "" && !b.profiled[c]
	if prof {
		if b.profiled == nil {
			b.profiled = map[string]bool{}
		}
		b.profiled[c] = true
	}
	relB, err := b.start(dir, "B", confB, hB, prof, c)
	if err != nil {
		return result{}, err
	}
	defer stopProc(relB)
	relA, err := b.start(dir, "A", confA, hA, prof, c)
	if err != nil {
		return result{}, err
	}
	defer stopProc(relA)
	if prof {
		// tapprofile: SIGUSR1 starts a CPU profile, SIGUSR2 writes it.
		relA.Process.Signal(syscall.SIGUSR1)
		relB.Process.Signal(syscall.SIGUSR1)
		defer func() {
			relA.Process.Signal(syscall.SIGUSR2)
			relB.Process.Signal(syscall.SIGUSR2)
			time.Sleep(500 * time.Millisecond)
		}()
	}
	cpuA0, cpuB0 := cpuSeconds(relA.Process.Pid), cpuSeconds(relB.Process.Pid)
	conn, err := dialRetry(fmt.Sprintf("127.0.0.1:%d", pA), 10*time.Second)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := send(conn, n); err != nil {
		return result{}, err
	}
	conn.Close()
	d, err := cons.wait(5 * time.Minute)
	if err != nil {
		return result{}, err
	}
	r := result{count: d.count, uniq: d.unique, cpuA: cpuSeconds(relA.Process.Pid) - cpuA0, cpuB: cpuSeconds(relB.Process.Pid) - cpuB0}
	if secs := float64(d.last-start.UnixNano()) / 1e9; secs > 0 {
		r.rate = float64(d.count) / secs
	}
	if c != "plain" {
		m := scrape(hA)
		r.raw, r.wire = m[`relay_link_bytes_total{output="out",stage="raw"}`], m[`relay_link_bytes_total{output="out",stage="wire"}`]
		r.batches = m[`relay_link_batches_total{output="out"}`]
	}
	return r, nil
}

func (b *bench) start(dir, name, conf string, hport int, prof bool, c string) (*exec.Cmd, error) {
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(b.relay, "-c", file)
	if prof {
		cmd.Env = append(os.Environ(), "TAP_CPUPROFILE="+filepath.Join(b.profile, c+"."+name))
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", hport))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, nil
			}
		}
		if time.Now().After(deadline) {
			stopProc(cmd)
			return nil, fmt.Errorf("relay %s not healthy within 20s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape reads a relay's /metrics into name{labels} → value.
func scrape(port int) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			m[l[:i]] = v
		}
	}
	return m
}

// --- load ---

var pool = func() [][]byte {
	// 65,536 distinct lines (~20 MB), more than the largest batch holds
	// (max_batch 4 MiB, ~14,000 events): with fewer, large batches saw
	// repeats and compressed better and cheaper than real traffic would.
	p := make([][]byte, 1<<16)
	for i := range p {
		p[i] = []byte(line(uint64(i)))
	}
	return p
}()

// line is a realistic event with a 10-digit seq placeholder at the end.
func line(seed uint64) string {
	r := mrand.New(mrand.NewPCG(seed, 3))
	apps := []string{"impression", "impression", "impression", "click", "conversion"}
	app := apps[r.IntN(len(apps))]
	return fmt.Sprintf(`<134>1 2026-12-07T08:00:%02d.%06dZ web%03d.fra2.adserve.example.net %s %d ID%d [ad@32473 user="%016x" campaign="%d" ad="%d" placement="%d" price="%.4f" ip="%d.%d.%d.%d"] GET /v2/%s?cid=%d&aid=%d&u=%016x HTTP/1.1 200 %d %dms seq:0000000000`,
		r.IntN(60), r.IntN(1000000), r.IntN(200), app, 1000+r.IntN(30000), r.IntN(50), r.Uint64(), 1000+r.IntN(400), 50000+r.IntN(20000),
		r.IntN(5000), r.Float64()*3, 10+r.IntN(200), r.IntN(256), r.IntN(256), 1+r.IntN(254), app, 1000+r.IntN(400), 50000+r.IntN(20000), r.Uint64(), 200+r.IntN(3000), r.IntN(80))
}

func send(c net.Conn, n int) error {
	w := bufio.NewWriterSize(c, 256<<10)
	var num [10]byte
	for i := 0; i < n; i++ {
		m := pool[i%len(pool)]
		w.WriteString(strconv.Itoa(len(m)))
		w.WriteByte(' ')
		w.Write(m[:len(m)-10])
		v := i
		for j := 9; j >= 0; j-- {
			num[j] = byte('0' + v%10)
			v /= 10
		}
		w.Write(num[:])
	}
	return w.Flush()
}

// --- the compression floor ---

// floorBatch is about the batch relay A makes at a short round trip (half
// its 1 MiB starting window, ~1,700 of these events).
const floorBatch = 2048

type floor struct {
	goroutines  int
	rate, cpuNs float64
	ratio       float64
}

// zstdFloor compresses the bench's events, encoded in link batches as
// relay A would send them, with the link's zstd settings, on one goroutine
// per core for d: the most events per second zstd alone lets through, and
// its CPU per event.
func zstdFloor(d time.Duration) floor {
	recs := make([]spool.Record, floorBatch)
	now := time.Now()
	var raw int
	for i := range recs {
		l := []byte(string(pool[i%len(pool)]))
		copy(l[len(l)-10:], fmt.Sprintf("%010d", i))
		app := strings.Fields(string(l))[3]
		recs[i] = spool.Record{Seq: uint64(i + 1), Raw: l, Stream: app, Input: "in", Peer: "127.0.0.1:40000", Received: now.Add(time.Duration(i) * time.Microsecond)}
		raw += len(l)
	}
	// The batch encoded once: what is timed is the compression alone.
	enc := link.AppendPayload(nil, recs, link.CompressNone)
	out := link.Compress(nil, enc, link.CompressZstd)
	g := runtime.NumCPU()
	var events atomic.Int64
	cpu0, t0 := processCPU(), time.Now()
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for time.Since(t0) < d {
				buf = link.Compress(buf[:0], enc, link.CompressZstd)
				events.Add(floorBatch)
			}
		}()
	}
	wg.Wait()
	el, cpu := time.Since(t0), processCPU()-cpu0
	n := float64(events.Load())
	return floor{goroutines: g, rate: n / el.Seconds(), cpuNs: cpu * 1e9 / n, ratio: float64(raw) / float64(len(out))}
}

func processCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// --- consumer (bench/relay/ref/pull.c) ---

type consumer struct {
	endpoint string
	cmd      *exec.Cmd
	done     chan doneLine
}

type doneLine struct {
	count, unique int
	last          int64
	err           error
}

func startConsumer(bin string, n int) (*consumer, error) {
	if bin == "" {
		return nil, errors.New("-cpull is not set")
	}
	cmd := exec.Command(bin, "tcp://127.0.0.1:0", strconv.Itoa(n), "count")
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
		return nil, errors.New("consumer did not start")
	}
	c := &consumer{endpoint: strings.TrimPrefix(sc.Text(), "READY "), cmd: cmd, done: make(chan doneLine, 1)}
	go func() {
		d := doneLine{err: errors.New("consumer ended without DONE")}
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 5 && f[0] == "DONE" {
				d.count, _ = strconv.Atoi(f[1])
				d.last, _ = strconv.ParseInt(f[3], 10, 64)
				d.unique, _ = strconv.Atoi(f[4])
				d.err = nil
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
	case <-time.After(15 * time.Second):
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

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// writeCerts writes a CA, relay B's server certificate (relay.dc2) and
// relay A's client certificate.
func writeCerts(dir string) error {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, b []byte) error {
		return os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600)
	}
	if err := write("ca.pem", "CERTIFICATE", caDER); err != nil {
		return err
	}
	for i, c := range []struct {
		name  string
		usage x509.ExtKeyUsage
		dns   []string
	}{{"dc2", x509.ExtKeyUsageServerAuth, []string{"relay.dc2"}}, {"dc1", x509.ExtKeyUsageClientAuth, nil}} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		t := &x509.Certificate{SerialNumber: big.NewInt(int64(10 + i)), Subject: pkix.Name{CommonName: c.name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{c.usage}, DNSNames: c.dns}
		der, err := x509.CreateCertificate(rand.Reader, t, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		if err := write(c.name+".pem", "CERTIFICATE", der); err != nil {
			return err
		}
		if err := write(c.name+".key", "EC PRIVATE KEY", kb); err != nil {
			return err
		}
	}
	return nil
}
