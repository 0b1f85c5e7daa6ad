// Package relay assembles the relay: inputs feed a router, which derives
// each event's stream, publishes it to the taps and writes it to the
// outputs that take its stream. It also serves HTTP (/healthz, /metrics,
// /v1/tap and the web page), reloads its configuration and drains on
// shutdown.
//
// Reload keeps what did not change: an input or output whose configuration
// is identical keeps its listeners, connections and queues. The routing
// state (table and outputs) is one immutable generation, swapped
// atomically; a retired generation's outputs are closed only once no batch
// is still using them.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/input"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/ratelog"
	"github.com/rsyslog-zmq/relay/internal/route"
	"github.com/rsyslog-zmq/relay/internal/tap"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Relay is a running relay. Create it with New, then Start; Reload and
// Shutdown may be called from any goroutine.
type Relay struct {
	log *slog.Logger
	reg *prometheus.Registry
	met *metrics

	mu      sync.Mutex // serialises Start, Reload and Shutdown
	cfg     *config.Config
	inputs  map[string]*runningInput
	outputs map[string]*runningOutput
	// retired holds, per output name, the final counters of the outputs
	// reloads closed, so relay_output_*_total keep counting across a
	// replacement, and what an output lost as it closed is not forgotten.
	retired map[string]outputTotals
	// retiredIn does the same for inputs a reload stopped (inputtotals.go).
	retiredIn map[string]inputTotals
	gen       atomic.Pointer[generation]
	// replaced are the generations reloads swapped out that batches may
	// still be using. A reload waits for all of them, not only the last,
	// before it closes an output: an older one may reference it too.
	replaced []*generation
	// lingering are outputs a reload closed while replaced generations
	// were still in use (drain_timeout ran out): writes that reach them
	// late fail and are counted there, so their counters are read live
	// until those generations are idle, then kept in retired.
	lingering []*runningOutput
	hub       *tap.Hub
	httpSrv   *http.Server
	httpLn    net.Listener
	// httpConns caps the HTTP connections; hostRefused counts requests
	// for a Host the relay does not serve.
	httpConns   *connLimiter
	hostRefused atomic.Uint64
	// secrets are the credentials read from the files the config names;
	// Reload re-reads them.
	secrets *secretStore
	// overlong counts events whose stream name was over stream.max_length.
	overlong atomic.Uint64

	ready    atomic.Bool
	down     atomic.Bool
	writeLog ratelog.Limiter // output write failures
	// reloadDropped counts events routed to an output that a reload
	// removed or could not recreate; that output's own counters are gone.
	reloadDropped atomic.Uint64
	// unrouted counts events whose stream no output takes.
	unrouted atomic.Uint64
	// ctx is cancelled when a drain runs out of time: writes still blocked
	// on a full PUSH output give up then.
	ctx    context.Context
	cancel context.CancelFunc

	// newOutput and newInput build the parts a configuration describes
	// (build.go); tests replace them to inject faults.
	newOutput func(config.Output, *slog.Logger) (output.Output, error)
	newInput  func(config.Input, *slog.Logger) (input.Input, error)
}

type runningInput struct {
	cfg config.Input
	in  input.Input
}

// outputTotals are an output's counters (output.Stats and its socket's).
type outputTotals struct {
	sent, dropped, hsFail, oversize uint64
	peersRefused, subsRefused       uint64
	blocked                         time.Duration
	drops                           map[string]uint64 // socket drops by reason
	ack                             ackTotals         // acknowledged outputs only
	spool                           spoolTotals       // spooled outputs
	broker                          brokerTotals      // jetstream and kafka outputs
	curve                           map[string]uint64 // CURVE refusals by reason; nil without CURVE
}

