package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// The failure paths of Start, Shutdown and of reloads that touch inputs:
// what happens to the listeners and to the events in flight.

// TestStartFailureCleansUp: when Start fails part-way, everything it had
// set up is stopped again (every port it bound is free), it is not ready,
// and Shutdown after it has nothing to report.
func TestStartFailureCleansUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(b *builders)         // breaks a builder, or nil
		extra func(t *testing.T) string // config lines that break a part, or nil
		want  error
	}{
		{"output fails to build", func(b *builders) { b.set(b.failOut, "b", true) }, nil, errInjected},
		{"input fails to build", func(b *builders) { b.set(b.failIn, "second", true) }, nil, errInjected},
		{"input cannot bind", nil, func(t *testing.T) string {
			port, _ := occupy(t)
			return fmt.Sprintf("  - name: third\n    type: syslog\n    listen: tcp://127.0.0.1:%d\n", port)
		}, syscall.EADDRINUSE},
		{"http cannot listen", nil, func(t *testing.T) string {
			port, _ := occupy(t)
			return fmt.Sprintf("http:\n  listen: 127.0.0.1:%d\n", port)
		}, syscall.EADDRINUSE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ports := testpeer.FreePorts(t, 4)
			yaml := fmt.Sprintf(`
stream: {from: app-name, default: unknown}
outputs:
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
  - name: b
    type: zmq
    socket: pub
    bind: tcp://127.0.0.1:%d
inputs:
  - name: first
    type: syslog
    listen: [tcp://127.0.0.1:%d, udp://127.0.0.1:0]
  - name: second
    type: zmq
    socket: pull
    bind: [tcp://127.0.0.1:%d]
`, ports[0], ports[1], ports[2], ports[3])
			if tc.extra != nil {
				yaml += tc.extra(t)
			}
			r, err := New(parseConfig(t, yaml), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			b := installBuilders(r)
			if tc.setup != nil {
				tc.setup(b)
			}
			err = r.Start()
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Start = %v, want an error wrapping %v", err, tc.want)
			}
			if r.Ready() {
				t.Error("ready after a failed Start")
			}
			for i, p := range ports {
				expectFree(t, fmt.Sprintf("after a failed Start (%s), port %d of 4", tc.name, i+1), p)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown after a failed Start: %v", err)
			}
		})
	}
}

// TestShutdownInputCannotHandOver: a PUSH output with no worker blocks the
// router, so the input cannot hand over what it read within drain_timeout.
// Shutdown says so (the error names the input), and the blocked events
// are counted as dropped by the output, not lost uncounted.
func TestShutdownInputCannotHandOver(t *testing.T) {
	r := startRelayNoCleanup(t, `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
drain_timeout: 300ms
http:
  listen: ""
`)
	var msgs []string
	for i := range 10 {
		msgs = append(msgs, syslogMsg("click", i))
	}
	// One write: the input reads the ten in one go, and they are one batch.
	var buf strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&buf, "%d %s", len(m), m)
	}
	c, err := net.Dial("tcp", inputAddr(t, r, "syslog", "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(buf.String())); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the router to block on the PUSH output"), func() bool {
		return metric(t, r, "relay_output_blocked_seconds_total", "output=workers") > 0
	})
	err = r.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), `input "syslog"`) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the input's drain to time out", err)
	}
	// Everything the input read (counted once the router returns) is
	// counted as dropped by the output.
	testpeer.Eventually(t, 5*time.Second, func() string {
		return fmt.Sprintf("10 events read and counted as dropped, have %v read, %v dropped",
			metric(t, r, "relay_input_received_total", "input=syslog"), metric(t, r, "relay_output_dropped_total", "output=workers"))
	}, func() bool {
		return metric(t, r, "relay_input_received_total", "input=syslog") == 10 && metric(t, r, "relay_output_dropped_total", "output=workers") == 10
	})
	if got := metric(t, r, "relay_output_sent_total", "output=workers"); got != 0 {
		t.Errorf("relay_output_sent_total = %v with no worker", got)
	}
}

