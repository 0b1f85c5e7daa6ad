package tap

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/event"
)

func startHub(t *testing.T, cfg HubConfig) (*Hub, string) {
	t.Helper()
	h := NewHub(cfg, nil)
	mux := http.NewServeMux()
	mux.Handle("/v1/tap", h.Handler())
	mux.Handle("/", h.WebHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, code)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClients waits until the hub has registered n clients, so that what
// the test publishes next reaches them.
func waitClients(t *testing.T, h *Hub, n int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("hub has %d clients", n), func() bool { return h.Stats().Clients == n })
}

func readMsg(t *testing.T, c *websocket.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// readEvents reads until n events arrived, skipping notices.
func readEvents(t *testing.T, c *websocket.Conn, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	for len(out) < n {
		var m map[string]any
		b := readMsg(t, c)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("message %q is not JSON: %v", b, err)
		}
		if m["notice"] != nil {
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestHubNoClients(t *testing.T) {
	h, _ := startHub(t, HubConfig{})
	for i := range 10 {
		h.Publish(testEvent("click", i, "1"))
	}
	if s := h.Stats(); s != (HubStats{}) {
		t.Errorf("stats with no clients: %+v", s)
	}
}

// publishModes are the two ways events reach the hub: one by one
// (Publish) and in batches, as the router hands them over (PublishBatch;
// batches of 7 cut the streams' runs unevenly).
var publishModes = []struct {
	name string
	step int
	pub  func(h *Hub, evs []*event.Event)
}{
	{"Publish", 1, func(h *Hub, evs []*event.Event) {
		for _, ev := range evs {
			h.Publish(ev)
		}
	}},
	{"PublishBatch", 7, func(h *Hub, evs []*event.Event) {
		for i := 0; i < len(evs); i += 7 {
			h.PublishBatch(evs[i:min(i+7, len(evs))])
		}
	}},
}

func TestHubFilters(t *testing.T) {
	for _, m := range publishModes {
		t.Run(m.name, func(t *testing.T) { testHubFilters(t, m.pub) })
	}
}

func testHubFilters(t *testing.T, publish func(*Hub, []*event.Event)) {
	// No CPU share: this checks what the filters select, event by event,
	// also under the race detector's slowness.
	h, url := startHub(t, HubConfig{FilterCPU: -1})
	all := dial(t, url+"/v1/tap", nil)
	clicks := dial(t, url+"/v1/tap?stream=click&match=sd:u@32473.id=7&sample=1/2", nil)
	raw := dial(t, url+"/v1/tap?stream=view*&format=raw&grep=message+%5B0-9%5D*5$", nil)
	waitClients(t, h, 3)

	var wantClicks, wantRaw []string
	var evs []*event.Event
	nclick := 0
	for i := range 300 {
		stream, user := "click", "7"
		if i%2 == 1 {
			stream = "view"
		}
		if i%3 == 0 {
			user = "8"
		}
		ev := testEvent(stream, i, user)
		evs = append(evs, ev)
		if stream == "click" && user == "7" {
			if nclick%2 == 0 {
				wantClicks = append(wantClicks, string(ev.Raw))
			}
			nclick++
		}
		if stream == "view" && i%10 == 5 {
			wantRaw = append(wantRaw, string(ev.Raw))
		}
	}
	publish(h, evs)
	got := readEvents(t, all, 300)
	for i, m := range got {
		if want := []string{"click", "view"}[i%2]; m["stream"] != want {
			t.Fatalf("all: event %d stream %v, want %s", i, m["stream"], want)
		}
	}
	got = readEvents(t, clicks, len(wantClicks))
	for i, m := range got {
		if m["stream"] != "click" {
			t.Fatalf("clicks: event %d has stream %v", i, m["stream"])
		}
	}
	for i, w := range wantRaw {
		if b := readMsg(t, raw); string(b) != w {
			t.Fatalf("raw %d: got %q, want %q", i, b, w)
		}
	}
	// Nothing more may arrive on the filtered taps: publish a marker that
	// both accept and check it is the next message.
	marker := testEvent("click", 1000, "7")
	marker.Stream = "click"
	h.Publish(marker)
	h.Publish(marker) // sample 1/2: one of the two passes
	if m := readEvents(t, clicks, 1)[0]; m["message"] != "message 1000" {
		t.Errorf("clicks: after the filtered events got %v, want the marker", m)
	}
	if s := h.Stats(); s.Sent < uint64(300+len(wantClicks)+len(wantRaw)) || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestHubAuth(t *testing.T) {
	h, url := startHub(t, HubConfig{Token: "s3cret"})
	for _, c := range []struct {
		name string
		url  string
		hdr  http.Header
	}{
		{"none", url + "/v1/tap", nil},
		{"wrong query", url + "/v1/tap?token=nope", nil},
		{"wrong bearer", url + "/v1/tap", http.Header{"Authorization": {"Bearer nope"}}},
	} {
		_, resp, err := websocket.DefaultDialer.Dial(c.url, c.hdr)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Errorf("%s: err %v, HTTP %d; want 401", c.name, err, code)
		}
	}
	dial(t, url+"/v1/tap?token=s3cret", nil)
	dial(t, url+"/v1/tap", http.Header{"Authorization": {"Bearer s3cret"}})
	waitClients(t, h, 2)
}

func TestHubBadRequest(t *testing.T) {
	_, url := startHub(t, HubConfig{})
	for _, q := range []string{"stream=%5B", "format=xml", "sample=0", "grep=(", "match=nofield"} {
		_, resp, err := websocket.DefaultDialer.Dial(url+"/v1/tap?"+q, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: err %v, resp %v; want 400", q, err, resp)
		}
	}
}

func TestHubMaxClients(t *testing.T) {
	h, url := startHub(t, HubConfig{MaxClients: 2})
	a := dial(t, url+"/v1/tap", nil)
	dial(t, url+"/v1/tap", nil)
	if n := h.Stats().Clients; n != 2 {
		t.Fatalf("%d clients registered once both dials returned, want 2", n)
	}
	_, resp, err := websocket.DefaultDialer.Dial(url+"/v1/tap", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third client: err %v, resp %v; want 503", err, resp)
	}
	a.Close()
	waitClients(t, h, 1)
	dial(t, url+"/v1/tap", nil) // the slot is free again
	waitClients(t, h, 2)
}

// A client that reads nothing loses events, hears about it once it reads,
// and costs the others nothing.
func TestHubStalledClient(t *testing.T) {
	for _, m := range publishModes {
		t.Run(m.name, func(t *testing.T) { testHubStalledClient(t, m.step, m.pub) })
	}
}

func testHubStalledClient(t *testing.T, step int, publish func(*Hub, []*event.Event)) {
	// No write deadline and no pings: the stalled client must outlast the
	// publishing, which took over 10 s (the default write timeout) under
	// -race on a loaded machine, and the hub closed it.
	h, url := startHub(t, HubConfig{QueueLen: 16, WriteTimeout: -1, PingInterval: -1})
	stalled := dial(t, url+"/v1/tap?format=raw", nil)
	live := dial(t, url+"/v1/tap?format=raw", nil)
	waitClients(t, h, 2)

	const n = 5000
	pad := strings.Repeat("x", 4000) // 20 MB: more than the socket buffers hold
	var wg sync.WaitGroup
	var got atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if !readRaw(t, live, i) {
				return
			}
			got.Add(1)
		}
	}()
	for i := 0; i < n; i += step {
		// Pace the publisher to the live reader: only the stalled client
		// may drop (16 queued at most: 8 behind plus a batch).
		deadline := time.Now().Add(10 * time.Second)
		for int64(i)-got.Load() > 8 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
		}
		var evs []*event.Event
		for k := i; k < min(i+step, n); k++ {
			evs = append(evs, testEvent("click", k, pad))
		}
		publish(h, evs)
	}
	wg.Wait()
	stalledDrops := h.Stats().Dropped
	if stalledDrops == 0 {
		t.Fatal("the stalled client dropped nothing; the test did not stall it")
	}
	// Now read the stalled client: it must get a dropped notice whose total
	// reaches every drop the hub counted.
	var total uint64
	for total < stalledDrops {
		b := readMsg(t, stalled)
		if b[0] != '{' {
			continue
		}
		var notice struct {
			Notice         string
			Dropped, Total uint64
		}
		if err := json.Unmarshal(b, &notice); err != nil || notice.Notice != "dropped" || notice.Dropped == 0 {
			t.Fatalf("bad notice %q: %v", b, err)
		}
		total = notice.Total
	}
	if total != stalledDrops {
		t.Errorf("notice total %d, hub dropped %d", total, stalledDrops)
	}
}

