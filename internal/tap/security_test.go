package tap

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// A filter over the limits is refused when it is built, with what the
// limit is; one at the limits is taken.
func TestFilterLimits(t *testing.T) {
	many := func(n int, f func(i int) string) []string {
		var out []string
		for i := range n {
			out = append(out, f(i))
		}
		return out
	}
	for _, tc := range []struct {
		name            string
		streams, match  []string
		grep            string
		refused, reason string
	}{
		{name: "the review's 900 KB glob", streams: []string{strings.Repeat("a*", 450000)}, refused: "stream glob of 900000 bytes: the limit is 256"},
		{name: "too many globs", streams: many(MaxStreams+1, func(i int) string { return fmt.Sprint("s", i) }), refused: "33 stream globs: the limit is 32"},
		{name: "too many matches", match: many(MaxMatches+1, func(i int) string { return fmt.Sprint("app-name=", i) }), refused: "17 match conditions: the limit is 16"},
		{name: "long match", match: []string{"app-name=" + strings.Repeat("x", MaxMatchLen)}, refused: "match of 1033 bytes: the limit is 1024"},
		{name: "the review's costly grep", grep: `(?:.{0,1000})+z`, refused: "compiles to 2004 instructions, the limit is 1000"},
		{name: "long grep", grep: strings.Repeat("a", MaxGrepLen+1), refused: "grep of 1025 bytes: the limit is 1024"},
		{name: "costly regex field", match: []string{`regex:(.{0,900}x)=1`}, refused: "the limit is 1000"},
		{name: "at the limits",
			streams: many(MaxStreams, func(i int) string { return fmt.Sprintf("%03d*%s", i, strings.Repeat("?", MaxGlobLen-4)) }),
			match:   many(MaxMatches, func(i int) string { return "app-name=" + strings.Repeat("v", MaxMatchLen-9) }),
			grep:    `(a|b|c)+[0-9]{1,50}z`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFilter(tc.streams, tc.match, tc.grep, 1)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused a filter at the limits: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadFilter) || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("got %v (%v), want ErrBadFilter saying %q", f, err, tc.refused)
			}
		})
	}
}

// grep looks at the first MaxGrepInput bytes of an event only.
func TestGrepInputBounded(t *testing.T) {
	f, err := NewFilter(nil, nil, "needle", 1)
	if err != nil {
		t.Fatal(err)
	}
	near := event.New([]byte("<14>1 - h a - - - " + strings.Repeat("x", 1000) + "needle"))
	far := event.New([]byte("<14>1 - h a - - - " + strings.Repeat("x", MaxGrepInput) + "needle"))
	if !f.MatchEvent(near) || f.MatchEvent(far) {
		t.Errorf("grep: near %v far %v; want true, false", f.MatchEvent(near), f.MatchEvent(far))
	}
}

// rawUpgrade sends a websocket upgrade request over c with the given
// Origin and Host and returns the HTTP status.
func rawUpgrade(t *testing.T, c net.Conn, path, host, origin string) (int, *bufio.Reader) {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	c.SetDeadline(time.Time{})
	return resp.StatusCode, br
}

// Only the hub's own pages (Origin's host is the Host asked for), listed
// origins and clients that send no Origin (not a browser) may open the
// tap; any other web page is refused with 403 and counted.
func TestHubOrigin(t *testing.T) {
	h, wsURL := startHub(t, HubConfig{AllowedOrigins: []string{"https://dash.example.com"}})
	u, _ := url.Parse(wsURL)
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols},
		{"http://" + u.Host, http.StatusSwitchingProtocols},
		{"https://dash.example.com", http.StatusSwitchingProtocols},
		{"http://evil.example", http.StatusForbidden},
		{"https://dash.example.com.evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
	} {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := rawUpgrade(t, c, "/v1/tap", u.Host, tc.origin)
		c.Close()
		if code != tc.want {
			t.Errorf("Origin %q: HTTP %d, want %d", tc.origin, code, tc.want)
		}
	}
	if n := h.Stats().OriginRefused; n != 3 {
		t.Errorf("OriginRefused = %d, want 3", n)
	}
}

