package testpeer

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// peerScript is peer.py, embedded so that tests in any directory run the
// same peer without a relative path to it.
//
//go:embed peer.py
var peerScript string

// Peer is a libzmq (pyzmq) PULL or SUB socket (peer.py) that records every
// message it receives. Unlike Pull it ends gracefully: Stop closes its
// stdin, and it closes its socket and exits.
type Peer struct {
	// Endpoint is where the socket is bound or connected; for a bind to
	// "tcp://host:0" it has the port the socket got.
	Endpoint string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	errb  *SyncBuffer
	stop  sync.Once

	mu   sync.Mutex
	msgs [][]string
}

// StartPeer runs a pyzmq socket of mode "pull", or "sub" subscribed to the
// topic prefixes in topics (every topic when none), on endpoint:
// ">tcp://host:port" connects, "tcp://host:0" binds a free port, anything
// else binds. It returns once the socket is set up; the peer stops when
// the test ends.
func StartPeer(t testing.TB, mode, endpoint string, topics ...string) *Peer {
	t.Helper()
	NeedPyzmq(t)
	p := &Peer{done: make(chan struct{}), errb: &SyncBuffer{}}
	p.cmd = exec.Command(Python, append([]string{"-u", "-c", peerScript, mode, endpoint}, topics...)...)
	p.cmd.Stderr = p.errb
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pyzmq %s: %v", mode, err)
	}
	t.Cleanup(p.Stop)
	sc := bufio.NewScanner(stdout)
	// One JSON line per message: the default 64 KiB token limit would end
	// the scan at the first long message.
	sc.Buffer(make([]byte, 1<<20), 32<<20)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY ") {
		close(p.done)
		p.Stop()
		t.Fatalf("pyzmq %s on %s did not start: %s", mode, endpoint, p.errb.String())
	}
	p.Endpoint = strings.TrimPrefix(sc.Text(), "READY ")
	go func() {
		defer close(p.done)
		for sc.Scan() {
			var frames []string
			if err := json.Unmarshal(sc.Bytes(), &frames); err != nil {
				continue
			}
			p.mu.Lock()
			p.msgs = append(p.msgs, frames)
			p.mu.Unlock()
		}
	}()
	return p
}

// Stop closes the peer's stdin, which ends it, and waits for it; a peer
// that has not exited after 5 s is killed.
func (p *Peer) Stop() {
	p.stop.Do(func() {
		_ = p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		_ = p.cmd.Wait()
	})
}

// Count is how many messages arrived so far.
func (p *Peer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// Messages returns a copy of the messages so far, each as its frames.
func (p *Peer) Messages() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]string(nil), p.msgs...)
}

// Since returns a copy of the messages from the i-th on (none when fewer
// than i arrived), so a poller can take only what is new.
func (p *Peer) Since(i int) [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.msgs) {
		return nil
	}
	return append([][]string(nil), p.msgs[i:]...)
}

// PushLines sends each line as a one-frame message from a pyzmq PUSH
// socket on endpoint (connected, with or without a leading ">") and
// returns once the socket has flushed them all (LINGER, context term).
func PushLines(t testing.TB, endpoint string, lines []string) {
	t.Helper()
	NeedPyzmq(t)
	cmd := exec.Command(Python, "-u", "-c", peerScript, "push", ">"+strings.TrimPrefix(endpoint, ">"))
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("SENT %d", len(lines))) {
		t.Fatalf("pyzmq PUSH to %s: %v: %s", endpoint, err, out)
	}
}
