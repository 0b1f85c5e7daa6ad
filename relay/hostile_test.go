package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// The hostile-sender tests (issue #16): while a real rsyslogd forwards
// numbered events to the relay (omfwd, octet-counted, a LinkedList queue
// retrying forever), an attacker holds the relay's syslog input for
// RELAY_HOSTILE_SECONDS (default 10; 30–60 by hand) with one of:
// 3,000 idle connections, 300 slowloris connections, 1,000 half-open TLS
// handshakes, 500 connections from one address. The attackers come from
// 127.0.0.2 and up, rsyslog and the probes (to the attacked listener)
// from 127.0.0.1. Each test checks that every rsyslog event arrives
// exactly once, that a second rsyslogd started during the attack (and a
// new connection every 2 s) is served within the first-frame deadline
// (beyond what an event on an established connection takes meanwhile),
// that the relay's descriptors and RSS return to their baseline, and that
// the counters show the attack.
//
// The relay runs as a child process (its own descriptor limit; its fds and
// RSS read from /proc); the attackers run in the test process, whose soft
// descriptor limit Go raises to the hard limit at start.

// hostileDuration is how long each attack lasts.
func hostileDuration(t *testing.T) time.Duration {
	s := os.Getenv("RELAY_HOSTILE_SECONDS")
	if s == "" {
		return 10 * time.Second
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("RELAY_HOSTILE_SECONDS=%q: want a number of seconds", s)
	}
	return time.Duration(n) * time.Second
}

// The relay's deadlines in these tests: short, so that they act several
// times within a short attack.
const (
	hostileFirstFrame = 2 * time.Second
	hostileHandshake  = 2 * time.Second
	hostileFrame      = 3 * time.Second
	// hostileServed bounds how much longer a new sender's first event,
	// from its connect, takes to come out of the relay than an event sent
	// at the same moment on a connection the relay already serves: the
	// first-frame deadline, the longest an attacker's connection can hold
	// its place. What both take alike (the relay's output, the pyzmq
	// collector, this -race test process and, in CI, the rest of a busy
	// 2-core machine) is no part of the listener's promise, nor is what a
	// sender does before it connects (rsyslogd's gtls driver: 0.3-1.6 s
	// from its first event to its connect, attack or not). A probe once
	// took 2.45 s from connect to the collector under make test on the
	// shared machine; measured so, the listener's part stayed under
	// 0.4 s in every attack here.
	hostileServed = hostileFirstFrame
)

type hostileRig struct {
	t        *testing.T
	dir      string
	ports    ports // syslog: tcp://; a: the PUSH output; http
	tlsPort  int
	ca       string
	relay    *proc
	pull     *testpeer.Peer
	rsyslogs int
	// control is a connection from 127.0.0.1, served since before the
	// attack: each probe's event is sent on it too, at the same moment.
	control net.Conn
	// probeTLS: probes go to the TLS listener (the one attacked), with a
	// handshake; their time runs from the TCP connect.
	probeTLS bool

	// What the collector got, tallied by a poller as it arrives.
	mu    sync.Mutex
	seen  map[string]map[int]int       // app → seq → deliveries
	first map[string]map[int]time.Time // app → seq → first arrival
}

// track tallies the collector's messages as they arrive, until the test ends.
func (h *hostileRig) track() {
	h.seen, h.first = map[string]map[int]int{}, map[string]map[int]time.Time{}
	stop := make(chan struct{})
	done := make(chan struct{})
	h.t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		next := 0
		for {
			msgs := h.pull.Since(next)
			next += len(msgs)
			now := time.Now()
			h.mu.Lock()
			for _, m := range msgs {
				p := m[len(m)-1]
				f := strings.Fields(p)
				if len(f) < 4 {
					continue
				}
				app, seq := f[3], testpeer.SeqOf(p)
				if h.seen[app] == nil {
					h.seen[app], h.first[app] = map[int]int{}, map[int]time.Time{}
				}
				if h.seen[app][seq]++; h.seen[app][seq] == 1 {
					h.first[app][seq] = now
				}
			}
			h.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
}

// arrived returns when event seq of app first arrived (zero: not yet).
func (h *hostileRig) arrived(app string, seq int) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.first[app][seq]
}

// distinct is how many distinct events of app arrived.
func (h *hostileRig) distinct(app string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen[app])
}

