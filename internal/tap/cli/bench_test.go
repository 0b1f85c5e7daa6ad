package cli

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkRelayTaps measures the relay's throughput (syslog TCP in, PUB
// out) with no tap client against four: two tap CLIs on the PUB endpoint,
// one tap CLI on the websocket and one websocket client that reads
// nothing. Phases alternate (base, taps, base, taps, …) so machine noise
// hits both; bench/tap.sh prints the medians side by side. Run it with
// -benchtime=1x: each iteration is a full measurement.
func BenchmarkRelayTaps(b *testing.B) {
	for _, v := range []struct {
		name    string
		filter  []string
		pub, ws bool
		rate    int  // offered events/s; 0: as fast as the relay takes them
		nice    bool // run the tap CLIs at nice 19, as an operator would on a busy relay host
	}{
		{"all-streams", nil, true, true, 0, false},
		{"all-streams-niced", nil, true, true, 0, true},
		{"one-stream", []string{"--stream", "click"}, true, true, 0, false},
		{"all-streams-pub-only", nil, true, false, 0, false},
		{"all-streams-ws-only", nil, false, true, 0, false},
		{"all-streams-at-100k/s", nil, true, true, 100000, false},
		{"all-streams-pub-only-at-100k/s", nil, true, false, 100000, false},
		{"all-streams-ws-only-at-100k/s", nil, false, true, 100000, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			r := startRelay(b, "")
			const conns = 2
			events := 600000
			if v.rate > 0 {
				events = 3 * v.rate // three seconds
			}
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
			// measure sends the events and returns the relay's throughput
			// and its CPU time per event.
			measure := func() (evs, cpuPerEv float64) {
				base := r.metric(sent)
				cpu0 := cpuTime(relayPid)
				start := time.Now()
				var wg sync.WaitGroup
				for c := range gens {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if v.rate == 0 {
							if _, err := gens[c].Write(payload[c]); err != nil {
								b.Error(err)
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
				for r.metric(sent) < base+float64(events) {
					if time.Now().After(deadline) {
						b.Fatalf("the relay did not pass %d events within 60s", events)
					}
					time.Sleep(5 * time.Millisecond)
				}
				el := time.Since(start)
				return float64(events) / el.Seconds(), (cpuTime(relayPid) - cpu0).Seconds() / float64(events)
			}
			startTaps := func() func() {
				var procs []*exec.Cmd
				var cmds [][]string
				if v.pub {
					cmds = append(cmds, append([]string{r.pub, "--format", "json"}, v.filter...),
						append([]string{r.pub, "--format", "json"}, v.filter...))
				}
				if v.ws {
					cmds = append(cmds, append([]string{"ws://" + r.http, "--token", liveToken, "--format", "json"}, v.filter...))
				}
				for _, args := range cmds {
					cmd := exec.Command(r.tapBin, args...) // stdout: /dev/null
					if v.nice {
						cmd = exec.Command("nice", append([]string{"-n", "19", r.tapBin}, args...)...)
					}
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					procs = append(procs, cmd)
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
				eventually(b, 10*time.Second, "taps connected", func() bool {
					return r.metric("relay_tap_clients") == wantWS && r.metric(`relay_output_peers{output="taps"}`) == wantPub
				})
				time.Sleep(300 * time.Millisecond) // subscriptions travel after the handshake
				return func() {
					if stalled != nil {
						stalled.Close()
					}
					for _, p := range procs {
						p.Process.Kill()
						p.Wait()
					}
					eventually(b, 10*time.Second, "taps gone", func() bool {
						return r.metric("relay_tap_clients") == 0 && r.metric(`relay_output_peers{output="taps"}`) == 0
					})
				}
			}
			measure() // warm up
			var base, taps, baseCPU, tapsCPU []float64
			for range max(b.N, 3) {
				t, c := measure()
				base, baseCPU = append(base, t), append(baseCPU, c)
				stop := startTaps()
				t, c = measure()
				taps, tapsCPU = append(taps, t), append(tapsCPU, c)
				stop()
			}
			mb, mt := median(base), median(taps)
			cb, ct := median(baseCPU)*1e9, median(tapsCPU)*1e9
			b.ReportMetric(mb, "base_ev/s")
			b.ReportMetric(mt, "taps_ev/s")
			b.ReportMetric(mt/mb, "ratio")
			fmt.Printf("relay throughput, %s taps: no taps %.0f ev/s, with taps %.0f ev/s, kept %.1f%%; relay CPU %.0f ns/event vs %.0f ns/event (runs: base %.0f, taps %.0f)\n",
				v.name, mb, mt, 100*mt/mb, cb, ct, base, taps)
		})
	}
}

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