func (t *outputTotals) add(o output.Output) {
	s := o.Stats()
	t.sent += s.Sent
	t.dropped += s.Dropped
	t.blocked += s.Blocked
	if ao, ok := o.(ackOutput); ok {
		t.ack.add(ao.AckStats())
	}
	if so, ok := o.(spoolStatser); ok {
		t.spool.add(so.SpoolStats())
	}
	if bo, ok := o.(*brokerOutput); ok {
		t.broker.add(bo)
	}
	if so, ok := o.(interface{ Socket() zmq.Stats }); ok {
		ss := so.Socket()
		t.hsFail += ss.HandshakeFailures
		t.oversize += ss.Oversize
		t.peersRefused += ss.PeersRefused
		t.subsRefused += ss.SubscriptionsRefused
		for reason, n := range ss.Drops {
			if t.drops == nil {
				t.drops = map[string]uint64{}
			}
			t.drops[reason] += n
		}
		for reason, n := range ss.Curve {
			if t.curve == nil {
				t.curve = map[string]uint64{}
			}
			t.curve[reason] += n
		}
	}
}

// sameSocket reports whether two configs of an output describe the same
// socket: only its streams differ, which the routing table applies, so
// its peers need not be disconnected.
func sameSocket(a, b config.Output) bool {
	a.Streams, b.Streams = nil, nil
	return reflect.DeepEqual(a, b)
}

type runningOutput struct {
	cfg config.Output
	out output.Output
}

// generation is one immutable routing state.
type generation struct {
	table    *route.Table
	outs     []output.Output // parallel to table.Targets()
	inflight atomic.Int64    // batches routing through this generation now
}

// New validates cfg and prepares a relay; nothing listens until Start.
func New(cfg *config.Config, log *slog.Logger) (*Relay, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{
		log:       log,
		reg:       prometheus.NewRegistry(),
		cfg:       cfg,
		inputs:    map[string]*runningInput{},
		outputs:   map[string]*runningOutput{},
		retired:   map[string]outputTotals{},
		retiredIn: map[string]inputTotals{},
		secrets:   newSecretStore(),
	}
	// The builders take the relay's secrets, re-read on reload.
	r.newOutput = func(c config.Output, log *slog.Logger) (output.Output, error) { return newOutput(c, log, r.secrets) }
	r.newInput = func(c config.Input, log *slog.Logger) (input.Input, error) { return newInput(c, log, r.secrets) }
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.met = newMetrics(r)
	r.reg.MustRegister(infoCollector{r})
	return r, nil
}

// Registry returns the Prometheus registry /metrics serves.
func (r *Relay) Registry() *prometheus.Registry { return r.reg }

// Ready reports whether every input and output is set up.
func (r *Relay) Ready() bool { return r.ready.Load() && !r.down.Load() }

// Start sets up outputs, the routing table, the tap hub, inputs and HTTP,
// in that order, so no event arrives before it has somewhere to go. On
// error, whatever was started is stopped again.
func (r *Relay) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg := r.cfg
	set, err := loadSecrets(cfg)
	if err != nil {
		return err
	}
	r.secrets.apply(set)
	for _, w := range cfg.Warnings() {
		r.log.Warn("config: " + w.String())
	}
	httpConns := r.fdBudget(cfg)
	r.hub = tap.NewHub(hubConfig(cfg.HTTP, set.token), r.log.With("component", "tap"))
	for _, oc := range cfg.Outputs {
		out, err := r.newOutput(oc, r.log)
		if err != nil {
			r.stopAll(context.Background())
			return startErr(fmt.Sprintf("output %q", oc.Name), err)
		}
		r.outputs[oc.Name] = &runningOutput{cfg: oc, out: out}
	}
	gen, err := r.newGeneration(cfg)
	if err != nil {
		r.stopAll(context.Background())
		return err
	}
	r.gen.Store(gen)
	for _, ic := range cfg.Inputs {
		if err := r.startInput(ic); err != nil {
			r.stopAll(context.Background())
			return err
		}
	}
	if err := r.startHTTP(cfg.HTTP, httpConns); err != nil {
		r.stopAll(context.Background())
		return err
	}
	r.ready.Store(true)
	r.log.Info("relay started", "inputs", len(cfg.Inputs), "outputs", len(cfg.Outputs), "http", cfg.HTTP.Listen)
	return nil
}

