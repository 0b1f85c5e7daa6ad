package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/output"
)

// Fault injection for the relay's failure paths: builders that fail or
// wait on demand, an output whose writes block, and events whose hand-offs
// record what became of them.

// errInjected is the fault the tests' builders return.
var errInjected = errors.New("injected fault")

// builders replaces r's output and input builders. An output or input
// whose name is in failOut/failIn fails to build with errInjected; one in
// holdOut waits, first announcing it on the channel, until the test
// releases it with the error to return (nil: build it). stubs returns a
// stub instead of a socket for the outputs named in it.
type builders struct {
	mu      sync.Mutex
	failOut map[string]bool
	failIn  map[string]bool
	holdOut map[string]chan chan error
	stubs   map[string]*stubOutput
	built   map[string]int // outputs built, by name
}

func installBuilders(r *Relay) *builders {
	b := &builders{failOut: map[string]bool{}, failIn: map[string]bool{}, holdOut: map[string]chan chan error{},
		stubs: map[string]*stubOutput{}, built: map[string]int{}}
	r.newOutput = func(c config.Output, log *slog.Logger) (output.Output, error) {
		b.mu.Lock()
		fail, hold, stub := b.failOut[c.Name], b.holdOut[c.Name], b.stubs[c.Name]
		b.mu.Unlock()
		if hold != nil {
			release := make(chan error)
			hold <- release
			if err := <-release; err != nil {
				return nil, err
			}
		}
		if fail {
			return nil, fmt.Errorf("output %q: bind: %w", c.Name, errInjected)
		}
		b.mu.Lock()
		b.built[c.Name]++
		b.mu.Unlock()
		if stub != nil {
			return stub, nil
		}
		return newOutput(c, log, r.secrets)
	}
	r.newInput = func(c config.Input, log *slog.Logger) (input.Input, error) {
		b.mu.Lock()
		fail := b.failIn[c.Name]
		b.mu.Unlock()
		if fail {
			return nil, fmt.Errorf("input %q: %w", c.Name, errInjected)
		}
		return newInput(c, log, r.secrets)
	}
	return b
}

func (b *builders) set(m map[string]bool, name string, v bool) {
	b.mu.Lock()
	m[name] = v
	b.mu.Unlock()
}

// stubOutput is an output in memory. Its writes block while block is
// open (until the test closes it, or ctx ends: then, like a PUSH output,
// it counts and fails the batch). After Close, writes fail as a closed
// socket's do.
type stubOutput struct {
	name     string
	block    chan struct{}
	closeErr error

	writing atomic.Int32 // writes in progress
	closed  atomic.Bool
	sent    atomic.Uint64
	dropped atomic.Uint64
}

var errStubClosed = errors.New("stub output closed")

func (o *stubOutput) Name() string { return o.name }

func (o *stubOutput) Write(ctx context.Context, batch []*event.Event) error {
	o.writing.Add(1)
	defer o.writing.Add(-1)
	if o.block != nil {
		select {
		case <-o.block:
		case <-ctx.Done():
			o.dropped.Add(uint64(len(batch)))
			return releaseAll(batch, ctx.Err())
		}
	}
	if o.closed.Load() {
		o.dropped.Add(uint64(len(batch)))
		return releaseAll(batch, errStubClosed)
	}
	o.sent.Add(uint64(len(batch)))
	return nil
}

func (o *stubOutput) Close(context.Context) error {
	o.closed.Store(true)
	return o.closeErr
}

func (o *stubOutput) Stats() output.Stats {
	return output.Stats{Sent: o.sent.Load(), Dropped: o.dropped.Load()}
}

// tracked are events with one hand-off each, recording how it ended.
type tracked struct {
	mu     sync.Mutex
	events []*event.Event
	fired  []int   // times each hand-off fired
	errs   []error // and with what
}

// track makes n events from app (seq first..first+n-1), each with its own
// hand-off.
func track(app string, first, n int) *tracked {
	return trackEach(first, n, func(int) string { return app })
}

// trackEach is track with app(i) as the app-name of event i.
func trackEach(first, n int, app func(i int) string) *tracked {
	tr := &tracked{fired: make([]int, n), errs: make([]error, n)}
	for i := range n {
		e := event.New([]byte(syslogMsg(app(i), first+i)))
		e.Input = "test"
		e.SetHandoff(event.NewHandoff(func(err error) {
			tr.mu.Lock()
			tr.fired[i]++
			tr.errs[i] = err
			tr.mu.Unlock()
		}))
		tr.events = append(tr.events, e)
	}
	return tr
}

// dispatch hands the events to the relay's router, as an input does, and
// then ends the input's own holds.
func (tr *tracked) dispatch(r *Relay) {
	r.handle(tr.events)
	for _, e := range tr.events {
		e.Release(nil)
	}
}

// outcome counts the hand-offs that fired with nil, that fired with an
// error matching target (nil target: any error), and that did not fire
// (or fired twice, which is as wrong).
func (tr *tracked) outcome(target error) (ok, failed, other int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i, n := range tr.fired {
		switch {
		case n != 1:
			other++
		case tr.errs[i] == nil:
			ok++
		case target == nil || errors.Is(tr.errs[i], target):
			failed++
		default:
			other++
		}
	}
	return ok, failed, other
}

// firedCount reports how many hand-offs have fired (once or more).
func (tr *tracked) firedCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, f := range tr.fired {
		if f > 0 {
			n++
		}
	}
	return n
}

// expectOutcome waits until every hand-off fired (a PUSH output hands an
// event off once it has written it to a worker's connection, after Write
// returned), up to 10 s, then fails the test unless each fired once: ok
// of them with nil and the rest with an error matching target.
func (tr *tracked) expectOutcome(t testing.TB, what string, wantOK int, target error) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); tr.firedCount() < len(tr.events) && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	ok, failed, other := tr.outcome(target)
	if ok != wantOK || failed != len(tr.events)-wantOK || other != 0 {
		t.Errorf("%s: %d handed off, %d failed with %v, %d neither (or twice); want %d, %d, 0 (errors: %v)",
			what, ok, failed, target, other, wantOK, len(tr.events)-wantOK, tr.firstErrs())
	}
}

func (tr *tracked) firstErrs() []error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	seen := map[string]bool{}
	var out []error
	for _, e := range tr.errs {
		if e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return out
}

// occupy listens on a free port and holds it until the test ends.
func occupy(t testing.TB) (port int, release func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { l.Close() }) }
	t.Cleanup(release)
	return l.Addr().(*net.TCPAddr).Port, release
}

// expectFree fails the test if something still listens on port: a
// listener a failed Start or Reload should have closed.
func expectFree(t testing.TB, what string, port int) {
	t.Helper()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Errorf("%s: port %d is still bound: %v", what, port, err)
		return
	}
	l.Close()
}
