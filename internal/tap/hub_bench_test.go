package tap

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/event"
)

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHubPublish measures what the router pays per event (ns/op) and
// what the whole process pays (cpu-ns/event: Publish plus the writers'
// filtering, JSON encoding and socket writes), for taps that read
// everything (their bytes are discarded) and taps that read nothing, with
// events handed over one by one (Publish) and in the router's batches of
// 256 (PublishBatch), side by side.
func BenchmarkHubPublish(b *testing.B) {
	for _, mode := range []string{"Publish", "PublishBatch"} {
		b.Run(mode, func(b *testing.B) { benchHubPublish(b, mode == "PublishBatch") })
	}
}

func benchHubPublish(b *testing.B, batched bool) {
	for _, c := range []struct {
		name          string
		live, stalled int
		query         string
	}{
		{"clients=0", 0, 0, ""},
		{"live=1", 1, 0, ""},
		{"stalled=1", 0, 1, ""},
		{"live=1,stalled=1", 1, 1, ""},
		{"live=2,filtered-out", 2, 0, "?stream=none"},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := NewHub(HubConfig{QueueLen: 4096}, nil)
			mux := http.NewServeMux()
			mux.Handle("/v1/tap", h.Handler())
			srv := httptest.NewServer(mux)
			defer srv.Close()
			defer h.Close()
			url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/tap" + c.query
			for range c.live {
				ws, _, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer ws.Close()
				go io.Copy(io.Discard, ws.UnderlyingConn()) // read fast, decode nothing
			}
			for range c.stalled {
				ws, _, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer ws.Close()
			}
			eventually(b, 5*time.Second, "clients connected", func() bool { return h.Stats().Clients == c.live+c.stalled })
			live := (*h.clients.Load())[:c.live] // connected first
			evs := make([]*event.Event, 1024)
			for i := range evs {
				evs[i] = testEvent([]string{"click", "view", "buy"}[i%3], i, "u123")
			}
			wantSent := h.Stats().Sent + uint64(b.N*c.live)
			if c.query != "" {
				wantSent = 0
			}
			cpu0 := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i += 256 {
				k := min(256, b.N-i)
				off := i % len(evs) // len(evs) is a multiple of 256
				if batched {
					h.PublishBatch(evs[off : off+k])
				} else {
					for _, ev := range evs[off : off+k] {
						h.Publish(ev)
					}
				}
				// Pace to the live writers so they drop nothing.
				for _, cl := range live {
					for cl.q.len() > cl.q.max/2 {
						time.Sleep(10 * time.Microsecond)
					}
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for c.query == "" && c.live > 0 && h.Stats().Sent < wantSent && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/event")
			var liveDrops uint64
			for _, cl := range live {
				liveDrops += cl.dropped.Load()
			}
			b.ReportMetric(float64(liveDrops), "live-dropped")
		})
	}
}