// hubConfig maps the http section onto the tap hub's settings; a
// timeout of 0 in the config means none.
func hubConfig(h config.HTTP, token string) tap.HubConfig {
	none := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return tap.HubConfig{
		Token:          token,
		MaxClients:     h.TapMaxClients,
		QueueLen:       h.TapQueue,
		QueueBytes:     int64(h.TapQueueBytes),
		WriteTimeout:   none(h.TapWriteTimeout),
		PingInterval:   none(h.TapPingInterval),
		AllowedOrigins: h.AllowedOrigins,
	}
}

func (r *Relay) startInput(ic config.Input) error {
	part := fmt.Sprintf("input %q", ic.Name)
	in, err := r.newInput(ic, r.log)
	if err != nil {
		return startErr(part, err)
	}
	if err := in.Start(r.handle); err != nil {
		return startErr(part, err)
	}
	r.inputs[ic.Name] = &runningInput{cfg: ic, in: in}
	return nil
}

// newGeneration builds a routing table over the running outputs, in
// configuration order.
func (r *Relay) newGeneration(cfg *config.Config) (*generation, error) {
	targets := make([]route.Target, len(cfg.Outputs))
	outs := make([]output.Output, len(cfg.Outputs))
	for i, oc := range cfg.Outputs {
		targets[i] = route.Target{Name: oc.Name, Streams: oc.Streams}
		outs[i] = r.outputs[oc.Name].out
	}
	table, err := route.NewTable(cfg.Stream.From, cfg.Stream.Default, targets, r.routeOptions(cfg)...)
	if err != nil {
		return nil, err
	}
	return &generation{table: table, outs: outs}, nil
}

// routeOptions are the routing table's settings from cfg.
func (r *Relay) routeOptions(cfg *config.Config) []route.Option {
	return []route.Option{route.WithMaxStreamLen(cfg.Stream.MaxLength, &r.overlong)}
}

// handle is every input's Handler: it derives streams, feeds the taps and
// writes each output its share of the batch. A full PUSH output blocks it,
// which is the backpressure that stops the input reading.
func (r *Relay) handle(batch []*event.Event) {
	gen := r.enter()
	defer gen.inflight.Add(-1)
	// Usually a whole batch goes to the same outputs: then it is written
	// as is, with no per-output copies. per is built only once a batch
	// turns out to be mixed.
	var idx0 []int
	var per [][]*event.Event
	uniform := true
	var last string
	var lastIdx []int
	var run uint64
	endRun := func() {
		if run > 0 {
			r.met.streamEvents(last).Add(float64(run))
			if len(lastIdx) == 0 {
				r.unrouted.Add(run) // no output's streams take it
			}
		}
	}
	for k, e := range batch {
		s := gen.table.Stream(e)
		if s != last || lastIdx == nil {
			endRun()
			last, lastIdx, run = s, gen.table.Match(s), 0
			if k == 0 {
				idx0 = lastIdx
			} else if uniform && !slices.Equal(lastIdx, idx0) {
				uniform = false
				per = make([][]*event.Event, len(gen.outs))
				for _, i := range idx0 {
					per[i] = append(make([]*event.Event, 0, len(batch)), batch[:k]...)
				}
			}
		}
		run++
		if !uniform {
			for _, i := range lastIdx {
				per[i] = append(per[i], e)
			}
		}
	}
	endRun()
	// Streams are set now; the hub takes the batch in one go per client.
	r.hub.PublishBatch(batch)
	if uniform {
		for _, i := range idx0 {
			r.write(gen, i, batch)
		}
		return
	}
	for i, evs := range per {
		if len(evs) > 0 {
			r.write(gen, i, evs)
		}
	}
}