// startHostileRig runs the relay (its input with extra keys, e.g.
// "idle_timeout: 1s") and the collector.
func startHostileRig(t *testing.T, extra string) *hostileRig {
	t.Helper()
	dir := t.TempDir()
	fp := testpeer.FreePorts(t, 4)
	h := &hostileRig{t: t, dir: dir, ports: ports{syslog: fp[0], a: fp[1], http: fp[2]}, tlsPort: fp[3]}
	var cert, key string
	h.ca, cert, key = writeHostilePKI(t, dir)
	conf := filepath.Join(dir, "relay.yaml")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: [tcp://127.0.0.1:%d, tls://127.0.0.1:%d]
    tls: {cert: %s, key: %s}
    first_frame_timeout: %v
    handshake_timeout: %v
    frame_timeout: %v
    # max_connections: 1024 and max_connections_per_source: 64, the defaults
    %s
stream: {from: app-name, default: unknown}
outputs:
  - name: out
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
    hwm: 100000
http:
  listen: 127.0.0.1:%d
log: {format: json}
`, h.ports.syslog, h.tlsPort, cert, key, hostileFirstFrame, hostileHandshake, hostileFrame, extra, h.ports.a, h.ports.http)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	h.relay = startRelay(t, conf, h.ports)
	h.pull = testpeer.StartPeer(t, "pull", fmt.Sprintf(">tcp://127.0.0.1:%d", h.ports.a))
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the collector connected"), func() bool {
		return metric(t, h.ports, `relay_output_peers{output="out"}`) == 1
	})
	h.track()
	return h
}

// writeHostilePKI writes a CA and a server certificate for 127.0.0.1 (ECDSA).
func writeHostilePKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "relay.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"relay.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("relay.pem", "CERTIFICATE", leafDER), write("relay.key", "EC PRIVATE KEY", keyDER)
}

// startRsyslog runs an rsyslogd whose imtcp input the test feeds and
// whose omfwd forwards to the relay (over TLS with the gtls driver when
// useTLS), with a LinkedList queue retrying forever.
func (h *hostileRig) startRsyslog(useTLS bool) *testpeer.Rsyslogd {
	return h.startRsyslogTo(useTLS, 0)
}

// startRsyslogTo is startRsyslog forwarding to port instead (0: the
// relay's).
func (h *hostileRig) startRsyslogTo(useTLS bool, to int) *testpeer.Rsyslogd {
	t := h.t
	t.Helper()
	h.rsyslogs++
	dir := filepath.Join(h.dir, fmt.Sprintf("rsyslog%d", h.rsyslogs))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, globals, driver := h.ports.syslog, "", ""
	if useTLS {
		port = h.tlsPort
		globals = fmt.Sprintf(` DefaultNetstreamDriverCAFile=%q`, h.ca)
		driver = `StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="anon"`
	}
	if to != 0 {
		port = to
	}
	portFile := filepath.Join(dir, "imtcp.port")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"%s)
module(load="imtcp")
input(type="imtcp" port="0" listenPortFileName=%q ruleset="fwd")
ruleset(name="fwd") {
  action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" TCP_Framing="octet-counted"
         template="RSYSLOG_SyslogProtocol23Format" %s
         queue.type="LinkedList" queue.size="500000"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
`, dir, globals, portFile, port, driver)
	return testpeer.StartRsyslogdConf(t, dir, conf, portFile)
}

// feeder writes numbered events from app into an rsyslogd's imtcp at
// about rate a second until stopped.
type feeder struct {
	app  string
	sent atomic.Int64
	stop chan struct{}
	done chan struct{}
	err  error
	per  int // events written at each tick

	mu    sync.Mutex
	wrote []time.Time // when each tick's events were written (flushed)
}

// writtenAt is when event seq was written into rsyslogd (zero: not yet).
func (f *feeder) writtenAt(seq int) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := seq / f.per; b < len(f.wrote) {
		return f.wrote[b]
	}
	return time.Time{}
}

// firstAfter is the first event written at or after t (-1: none yet).
func (f *feeder) firstAfter(t time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for b, at := range f.wrote {
		if !at.Before(t) {
			return b * f.per
		}
	}
	return -1
}

