package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// faultConfig has output a (PUSH on the fixed port pa, stream click, its
// HWM hwm: change it to make a reload replace a), output b (a stub-able
// PUSH taking impression) and a TCP syslog input on listen.
func faultConfig(listen string, pa, hwm int, drain string) string {
	return fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: %s
stream: {from: app-name, default: unknown}
outputs:
  - name: b
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [impression]
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:%d
    streams: [click]
    hwm: %d
drain_timeout: %s
http:
  listen: ""
`, listen, pa, hwm, drain)
}

// TestReloadReplacementFailsToBind: a reload whose replacement for output a
// cannot be built reports "applied in part"; the events routed to a
// meanwhile are counted in relay_reload_dropped_total and failed back to
// their inputs (not lost in silence, not sent to the gone socket); what a
// had queued before still reaches its worker; the next reload brings a
// back and its counters carry over.
func TestReloadReplacementFailsToBind(t *testing.T) {
	pa := testpeer.FreePort(t)
	r := newRelay(t, faultConfig("tcp://127.0.0.1:0", pa, 1000, "5s"))
	b := installBuilders(r)
	stubB := &stubOutput{name: "b"}
	b.stubs["b"] = stubB
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	w := goWorker(t, fmt.Sprintf("tcp://127.0.0.1:%d", pa))
	waitPeers(t, r, "a", 1)

	before := track("click", 0, 100)
	before.dispatch(r)
	before.expectOutcome(t, "before the reload", 100, nil)

	b.set(b.failOut, "a", true)
	err := r.Reload(parseConfig(t, faultConfig("tcp://127.0.0.1:0", pa, 2000, "5s")))
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "applied in part") {
		t.Fatalf("Reload = %v, want an \"applied in part\" error wrapping the bind failure", err)
	}
	if got := metric(t, r, "relay_config_last_reload_successful"); got != 0 {
		t.Errorf("last_reload_successful = %v after a partial reload, want 0", got)
	}
	during := track("click", 100, 50)
	during.dispatch(r)
	during.expectOutcome(t, "a is gone", 0, errOutputGone)
	if got := metric(t, r, "relay_reload_dropped_total"); got != 50 {
		t.Errorf("relay_reload_dropped_total = %v, want 50", got)
	}
	// b was not touched and still takes its stream.
	imp := track("impression", 1000, 10)
	imp.dispatch(r)
	imp.expectOutcome(t, "b, unchanged", 10, nil)
	if stubB.sent.Load() != 10 || b.built["b"] != 1 {
		t.Errorf("b took %d events and was built %d times; want 10 and once (a reload that does not change it keeps it)", stubB.sent.Load(), b.built["b"])
	}

	b.set(b.failOut, "a", false)
	if err := r.Reload(parseConfig(t, faultConfig("tcp://127.0.0.1:0", pa, 2000, "5s"))); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if got := metric(t, r, "relay_config_last_reload_successful"); got != 1 {
		t.Errorf("last_reload_successful = %v after the retry, want 1", got)
	}
	waitPeers(t, r, "a", 1) // the worker reconnects to the same port
	after := track("click", 150, 50)
	after.dispatch(r)
	after.expectOutcome(t, "a is back", 50, nil)

	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("150 events at the worker, have %d", w.count()) },
		func() bool { return w.count() >= 150 })
	seqs := w.seqs()
	for i := range 200 {
		want := 1
		if i >= 100 && i < 150 {
			want = 0
		}
		if seqs[i] != want {
			t.Errorf("seq %d reached the worker %d times, want %d", i, seqs[i], want)
		}
	}
	if got := metric(t, r, "relay_output_sent_total", "output=a"); got != 150 {
		t.Errorf("relay_output_sent_total{a} = %v, want 150 (counters carry over the replacement)", got)
	}
	if got := metric(t, r, "relay_reload_dropped_total"); got != 50 {
		t.Errorf("relay_reload_dropped_total = %v at the end, want 50", got)
	}
}

// TestReloadGateHoldsWrites: while a reload builds the replacement of
// output a, writes to a wait at the stand-in gate (backpressure); when the
// replacement comes up they go to it, and when it fails they are counted
// and failed back.
func TestReloadGateHoldsWrites(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buildOK bool
	}{{"replacement up", true}, {"replacement fails", false}} {
		t.Run(tc.name, func(t *testing.T) {
			pa := testpeer.FreePort(t)
			r := newRelay(t, faultConfig("tcp://127.0.0.1:0", pa, 1000, "5s"))
			b := installBuilders(r)
			if err := r.Start(); err != nil {
				t.Fatal(err)
			}
			w := goWorker(t, fmt.Sprintf("tcp://127.0.0.1:%d", pa))
			waitPeers(t, r, "a", 1)

			hold := make(chan chan error)
			b.mu.Lock()
			b.holdOut["a"] = hold
			b.mu.Unlock()
			reloaded := make(chan error, 1)
			go func() { reloaded <- r.Reload(parseConfig(t, faultConfig("tcp://127.0.0.1:0", pa, 2000, "5s"))) }()
			release := <-hold // the old a is closed, its replacement being built

			g := r.gen.Load().outs[1].(*gate)
			held := track("click", 0, 20)
			dispatched := make(chan struct{})
			go func() { held.dispatch(r); close(dispatched) }()
			testpeer.Eventually(t, 5*time.Second, testpeer.Text("the batch to wait at the gate"), func() bool { return g.held.Load() == 1 })
			if ok, failed, _ := held.outcome(nil); ok+failed != 0 {
				t.Fatalf("%d hand-offs fired while the gate held the batch", ok+failed)
			}

			if tc.buildOK {
				release <- nil
				if err := <-reloaded; err != nil {
					t.Fatal(err)
				}
				<-dispatched
				held.expectOutcome(t, "held, then written to the replacement", 20, nil)
				testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("20 events at the worker, have %d", w.count()) },
					func() bool { return w.count() >= 20 })
				if got := metric(t, r, "relay_reload_dropped_total"); got != 0 {
					t.Errorf("relay_reload_dropped_total = %v, want 0", got)
				}
				return
			}
			release <- fmt.Errorf("output \"a\": bind: %w", errInjected)
			if err := <-reloaded; !errors.Is(err, errInjected) {
				t.Fatalf("Reload = %v, want the injected bind failure", err)
			}
			<-dispatched
			held.expectOutcome(t, "held, then the replacement failed", 0, errOutputGone)
			if got := metric(t, r, "relay_reload_dropped_total"); got != 20 {
				t.Errorf("relay_reload_dropped_total = %v, want 20", got)
			}
		})
	}
}

// TestReloadDrainTimeout: a batch still writing (blocked on output b)
// when a reload's drain_timeout ends goes on to output a, which the reload
// has closed meanwhile. Its events must not vanish: they are failed back
// to their inputs and counted in a's relay_output_dropped_total.
func TestReloadDrainTimeout(t *testing.T) {
	pa := testpeer.FreePort(t)
	r := newRelay(t, faultConfig("tcp://127.0.0.1:0", pa, 1000, "200ms"))
	b := installBuilders(r)
	stuck := &stubOutput{name: "b", block: make(chan struct{})}
	b.stubs["b"] = stuck
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	w := goWorker(t, fmt.Sprintf("tcp://127.0.0.1:%d", pa))
	waitPeers(t, r, "a", 1)

	// One batch for b then a: it blocks at b.
	tr := trackEach(0, 10, func(i int) string { return map[bool]string{true: "impression", false: "click"}[i < 5] })
	dispatched := make(chan struct{})
	go func() { tr.dispatch(r); close(dispatched) }()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the batch to block at b"), func() bool { return stuck.writing.Load() == 1 })

	start := time.Now()
	if err := r.Reload(parseConfig(t, faultConfig("tcp://127.0.0.1:0", pa, 2000, "200ms"))); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("Reload returned after %v, before drain_timeout", el)
	}
	close(stuck.block)
	<-dispatched
	// b took its five; a's five reached the old, closed a.
	ok, failed, other := tr.outcome(nil)
	if ok+failed != 10 || other != 0 {
		t.Fatalf("%d handed off, %d failed, %d neither: every hand-off must fire", ok, failed, other)
	}
	delivered := w.count()
	if got := metric(t, r, "relay_output_dropped_total", "output=a") + metric(t, r, "relay_reload_dropped_total"); int(got)+delivered != 5 {
		t.Errorf("a's five events: %d delivered, %v counted as dropped; the rest vanished", delivered, got)
	}
	if failed != 5-delivered {
		t.Errorf("%d hand-offs failed, want %d (a's events not delivered)", failed, 5-delivered)
	}
	// The next reload finds the old generation idle and keeps the closed
	// output's final counts.
	if err := r.Reload(parseConfig(t, strings.Replace(faultConfig("tcp://127.0.0.1:0", pa, 2000, "200ms"), "[click]", "[click, buy]", 1))); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	lingering, replaced := len(r.lingering), len(r.replaced)
	r.mu.Unlock()
	if lingering != 0 || replaced != 0 {
		t.Errorf("after an idle reload: %d lingering outputs, %d replaced generations kept; want 0, 0", lingering, replaced)
	}
	if got := metric(t, r, "relay_output_dropped_total", "output=a") + metric(t, r, "relay_reload_dropped_total"); int(got)+delivered != 5 {
		t.Errorf("after the next reload, a's five events: %d delivered, %v counted as dropped", delivered, got)
	}
}

// TestReloadCountsUnflushed: a reload replaces output a while a holds
// events for a worker that is not connected; the flush runs out of
// drain_timeout and what a held is counted as socket_closed drops under
// a's name, which the replacement keeps counting.
func TestReloadCountsUnflushed(t *testing.T) {
	dead := testpeer.FreePort(t)
	cfg := func(hwm int) string {
		return fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: a
    type: zmq
    socket: push
    connect: [tcp://127.0.0.1:%d]
    hwm: %d
drain_timeout: 200ms
http:
  listen: ""
`, dead, hwm)
	}
	r := startRelay(t, cfg(1000))
	tr := track("click", 0, 6)
	tr.dispatch(r)
	if n := tr.firedCount(); n != 0 {
		t.Errorf("%d hand-offs fired for events only queued for an absent worker, want 0", n)
	}
	if err := r.Reload(parseConfig(t, cfg(2000))); err != nil {
		t.Fatal(err)
	}
	tr.expectOutcome(t, "closed unwritten by the reload", 0, zmq.ErrClosed)
	if got := metric(t, r, "relay_output_socket_drops_total", "output=a", "reason=socket_closed"); got != 6 {
		t.Errorf("socket_closed drops of a = %v after the reload, want 6", got)
	}
	if got := metric(t, r, "relay_output_dropped_total", "output=a"); got != 6 {
		t.Errorf("relay_output_dropped_total{a} = %v, want 6", got)
	}
}

