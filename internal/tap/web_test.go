package tap

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// The web page connects, shows the chosen stream's events, pauses and
// resumes; a screenshot is saved as an artifact.
func TestWebPageChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("headless chromium: skipped with -short")
	}
	// A small queue: the burst below must overflow it, and the page
	// renders every queued event before it hears of the drops (with the
	// default 4096, 6-10 s under -race on a loaded 2-core machine).
	const queueLen = 512
	h := NewHub(HubConfig{Token: "webtok", QueueLen: queueLen}, nil)
	mux := http.NewServeMux()
	mux.Handle("/v1/tap", h.Handler())
	mux.Handle("/", h.WebHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Close()

	c := testpeer.StartChromium(t)
	c.Call("Page.enable", nil)
	c.Call("Page.navigate", map[string]any{"url": srv.URL + "/?stream=click&token=webtok"})
	eventually(t, 15*time.Second, "the page says live", func() bool {
		return string(c.Eval(`(document.getElementById("status")||{}).textContent||""`)) == `"live"`
	})
	waitClients(t, h, 1)

	seq := 0
	publish := func(n int) {
		for range n {
			for _, s := range []string{"click", "view"} {
				h.Publish(testEvent(s, seq, "u"))
				seq++
			}
		}
	}
	rows := func() int { return c.EvalInt(`document.querySelectorAll("#events tr").length`) }
	received := func() int { return c.EvalInt(`parseInt(document.getElementById("count").textContent)`) }

	publish(20)
	eventually(t, 10*time.Second, "20 click rows shown", func() bool { return rows() == 20 })
	var streams []string
	json.Unmarshal(c.Eval(`[...document.querySelectorAll("#events tr")].map(r => r.dataset.stream)`), &streams)
	for i, s := range streams {
		if s != "click" {
			t.Fatalf("row %d shows stream %q; the page asked for click", i, s)
		}
	}

	c.Eval(`document.getElementById("pause").click()`)
	publish(15)
	eventually(t, 10*time.Second, "the paused page counts 35 events", func() bool { return received() == 35 })
	if n := rows(); n != 20 {
		t.Fatalf("paused page shows %d rows, want still 20", n)
	}
	c.Eval(`document.getElementById("pause").click()`)
	publish(5)
	eventually(t, 10*time.Second, "the resumed page shows 25 rows", func() bool { return rows() == 25 })

	// A burst the page cannot take: the drop indicator turns on. One
	// batch of 5x the client's queue: event by event, a quick writer could
	// keep up and drop nothing.
	burst := make([]*event.Event, 5*queueLen)
	for i := range burst {
		burst[i] = testEvent("click", 100000+i, "u")
	}
	h.PublishBatch(burst)
	eventually(t, 10*time.Second, "the drop indicator shows drops", func() bool {
		var d struct{ Class, Text string }
		json.Unmarshal(c.Eval(`({Class: document.getElementById("drops").className, Text: document.getElementById("drops").textContent})`), &d)
		return d.Class == "drops bad" && d.Text != "drops 0"
	})

	// Let a rates notice draw the chart, then keep the picture.
	eventually(t, 10*time.Second, "the rate chart has a legend", func() bool {
		publish(5)
		return c.EvalInt(`document.querySelectorAll("#legend span").length`) >= 2
	})
	var shot struct{ Data string }
	json.Unmarshal(c.Call("Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	dir := os.Getenv("TAP_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "tap-web.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "web page screenshot: %s\n", path)
}
