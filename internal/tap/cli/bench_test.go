package cli

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
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
		name   string
		filter []string
	}{{"all-streams", nil}, {"one-stream", []string{"--stream", "click"}}} {
		b.Run(v.name, func(b *testing.B) {
			r := startRelay(b, "")
			const events, conns = 300000, 2
			payload := make([][]byte, conns)
			for c := range conns {
				var buf []byte
				for i := range events / conns {
					e := genEvent{[]string{"click", "view", "buy"}[i%3], strconv.Itoa(i % 1000), c*events + i}
					buf = append(buf, e.line(100)...)
				}
				payload[c] = buf
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
			measure := func() float64 {
				base := r.metric(sent)
				start := time.Now()
				var wg sync.WaitGroup
				for c := range gens {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := gens[c].Write(payload[c]); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				deadline := time.Now().Add(60 * time.Second)
				for r.metric(sent) < base+events {
					if time.Now().After(deadline) {
						b.Fatalf("the relay did not pass %d events within 60s", events)
					}
					time.Sleep(5 * time.Millisecond)
				}
				return events / time.Since(start).Seconds()
			}
			startTaps := func() func() {
				var procs []*exec.Cmd
				for _, args := range [][]string{
					append([]string{r.pub, "--format", "json"}, v.filter...),
					append([]string{r.pub, "--format", "json"}, v.filter...),
					append([]string{"ws://" + r.http, "--token", liveToken, "--format", "json"}, v.filter...),
				} {
					cmd := exec.Command(r.tapBin, args...) // stdout: /dev/null
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					procs = append(procs, cmd)
				}
				q := ""
				if v.filter != nil {
					q = "&stream=click"
				}
				stalled, _, err := websocket.DefaultDialer.Dial("ws://"+r.http+"/v1/tap?format=json"+q,
					map[string][]string{"Authorization": {"Bearer " + liveToken}})
				if err != nil {
					b.Fatal(err)
				}
				eventually(b, 10*time.Second, "4 taps connected", func() bool {
					return r.metric("relay_tap_clients") == 2 && r.metric(`relay_output_peers{output="taps"}`) == 2
				})
				time.Sleep(300 * time.Millisecond) // subscriptions travel after the handshake
				return func() {
					stalled.Close()
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
			var base, taps []float64
			for range max(b.N, 3) {
				base = append(base, measure())
				stop := startTaps()
				taps = append(taps, measure())
				stop()
			}
			mb, mt := median(base), median(taps)
			b.ReportMetric(mb, "base_ev/s")
			b.ReportMetric(mt, "taps_ev/s")
			b.ReportMetric(mt/mb, "ratio")
			fmt.Printf("relay throughput, %s taps: no taps %.0f ev/s, 4 taps %.0f ev/s, kept %.1f%% (runs: base %.0f, taps %.0f)\n",
				v.name, mb, mt, 100*mt/mb, base, taps)
		})
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