func readRaw(t *testing.T, c *websocket.Conn, i int) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Errorf("live client: read %d: %v", i, err)
		return false
	}
	if !strings.HasSuffix(string(b), fmt.Sprintf(" message %d", i)) {
		t.Errorf("live client: message %d is …%q", i, b[max(0, len(b)-20):])
		return false
	}
	return true
}

func TestHubRates(t *testing.T) {
	for _, m := range publishModes {
		t.Run(m.name, func(t *testing.T) { testHubRates(t, m.pub) })
	}
}

func testHubRates(t *testing.T, publish func(*Hub, []*event.Event)) {
	h, url := startHub(t, HubConfig{})
	c := dial(t, url+"/v1/tap?rates=1&stream=none", nil)
	waitClients(t, h, 1)
	var evs []*event.Event
	for i := range 30 { // a, a, b, c, c, a…: runs of one and two
		evs = append(evs, testEvent([]string{"a", "a", "b", "c", "c", "a"}[i%6], i, "1"))
	}
	publish(h, evs)
	seen := map[string]float64{}
	deadline := time.Now().Add(10 * time.Second)
	for seen["a"]+seen["b"]+seen["c"] < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("rates notices add up to %v after 10s, want a 15, b 5, c 10", seen)
		}
		var n struct {
			Notice  string
			Streams map[string]float64
		}
		if err := json.Unmarshal(readMsg(t, c), &n); err != nil || n.Notice != "rates" {
			t.Fatalf("want a rates notice, got %+v (%v)", n, err)
		}
		for k, v := range n.Streams {
			seen[k] += v
		}
	}
	if seen["a"] != 15 || seen["b"] != 5 || seen["c"] != 10 {
		t.Errorf("rates add up to %v, want a 15, b 5, c 10", seen)
	}
}