func feed(t *testing.T, rs *testpeer.Rsyslogd, app string, rate int) *feeder {
	t.Helper()
	c := rs.Dial(t)
	f := &feeder{app: app, stop: make(chan struct{}), done: make(chan struct{}), per: max(rate/100, 1)}
	go func() {
		defer close(f.done)
		defer c.Close()
		w := bufio.NewWriter(c)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		per := f.per
		for {
			n := int(f.sent.Load())
			for i := n; i < n+per; i++ {
				m := fmt.Sprintf("<14>1 2026-11-22T05:00:00Z hostile %s - - - %s", app, testpeer.Seq(i))
				fmt.Fprintf(w, "%d %s", len(m), m)
			}
			if f.err = w.Flush(); f.err != nil {
				return
			}
			f.mu.Lock()
			f.wrote = append(f.wrote, time.Now())
			f.mu.Unlock()
			f.sent.Add(int64(per))
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return f
}

func (f *feeder) end(t *testing.T) int {
	t.Helper()
	close(f.stop)
	<-f.done
	if f.err != nil {
		t.Fatalf("feeding %s into rsyslogd: %v", f.app, f.err)
	}
	return int(f.sent.Load())
}

// exactlyOnce checks that events 0..n-1 of app arrived once each.
func (h *hostileRig) exactlyOnce(app string, n int) {
	t := h.t
	t.Helper()
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d %s events, have %d", n, app, h.distinct(app))
	}, func() bool { return h.distinct(app) >= n })
	h.mu.Lock()
	defer h.mu.Unlock()
	got := h.seen[app]
	missing, dups := 0, 0
	for i := range n {
		switch c := got[i]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	if missing > 0 || dups > 0 || len(got) != n {
		t.Errorf("%s: %d events sent, %d missing, %d duplicates, %d distinct received", app, n, missing, dups, len(got))
	}
}

// closed is relay_input_connections_closed_total for reason.
func (h *hostileRig) closed(reason string) float64 {
	return metric(h.t, h.ports, fmt.Sprintf(`relay_input_connections_closed_total{input="syslog",reason=%q}`, reason))
}

// procUsage returns the relay's open descriptors and RSS in bytes.
func (h *hostileRig) procUsage() (fds int, rss int64) {
	pid := h.relay.cmd.Process.Pid
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		h.t.Fatalf("relay's fds: %v", err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		h.t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			rss = kb << 10
		}
	}
	return len(ents), rss
}

// syslogFrame writes event seq of app, octet-counted.
func syslogFrame(c net.Conn, app string, seq int) error {
	m := fmt.Sprintf("<14>1 2026-11-22T05:00:00Z hostile %s - - - %s", app, testpeer.Seq(seq))
	_, err := fmt.Fprintf(c, "%d %s", len(m), m)
	return err
}

// openControl opens the control connection and waits until its first
// event is through.
func (h *hostileRig) openControl() {
	t := h.t
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.ports.syslog), 10*time.Second)
	if err != nil {
		t.Fatalf("control connection: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	h.control = c
	if err := syslogFrame(c, "control", 0); err != nil {
		t.Fatalf("control connection: %v", err)
	}
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("the control connection's first event"), func() bool { return !h.arrived("control", 0).IsZero() })
}