// TestReloadInputStopTimesOut: a reload replaces an input whose events
// the router cannot take within drain_timeout. The reload goes on (the
// replacement listens), and the old input's events are delivered once
// the output takes them again.
func TestReloadInputStopTimesOut(t *testing.T) {
	port := testpeer.FreePort(t)
	cfg := func(size string) string {
		return fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:%d
    max_message_size: %s
stream: {from: app-name, default: unknown}
outputs:
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
drain_timeout: 200ms
http:
  listen: ""
`, port, size)
	}
	r := newRelay(t, cfg("64KiB"))
	b := installBuilders(r)
	stuck := &stubOutput{name: "a", block: make(chan struct{})}
	b.stubs["a"] = stuck
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), true, []string{syslogMsg("click", 0)})
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the event to block at a"), func() bool { return stuck.writing.Load() == 1 })
	if err := r.Reload(parseConfig(t, cfg("32KiB"))); err != nil {
		t.Fatal(err)
	}
	close(stuck.block)
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), true, []string{syslogMsg("click", 1)})
	testpeer.Eventually(t, 5*time.Second, func() string { return fmt.Sprintf("both events at a, have %d", stuck.sent.Load()) },
		func() bool { return stuck.sent.Load() == 2 })
}

// TestReloadWaitsForOlderGenerations: a batch that entered the routing
// generation before the last reload (here one that only moved streams) is
// still writing when the next reload replaces output a. That reload must
// wait for it, as for the current generation's batches: the batch's
// events for a go to the old a before it is closed, none fails.
func TestReloadWaitsForOlderGenerations(t *testing.T) {
	pa := testpeer.FreePort(t)
	r := newRelay(t, faultConfig("tcp://127.0.0.1:0", pa, 1000, "10s"))
	b := installBuilders(r)
	stuck := &stubOutput{name: "b", block: make(chan struct{})}
	b.stubs["b"] = stuck
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	w := goWorker(t, fmt.Sprintf("tcp://127.0.0.1:%d", pa))
	waitPeers(t, r, "a", 1)

	tr := trackEach(0, 10, func(i int) string { return map[bool]string{true: "impression", false: "click"}[i < 5] })
	dispatched := make(chan struct{})
	go func() { tr.dispatch(r); close(dispatched) }()
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("the batch to block at b"), func() bool { return stuck.writing.Load() == 1 })

	// Reload 1 moves b's streams: no socket changes, a new generation.
	moved := strings.Replace(faultConfig("tcp://127.0.0.1:0", pa, 1000, "10s"), "[impression]", "[impression, view]", 1)
	if err := r.Reload(parseConfig(t, moved)); err != nil {
		t.Fatal(err)
	}
	// Reload 2 replaces a while the batch, in the first generation, has
	// yet to write to it.
	gen1 := r.gen.Load()
	reloaded := make(chan error, 1)
	go func() {
		reloaded <- r.Reload(parseConfig(t, strings.Replace(moved, "hwm: 1000", "hwm: 2000", 1)))
	}()
	// Once it swapped the generation it has put a gate in a's place.
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("reload 2 to gate a"), func() bool { return r.gen.Load() != gen1 })
	close(stuck.block)
	<-dispatched
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	tr.expectOutcome(t, "a batch from an older generation", 10, nil)
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("5 events at the worker, have %d", w.count()) },
		func() bool { return w.count() >= 5 })
	if got := metric(t, r, "relay_output_dropped_total", "output=a"); got != 0 {
		t.Errorf("relay_output_dropped_total{a} = %v, want 0", got)
	}
}