// TestShutdownFailsBlockedWrites: events the router is still writing when
// drain_timeout ends are failed back to their inputs with the reason and
// counted, and Shutdown reports that the drain did not complete.
func TestShutdownFailsBlockedWrites(t *testing.T) {
	r := startRelayNoCleanup(t, `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
drain_timeout: 300ms
http:
  listen: ""
`)
	tr := track("click", 0, 10)
	dispatched := make(chan struct{})
	go func() { tr.dispatch(r); close(dispatched) }()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the router to block on the PUSH output"), func() bool {
		return metric(t, r, "relay_output_blocked_seconds_total", "output=workers") > 0
	})
	err := r.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), "still writing") {
		t.Fatalf("Shutdown = %v, want it to say batches were still writing", err)
	}
	<-dispatched
	tr.expectOutcome(t, "blocked at shutdown", 0, nil)
	if got := metric(t, r, "relay_output_dropped_total", "output=workers"); got != 10 {
		t.Errorf("relay_output_dropped_total = %v, want 10", got)
	}
}

// TestShutdownCountsUnflushed: events queued for a worker that is not
// connected are not handed off (a PUSH output hands off once it has
// written an event to a worker's connection); if the worker does not come
// back within drain_timeout, Shutdown says the output could not flush,
// the socket counts them as socket_closed drops, and their hand-offs fail.
func TestShutdownCountsUnflushed(t *testing.T) {
	r := startRelayNoCleanup(t, fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    connect: [tcp://127.0.0.1:%d]
drain_timeout: 300ms
http:
  listen: ""
`, testpeer.FreePort(t)))
	tr := track("click", 0, 10)
	tr.dispatch(r)
	if n := tr.firedCount(); n != 0 {
		t.Errorf("%d hand-offs fired for events only queued for an absent worker, want 0", n)
	}
	err := r.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), `output "workers": flush`) {
		t.Fatalf("Shutdown = %v, want the output's flush to fail", err)
	}
	tr.expectOutcome(t, "closed unwritten", 0, zmq.ErrClosed)
	if got := metric(t, r, "relay_output_socket_drops_total", "output=workers", "reason=socket_closed"); got != 10 {
		t.Errorf("socket_closed drops = %v, want 10", got)
	}
	if got := metric(t, r, "relay_output_dropped_total", "output=workers"); got != 10 {
		t.Errorf("relay_output_dropped_total = %v, want 10", got)
	}
}

// startRelayNoCleanup is startRelay for tests that call Shutdown themselves
// and expect it to fail; the cleanup only makes sure it ran.
func startRelayNoCleanup(t testing.TB, yaml string) *Relay {
	t.Helper()
	r, err := New(parseConfig(t, yaml), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	return r
}

// inputsConfig has inputs keep (port 0), change (the fixed port pc,
// max_message_size size) and, if pg > 0, gone (the fixed port pg); the
// output a is a stub.
func inputsConfig(pc, pg int, size string, extra string) string {
	gone := ""
	if pg > 0 {
		gone = fmt.Sprintf("  - name: gone\n    type: syslog\n    listen: tcp://127.0.0.1:%d\n", pg)
	}
	return fmt.Sprintf(`
inputs:
  - name: keep
    type: syslog
    listen: tcp://127.0.0.1:0
  - name: change
    type: syslog
    listen: tcp://127.0.0.1:%d
    max_message_size: %s
%s%s
stream: {from: app-name, default: unknown}
outputs:
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
http:
  listen: ""
`, pc, size, gone, extra)
}

// TestReloadInputs: a reload stops a changed input after it handed over
// what it had read, starts its replacement on the same address, stops a
// removed one (its port is free) and leaves the unchanged one running.
// An input that cannot start makes the reload "applied in part"; the
// next reload starts it.
func TestReloadInputs(t *testing.T) {
	ports := testpeer.FreePorts(t, 2)
	pc, pg := ports[0], ports[1]
	r := newRelay(t, inputsConfig(pc, pg, "64KiB", ""))
	b := installBuilders(r)
	stub := &stubOutput{name: "a"}
	b.stubs["a"] = stub
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	keep := r.Inputs()["keep"]

	// A sender on the input that changes, its events read but the
	// connection still open when the reload comes.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", pc))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 50 {
		m := syslogMsg("click", i)
		fmt.Fprintf(c, "%d %s", len(m), m)
	}
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("50 events read"), func() bool { return stub.sent.Load() == 50 })

	if err := r.Reload(parseConfig(t, inputsConfig(pc, 0, "32KiB", ""))); err != nil {
		t.Fatal(err)
	}
	testpeer.ExpectClosed(t, c, 5*time.Second, "the connection to the replaced input")
	expectFree(t, "the removed input", pg)
	if r.Inputs()["keep"] != keep {
		t.Error("the unchanged input was replaced")
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", pc), true, []string{syslogMsg("click", 50)})
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("an event through the new input"), func() bool { return stub.sent.Load() == 51 })

	// A new input whose port is taken: applied in part.
	busy, free := occupy(t)
	added := fmt.Sprintf("  - name: added\n    type: syslog\n    listen: tcp://127.0.0.1:%d\n", busy)
	err = r.Reload(parseConfig(t, inputsConfig(pc, 0, "32KiB", added)))
	if err == nil || !strings.Contains(err.Error(), "applied in part") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Reload = %v, want \"applied in part\" with the bind error", err)
	}
	if got := metric(t, r, "relay_config_last_reload_successful"); got != 0 {
		t.Errorf("last_reload_successful = %v, want 0", got)
	}
	if _, ok := r.Inputs()["added"]; ok {
		t.Error("an input that failed to start is listed as running")
	}
	free()
	if err := r.Reload(parseConfig(t, inputsConfig(pc, 0, "32KiB", added))); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", busy), true, []string{syslogMsg("click", 51)})
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("an event through the added input"), func() bool { return stub.sent.Load() == 52 })
	// The replaced input's 50 plus its replacement's 1: the counters go
	// on across a reload that rebuilds the input (inputtotals.go).
	if got := metric(t, r, "relay_input_received_total", "input=change"); got != 51 {
		t.Errorf("relay_input_received_total{change} = %v, want 51: the replaced input's count and its replacement's", got)
	}
}

// TestReloadRefusals: a config that fails validation, and any reload once
// shutdown has begun, are refused with the old configuration untouched.
func TestReloadRefusals(t *testing.T) {
	yaml := `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
http:
  listen: ""
`
	r := newRelay(t, yaml)
	b := installBuilders(r)
	stub := &stubOutput{name: "a"}
	b.stubs["a"] = stub
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	bad := parseConfig(t, yaml)
	bad.Outputs[0].Socket = "dealer"
	if err := r.Reload(bad); err == nil || !strings.Contains(err.Error(), "dealer") {
		t.Fatalf("Reload of an invalid config = %v, want the validation error", err)
	}
	if got := metric(t, r, "relay_config_last_reload_successful"); got != 0 {
		t.Errorf("last_reload_successful = %v, want 0", got)
	}
	tr := track("click", 0, 5)
	tr.dispatch(r)
	tr.expectOutcome(t, "after a refused reload", 5, nil)
	if stub.sent.Load() != 5 || b.built["a"] != 1 {
		t.Errorf("the output took %d events and was built %d times; want 5 and once", stub.sent.Load(), b.built["a"])
	}

	shutdown(t, r)
	if err := r.Reload(parseConfig(t, yaml)); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Reload during shutdown = %v, want a refusal", err)
	}
	if b.built["a"] != 1 {
		t.Error("a reload after shutdown built outputs")
	}
}