// probe opens a new connection from 127.0.0.1, sends one event on it and
// the same moment one on the control connection, and returns how long
// the connect took and how long each event then took to come out of the
// relay (-1: it did not). The connect is the kernel's (and the busy test
// process's) doing; the relay's deadline runs from it.
func (h *hostileRig) probe(seq int) (connect, served, control time.Duration) {
	port := h.ports.syslog
	if h.probeTLS {
		port = h.tlsPort
	}
	start := time.Now()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		h.t.Errorf("probe %d: %v", seq, err)
		return 0, -1, -1
	}
	defer c.Close()
	connected := time.Now()
	connect, served, control = connected.Sub(start), -1, -1
	if h.probeTLS {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(h.ca)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			h.t.Fatalf("probe %d: the CA %s: %v", seq, h.ca, err)
		}
		tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err := tc.Handshake(); err != nil {
			h.t.Errorf("probe %d: TLS handshake: %v", seq, err)
			return
		}
		c = tc
	}
	if err := syslogFrame(c, "probe", seq); err != nil {
		h.t.Errorf("probe %d: %v", seq, err)
		return
	}
	if err := syslogFrame(h.control, "control", seq+1); err != nil {
		h.t.Errorf("control %d: %v", seq+1, err)
		return
	}
	for time.Since(start) < 20*time.Second && (served < 0 || control < 0) {
		if at := h.arrived("probe", seq); served < 0 && !at.IsZero() {
			served = at.Sub(connected)
		}
		if at := h.arrived("control", seq+1); control < 0 && !at.IsZero() {
			control = at.Sub(connected)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return
}

// connectStamp forwards connections to the relay's port and records
// when the first one arrived: the moment a sender connected, which
// rsyslogd does not report. The forwarding costs a copy in this process;
// the relay sees a new connection from 127.0.0.1 as it would rsyslogd's.
type connectStamp struct {
	ln    net.Listener
	mu    sync.Mutex
	first time.Time
}

func (h *hostileRig) stampConnects(port int) *connectStamp {
	t := h.t
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &connectStamp{ln: ln}
	var wg sync.WaitGroup
	var cmu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.first.IsZero() {
				s.first = time.Now()
			}
			s.mu.Unlock()
			r, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				c.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, c, r)
			cmu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(r, c)
			go pipe(c, r)
		}
	}()
	return s
}

// port is where senders connect to be stamped.
func (s *connectStamp) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// at is when the first connection arrived (zero: none yet).
func (s *connectStamp) at() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// listenOverflows is the kernel's count of connections dropped because a
// listen queue was full (TcpExt ListenOverflows).
func listenOverflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range names {
			if names[j] == "ListenOverflows" && j < len(vals) {
				n, _ := strconv.ParseInt(vals[j], 10, 64)
				return n
			}
		}
	}
	return -1
}

// attackers keeps n attacker connections going until ctx ends: each dials
// (from src(i)), runs behave until the relay closes it, waits a moment and
// dials again, as a persistent attacker would.
type attackers struct {
	open, dials, dialErrs atomic.Int64
	wg                    sync.WaitGroup
	mu                    sync.Mutex
	errs                  map[string]int // dial errors by kind
}

func (a *attackers) dialErr(err error) {
	a.dialErrs.Add(1)
	kind := err.Error()
	if i := strings.LastIndex(kind, ": "); i >= 0 {
		kind = kind[i+2:]
	}
	a.mu.Lock()
	a.errs[kind]++
	a.mu.Unlock()
}

func runAttackers(ctx context.Context, n int, dial func(i int) (net.Conn, error), behave func(ctx context.Context, c net.Conn, i int)) *attackers {
	a := &attackers{errs: map[string]int{}}
	for i := range n {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			// Spread the first dials over a second, like a real flood ramping up.
			if !sleepCtx(ctx, time.Duration(mrand.Int64N(int64(time.Second)))) {
				return
			}
			for ctx.Err() == nil {
				a.dials.Add(1)
				c, err := dial(i)
				if err == nil {
					a.open.Add(1)
					stop := context.AfterFunc(ctx, func() { c.Close() })
					behave(ctx, c, i)
					stop()
					c.Close()
					a.open.Add(-1)
				} else {
					a.dialErr(err)
				}
				sleepCtx(ctx, 500*time.Millisecond+time.Duration(mrand.Int64N(int64(500*time.Millisecond))))
			}
		}()
	}
	return a
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// dialFrom connects to port from 127.0.0.(2 + i/perSource).
func dialFrom(port, i, perSource int) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/perSource))}}
	return d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}

// idle reads (and discards) until the relay closes the connection.
func idle(_ context.Context, c net.Conn, _ int) { io.Copy(io.Discard, c) }

type hostileAttack struct {
	name    string
	tls     bool     // rsyslog forwards over TLS to the attacked TLS listener
	reasons []string // relay_input_connections_closed_total reasons the attack must show
	run     func(ctx context.Context, h *hostileRig) *attackers
}