// The review's attack: 64 clients that never read held every slot (the
// 65th got 503, still 45 s later) and 16 of them held 793 MB. Now a
// client that stops reading is closed once a write or a pong is overdue,
// its slot goes to the next client, and while it is stalled its queue
// holds at most QueueBytes.
func TestHubStalledClientClosed(t *testing.T) {
	const (
		ping       = 300 * time.Millisecond
		writeLimit = 500 * time.Millisecond
		queueBytes = 1 << 20
	)
	h, wsURL := startHub(t, HubConfig{MaxClients: 1, QueueBytes: queueBytes, WriteTimeout: writeLimit, PingInterval: ping})
	u, _ := url.Parse(wsURL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A small receive buffer, so the relay's writes block soon.
	c.(*net.TCPConn).SetReadBuffer(4096)
	if code, _ := rawUpgrade(t, c, "/v1/tap?format=raw", u.Host, ""); code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	waitClients(t, h, 1)
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL+"/v1/tap", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a second client while the slot is taken: %v %v, want 503", resp, err)
	}

	// 32 KB events, as in the review, until the client is gone.
	pad := strings.Repeat("p", 32<<10)
	start := time.Now()
	var maxQueued int64
	for i := 0; h.Stats().Clients > 0; i++ {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the stalled client is still connected after %v", time.Since(start))
		}
		h.PublishBatch([]*event.Event{testEvent("click", i, pad), testEvent("click", i, pad)})
		if cs := *h.clients.Load(); len(cs) > 0 {
			maxQueued = max(maxQueued, cs[0].q.size())
		}
		time.Sleep(time.Millisecond)
	}
	closedAfter := time.Since(start)
	st := h.Stats()
	t.Logf("measured: a client that never reads was closed %v after events started (write timeout %v, ping %v); its queue held at most %d KiB (limit %d KiB); %d events dropped for it",
		closedAfter.Round(time.Millisecond), writeLimit, ping, maxQueued>>10, queueBytes>>10, st.Dropped)
	if closedAfter > ping+2*writeLimit+time.Second {
		t.Errorf("closed after %v, want within about %v", closedAfter, ping+2*writeLimit)
	}
	if maxQueued > queueBytes {
		t.Errorf("queue held %d bytes, over its %d-byte limit", maxQueued, queueBytes)
	}
	if st.TimedOut != 1 {
		t.Errorf("TimedOut = %d, want 1", st.TimedOut)
	}
	// The slot is free: a new client gets in and gets events.
	nc := dial(t, wsURL+"/v1/tap?format=raw", nil)
	waitClients(t, h, 1)
	h.Publish(testEvent("click", 1, "after"))
	if b := readMsg(t, nc); !strings.HasSuffix(string(b), "message 1") {
		t.Fatalf("the new client got %q", b)
	}
}

// A client that neither reads nor writes, with no events to block a
// write on, is closed when its pong is overdue.
func TestHubSilentClientClosedByPing(t *testing.T) {
	const ping, writeLimit = 200 * time.Millisecond, 300 * time.Millisecond
	h, wsURL := startHub(t, HubConfig{MaxClients: 1, WriteTimeout: writeLimit, PingInterval: ping})
	u, _ := url.Parse(wsURL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, _ := rawUpgrade(t, c, "/v1/tap", u.Host, ""); code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	waitClients(t, h, 1)
	start := time.Now()
	eventually(t, 10*time.Second, "the silent client closed", func() bool { return h.Stats().Clients == 0 })
	took := time.Since(start)
	t.Logf("measured: a silent client (no pongs) was closed after %v (ping %v + write timeout %v)", took.Round(time.Millisecond), ping, writeLimit)
	if took > ping+writeLimit+time.Second || h.Stats().TimedOut != 1 {
		t.Errorf("closed after %v, timed out %d; want within %v and 1", took, h.Stats().TimedOut, ping+writeLimit)
	}
}

// A client that reads (and so answers pings) stays connected across many
// ping intervals with nothing to read but pings.
func TestHubPingKeepsReaderAlive(t *testing.T) {
	h, wsURL := startHub(t, HubConfig{WriteTimeout: 200 * time.Millisecond, PingInterval: 100 * time.Millisecond})
	c := dial(t, wsURL+"/v1/tap?format=raw", nil)
	pings := 0
	c.SetPingHandler(func(data string) error {
		pings++
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	waitClients(t, h, 1)
	go func() {
		for {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	if n := h.Stats().Clients; n != 1 || h.Stats().TimedOut != 0 {
		t.Fatalf("a reading client was closed: clients %d, timed out %d", n, h.Stats().TimedOut)
	}
	h.Publish(testEvent("click", 7, "x"))
	eventually(t, 5*time.Second, "event sent", func() bool { return h.Stats().Sent == 1 })
}

// A client whose filter costs more than its CPU share skips events
// (counted as dropped and throttled) instead of using more.
func TestHubFilterCPUShare(t *testing.T) {
	h, wsURL := startHub(t, HubConfig{FilterCPU: 0.02, QueueLen: 1 << 16, QueueBytes: 1 << 30})
	// A grep near the limits on 60 KB events: each costs milliseconds.
	q := url.Values{"grep": {`(a|b|c|d|e|f|g|h|i|j)+[0-9]{1,40}zq`}, "format": {"raw"}}
	c := dial(t, wsURL+"/v1/tap?"+q.Encode(), nil)
	waitClients(t, h, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	pad := strings.Repeat("abcdefghij0123456789", 3000)
	var evs []*event.Event
	for i := range 2000 {
		evs = append(evs, testEvent("s", i, pad))
	}
	start := time.Now()
	for i := 0; i < len(evs); i += 100 {
		h.PublishBatch(evs[i : i+100])
	}
	publish := time.Since(start)
	eventually(t, 20*time.Second, "events skipped over the CPU share", func() bool { return h.Stats().Throttled > 0 })
	st := h.Stats()
	t.Logf("measured: 2000 events of 60 KB to a tap with a costly grep: publishing took %v (the grep runs on the tap's goroutine); %d skipped over its 2%% CPU share", publish, st.Throttled)
	if st.Dropped < st.Throttled {
		t.Errorf("throttled %d not counted in dropped %d", st.Throttled, st.Dropped)
	}
}
