package zmq

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

const python = testpeer.Python

// zpeer is a libzmq peer (testdata/zpeer.py under /usr/bin/python3 with
// pyzmq) driven over its stdin.
type zpeer struct {
	t        *testing.T
	cmd      *exec.Cmd
	in       io.WriteCloser
	Endpoint string

	mu     sync.Mutex
	msgs   []string      // "MSG" payloads in arrival order
	events []string      // "EVENT" lines (--monitor): name and value
	ok     chan struct{} // one per "OK"
	cnt    chan string
	done   chan struct{}
}

// needLibzmq fails (never skips) when the real peer is missing.
func needLibzmq(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real libzmq peer test; skipped with -short")
	}
	testpeer.NeedPyzmq(t)
}

func startZpeer(t *testing.T, args ...string) *zpeer {
	t.Helper()
	needLibzmq(t)
	cmd := exec.Command(python, append([]string{"testdata/zpeer.py"}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	z := &zpeer{t: t, cmd: cmd, in: in, ok: make(chan struct{}, 100), cnt: make(chan string, 10), done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(z.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "READY "):
				ready <- strings.TrimPrefix(line, "READY ")
			case strings.HasPrefix(line, "MSG "):
				z.mu.Lock()
				z.msgs = append(z.msgs, strings.TrimPrefix(line, "MSG "))
				z.mu.Unlock()
			case strings.HasPrefix(line, "EVENT "):
				z.mu.Lock()
				z.events = append(z.events, strings.TrimPrefix(line, "EVENT "))
				z.mu.Unlock()
			case line == "OK":
				z.ok <- struct{}{}
			case strings.HasPrefix(line, "COUNT "):
				z.cnt <- strings.TrimPrefix(line, "COUNT ")
			}
		}
	}()
	t.Cleanup(z.stop)
	select {
	case z.Endpoint = <-ready:
	case <-z.done:
		t.Fatalf("zpeer %v exited before READY", args)
	case <-time.After(20 * time.Second):
		t.Fatalf("zpeer %v: no READY", args)
	}
	return z
}

// do runs one command and waits for its OK.
func (z *zpeer) do(line string) {
	z.t.Helper()
	if _, err := io.WriteString(z.in, line+"\n"); err != nil {
		z.t.Fatalf("zpeer %q: %v", line, err)
	}
	select {
	case <-z.ok:
	case <-z.done:
		z.t.Fatalf("zpeer exited during %q", line)
	case <-time.After(30 * time.Second):
		z.t.Fatalf("zpeer: %q did not finish", line)
	}
}

// received returns a copy of the messages printed so far.
func (z *zpeer) received() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]string(nil), z.msgs...)
}

func (z *zpeer) count() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return len(z.msgs)
}

// stop closes stdin (the peer closes its socket and exits) and reaps it.
func (z *zpeer) stop() {
	if z.in == nil {
		return
	}
	z.in.Close()
	z.in = nil
	select {
	case <-z.done:
	case <-time.After(10 * time.Second):
		z.cmd.Process.Kill()
	}
	z.cmd.Wait()
}

// eventCount counts the monitor events (--monitor) whose name and value
// start with prefix.
func (z *zpeer) eventCount(prefix string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	n := 0
	for _, e := range z.events {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// eventLog returns the monitor events so far, for failure messages.
func (z *zpeer) eventLog() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]string(nil), z.events...)
}