func TestHubClose(t *testing.T) {
	h, url := startHub(t, HubConfig{})
	c := dial(t, url+"/v1/tap", nil)
	waitClients(t, h, 1)
	h.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after Close: %v, want close 1001", err)
	}
	if n := h.Stats().Clients; n != 0 {
		t.Errorf("%d clients after Close", n)
	}
	_, resp, err := websocket.DefaultDialer.Dial(url+"/v1/tap", nil)
	if err == nil {
		t.Errorf("dial after Close succeeded (%v)", resp.Status)
	}
}

func TestWebHandler(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	defer h.Close()
	for path, want := range map[string]string{"/": "<canvas id=\"chart\"", "/app.js": "v1/tap", "/style.css": "#chart"} {
		rec := httptest.NewRecorder()
		h.WebHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, rec.Code, want)
		}
	}
}

// PublishBatch queues the prefix of a batch that fits in a client's queue,
// in events and in bytes, and counts the rest as dropped, for the client
// (its in-band notices) and the hub (/metrics), exactly. It does not look
// at the client's filter: the client's writer does, off the router's
// goroutine. The clients here have no connection or writer, so nothing
// drains their queues.
func TestHubPublishBatchDropsExact(t *testing.T) {
	h := NewHub(HubConfig{}, nil) // no Close: its clients have no connection to close
	clicks, err := NewFilter([]string{"click"}, nil, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	all := &client{hub: h, filter: &Filter{}, q: newEvQueue(16, 1<<20)}
	onlyClicks := &client{hub: h, filter: clicks, q: newEvQueue(4, 1<<20)}
	// Room for 5 events of testEvent's size (and their overhead).
	evSize := int64(len(testEvent("click", 0, "1").Raw)) + eventOverhead
	small := &client{hub: h, filter: &Filter{}, q: newEvQueue(100, 5*evSize+evSize/2)}
	h.clients.Store(&[]*client{all, onlyClicks, small})
	h.active.Store(3)

	var batch []*event.Event
	for i := range 30 { // click, click, view, click, click, view…
		batch = append(batch, testEvent([]string{"click", "click", "view"}[i%3], i, "1"))
	}
	h.PublishBatch(batch[:10])
	h.PublishBatch(batch[10:])
	check := func(c *client, name string, queued int, dropped uint64, first []*event.Event) {
		t.Helper()
		if n := c.q.len(); n != queued {
			t.Errorf("%s: %d queued, want %d", name, n, queued)
		}
		if d := c.dropped.Load(); d != dropped {
			t.Errorf("%s: %d dropped, want %d", name, d, dropped)
		}
		var got []*event.Event
		for _, s := range c.q.take(nil) {
			got = append(got, s.events()...)
		}
		if len(got) != len(first) {
			t.Fatalf("%s: took %d events, want %d", name, len(got), len(first))
		}
		for i, ev := range first {
			if got[i] != ev {
				t.Errorf("%s: queued[%d] is %q, want %q", name, i, got[i].Raw, ev.Raw)
			}
		}
	}
	check(all, "all", 16, 14, batch[:16])
	check(onlyClicks, "click", 4, 26, batch[:4])
	check(small, "small", 5, 25, batch[:5])
	if d := h.Stats().Dropped; d != 14+26+25 {
		t.Errorf("hub dropped %d, want 14+26+25", d)
	}
	// Emptied queues take a whole batch again.
	h.PublishBatch(batch[2:3])
	check(all, "all after take", 1, 14, batch[2:3])
	check(onlyClicks, "click after take", 1, 26, batch[2:3])
}