// write hands evs to output i of gen; a failure is logged (the output
// counts and releases the events).
func (r *Relay) write(gen *generation, i int, evs []*event.Event) {
	if err := gen.outs[i].Write(r.ctx, evs); err != nil {
		// Every batch of a stuck output fails alike: one line a second
		// says so, with how many were held back (the counters have all).
		r.writeLog.Log(r.log, slog.LevelWarn, "output write failed", "output", gen.table.Targets()[i].Name, "err", err)
	}
}

// enter pins the current generation for one batch. The re-check after the
// increment guarantees a retired generation is never entered once Reload
// has seen its count reach zero.
func (r *Relay) enter() *generation {
	for {
		gen := r.gen.Load()
		gen.inflight.Add(1)
		if r.gen.Load() == gen {
			return gen
		}
		gen.inflight.Add(-1)
	}
}

// swapGen makes gen the current generation and remembers the one it
// replaces, which batches may still be using.
func (r *Relay) swapGen(gen *generation) {
	if old := r.gen.Swap(gen); old != nil && old != gen {
		r.replaced = append(r.replaced, old)
	}
}

// drainReplaced waits until no batch uses a replaced generation, or until
// timeout, forgets the idle ones and reports whether all are idle. Once
// they are, the lingering outputs' counters are final.
func (r *Relay) drainReplaced(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	busy := r.replaced[:0]
	for _, g := range r.replaced {
		if !retire(g, time.Until(deadline)) {
			busy = append(busy, g)
		}
	}
	clear(r.replaced[len(busy):])
	r.replaced = busy
	if len(busy) > 0 {
		return false
	}
	for _, ro := range r.lingering {
		r.keepTotals(ro)
	}
	r.lingering = nil
	return true
}

// keepTotals adds the counters of a closed output to its name's totals.
func (r *Relay) keepTotals(ro *runningOutput) {
	t := r.retired[ro.cfg.Name]
	t.add(ro.out)
	r.retired[ro.cfg.Name] = t
}