func TestHostileSenders(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary, rsyslogd and libzmq peers")
	}
	// The attackers' 3,000 connections live in this process, the relay's
	// (max_connections 1024) in its own; both inherit this limit.
	needNoFile(t, 8192)
	for _, a := range []hostileAttack{
		{
			// 3,000 connections that never send, from 60 addresses (50 each,
			// under the per-source limit): they fill max_connections (1024)
			// and then evict each other; the first-frame deadline reaps them.
			name:    "idle_3000",
			reasons: []string{"evicted_unframed"},
			run: func(ctx context.Context, h *hostileRig) *attackers {
				return runAttackers(ctx, 3000, func(i int) (net.Conn, error) { return dialFrom(h.ports.syslog, i, 50) }, idle)
			},
		},
		{
			// 300 slowloris connections from 10 addresses, a byte a second of a
			// frame claiming 60,000 bytes; half send a good frame first (the
			// frame deadline closes them), half do not (the first-frame deadline).
			name:    "slowloris_300",
			reasons: []string{"frame_timeout", "first_frame_timeout"},
			run: func(ctx context.Context, h *hostileRig) *attackers {
				return runAttackers(ctx, 300, func(i int) (net.Conn, error) { return dialFrom(h.ports.syslog, i, 30) },
					func(ctx context.Context, c net.Conn, i int) {
						if i%2 == 0 {
							m := "<14>1 2026-11-22T05:00:00Z loris loris - - - a good first frame"
							if _, err := fmt.Fprintf(c, "%d %s", len(m), m); err != nil {
								return
							}
						}
						if _, err := c.Write([]byte("60000 <14>1 2026-11-22T05:00:00Z loris loris - - - ")); err != nil {
							return
						}
						for sleepCtx(ctx, time.Second) {
							if _, err := c.Write([]byte("x")); err != nil {
								return
							}
						}
					})
			},
		},
		{
			// 1,000 half-open TLS handshakes from 20 addresses: a third send
			// nothing, a third half a ClientHello, a third a whole one and then
			// never answer the server. rsyslog forwards over TLS meanwhile.
			name:    "tls_halfopen_1000",
			tls:     true,
			reasons: []string{"handshake_timeout"},
			run: func(ctx context.Context, h *hostileRig) *attackers {
				hello := clientHelloBytes(h.t)
				return runAttackers(ctx, 1000, func(i int) (net.Conn, error) { return dialFrom(h.tlsPort, i, 50) },
					func(ctx context.Context, c net.Conn, i int) {
						switch i % 3 {
						case 1:
							c.Write(hello[:len(hello)/2])
						case 2:
							c.Write(hello)
						}
						io.Copy(io.Discard, c)
					})
			},
		},
		{
			// 500 idle connections from one address: the per-source limit
			// (64) refuses the rest; the first-frame deadline reaps the 64.
			name:    "one_source_500",
			reasons: []string{"per_source_limit", "first_frame_timeout"},
			run: func(ctx context.Context, h *hostileRig) *attackers {
				return runAttackers(ctx, 500, func(i int) (net.Conn, error) { return dialFrom(h.ports.syslog, 0, 1) }, idle)
			},
		},
	} {
		t.Run(a.name, func(t *testing.T) { runHostile(t, a, hostileDuration(t)) })
	}
}

