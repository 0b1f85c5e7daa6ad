package tap

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/event"
)

const chromiumBin = "/usr/bin/chromium"

// cdp is a minimal Chrome DevTools Protocol client on one page target.
type cdp struct {
	t  *testing.T
	ws *websocket.Conn
	id int
}

func (c *cdp) call(method string, params any) json.RawMessage {
	c.t.Helper()
	c.id++
	if err := c.ws.WriteJSON(map[string]any{"id": c.id, "method": method, "params": params}); err != nil {
		c.t.Fatalf("cdp %s: %v", method, err)
	}
	for {
		c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := c.ws.ReadJSON(&resp); err != nil {
			c.t.Fatalf("cdp %s: %v", method, err)
		}
		if resp.ID != c.id {
			continue // an event
		}
		if resp.Error != nil {
			c.t.Fatalf("cdp %s: %s", method, resp.Error.Message)
		}
		return resp.Result
	}
}

// eval runs a JavaScript expression in the page and returns its JSON value.
func (c *cdp) eval(expr string) json.RawMessage {
	c.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails any `json:"exceptionDetails"`
	}
	raw := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err := json.Unmarshal(raw, &r); err != nil || r.ExceptionDetails != nil {
		c.t.Fatalf("eval %s: %s", expr, raw)
	}
	return r.Result.Value
}

func (c *cdp) evalInt(expr string) int {
	var n int
	json.Unmarshal(c.eval(expr), &n)
	return n
}

// startChromium launches headless Chromium and connects to its first page.
func startChromium(t *testing.T) *cdp {
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Fatalf("web page test needs %s: apt-get install chromium (%v)", chromiumBin, err)
	}
	profile, err := os.MkdirTemp("", "tapchromium")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromiumBin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--remote-debugging-port=0", "--window-size=1280,900", "about:blank")
	// Its own process group: Chromium's helpers must go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		// Helpers may still be exiting; retry briefly.
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var browserURL string
	select {
	case browserURL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not print its DevTools URL within 30s")
	}
	host := strings.Split(strings.TrimPrefix(browserURL, "ws://"), "/")[0]
	var pageURL string
	eventually(t, 10*time.Second, "chromium lists a page target", func() bool {
		resp, err := http.Get("http://" + host + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var targets []struct{ Type, WebSocketDebuggerURL string }
		json.NewDecoder(resp.Body).Decode(&targets)
		for _, tg := range targets {
			if tg.Type == "page" {
				pageURL = tg.WebSocketDebuggerURL
				return true
			}
		}
		return false
	})
	ws, _, err := websocket.DefaultDialer.Dial(pageURL, nil)
	if err != nil {
		t.Fatalf("connect to the page target: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return &cdp{t: t, ws: ws}
}

// The web page connects, shows the chosen stream's events, pauses and
// resumes; a screenshot is saved as an artifact.
func TestWebPageChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("headless chromium: skipped with -short")
	}
	h := NewHub(HubConfig{Token: "webtok"}, nil)
	mux := http.NewServeMux()
	mux.Handle("/v1/tap", h.Handler())
	mux.Handle("/", h.WebHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Close()

	c := startChromium(t)
	c.call("Page.enable", nil)
	c.call("Page.navigate", map[string]any{"url": srv.URL + "/?stream=click&token=webtok"})
	eventually(t, 15*time.Second, "the page says live", func() bool {
		return string(c.eval(`(document.getElementById("status")||{}).textContent||""`)) == `"live"`
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
	rows := func() int { return c.evalInt(`document.querySelectorAll("#events tr").length`) }
	received := func() int { return c.evalInt(`parseInt(document.getElementById("count").textContent)`) }

	publish(20)
	eventually(t, 10*time.Second, "20 click rows shown", func() bool { return rows() == 20 })
	var streams []string
	json.Unmarshal(c.eval(`[...document.querySelectorAll("#events tr")].map(r => r.dataset.stream)`), &streams)
	for i, s := range streams {
		if s != "click" {
			t.Fatalf("row %d shows stream %q; the page asked for click", i, s)
		}
	}

	c.eval(`document.getElementById("pause").click()`)
	publish(15)
	eventually(t, 10*time.Second, "the paused page counts 35 events", func() bool { return received() == 35 })
	if n := rows(); n != 20 {
		t.Fatalf("paused page shows %d rows, want still 20", n)
	}
	c.eval(`document.getElementById("pause").click()`)
	publish(5)
	eventually(t, 10*time.Second, "the resumed page shows 25 rows", func() bool { return rows() == 25 })

	// A burst the page cannot take: the drop indicator turns on. One
	// batch of 5x the client's queue: event by event, a quick writer could
	// keep up and drop nothing.
	burst := make([]*event.Event, 5*DefaultQueueLen)
	for i := range burst {
		burst[i] = testEvent("click", 100000+i, "u")
	}
	h.PublishBatch(burst)
	eventually(t, 10*time.Second, "the drop indicator shows drops", func() bool {
		var d struct{ Class, Text string }
		json.Unmarshal(c.eval(`({Class: document.getElementById("drops").className, Text: document.getElementById("drops").textContent})`), &d)
		return d.Class == "drops bad" && d.Text != "drops 0"
	})

	// Let a rates notice draw the chart, then keep the picture.
	eventually(t, 10*time.Second, "the rate chart has a legend", func() bool {
		publish(5)
		return c.evalInt(`document.querySelectorAll("#legend span").length`) >= 2
	})
	var shot struct{ Data string }
	json.Unmarshal(c.call("Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
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
