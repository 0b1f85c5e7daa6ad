package relay

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// The tests in this file use in-process peers (internal/zmq's own
// sockets) instead of libzmq, so `make test-short` runs the relay's data
// path: the inputs' read loops, Relay.handle, the outputs and their sockets.

// parseConfig parses yaml as a relay configuration.
func parseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "relay.yaml")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	return cfg
}

// newRelay is startRelay without the Start, so a test can replace the
// relay's builders first; it is shut down (and its drain checked) when
// the test ends.
func newRelay(t testing.TB, yaml string) *Relay {
	t.Helper()
	r, err := New(parseConfig(t, yaml), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, r) })
	return r
}

// goPeer is an in-process ZeroMQ PULL or SUB socket recording what it
// receives.
type goPeer struct {
	sock interface {
		Recv(context.Context) (zmq.Msg, error)
		Close() error
	}
	mu   sync.Mutex
	msgs []zmq.Msg
	done chan struct{}
}

// goWorker connects a PULL socket to endpoint, as a worker does.
func goWorker(t testing.TB, endpoint string) *goPeer {
	t.Helper()
	p := zmq.NewPull(zmq.Options{RecvHWM: 100000})
	if err := p.Dial(endpoint); err != nil {
		t.Fatal(err)
	}
	return runPeer(t, p)
}

// goSubscriber connects a SUB socket subscribed to every topic.
func goSubscriber(t testing.TB, endpoint string) *goPeer {
	t.Helper()
	s := zmq.NewSub(zmq.Options{RecvHWM: 100000})
	if err := s.Subscribe(""); err != nil {
		t.Fatal(err)
	}
	if err := s.Dial(endpoint); err != nil {
		t.Fatal(err)
	}
	return runPeer(t, s)
}

func runPeer(t testing.TB, sock interface {
	Recv(context.Context) (zmq.Msg, error)
	Close() error
}) *goPeer {
	g := &goPeer{sock: sock, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for {
			m, err := sock.Recv(context.Background())
			if err != nil {
				return
			}
			g.mu.Lock()
			g.msgs = append(g.msgs, m)
			g.mu.Unlock()
		}
	}()
	t.Cleanup(g.stop)
	return g
}

func (g *goPeer) stop() {
	g.sock.Close()
	<-g.done
}

func (g *goPeer) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.msgs)
}

// seqs returns how often each seq number appeared in the last frame.
func (g *goPeer) seqs() map[int]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := map[int]int{}
	for _, msg := range g.msgs {
		m[testpeer.SeqOf(string(msg[len(msg)-1]))]++
	}
	return m
}

// topics returns the first frame of every message.
func (g *goPeer) topics() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ts []string
	for _, msg := range g.msgs {
		ts = append(ts, string(msg[0]))
	}
	return ts
}

// waitSubscribed waits until output name (a PUB) has n subscribers whose
// subscriptions reached it (relay_output_subscribers).
func waitSubscribed(t testing.TB, r *Relay, name string, n int) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text(fmt.Sprintf("%d subscriptions at %s", n, name)), func() bool {
		return metric(t, r, "relay_output_subscribers", "output="+name) >= float64(n)
	})
}

// waitPeers waits until output name has n connected peers.
func waitPeers(t testing.TB, r *Relay, name string, n int) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text(fmt.Sprintf("%d peers at %s", n, name)), func() bool {
		return metric(t, r, "relay_output_peers", "output="+name) == float64(n)
	})
}

func syslogMsg(app string, seq int) string {
	return fmt.Sprintf("<14>1 2026-11-22T05:00:00Z h %s - - - %s", app, testpeer.Seq(seq))
}