func runHostile(t *testing.T, a hostileAttack, d time.Duration) {
	h := startHostileRig(t, "")
	h.probeTLS = a.tls
	h.openControl()
	rs := h.startRsyslog(a.tls)
	steady := feed(t, rs, "steady", 2000)
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("rsyslog's first events through the relay"), func() bool { return h.distinct("steady") > 100 })
	t.Logf("before the attack: the first rsyslogd's first event through after %v", h.arrived("steady", 0).Sub(steady.writtenAt(0)))
	time.Sleep(time.Second)
	baseFDs, baseRSS := h.procUsage()
	t.Logf("baseline: %d fds, RSS %.1f MiB", baseFDs, float64(baseRSS)/(1<<20))

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	atk := a.run(ctx, h)

	// During the attack: a new connection every 2 s, and a second rsyslogd
	// halfway through, must be served within the first-frame deadline.
	var probes, connects, controls []time.Duration
	overflows := listenOverflows()
	var late *feeder
	// The second rsyslogd connects through a stamp of its connect.
	relayPort := h.ports.syslog
	if a.tls {
		relayPort = h.tlsPort
	}
	lateStamp := h.stampConnects(relayPort)
	var rs2 *testpeer.Rsyslogd
	peakFDs, peakRSS, peakConns := 0, int64(0), 0.0
	for seq := 0; ctx.Err() == nil; seq++ {
		if late == nil && time.Since(start) > d/2 {
			rs2 = h.startRsyslogTo(a.tls, lateStamp.port())
			late = feed(t, rs2, "late", 500)
		}
		ct, served, ctl := h.probe(seq)
		probes, connects, controls = append(probes, served), append(connects, ct), append(controls, ctl)
		fds, rss := h.procUsage()
		peakFDs, peakRSS = max(peakFDs, fds), max(peakRSS, rss)
		peakConns = max(peakConns, metric(t, h.ports, `relay_input_connections{input="syslog"}`))
		sleepCtx(ctx, 2*time.Second)
	}
	if late == nil { // an attack shorter than a probe round
		rs2 = h.startRsyslogTo(a.tls, lateStamp.port())
		late = feed(t, rs2, "late", 500)
	}
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("the second rsyslogd's first event"), func() bool { return !h.arrived("late", 0).IsZero() })
	// rsyslogd's gtls driver takes 0.3-1.5 s, attack or not, from its
	// first event to its connect (measured: the relay accepted and served
	// it within 3 ms of the connect): the relay's part runs from the connect.
	lateFed, lateConnected := late.writtenAt(0), lateStamp.at()
	lateServed := h.arrived("late", 0).Sub(lateConnected)
	// The control: the first rsyslogd's event written at the same moment,
	// over its established connection.
	var steadyServed time.Duration
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("the steady event written with the second rsyslogd's first"), func() bool {
		seq := steady.firstAfter(lateFed)
		if seq < 0 || h.arrived("steady", seq).IsZero() {
			return false
		}
		steadyServed = h.arrived("steady", seq).Sub(steady.writtenAt(seq))
		return true
	})
	atk.wg.Wait()
	t.Logf("attack %s for %v: %d dials (%d failed: %v), peak: %.0f relay connections, %d fds, RSS %.1f MiB",
		a.name, d, atk.dials.Load(), atk.dialErrs.Load(), atk.errs, peakConns, peakFDs, float64(peakRSS)/(1<<20))

	nSteady, nLate := steady.end(t), late.end(t)
	h.exactlyOnce("steady", nSteady)
	h.exactlyOnce("late", nLate)

	var worst, worstCtl, worstConnect, worstExtra time.Duration
	for i, p := range probes {
		if p < 0 || controls[i] < 0 {
			t.Errorf("probe %d (a new connection during the attack) was not served in 20 s (it took %v, the control connection's event %v)", i, p, controls[i])
			continue
		}
		worst, worstCtl, worstConnect = max(worst, p), max(worstCtl, controls[i]), max(worstConnect, connects[i])
		if extra := p - controls[i]; extra > worstExtra {
			worstExtra = extra
		}
	}
	t.Logf("served during the attack: %d probe connections, slowest %v after its connect, at most %v after the control connection's event (slowest control %v; slowest connect %v; kernel listen-queue overflows: %d); the second rsyslogd's first event %v after its connect, %v after it was written (the first rsyslogd's, written with it, %v)",
		len(probes), worst, worstExtra, worstCtl, worstConnect, listenOverflows()-overflows, lateServed, h.arrived("late", 0).Sub(lateFed), steadyServed)
	if worstExtra > hostileServed {
		t.Errorf("a new connection during the attack was served %v after an event sent with it on an established connection, over the first-frame deadline %v", worstExtra, hostileServed)
	}
	if lateServed-steadyServed > hostileServed {
		t.Errorf("the second rsyslogd's first event took %v from its connect, the first rsyslogd's written with it %v: %v more, over the first-frame deadline %v",
			lateServed, steadyServed, lateServed-steadyServed, hostileServed)
	}

	var shown []string
	for _, r := range []string{"handshake_timeout", "handshake_error", "first_frame_timeout", "frame_timeout", "idle_timeout",
		"evicted_unframed", "evicted_idle", "per_source_limit", "max_connections"} {
		if v := h.closed(r); v > 0 {
			shown = append(shown, fmt.Sprintf("%s=%.0f", r, v))
		}
	}
	t.Logf("relay_input_connections_closed_total: %s", strings.Join(shown, " "))
	for _, r := range a.reasons {
		if h.closed(r) <= 0 {
			t.Errorf("relay_input_connections_closed_total{reason=%q} does not show the attack", r)
		}
	}
	for _, r := range []string{"evicted_idle", "idle_timeout", "max_connections"} {
		if v := h.closed(r); v > 0 {
			t.Errorf("relay_input_connections_closed_total{reason=%q} = %v: a sender's connection was closed", r, v)
		}
	}

	// Back to the baseline: the second rsyslogd's connection goes too,
	// and the control connection (opened before the baseline).
	rs2.Stop()
	h.control.Close()
	var fds int
	var rss int64
	deadline := time.Now().Add(60 * time.Second)
	for {
		fds, rss = h.procUsage()
		conns := metric(t, h.ports, `relay_input_connections{input="syslog"}`)
		if fds <= baseFDs+2 && rss <= baseRSS+hostileRSSSlack(baseRSS) && conns == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("after: %d fds (baseline %d), RSS %.1f MiB (baseline %.1f)", fds, baseFDs, float64(rss)/(1<<20), float64(baseRSS)/(1<<20))
	t.Logf("  go runtime: heap in use %.1f MiB, released %.1f MiB, %v goroutines",
		metric(t, h.ports, "go_memstats_heap_inuse_bytes")/(1<<20), metric(t, h.ports, "go_memstats_heap_released_bytes")/(1<<20),
		metric(t, h.ports, "go_goroutines"))
	if fds > baseFDs+2 {
		t.Errorf("relay fds %d after the attack, baseline %d", fds, baseFDs)
	}
	if rss > baseRSS+hostileRSSSlack(baseRSS) {
		t.Errorf("relay RSS %.1f MiB after the attack, baseline %.1f MiB", float64(rss)/(1<<20), float64(baseRSS)/(1<<20))
	}
	if v := metric(t, h.ports, `relay_input_connections{input="syslog"}`); v != 1 {
		t.Errorf("relay_input_connections = %v after the attack, want 1 (rsyslog)", v)
	}
}

