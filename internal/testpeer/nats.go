package testpeer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSInstall is what to install when nats-server is missing.
const NATSInstall = "apt-get install nats-server (Debian's 2.9.10 or later)"

// NATS is a nats-server with JetStream run by a test in its own temporary
// directory, on free loopback ports. Kill, Stop (SIGSTOP), Cont and
// Restart act on the real process.
type NATS struct {
	t       testing.TB
	Name    string
	Port    int
	Cluster int // cluster port, 0 when alone
	Dir     string
	conf    string
	head    string // the config's first lines (listen, cluster)
	mu      sync.Mutex
	cmd     *exec.Cmd
	out     *SyncBuffer
	exited  chan struct{}
}

// NATSOptions configure StartNATS.
type NATSOptions struct {
	// Extra is appended to the server's config file (authorization, limits).
	Extra string
}

// URL is the server's client URL.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// StartNATS starts one nats-server with JetStream (file store in a temp
// dir). The server is killed when the test ends.
func StartNATS(t testing.TB, o NATSOptions) *NATS {
	t.Helper()
	Need(t, "nats-server", NATSInstall)
	ports := FreePorts(t, 1)
	n := &NATS{t: t, Name: "n1", Port: ports[0], Dir: t.TempDir()}
	n.writeConf(fmt.Sprintf("listen: 127.0.0.1:%d\nserver_name: n1\n", n.Port), o.Extra)
	n.start()
	n.WaitReady()
	return n
}

// StartNATSCluster starts n servers clustered with each other (JetStream
// needs 3 for an R3 stream), and waits until each accepts clients.
func StartNATSCluster(t testing.TB, count int, o NATSOptions) []*NATS {
	t.Helper()
	Need(t, "nats-server", NATSInstall)
	ports := FreePorts(t, 2*count)
	var routes []string
	for i := 0; i < count; i++ {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[count+i]))
	}
	var ns []*NATS
	for i := 0; i < count; i++ {
		n := &NATS{t: t, Name: fmt.Sprintf("n%d", i+1), Port: ports[i], Cluster: ports[count+i], Dir: t.TempDir()}
		n.writeConf(fmt.Sprintf("listen: 127.0.0.1:%d\nserver_name: %s\ncluster {\n  name: relaytest\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
			n.Port, n.Name, n.Cluster, strings.Join(routes, ", ")), o.Extra)
		n.start()
		ns = append(ns, n)
	}
	for _, n := range ns {
		n.WaitReady()
	}
	return ns
}

// URLs joins the client URLs of servers.
func URLs(ns []*NATS) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.URL())
	}
	return out
}

func (n *NATS) writeConf(head, extra string) {
	n.head = head
	n.conf = filepath.Join(n.Dir, "nats.conf")
	body := head + fmt.Sprintf("jetstream {\n  store_dir: %q\n  max_memory_store: 64MB\n  max_file_store: 4GB\n}\n", filepath.Join(n.Dir, "js")) + extra + "\n"
	if err := os.WriteFile(n.conf, []byte(body), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

func (n *NATS) start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.out = &SyncBuffer{}
	cmd := exec.Command("nats-server", "-c", n.conf)
	cmd.Stdout, cmd.Stderr = n.out, n.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start nats-server: %v (%s)", err, NATSInstall)
	}
	n.cmd = cmd
	exited := make(chan struct{})
	n.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	n.t.Cleanup(func() {
		n.mu.Lock()
		c, ex := n.cmd, n.exited
		n.mu.Unlock()
		if c == cmd {
			c.Process.Signal(syscall.SIGCONT)
			c.Process.Kill()
			<-ex
		}
	})
}

// WaitReady waits until the server accepts TCP connections.
func (n *NATS) WaitReady() {
	n.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		n.mu.Lock()
		ex := n.exited
		n.mu.Unlock()
		select {
		case <-ex:
			n.t.Fatalf("nats-server %s exited: %s", n.Name, n.Output())
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("nats-server %s not listening after 20s: %s", n.Name, n.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is what the server logged.
func (n *NATS) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// Kill sends SIGKILL and waits for the process to end.
func (n *NATS) Kill() {
	n.mu.Lock()
	c, ex := n.cmd, n.exited
	n.mu.Unlock()
	c.Process.Signal(syscall.SIGCONT)
	c.Process.Kill()
	<-ex
}

// Stop freezes the server (SIGSTOP): its sockets stay open, nothing answers.
// It returns once every thread of the server is stopped: kill(2) only
// queues the signal, and on a loaded machine a running thread went on
// answering for a few ms (a test saw 150 events confirmed "after" Stop).
func (n *NATS) Stop() {
	n.cmd.Process.Signal(syscall.SIGSTOP)
	waitStopped(n.t, n.cmd.Process.Pid)
}

// waitStopped waits until every thread of pid is in state T (stopped),
// as /proc/PID/task/TID/stat says.
func waitStopped(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of %d: %v", pid, err)
		}
		running := 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // a thread that ended
			}
			// The state follows the command's closing parenthesis.
			if i := strings.LastIndexByte(string(b), ')'); i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				running++
			}
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d threads of %d not stopped 10 s after SIGSTOP", running, len(tasks), pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// Cont resumes a stopped server.
func (n *NATS) Cont() { n.cmd.Process.Signal(syscall.SIGCONT) }

// Reconfigure rewrites the server's config with extra in place of
// NATSOptions.Extra and reloads it (SIGHUP), as an operator changing users
// or permissions does; it returns once the server logged the reload.
func (n *NATS) Reconfigure(extra string) {
	n.t.Helper()
	if n.head == "" {
		n.t.Fatal("Reconfigure: the server was started on a config of the test's own")
	}
	before := strings.Count(n.Output(), "Reloaded")
	n.writeConf(n.head, extra)
	n.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(n.Output(), "Reloaded") == before {
		if time.Now().After(deadline) {
			n.t.Fatalf("nats-server %s did not reload: %s", n.Name, n.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart starts the server again on the same ports and store after Kill.
func (n *NATS) Restart() {
	n.t.Helper()
	n.start()
	n.WaitReady()
}

// StartNATSConf starts nats-server on a config file of the test's own
// that listens on 127.0.0.1:port.
func StartNATSConf(t testing.TB, conf string, port int) *NATS {
	t.Helper()
	Need(t, "nats-server", NATSInstall)
	n := &NATS{t: t, Name: "n1", Port: port, Dir: filepath.Dir(conf), conf: conf}
	n.start()
	n.WaitReady()
	return n
}
