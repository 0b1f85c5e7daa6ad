package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/tap"
)

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, ExitUsage, "want one SOURCE"},
		{[]string{"stats"}, ExitUsage, "want one SOURCE"},
		{[]string{"tcp://a:1", "tcp://b:1"}, ExitUsage, "want one SOURCE"},
		{[]string{"tcp://a:1", "--format", "xml"}, ExitUsage, "--format"},
		{[]string{"tcp://a:1", "--stream", "[x"}, ExitUsage, "stream glob"},
		{[]string{"tcp://a:1", "--match", "nope"}, ExitUsage, "field=value"},
		{[]string{"tcp://a:1", "--sample", "1/0"}, ExitUsage, "sample"},
		{[]string{"http://a:1"}, ExitUsage, "ws://"},
		{[]string{"tcp://a:1", "-o", "x.gz", "--format", "raw"}, ExitUsage, "JSON lines"},
		{[]string{"stats", "tcp://a:1", "--unique", "bogus"}, ExitUsage, "--unique"},
		{[]string{"--help"}, ExitOK, "Exit codes"},
	} {
		var stderr bytes.Buffer
		code := Main(context.Background(), c.args, &bytes.Buffer{}, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%q: exit %d (want %d), stderr %q lacks %q", c.args, code, c.code, stderr.String(), c.msg)
		}
	}
}

func startHubServer(t *testing.T) (*tap.Hub, string) {
	h := tap.NewHub(tap.HubConfig{}, nil)
	mux := http.NewServeMux()
	mux.Handle("/v1/tap", h.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func testEv(stream string, i int) *event.Event {
	ev := event.New([]byte(fmt.Sprintf(`<11>1 2026-11-22T05:00:00.250Z host1 %s 1 - [u@32473 id="%d"] seq=%d`, stream, i%3, i)))
	ev.Stream = stream
	return ev
}

// runMain runs Main while publishing events to the hub until it returns.
func runMain(t *testing.T, h *tap.Hub, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	done := make(chan int)
	go func() { done <- Main(context.Background(), args, &stdout, &stderr) }()
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		select {
		case code := <-done:
			return code, stdout.String(), stderr.String()
		case <-deadline:
			t.Fatalf("tap %q did not finish", args)
		default:
		}
		if h.Stats().Clients > 0 {
			h.Publish(testEv([]string{"click", "view"}[i%2], i))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOutputFileGzip(t *testing.T) {
	h, url := startHubServer(t)
	out := filepath.Join(t.TempDir(), "events.jsonl.gz")
	code, stdout, stderr := runMain(t, h, url, "--stream", "view", "--limit", "10", "-o", out)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "wrote 10 events") {
		t.Errorf("stderr %q", stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	n := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["stream"] != "view" {
			t.Fatalf("line %d: %q (%v)", n, sc.Text(), err)
		}
		n++
	}
	if n != 10 {
		t.Errorf("%d lines in %s, want 10", n, out)
	}
}

func TestPrettyAndRawOverWebsocket(t *testing.T) {
	h, url := startHubServer(t)
	code, stdout, stderr := runMain(t, h, url, "--format", "pretty", "--limit", "4", "--match", "sd:u@32473.id=1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines: %q", len(lines), stdout)
	}
	for _, l := range lines {
		// time(12) stream(14) host(16) app(14) severity(5) message
		if l[:13] != "05:00:00.250Z"[:12]+" " || !strings.Contains(l, " host1 ") || !strings.Contains(l, "ERR   seq=") {
			t.Errorf("pretty line %q", l)
		}
	}
	if strings.Index(lines[0], "host1") != strings.Index(lines[1], "host1") {
		t.Errorf("columns not aligned:\n%s", stdout)
	}
	code, stdout, _ = runMain(t, h, url, "--format", "raw", "--limit", "3", "--stream", "click")
	if code != 0 || strings.Count(stdout, "<11>1 2026-11-22T05:00:00.250Z host1 click 1 ") != 3 {
		t.Errorf("raw: exit %d, %q", code, stdout)
	}
}

func TestStatsOverWebsocket(t *testing.T) {
	h, url := startHubServer(t)
	code, stdout, stderr := runMain(t, h, "stats", url, "--limit", "300", "--unique", "sd:u@32473.id", "--top", "app-name", "--interval", "50ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sum := stdout[strings.LastIndex(stdout, "summary:"):]
	for _, want := range []string{"STREAM", "UNIQUE sd:u@32473.id", "TOTAL", "click", "view", "app-name: click=150", "app-name: view=150"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	for _, l := range strings.Split(sum, "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && (f[0] == "click" || f[0] == "view") && (f[1] != "150" || f[5] != "3") {
			t.Errorf("row %q: want 150 events, 3 unique", l)
		}
	}
}
