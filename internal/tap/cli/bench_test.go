package cli

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/config"
)

// BenchmarkRelayTaps measures the relay's throughput (syslog TCP in, PUB
// out) with no tap client against four: two tap CLIs on the PUB endpoint,
// one tap CLI on the websocket and one websocket client that reads
// nothing. Phases alternate (base, taps, base, taps, …) so machine noise
// hits both; bench/tap.sh prints the medians side by side. Run it with
// -benchtime=1x (Go would otherwise run it twice, to size b.N):
// TAP_BENCH_RUNS=N sets the measurements per phase (default and minimum 3).
//
// The tap CLIs stand for researchers on other machines but here share the
// 2 cores with the relay and the load generator. The "idle" variants run
// them under SCHED_IDLE (chrt --idle 0), so they only get the CPU the relay
// and the generator leave; every variant prints how many events each tap
// received and the relay's drop counters, so the taps were demonstrably
// served, and the relay's CPU per event, whose ratio is what the taps cost
// the relay itself.
//
// The first variant, "shipped-defaults-idle", is the headline: the relay
// as shipped (the config file sets no hwm, queue or limit, so every one
// is the relay's default, checked by parsing the file as the relay does)
// with the tap CLIs under SCHED_IDLE. The others use the live tests' PUB
// hwm of 200000, which lets a lagging tap queue that much.
//
// TAP_BENCH_HWM=N sets the PUB output's hwm in every variant but the
// headline. TAP_BENCH_PROFILE=DIR builds the relay with -tags tapprofile
// and writes a CPU profile of every measured phase to
// DIR/VARIANT.{base,taps}.N.pprof.
func BenchmarkRelayTaps(b *testing.B) {
	profDir := os.Getenv("TAP_BENCH_PROFILE")
	hwmAll := os.Getenv("TAP_BENCH_HWM")
	for _, v := range []struct {
		name    string
		filter  []string
		pub, ws bool
		rate    int    // offered events/s; 0: as fast as the relay takes them
		sched   string // how the tap CLIs run: "" as is, "nice" at nice 19, "idle" under SCHED_IDLE
		hwm     string // the PUB output's hwm; "": the live tests' 200000; "default": not set
	}{
		{"shipped-defaults-idle", nil, true, true, 0, "idle", "default"},
		{"all-streams", nil, true, true, 0, "", ""},
		{"all-streams-niced", nil, true, true, 0, "nice", ""},
		{"all-streams-idle", nil, true, true, 0, "idle", ""},
		{"one-stream", []string{"--stream", "click"}, true, true, 0, "", ""},
		{"all-streams-pub-only", nil, true, false, 0, "", ""},
		{"all-streams-pub-only-idle", nil, true, false, 0, "idle", ""},
		{"all-streams-ws-only", nil, false, true, 0, "", ""},
		{"all-streams-ws-only-idle", nil, false, true, 0, "idle", ""},
		{"all-streams-at-100k/s", nil, true, true, 100000, "", ""},
		{"all-streams-pub-only-at-100k/s", nil, true, false, 100000, "", ""},
		{"all-streams-ws-only-at-100k/s", nil, false, true, 100000, "", ""},
	} {
		b.Run(v.name, func(b *testing.B) {
			r := startRelay(b, "")
			profPrefix := ""
			if profDir != "" {
				profPrefix = filepath.Join(profDir, strings.ReplaceAll(v.name, "/", "_"))
				r.env = []string{"TAP_CPUPROFILE=" + profPrefix}
			}
			hwm := v.hwm
			if hwm != "default" {
				hwm = cmp.Or(hwmAll, v.hwm)
			}
			if hwm != "" {
				// The live tests' PUB hwm (200000) lets a lagging tap
				// queue a lot, which the relay's GC and memory then pay for.
				conf, err := os.ReadFile(r.conf)
				if err != nil {
					b.Fatal(err)
				}
				set := []byte("hwm: " + hwm)
				if hwm == "default" {
					set = nil
				}
				if err := os.WriteFile(r.conf, bytes.Replace(conf, []byte("hwm: 200000"), set, 1), 0o600); err != nil {
					b.Fatal(err)
				}
			}
			shipped := ""
			if hwm == "default" {
				shipped = shippedDefaults(b, r.conf)
			}
			if profDir != "" || hwm != "" {
				r.stop()
				r.start()
			}
			const conns = 2
			// Saturated phases send the same 600k events twice: long enough
			// (about 0.25s at 5M ev/s) for /proc's 10ms CPU ticks.
			events, rounds := 600000, 2
			if v.rate > 0 {
				events, rounds = 3*v.rate, 1 // three seconds
			}
			total := events * rounds
			payload := make([][]byte, conns)
			offsets := make([][]int, conns) // where each event starts, and the end
			for c := range conns {
				var buf []byte
				for i := range events / conns {
					e := genEvent{[]string{"click", "view", "buy"}[i%3], strconv.Itoa(i % 1000), c*events + i}
					offsets[c] = append(offsets[c], len(buf))
					buf = append(buf, e.line(100)...)
				}
				payload[c] = buf
				offsets[c] = append(offsets[c], len(buf))
			}
			gens := make([]net.Conn, conns)
			for c := range gens {
				conn, err := net.Dial("tcp", r.syslog)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				gens[c] = conn
			}
			sent := `relay_output_sent_total{output="taps"}`
			relayPid := r.cmd.Process.Pid
			profN := 0
			// profile brackets a measured phase with the relay's test-only
			// profiler (profile_tag.go) and files the profile as name.
			profile := func(name string) func() {
				if profPrefix == "" {
					return func() {}
				}
				syscall.Kill(relayPid, syscall.SIGUSR1)
				return func() {
					syscall.Kill(relayPid, syscall.SIGUSR2)
					f := fmt.Sprintf("%s.%d.pprof", profPrefix, profN)
					profN++
					eventually(b, 10*time.Second, "profile "+f+" written", func() bool { _, err := os.Stat(f); return err == nil })
					if err := os.Rename(f, profPrefix+"."+name+".pprof"); err != nil {
						b.Fatal(err)
					}
				}
			}
			// tapPids are the running tap CLIs; phaseCPU is where the CPU
			// went in the last measured phase.
			var tapPids []int
			var phaseCPU cpuSplit
			// measure sends the events and returns the relay's throughput
			// and its CPU time per event.
			measure := func() (evs, cpuPerEv float64) {
				base := r.metric(sent)
				cpu0, self0, taps0 := cpuTime(relayPid), selfCPU(), 0*time.Second
				for _, p := range tapPids {
					taps0 += cpuTime(p)
				}
				start := time.Now()
				var wg sync.WaitGroup
				for c := range gens {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if v.rate == 0 {
							for range rounds {
								if _, err := gens[c].Write(payload[c]); err != nil {
									b.Error(err)
									return
								}
							}
							return
						}
						// Paced: every 10ms, what is due by then.
						per := float64(v.rate) / conns
						sentN := 0
						for sentN < events/conns {
							due := min(int(per*time.Since(start).Seconds())+1, events/conns)
							if due > sentN {
								if _, err := gens[c].Write(payload[c][offsets[c][sentN]:offsets[c][due]]); err != nil {
									b.Error(err)
									return
								}
								sentN = due
							}
							time.Sleep(10 * time.Millisecond)
						}
					}()
				}
				wg.Wait()
				deadline := time.Now().Add(60 * time.Second)
				for r.metric(sent) < base+float64(total) {
					if time.Now().After(deadline) {
						b.Fatalf("the relay did not pass %d events within 60s", total)
					}
					time.Sleep(5 * time.Millisecond)
				}
				el := time.Since(start)
				phaseCPU = cpuSplit{wall: el, relay: cpuTime(relayPid) - cpu0, self: selfCPU() - self0}
				for _, p := range tapPids {
					phaseCPU.taps += cpuTime(p)
				}
				phaseCPU.taps -= taps0
				return float64(total) / el.Seconds(), phaseCPU.relay.Seconds() / float64(total)
			}
			// drainCPU waits until the relay has written out what it queued
			// for the taps (PUB queues empty, websocket sends settled; the
			// stalled client's queue never drains, it only drops) and
			// returns the relay's CPU time since cpu0 per event: the phase
			// plus the writing it left for later.
			drainCPU := func(cpu0 time.Duration) float64 {
				deadline := time.Now().Add(10 * time.Second)
				last := -1.0
				for time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
					ws := r.metric("relay_tap_sent_total")
					if r.metric(`relay_output_queue_depth{output="taps"}`) == 0 && ws == last {
						break
					}
					last = ws
				}
				return (cpuTime(relayPid) - cpu0).Seconds() / float64(total)
			}
			type tapProc struct {
				name   string
				cmd    *exec.Cmd
				stderr bytes.Buffer
			}
			// served accumulates, over the taps phases, what each tap CLI
			// received and what the relay counted.
			served := map[string]int64{}
			var servedRuns []map[string]int64 // the same per taps phase
			var tapNames []string
			var wsSent, wsDropped, pubDropped float64
			pubDrops := `relay_output_socket_drops_total{output="taps",reason="pub_queue_full"}`
			startTaps := func() func() {
				var procs []*tapProc
				if v.pub {
					for _, n := range []string{"pub-tap-1", "pub-tap-2"} {
						procs = append(procs, &tapProc{name: n})
					}
				}
				if v.ws {
					procs = append(procs, &tapProc{name: "ws-tap"})
				}
				if tapNames == nil {
					for _, p := range procs {
						tapNames = append(tapNames, p.name)
					}
				}
				for _, p := range procs {
					src := r.pub
					if p.name == "ws-tap" {
						src = "ws://" + r.http
					}
					// -o /dev/null: JSON lines, as --format json to stdout,
					// and on SIGINT the tap says how many events it wrote.
					args := append([]string{src, "--token", liveToken, "-o", os.DevNull}, v.filter...)
					switch v.sched {
					case "":
						p.cmd = exec.Command(r.tapBin, args...)
					case "nice":
						p.cmd = exec.Command("nice", append([]string{"-n", "19", r.tapBin}, args...)...)
					case "idle":
						p.cmd = exec.Command("chrt", append([]string{"--idle", "0", r.tapBin}, args...)...)
					}
					p.cmd.Stderr = &p.stderr
					if err := p.cmd.Start(); err != nil {
						b.Fatal(err)
					}
					tapPids = append(tapPids, p.cmd.Process.Pid) // chrt and nice exec the tap: same pid
				}
				q := ""
				if v.filter != nil {
					q = "&stream=click"
				}
				var stalled *websocket.Conn
				wantWS, wantPub := 0.0, 0.0
				if v.ws {
					var err error
					stalled, _, err = websocket.DefaultDialer.Dial("ws://"+r.http+"/v1/tap?format=json"+q,
						map[string][]string{"Authorization": {"Bearer " + liveToken}})
					if err != nil {
						b.Fatal(err)
					}
					wantWS = 2
				}
				if v.pub {
					wantPub = 2
				}
				eventually(b, 10*time.Second, "taps connected and subscribed", func() bool {
					return r.metric("relay_tap_clients") == wantWS && r.metric(`relay_output_subscribers{output="taps"}`) == wantPub
				})
				ws0, wd0, pd0 := r.metric("relay_tap_sent_total"), r.metric("relay_tap_dropped_total"), r.metric(pubDrops)
				return func() {
					run := map[string]int64{}
					servedRuns = append(servedRuns, run)
					if v.ws {
						// The relay tells a websocket tap of its drops once
						// a second: let the last notice reach the CLI.
						time.Sleep(1200 * time.Millisecond)
					}
					if stalled != nil {
						stalled.Close()
					}
					tapPids = nil
					for _, p := range procs {
						p.cmd.Process.Signal(os.Interrupt)
					}
					for _, p := range procs {
						done := make(chan struct{})
						go func() { p.cmd.Wait(); close(done) }()
						select {
						case <-done:
						case <-time.After(10 * time.Second):
							p.cmd.Process.Kill()
							<-done
						}
						m := wroteRE.FindStringSubmatch(p.stderr.String())
						if m == nil {
							b.Fatalf("%s did not report what it received: %q", p.name, p.stderr.String())
						}
						n, _ := strconv.ParseInt(m[1], 10, 64)
						served[p.name] += n
						run[p.name] = n
						if p.name == "ws-tap" {
							d, _ := strconv.ParseInt(m[2], 10, 64)
							served["ws-tap-drops"] += d
						}
						if n == 0 {
							b.Errorf("%s received no events in a taps phase: the taps were not served", p.name)
						}
					}
					wsSent += r.metric("relay_tap_sent_total") - ws0
					wsDropped += r.metric("relay_tap_dropped_total") - wd0
					pubDropped += r.metric(pubDrops) - pd0
					eventually(b, 10*time.Second, "taps gone", func() bool {
						return r.metric("relay_tap_clients") == 0 && r.metric(`relay_output_peers{output="taps"}`) == 0
					})
				}
			}
			measure() // warm up
			var base, taps, baseCPU, tapsCPU, baseDrain, tapsDrain []float64
			var baseSplit, tapsSplit []cpuSplit
			runs := 3
			if n, err := strconv.Atoi(os.Getenv("TAP_BENCH_RUNS")); err == nil {
				runs = max(n, 3)
			}
			for i := range runs {
				cpu0 := cpuTime(relayPid)
				done := profile(fmt.Sprintf("base.%d", i))
				t, c := measure()
				done()
				base, baseCPU = append(base, t), append(baseCPU, c)
				baseSplit = append(baseSplit, phaseCPU)
				baseDrain = append(baseDrain, drainCPU(cpu0))
				stop := startTaps()
				cpu0 = cpuTime(relayPid)
				done = profile(fmt.Sprintf("taps.%d", i))
				t, c = measure()
				done()
				taps, tapsCPU = append(taps, t), append(tapsCPU, c)
				tapsSplit = append(tapsSplit, phaseCPU)
				tapsDrain = append(tapsDrain, drainCPU(cpu0))
				stop()
			}
			mb, mt := median(base), median(taps)
			cb, ct := median(baseCPU)*1e9, median(tapsCPU)*1e9
			db, dt := median(baseDrain)*1e9, median(tapsDrain)*1e9
			b.ReportMetric(mb, "base_ev/s")
			b.ReportMetric(mt, "taps_ev/s")
			b.ReportMetric(mt/mb, "ratio")
			sched := map[string]string{"": "at normal priority", "nice": "at nice 19", "idle": "under SCHED_IDLE"}[v.sched]
			var wallBase, wallTaps time.Duration
			for i := range baseSplit {
				wallBase, wallTaps = wallBase+baseSplit[i].wall, wallTaps+tapsSplit[i].wall
			}
			// Each taps phase next to the base phase just before it.
			paired := make([]float64, len(base))
			for i := range base {
				paired[i] = taps[i] / base[i]
			}
			if shipped != "" {
				fmt.Printf("HEADLINE: the relay as shipped (%s), 4 taps, tap CLIs under SCHED_IDLE: kept %.1f%% (medians of %d runs), pooled %.1f%% (all runs' events over all their time), paired runs %.0f-%.0f%% (median %.1f%%); relay CPU per event with taps %.2fx without (medians)\n",
					shipped, 100*mt/mb, runs, 100*wallBase.Seconds()/wallTaps.Seconds(),
					100*slices.Min(paired), 100*slices.Max(paired), 100*median(paired), ct/cb)
			}
			if hwm != "" && hwm != "default" {
				fmt.Printf("(PUB hwm %s) ", hwm)
			}
			fmt.Printf("relay throughput, %s taps: no taps %.0f ev/s, with taps %.0f ev/s, kept %.1f%% (medians; all runs' events over all their time: %.1f%%); relay CPU %.0f ns/event vs %.0f ns/event\n",
				v.name, mb, mt, 100*mt/mb, 100*wallBase.Seconds()/wallTaps.Seconds(), cb, ct)
			mev := func(v []float64) string {
				var f []string
				for _, x := range v {
					f = append(f, fmt.Sprintf("%.3f", x/1e6))
				}
				return strings.Join(f, " ")
			}
			pct := func(v []float64) string {
				var f []string
				for _, x := range v {
					f = append(f, fmt.Sprintf("%.0f%%", 100*x))
				}
				return strings.Join(f, " ")
			}
			fmt.Printf("  %s: runs in M ev/s, in order: no taps %s; with taps %s; each taps run over the run before it: %s\n",
				v.name, mev(base), mev(taps), pct(paired))
			var perRun []string
			for _, run := range servedRuns {
				var f []string
				for _, n := range tapNames {
					f = append(f, strconv.FormatInt(run[n], 10))
				}
				perRun = append(perRun, strings.Join(f, "/"))
			}
			fmt.Printf("  %s: events each tap CLI received per taps phase (%s): %s\n",
				v.name, strings.Join(tapNames, "/"), strings.Join(perRun, ", "))
			var got []string
			for _, n := range tapNames {
				s := fmt.Sprintf("%s %d", n, served[n])
				if n == "ws-tap" {
					s += fmt.Sprintf(" + told of %d drops = %d", served["ws-tap-drops"], served[n]+served["ws-tap-drops"])
				}
				got = append(got, s)
			}
			if v.ws {
				got = append(got, "stalled websocket 0 (reads nothing)")
			}
			fmt.Printf("  %s: tap CLIs %s; events received, of %d the relay took in %d taps phases of %d: %s; relay: websocket sent %.0f, dropped %.0f; PUB queue-full drops %.0f; relay CPU incl. draining the taps' queues: %.0f vs %.0f ns/event (%.2fx)\n",
				v.name, sched, runs*total, runs, total, strings.Join(got, ", "), wsSent, wsDropped, pubDropped, db, dt, dt/db)
			// Where the 2 cores went: the relay gets less of them when the
			// taps (or the machine's other load) take some.
			fmt.Printf("  %s: CPU during the phases, summed over the runs: no taps: %s; with taps: %s\n",
				v.name, sumSplit(baseSplit), sumSplit(tapsSplit))
		})
	}
}