// retire waits until no batch uses gen, or until timeout.
func retire(gen *generation, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for gen.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// Reload applies cfg: inputs and outputs whose configuration is unchanged
// keep running with their connections; changed ones are replaced; removed
// ones are stopped after draining. If cfg cannot be applied, the relay keeps
// running with what it had, and the error says why.
func (r *Relay) Reload(cfg *config.Config) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Every outcome, refusals included, shows in last_reload_successful.
	defer func() { r.met.reloads(err == nil) }()
	if r.down.Load() {
		return errors.New("reload: relay is shutting down")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if !reflect.DeepEqual(cfg.HTTP, r.cfg.HTTP) {
		return errors.New("reload: the http section cannot change at runtime; restart the relay to apply it")
	}
	// Check the new routing before touching anything.
	targets := make([]route.Target, len(cfg.Outputs))
	for i, oc := range cfg.Outputs {
		targets[i] = route.Target{Name: oc.Name, Streams: oc.Streams}
	}
	if _, err := route.NewTable(cfg.Stream.From, cfg.Stream.Default, targets, r.routeOptions(cfg)...); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	// Outputs that would strand a non-empty spool refuse the reload, before
	// anything (the secrets included) is changed.
	want := map[string]config.Output{}
	for _, oc := range cfg.Outputs {
		want[oc.Name] = oc
	}
	if err := r.checkSpoolReload(want); err != nil {
		return err
	}
	// Secrets: re-read every file the config names (certificates, keys,
	// client CAs, users files, the tap token) and build the new TLS and
	// PLAIN state before anything is swapped. One unreadable file fails
	// the whole reload, naming it; the old secrets keep working.
	set, err := loadSecrets(cfg)
	if err != nil {
		return fmt.Errorf("reload: %w; the old certificates, users and token stay in use", err)
	}
	r.secrets.apply(set)
	r.hub.SetToken(set.token)
	for _, w := range cfg.Warnings() {
		r.log.Warn("config: " + w.String())
	}

	// Outputs: keep unchanged ones; close changed and removed ones once the
	// old generation is idle, so a rebind of the same endpoint succeeds.
	var retiring []*runningOutput
	for name, ro := range r.outputs {
		oc, ok := want[name]
		if !ok || !sameSocket(oc, ro.cfg) {
			retiring = append(retiring, ro)
			continue
		}
		ro.cfg = oc // its streams, if they changed, take effect with the new table
	}
	old := r.gen.Load()
	gates := map[string]*gate{}
	if len(retiring) > 0 {
		// Park the routers' writes to changed outputs while they are
		// swapped: a gate in each one's place holds writes (backpressure,
		// as for a full PUSH) until the replacement is up, so a rebind of
		// the same endpoint succeeds and nothing is lost.
		gated := &generation{table: old.table, outs: make([]output.Output, len(old.outs))}
		copy(gated.outs, old.outs)
		for _, ro := range retiring {
			gates[ro.cfg.Name] = newGate(ro.cfg.Name, &r.reloadDropped)
		}
		for i, t := range old.table.Targets() {
			if g, ok := gates[t.Name]; ok {
				gated.outs[i] = g
			}
		}
		r.swapGen(gated)
		idle := r.drainReplaced(r.cfg.DrainTimeout)
		if !idle {
			r.log.Warn("reload: batches still writing to retired outputs after drain_timeout; closing them anyway (what reaches them is counted as dropped)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
		for _, ro := range retiring {
			if err := ro.out.Close(ctx); err != nil {
				r.log.Warn("reload: closing output", "output", ro.cfg.Name, "err", err)
			}
			if idle {
				r.keepTotals(ro)
			} else {
				r.lingering = append(r.lingering, ro)
			}
			delete(r.outputs, ro.cfg.Name)
		}
		cancel()
	}
	var failed error
	for _, oc := range cfg.Outputs {
		if _, ok := r.outputs[oc.Name]; ok {
			continue
		}
		out, err := r.newOutput(oc, r.log)
		if err != nil {
			failed = errors.Join(failed, startErr(fmt.Sprintf("output %q", oc.Name), err))
			continue
		}
		r.outputs[oc.Name] = &runningOutput{cfg: oc, out: out}
	}
	gen, err := r.newGenerationPartial(cfg)
	if err != nil {
		failed = errors.Join(failed, err)
		gen = old
	}
	r.swapGen(gen)
	r.drainReplaced(0) // forget the generations no batch uses any more
	for name, g := range gates {
		var next output.Output
		if ro, ok := r.outputs[name]; ok {
			next = ro.out
		}
		g.open(next)
	}

	// Inputs: stop changed and removed ones, start changed and new ones.
	wantIn := map[string]config.Input{}
	for _, ic := range cfg.Inputs {
		wantIn[ic.Name] = ic
	}
	for name, ri := range r.inputs {
		if ic, ok := wantIn[name]; !ok || !reflect.DeepEqual(ic, ri.cfg) {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
			if err := ri.in.Stop(ctx); err != nil {
				r.log.Warn("reload: stopping input", "input", name, "err", err)
			}
			cancel()
			r.keepInputTotals(ri)
			delete(r.inputs, name)
		}
	}
	for _, ic := range cfg.Inputs {
		if _, ok := r.inputs[ic.Name]; ok {
			continue
		}
		if err := r.startInput(ic); err != nil {
			failed = errors.Join(failed, err)
		}
	}
	r.cfg = cfg
	if failed != nil {
		return fmt.Errorf("reload: applied in part: %w", failed)
	}
	r.log.Info("configuration reloaded", "inputs", len(r.inputs), "outputs", len(r.outputs))
	return nil
}

// ReloadRefused records a reload that failed before Reload could run (the
// new file did not load), so relay_config_last_reload_successful shows it.
func (r *Relay) ReloadRefused() { r.met.reloads(false) }

// newGenerationPartial is newGeneration for a reload where some outputs
// may have failed to start.
func (r *Relay) newGenerationPartial(cfg *config.Config) (*generation, error) {
	targets := make([]route.Target, len(cfg.Outputs))
	outs := make([]output.Output, len(cfg.Outputs))
	for i, oc := range cfg.Outputs {
		targets[i] = route.Target{Name: oc.Name, Streams: oc.Streams}
		if ro, ok := r.outputs[oc.Name]; ok {
			outs[i] = ro.out
		} else {
			// It failed to start: its events fail (counted, logged) until
			// a reload brings it up.
			g := newGate(oc.Name, &r.reloadDropped)
			g.open(nil)
			outs[i] = g
		}
	}
	table, err := route.NewTable(cfg.Stream.From, cfg.Stream.Default, targets, r.routeOptions(cfg)...)
	if err != nil {
		return nil, err
	}
	return &generation{table: table, outs: outs}, nil
}

// Shutdown stops accepting, hands what inputs already read to the outputs,
// and flushes the outputs within the configured drain_timeout (or ctx,
// whichever ends first). It is safe to call more than once.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	// Writes blocked on a PUSH with no room give up when the drain time is up.
	stop := context.AfterFunc(ctx, r.cancel)
	defer stop()
	err := r.stopAll(ctx)
	// The totals let an operator (and the drain test) check that every
	// event the inputs read was handed to the outputs.
	var received, sent, dropped uint64
	for _, ri := range r.inputs {
		received += ri.in.Stats().Received
	}
	for _, ro := range r.outputs {
		s := ro.out.Stats()
		sent += s.Sent
		dropped += s.Dropped
	}
	r.log.Info("relay stopped", "err", err, "received", received, "sent", sent, "dropped", dropped)
	return err
}

// stopAll stops inputs first (they hand over what they read), then the
// outputs (they flush), then taps and HTTP.
func (r *Relay) stopAll(ctx context.Context) error {
	r.ready.Store(false)
	var errs error
	for name, ri := range r.inputs {
		if err := ri.in.Stop(ctx); err != nil {
			errs = errors.Join(errs, fmt.Errorf("input %q: %w", name, err))
		}
	}
	if gen := r.gen.Load(); gen != nil {
		deadline := deadlineOr(ctx, time.Second)
		gens := append(r.replaced, gen)
		cut := false
		for _, g := range gens {
			writing := g.inflight.Load() > 0
			// Done, but only because the drain's end cancelled them: cut too.
			cut = !retire(g, time.Until(deadline)) || (writing && ctx.Err() != nil) || cut
		}
		if cut {
			// The drain ran out of time with batches writing. Its end
			// cancels their writes (Shutdown's r.cancel): let them fail
			// and be counted before the outputs close.
			if done := ctx.Done(); done != nil {
				<-done
				for _, g := range gens {
					retire(g, time.Second)
				}
			}
			errs = errors.Join(errs, errors.New("batches still writing to the outputs when drain_timeout ended; their events are counted as dropped"))
		}
	}
	for name, ro := range r.outputs {
		if err := ro.out.Close(ctx); err != nil {
			errs = errors.Join(errs, fmt.Errorf("output %q: %w", name, err))
		}
	}
	if r.hub != nil {
		r.hub.Close()
	}
	if r.httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r.httpSrv.Shutdown(sctx)
		cancel()
	}
	return errs
}

func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// Inputs returns the running inputs by name, for tests and metrics.
func (r *Relay) Inputs() map[string]input.Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]input.Input, len(r.inputs))
	for k, v := range r.inputs {
		m[k] = v.in
	}
	return m
}

// HTTPAddr returns the HTTP listener's address, or nil when disabled.
func (r *Relay) HTTPAddr() net.Addr {
	if r.httpLn == nil {
		return nil
	}
	return r.httpLn.Addr()
}

// OutputAddrs returns the addresses an output is bound to (port 0
// resolved), for tests and tools.
func (r *Relay) OutputAddrs(name string) []net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	ro, ok := r.outputs[name]
	if !ok {
		return nil
	}
	if a, ok := ro.out.(interface{ Addrs() []net.Addr }); ok {
		return a.Addrs()
	}
	return nil
}