// TestDataPathInProcess: events from a TCP syslog connection and from a
// ZeroMQ PUSH peer are routed by stream to a PUSH worker and a PUB
// subscriber, each exactly once, and the counters agree with what arrived.
func TestDataPathInProcess(t *testing.T) {
	r := startRelay(t, `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
  - name: zpull
    type: zmq
    socket: pull
    bind: [tcp://127.0.0.1:0]
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [click, impression]
  - name: taps
    type: zmq
    socket: pub
    bind: tcp://127.0.0.1:0
http:
  listen: ""
`)
	worker := goWorker(t, outputEndpoint(t, r, "workers"))
	sub := goSubscriber(t, outputEndpoint(t, r, "taps"))
	waitPeers(t, r, "workers", 1)
	waitSubscribed(t, r, "taps", 1)

	// 0..599 over TCP: click, impression, other in turn.
	const nTCP, nZMQ = 600, 400
	apps := []string{"click", "impression", "other"}
	var msgs []string
	for i := range nTCP {
		msgs = append(msgs, syslogMsg(apps[i%3], i))
	}
	sendTCP(t, inputAddr(t, r, "syslog", "tcp"), true, msgs)

	// 600..999 from a ZeroMQ PUSH: even ones as [stream, payload] (the
	// stream frame wins over the app-name), odd ones as one frame.
	push := zmq.NewPush(zmq.Options{})
	defer push.Close()
	if err := push.Dial("tcp://" + inputAddr(t, r, "zpull", "tcp")); err != nil {
		t.Fatal(err)
	}
	for i := nTCP; i < nTCP+nZMQ; i++ {
		m := zmq.Msg{[]byte(syslogMsg("other", i))}
		if i%2 == 0 {
			m = zmq.Msg{[]byte("click"), m[0]}
		}
		if err := push.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// The worker takes click and impression: 400 from TCP, 200 from ZeroMQ.
	const toWorker = nTCP*2/3 + nZMQ/2
	testpeer.Eventually(t, 20*time.Second, func() string {
		return fmt.Sprintf("worker %d of %d, subscriber %d of %d", worker.count(), toWorker, sub.count(), nTCP+nZMQ)
	}, func() bool { return worker.count() >= toWorker && sub.count() >= nTCP+nZMQ })

	got := worker.seqs()
	for i := range nTCP + nZMQ {
		want := 0
		if (i < nTCP && i%3 != 2) || (i >= nTCP && i%2 == 0) {
			want = 1
		}
		if got[i] != want {
			t.Errorf("seq %d reached the worker %d times, want %d", i, got[i], want)
		}
	}
	if len(got) != toWorker {
		t.Errorf("worker got %d distinct events, want %d", len(got), toWorker)
	}
	for i, n := range sub.seqs() {
		if n != 1 || i < 0 || i >= nTCP+nZMQ {
			t.Errorf("seq %d reached the subscriber %d times", i, n)
		}
	}
	topics := map[string]int{}
	for _, tp := range sub.topics() {
		topics[tp]++
	}
	if want := map[string]int{"click": nTCP/3 + nZMQ/2, "impression": nTCP / 3, "other": nTCP/3 + nZMQ/2}; fmt.Sprint(topics) != fmt.Sprint(want) {
		t.Errorf("topics at the subscriber %v, want %v", topics, want)
	}

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"relay_input_received_total", []string{"input=syslog"}, nTCP},
		{"relay_input_received_total", []string{"input=zpull"}, nZMQ},
		{"relay_output_sent_total", []string{"output=workers"}, toWorker},
		{"relay_output_sent_total", []string{"output=taps"}, nTCP + nZMQ},
		{"relay_output_dropped_total", []string{"output=workers"}, 0},
		{"relay_output_dropped_total", []string{"output=taps"}, 0},
		{"relay_stream_events_total", []string{"stream=click"}, nTCP/3 + nZMQ/2},
		{"relay_unrouted_events_total", nil, 0},
	} {
		if got := metric(t, r, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// TestPlainInProcess: a ZeroMQ input that checks PLAIN credentials refuses
// a wrong password (counted) and takes the right one, and a PUSH output
// that connects presents its own to a worker that checks them.
func TestPlainInProcess(t *testing.T) {
	worker := zmq.NewPull(zmq.Options{Security: zmq.PlainServer(zmq.PlainPassword("out", "pw-out"))})
	if err := worker.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	w := runPeer(t, worker)
	r := startRelay(t, fmt.Sprintf(`
inputs:
  - name: zpull
    type: zmq
    socket: pull
    bind: [tcp://127.0.0.1:0]
    plain: {username: in, password: pw-in}
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    connect: [tcp://%s]
    plain: {username: out, password: pw-out}
http:
  listen: ""
`, worker.Addrs()[0]))
	waitPeers(t, r, "workers", 1)
	ep := "tcp://" + inputAddr(t, r, "zpull", "tcp")

	bad := zmq.NewPush(zmq.Options{Security: zmq.PlainClient("in", "wrong")})
	defer bad.Close()
	if err := bad.Dial(ep); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the wrong password refused"), func() bool {
		return metric(t, r, "relay_input_handshake_errors_total", "input=zpull") >= 1
	})
	bad.Close()

	good := zmq.NewPush(zmq.Options{Security: zmq.PlainClient("in", "pw-in")})
	defer good.Close()
	if err := good.Dial(ep); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := good.Send(t.Context(), zmq.Msg{[]byte(syslogMsg("click", i))}); err != nil {
			t.Fatal(err)
		}
	}
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("10 events at the worker, have %d", w.count()) },
		func() bool { return w.count() == 10 })
	if got := metric(t, r, "relay_input_received_total", "input=zpull"); got != 10 {
		t.Errorf("received %v, want 10: only the right password's messages", got)
	}
}