// cpuSplit is where the CPU went during one measured phase.
type cpuSplit struct {
	wall, relay, taps, self time.Duration
}

func sumSplit(ss []cpuSplit) string {
	var t cpuSplit
	for _, s := range ss {
		t.wall += s.wall
		t.relay += s.relay
		t.taps += s.taps
		t.self += s.self
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	return fmt.Sprintf("wall %d ms (x2 cores = %d ms), relay %d ms, tap CLIs %d ms, load generator and harness %d ms",
		ms(t.wall), 2*ms(t.wall), ms(t.relay), ms(t.taps), ms(t.self))
}

// selfCPU is this process's CPU time: the load generator, the stalled
// websocket and the metric polling.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wroteRE reads the summary a tap with -o prints when it stops.
var wroteRE = regexp.MustCompile(`tap: wrote (\d+) events to .* \(relay-reported drops (\d+), skipped \d+\)`)

// cpuTime is a process's user+system CPU time, from /proc.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// shippedDefaults checks that the relay config at path sets none of the
// knobs that shape what taps cost the relay, by parsing it as the relay
// does, and describes the values it runs with.
func shippedDefaults(b *testing.B, path string) string {
	c, err := config.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, key := range []string{"hwm", "tap_queue", "tap_max_clients", "max_message_size", "format", "streams"} {
		if bytes.Contains(data, []byte(key+":")) {
			b.Fatalf("the headline variant's config sets %s: it must run the relay's defaults", key)
		}
	}
	if h, q := c.Outputs[0].HWM, c.HTTP.TapQueue; h != config.DefaultHWM || q != config.DefaultTapQueue {
		b.Fatalf("the relay would run with PUB hwm %d and tap_queue %d, not the defaults %d and %d", h, q, config.DefaultHWM, config.DefaultTapQueue)
	}
	for _, env := range []string{"GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GODEBUG"} {
		if os.Getenv(env) != "" {
			b.Fatalf("%s is set: the headline runs the relay as shipped", env)
		}
	}
	return fmt.Sprintf("default config: PUB hwm %d, websocket tap_queue %d, format %s", c.Outputs[0].HWM, c.HTTP.TapQueue, c.Outputs[0].Format)
}
