package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// statsRow finds the last table row of stream in lines (after the
// "summary:" line when summary).
func statsRow(lines []string, stream string, summary bool) []string {
	start := 0
	if summary {
		start = -1
		for i, l := range lines {
			if l == "summary:" {
				start = i
			}
		}
		if start < 0 {
			return nil
		}
	}
	var row []string
	for _, l := range lines[start:] {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == stream {
			row = f
		}
	}
	return row
}

func TestLiveStatsMatchTruth(t *testing.T) {
	r := startRelay(t, "")
	p := startTap(t, r.tapBin, "stats", r.pub, "--stream", "ev*", "--unique", "sd:u@32473.id", "--top", "hostname", "--interval", "100ms")
	g := newGenerator(t, r.syslog)
	// Warm up until the tap sees events, so the truth below is complete.
	n := 0
	eventually(t, 20*time.Second, "tap stats shows the warm-up stream", func() bool {
		g.send([]genEvent{{"evwarm", "w", n}}, 0)
		n++
		return statsRow(p.snapshot(), "evwarm", false) != nil
	})
	rng := rand.New(rand.NewPCG(7, 7))
	truth := map[string]map[string]bool{"evclick": {}, "evview": {}}
	counts := map[string]int{}
	for range 30 {
		batch := make([]genEvent, 0, 1000)
		for range 1000 {
			s := "evclick"
			if rng.IntN(4) == 0 {
				s = "evview"
			}
			u := strconv.Itoa(rng.IntN(40000))
			truth[s][u] = true
			counts[s]++
			batch = append(batch, genEvent{s, u, n})
			n++
		}
		g.send(batch, 0)
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, 20*time.Second, "tap stats counted every event", func() bool {
		lines := p.snapshot()
		for s, c := range counts {
			row := statsRow(lines, s, false)
			if row == nil || row[1] != strconv.Itoa(c) {
				return false
			}
		}
		return true
	})
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	lines := p.snapshot()
	for s, c := range counts {
		row := statsRow(lines, s, true)
		if len(row) < 6 {
			t.Fatalf("summary row for %s: %q\n%s", s, row, strings.Join(lines[len(lines)-6:], "\n"))
		}
		if row[1] != strconv.Itoa(c) {
			t.Errorf("%s: %s events, want %d", s, row[1], c)
		}
		est, _ := strconv.ParseFloat(row[5], 64)
		want := float64(len(truth[s]))
		errPct := 100 * math.Abs(est-want) / want
		t.Logf("%s: %d events, unique users estimate %.0f, truth %.0f (error %.2f%%)", s, c, est, want, errPct)
		if errPct > 2 {
			t.Errorf("%s: HLL error %.2f%% > 2%%", s, errPct)
		}
		if !strings.Contains(strings.Join(row, " "), fmt.Sprintf("genhost=%d", c)) {
			t.Errorf("%s: top hostname missing genhost=%d: %q", s, c, row)
		}
	}
	if d := r.metric(`relay_output_dropped_total{output="taps"}`); d != 0 {
		t.Errorf("relay dropped %v events on PUB; the truth is off", d)
	}
}

// A websocket client that reads nothing sees its drops reported in-band;
// the live websocket client and the PUB tap get everything.
func TestLiveStalledWebsocket(t *testing.T) {
	r := startRelay(t, "  tap_queue: 4096\n")
	hdr := map[string][]string{"Authorization": {"Bearer " + liveToken}}
	stalled, _, err := websocket.DefaultDialer.Dial("ws://"+r.http+"/v1/tap?format=raw", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	live, _, err := websocket.DefaultDialer.Dial("ws://"+r.http+"/v1/tap?format=raw", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	const n = 30000
	pubTap := startTap(t, r.tapBin, r.pub, "--format", "raw", "--limit", strconv.Itoa(n))
	eventually(t, 10*time.Second, "2 websocket clients and 1 PUB subscription", func() bool {
		return r.metric("relay_tap_clients") == 2 && r.metric(`relay_output_subscribers{output="taps"}`) == 1
	})

	liveGot := make(chan int, 1)
	go func() {
		got := 0
		for got < n {
			live.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, b, err := live.ReadMessage()
			if err != nil {
				break
			}
			if b[0] == '{' {
				continue // a notice
			}
			got++
		}
		liveGot <- got
	}()
	g := newGenerator(t, r.syslog)
	for i := 0; i < n; i += 500 {
		batch := make([]genEvent, 0, 500)
		for j := range 500 {
			batch = append(batch, genEvent{"click", "u", i + j})
		}
		g.send(batch, 1000) // 30 MB in all: more than the stalled socket buffers
		time.Sleep(10 * time.Millisecond)
	}
	if got := <-liveGot; got != n {
		t.Errorf("live websocket got %d of %d events", got, n)
	}
	if code := pubTap.exitCode(); code != 0 || len(pubTap.snapshot()) != n {
		t.Errorf("PUB tap: exit %d, %d lines, want %d", code, len(pubTap.snapshot()), n)
	}
	dropped := r.metric("relay_tap_dropped_total")
	if dropped <= 0 {
		t.Fatalf("the relay counted no drops for the stalled client")
	}
	// Now the stalled client reads: its notices must add up to the drops.
	var total float64
	deadline := time.Now().Add(20 * time.Second)
	for total < dropped && time.Now().Before(deadline) {
		stalled.SetReadDeadline(deadline)
		_, b, err := stalled.ReadMessage()
		if err != nil {
			t.Fatalf("stalled client: %v (notices reported %v of %v drops)", err, total, dropped)
		}
		if b[0] != '{' {
			continue
		}
		var nt struct {
			Notice string
			Total  float64
		}
		if err := json.Unmarshal(b, &nt); err != nil || nt.Notice != "dropped" {
			t.Fatalf("notice %q: %v", b, err)
		}
		total = nt.Total
	}
	t.Logf("stalled client: %v drops reported in-band, relay counted %v", total, dropped)
	if total != dropped {
		t.Errorf("notices report %v drops, relay counted %v", total, dropped)
	}
}

// The tap reconnects after a relay restart; with --no-reconnect it exits 1.
func TestLiveReconnect(t *testing.T) {
	r := startRelay(t, "")
	keep := startTap(t, r.tapBin, r.pub, "--format", "raw", "--stream", "click")
	once := startTap(t, r.tapBin, "ws://"+r.http, "--token", liveToken, "--format", "raw", "--no-reconnect")
	g := newGenerator(t, r.syslog)
	feedUntil(t, g, 5, func() bool { return len(keep.snapshot()) > 0 && len(once.snapshot()) > 0 })
	r.stop()
	if code := once.exitCode(); code != ExitError {
		t.Errorf("--no-reconnect: exit %d after the relay stopped, want %d; stderr %s", code, ExitError, once.stderr.String())
	}
	before := len(keep.snapshot())
	r.start()
	g = newGenerator(t, r.syslog)
	feedUntil(t, g, 5, func() bool { return len(keep.snapshot()) > before })
	if keep.exited() {
		t.Fatalf("the reconnecting tap exited: %s", keep.stderr.String())
	}
	keep.cmd.Process.Signal(os.Interrupt)
	if code := keep.exitCode(); code != 0 {
		t.Errorf("Ctrl-C: exit %d, want 0", code)
	}
}
