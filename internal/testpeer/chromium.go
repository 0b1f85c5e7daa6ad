package testpeer

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ChromiumBin is where Debian's chromium package installs the browser.
const ChromiumBin = "/usr/bin/chromium"

// CDP is a minimal Chrome DevTools Protocol client on one page target of
// a headless Chromium.
type CDP struct {
	t  testing.TB
	ws *websocket.Conn
	id int
}

// Call sends one CDP command and returns its result.
func (c *CDP) Call(method string, params any) json.RawMessage {
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

// Eval runs a JavaScript expression in the page and returns its JSON value.
func (c *CDP) Eval(expr string) json.RawMessage {
	c.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails any `json:"exceptionDetails"`
	}
	raw := c.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err := json.Unmarshal(raw, &r); err != nil || r.ExceptionDetails != nil {
		c.t.Fatalf("eval %s: %s", expr, raw)
	}
	return r.Result.Value
}

// EvalInt is Eval for an integer.
func (c *CDP) EvalInt(expr string) int {
	var n int
	json.Unmarshal(c.Eval(expr), &n)
	return n
}

// StartChromium launches headless Chromium (with extra command-line
// arguments, e.g. --host-resolver-rules) and connects to its first page;
// it is killed when the test ends. A missing chromium fails the test.
func StartChromium(t testing.TB, extra ...string) *CDP {
	if _, err := os.Stat(ChromiumBin); err != nil {
		t.Fatalf("this test needs %s: apt-get install chromium (%v)", ChromiumBin, err)
	}
	profile, err := os.MkdirTemp("", "tapchromium")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--remote-debugging-port=0", "--window-size=1280,900"}
	cmd := exec.Command(ChromiumBin, append(append(args, extra...), "about:blank")...)
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
	Eventually(t, 10*time.Second, Text("chromium lists a page target"), func() bool {
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
	return &CDP{t: t, ws: ws}
}