// hostileRSSSlack is how far above its baseline the relay's RSS may stay
// once an attack is over.
func hostileRSSSlack(base int64) int64 { return max(base/4, 8<<20) }

// needNoFile raises the descriptor limit to at least n (the hard limit
// too, which root may), or fails saying what to change.
func needNoFile(t *testing.T, n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(rl.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want = syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		if rl.Max < n || syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
			t.Fatalf("open files limit %d (hard %d) is below the %d this test needs: raise it (ulimit -n %d, or run as root)", rl.Cur, rl.Max, n, n)
		}
	}
}

// clientHelloBytes is the first flight of a Go TLS client.
func clientHelloBytes(t *testing.T) []byte {
	a, b := net.Pipe()
	go func() {
		tls.Client(a, &tls.Config{InsecureSkipVerify: true}).Handshake()
		a.Close()
	}()
	buf := make([]byte, 16<<10)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return buf[:n]
}

// TestRsyslogQuietReconnect: a quiet rsyslogd is closed by the idle
// timeout (gracefully: FIN, then the grace), reconnects when it next has
// something to send, and loses and duplicates nothing; over plain TCP and
// TLS. This is the behaviour the default idle_timeout relies on.
func TestRsyslogQuietReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary, rsyslogd and libzmq peers")
	}
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(t *testing.T) {
			h := startHostileRig(t, "idle_timeout: 1s")
			rs := h.startRsyslog(useTLS)
			const rounds, per = 4, 500
			for r := range rounds {
				texts := make([]string, per)
				for i := range texts {
					texts[i] = testpeer.Seq(r*per + i)
				}
				rs.Send(t, "quiet", texts...)
				h.exactlyOnce("quiet", (r+1)*per)
				// Quiet for longer than idle_timeout and its grace: the
				// relay has closed the connection when the next round sends.
				testpeer.Eventually(t, 20*time.Second, testpeer.Text("the idle timeout"), func() bool {
					return h.closed("idle_timeout") >= float64(r+1) && metric(t, h.ports, `relay_input_connections{input="syslog"}`) == 0
				})
			}
			if v := h.closed("idle_timeout"); v < rounds {
				t.Errorf("idle_timeout closes %v, want %d", v, rounds)
			}
			t.Logf("%d rounds, %v connections, %v idle closes", rounds,
				metric(t, h.ports, `relay_input_connections_total{input="syslog"}`), h.closed("idle_timeout"))
		})
	}
}
