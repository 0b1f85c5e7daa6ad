package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rsyslog-zmq/relay/internal/ackpipe"
	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Defaults of an acknowledged PUSH output's zero settings. The default
// window is AckWindowFor(Batch).
const (
	DefaultAckBatch   = 100
	DefaultAckWindow  = 16    // the least default window, in batches
	DefaultAckEvents  = 16000 // events the default window holds (internal/config's too)
	DefaultAckTimeout = 5 * time.Second
	DefaultAckFlush   = 10 * time.Millisecond
)

// AckWindowFor is the default window for batches of batch events: enough
// batches for DefaultAckEvents events unacknowledged, at least
// DefaultAckWindow and at most 4096 (internal/config's MaxAckWindow). A
// window must cover the ack round trip at the rate the workers can take:
// with less, the output waits for acks while they idle.
func AckWindowFor(batch int) int {
	if batch <= 0 {
		batch = DefaultAckBatch
	}
	return min(max((DefaultAckEvents+batch-1)/batch, DefaultAckWindow), 1<<12)
}

// ErrNotAcknowledged is what the events of a batch still unacknowledged
// when an acknowledged PUSH output closes are released with: their inputs
// must not tell their senders they are safe.
var ErrNotAcknowledged = errors.New("output: batch not acknowledged before the output closed")

// AckPushConfig configures an acknowledged PUSH output.
type AckPushConfig struct {
	Name    string
	Bind    []string // data endpoints to listen on (workers connect)
	Connect []string // data endpoints to dial
	// AckBind and AckConnect are where acks come from: a PULL socket that
	// workers or a downstream sink PUSH 16-byte ack frames to.
	AckBind    []string
	AckConnect []string
	Format     Format
	// Batch is events per batch (default 100); Window is how many batches
	// may be unacknowledged at once, the one being filled included
	// (default AckWindowFor(Batch): 160 for 100): at most Batch*Window
	// events are held.
	Batch, Window int
	// Timeout resends a batch not acknowledged for this long, to any
	// worker, and again each time it passes (default 5s).
	Timeout time.Duration
	// Flush sends a partly filled batch this long after its first event
	// (default 10ms), so events at a low rate are not held back.
	Flush time.Duration
	// Options configures the data socket (HWM, security, heartbeats). Its
	// HWM is raised to Batch if lower: a batch is queued whole to a peer.
	Options zmq.Options
	// AckOptions configures the ack socket (security for its own side).
	AckOptions zmq.Options
}

// AckPush is a ZeroMQ PUSH output whose events are acknowledged per batch,
// on internal/ackpipe's wire format: each event travels behind a 20-byte
// header frame, and each batch goes whole to one worker. A batch leaves
// memory (and its events' hand-offs fire) only once a worker or a sink
// acknowledges it; one not acknowledged within Timeout is sent again.
// While Window batches are unacknowledged, Write blocks: backpressure.
type AckPush struct {
	name   string
	format Format
	push   *zmq.Push
	acks   *zmq.Pull
	snd    *ackpipe.Sender
	log    *slog.Logger

	sent      atomic.Uint64 // events taken (sent or to be sent)
	failed    atomic.Uint64 // events not taken (Write's ctx ended, closed)
	abandoned atomic.Uint64 // events of batches unacknowledged at Close
	orphans   atomic.Uint64 // messages a gone worker was never sent
	lat       latencyHist
	clock     waitClock
	// spoolSent marks spool records Sent as their batch first goes out
	// (SetSpoolSent; nil without a spool).
	spoolSent func(rs ...spool.Range) error
	scratch   sync.Pool // *ackScratch

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	close  sync.Once
	err    error
}

// NewAckPush creates the data and ack sockets and sets up their endpoints.
func NewAckPush(cfg AckPushConfig, log *slog.Logger) (*AckPush, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("output", cfg.Name)
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultAckBatch
	}
	if cfg.Window <= 0 {
		cfg.Window = AckWindowFor(cfg.Batch)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAckTimeout
	}
	if cfg.Flush <= 0 {
		cfg.Flush = DefaultAckFlush
	}
	if len(cfg.Bind)+len(cfg.Connect) == 0 {
		return nil, fmt.Errorf("output %q: no endpoint; set bind or connect", cfg.Name)
	}
	if len(cfg.AckBind)+len(cfg.AckConnect) == 0 {
		return nil, fmt.Errorf("output %q: no ack endpoint; set ack.bind or ack.connect", cfg.Name)
	}
	cfg.Options.Logger = log
	cfg.Options.HWM = max(cfg.Options.HWM, zmq.DefaultHWM, cfg.Batch)
	cfg.AckOptions.Logger = log.With("socket", "ack")
	if cfg.AckOptions.MaxMsgSize <= 0 {
		// An ack is 16 bytes: anything much longer is not one.
		cfg.AckOptions.MaxMsgSize = 4 << 10
	}
	o := &AckPush{name: cfg.Name, format: cfg.Format, log: log}
	o.scratch.New = func() any { return &ackScratch{} }
	o.push = zmq.NewPush(cfg.Options)
	o.acks = zmq.NewPull(cfg.AckOptions)
	o.snd = ackpipe.NewSender(o.push, ackpipe.Config{
		BatchSize:   cfg.Batch,
		Window:      cfg.Window,
		ResendAfter: cfg.Timeout,
		FlushAfter:  cfg.Flush,
		Whole:       true,
		OnAck:       o.onAck,
		OnAbandon:   o.onAbandon,
		OnSend:      o.onSend,
		OnResend: func(seq uint64, n int) {
			log.Debug("batch resent", "batch", seq, "events", n)
		},
	})
	// A batch a gone worker never got is resent whole at once, rather
	// than spread over the other workers piecemeal.
	o.push.TakeOrphans(o.orphaned)
	fail := func(err error) (*AckPush, error) {
		o.snd.Close()
		o.push.Close()
		o.acks.Close()
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	for _, ep := range cfg.Bind {
		if err := o.push.Listen(ep); err != nil {
			return fail(fmt.Errorf("bind %s: %w", ep, err))
		}
	}
	for _, ep := range cfg.AckBind {
		if err := o.acks.Listen(ep); err != nil {
			return fail(fmt.Errorf("ack bind %s: %w", ep, err))
		}
	}
	for _, ep := range cfg.Connect {
		if err := o.push.Dial(ep); err != nil {
			return fail(fmt.Errorf("connect %s: %w", ep, err))
		}
	}
	for _, ep := range cfg.AckConnect {
		if err := o.acks.Dial(ep); err != nil {
			return fail(fmt.Errorf("ack connect %s: %w", ep, err))
		}
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		_ = o.snd.ReadAcks(o.ctx, o.acks) // ends when the ack socket closes
	}()
	return o, nil
}

// Name returns the output's name.
func (o *AckPush) Name() string { return o.name }

// Write encodes the batch and adds it to the sender's batches. It blocks
// while the window is full, until ctx ends. The events are held: their
// hand-offs are released once their batch is acknowledged (nil) or
// abandoned at Close (ErrNotAcknowledged); events Write could not take
// are released with the error at once.
func (o *AckPush) Write(ctx context.Context, batch []*event.Event) error {
	enc := newEncoder(o.format, batch)
	sc := o.scratch.Get().(*ackScratch)
	payloads, tags := sc.payloads[:0], sc.tags[:0]
	for _, e := range batch {
		e.Hold()
		payloads = append(payloads, enc.payload(e))
		tags = append(tags, e)
	}
	start := o.clock.begin()
	n, err := o.snd.SendPayloads(ctx, payloads, tags)
	o.clock.end(start)
	// The sender keeps what it needs of both: the arrays go back.
	clear(payloads)
	clear(tags)
	sc.payloads, sc.tags = payloads[:0], tags[:0]
	o.scratch.Put(sc)
	o.sent.Add(uint64(n))
	if n < len(batch) {
		o.failed.Add(uint64(len(batch) - n))
		for _, e := range batch[n:] {
			e.Release(err)
		}
		return fmt.Errorf("output %q: %d of %d events not sent: %w", o.name, len(batch)-n, len(batch), err)
	}
	// err with everything taken: a batch could not be queued before ctx
	// ended; it is in the window and goes out with the next resend round.
	return nil
}

// ackScratch holds a Write's arrays between calls.
type ackScratch struct {
	payloads [][]byte
	tags     []any
}

// orphaned takes what a worker that went away was never sent: the
// batches it belongs to are resent now, whole, to the other workers.
func (o *AckPush) orphaned(unsent []zmq.Msg) {
	seqs := make([]uint64, 0, 4)
	for _, m := range unsent {
		h, err := ackpipe.ParseHeader(m[0])
		if err != nil || h.Stream != o.snd.Stream() || (len(seqs) > 0 && seqs[len(seqs)-1] == h.Seq) {
			continue
		}
		seqs = append(seqs, h.Seq)
	}
	o.orphans.Add(uint64(len(unsent)))
	o.snd.ResendNow(seqs...)
}

func (o *AckPush) onAck(a ackpipe.Acked) {
	o.lat.observe(a.Latency)
	settle(a.Tags, nil)
}

// SetSpoolSent makes the output mark the spool records of a batch Sent
// just before the batch first goes to a worker, so that after a crash the
// spool counts exactly the records that may have reached one (those of the
// unacknowledged window) as redelivered. Call it before the first Send;
// NewSpooled does.
func (o *AckPush) SetSpoolSent(sent func(rs ...spool.Range) error) { o.spoolSent = sent }

// onSend marks a batch's spool records Sent (events written directly
// carry no seq and need no mark).
func (o *AckPush) onSend(_ uint64, tags []any) {
	if o.spoolSent == nil {
		return
	}
	var rs []spool.Range
	for _, t := range tags {
		st, ok := t.(*seqTag)
		if !ok {
			continue
		}
		if n := len(rs); n > 0 && rs[n-1].Last+1 == st.seq {
			rs[n-1].Last = st.seq
		} else {
			rs = append(rs, spool.Range{First: st.seq, Last: st.seq})
		}
	}
	if len(rs) > 0 {
		// A failed write of the progress file is logged by the spool: the
		// redelivery count after a crash may then be short, nothing else.
		_ = o.spoolSent(rs...)
	}
}

func (o *AckPush) onAbandon(seq uint64, tags []any) {
	o.abandoned.Add(uint64(len(tags)))
	settle(tags, ErrNotAcknowledged)
}

// SendSeqs is the output's side for a spool (a spooled output's drain
// calls it with what it read): payloads[i] is the encoded record seqs[i].
// ack(first, last) is called, from another goroutine, for every run of
// consecutive seqs once a worker or a sink acknowledged their batch; never
// before, and never for a batch still unacknowledged at Close: the spool
// keeps those and they are sent again after a restart. SendSeqs shares
// Write's batches, window and resends, and blocks while the window is
// full. It returns how many records it took.
func (o *AckPush) SendSeqs(ctx context.Context, payloads [][]byte, seqs []uint64, ack func(first, last uint64)) (int, error) {
	if len(seqs) != len(payloads) {
		return 0, fmt.Errorf("output %q: %d seqs for %d payloads", o.name, len(seqs), len(payloads))
	}
	acker := &seqAcker{ack: ack}
	slab := make([]seqTag, len(seqs))
	tags := make([]any, len(seqs))
	for i, seq := range seqs {
		slab[i] = seqTag{seq: seq, acker: acker}
		tags[i] = &slab[i]
	}
	start := o.clock.begin()
	n, err := o.snd.SendPayloads(ctx, payloads, tags)
	o.clock.end(start)
	o.sent.Add(uint64(n))
	if n < len(seqs) {
		o.failed.Add(uint64(len(seqs) - n))
		return n, fmt.Errorf("output %q: %d of %d records not sent: %w", o.name, len(seqs)-n, len(seqs), err)
	}
	return n, nil
}

// Send delivers records drained from a spool (the contract of a spooled
// output's Sender): ack(first, last) once their batches are acknowledged.
// It returns an error only when ctx ends or the output is closed; records
// it did not take stay unacknowledged in the spool.
func (o *AckPush) Send(ctx context.Context, recs []spool.Record, ack func(first, last uint64)) error {
	payloads := make([][]byte, len(recs))
	seqs := make([]uint64, len(recs))
	var enc encoder
	if o.format == JSON {
		evs := make([]*event.Event, len(recs))
		for i := range recs {
			r := &recs[i]
			evs[i] = event.New(r.Raw)
			evs[i].Stream, evs[i].Input, evs[i].Peer, evs[i].Received = r.Stream, r.Input, r.Peer, r.Received
		}
		enc = newEncoder(o.format, evs)
		for i, e := range evs {
			payloads[i] = enc.payload(e)
		}
	} else {
		for i := range recs {
			payloads[i] = recs[i].Raw
		}
	}
	for i := range recs {
		seqs[i] = recs[i].Seq
	}
	_, err := o.SendSeqs(ctx, payloads, seqs, ack)
	return err
}

// seqTag marks a spool record in a batch; seqAcker is the ack function of
// the SendSeqs call it came in (one per call, so runs compare pointers).
type seqTag struct {
	seq   uint64
	acker *seqAcker
}

type seqAcker struct{ ack func(first, last uint64) }

// settle tells the owners of a batch's messages how it ended: events are
// released (with err, if any); spool records are acknowledged in runs of
// consecutive seqs when the batch was, and left alone when it was not.
func settle(tags []any, err error) {
	var run *seqTag // first record of the current run
	var last uint64
	flush := func() {
		if run != nil && err == nil {
			run.acker.ack(run.seq, last)
		}
		run = nil
	}
	for _, t := range tags {
		switch t := t.(type) {
		case *event.Event:
			t.Release(err)
		case *seqTag:
			if run != nil && (t.acker != run.acker || t.seq != last+1) {
				flush()
			}
			if run == nil {
				run = t
			}
			last = t.seq
		}
	}
	flush()
}

// Close sends the batch being filled and waits, within ctx, until every
// batch is acknowledged; then it closes the sockets. Events of batches
// still unacknowledged are released with ErrNotAcknowledged.
func (o *AckPush) Close(ctx context.Context) error {
	o.close.Do(func() {
		if err := o.snd.Wait(ctx); err != nil {
			st := o.snd.Stats()
			o.err = fmt.Errorf("output %q: %d events in %d batches not acknowledged: %w", o.name, st.AtRisk, st.InFlight, err)
		}
		o.snd.Close() // abandons what is left
		o.cancel()
		o.push.Close()
		o.acks.Close()
		o.wg.Wait()
	})
	return o.err
}

// Addrs returns the data socket's bound addresses (port 0 resolved).
func (o *AckPush) Addrs() []net.Addr { return o.push.Addrs() }

// AckAddrs returns the ack socket's bound addresses (port 0 resolved).
func (o *AckPush) AckAddrs() []net.Addr { return o.acks.Addrs() }

// Socket returns the data socket's counters, without the drops of
// messages a write to a vanished worker cut off or the closing socket
// held: here those are not losses (relay_output_socket_drops_total means
// lost events), their batches are resent, or released as not safe at Close.
func (o *AckPush) Socket() zmq.Stats {
	st := o.push.Stats()
	if len(st.Drops) > 0 {
		drops := make(map[string]uint64, len(st.Drops))
		for reason, n := range st.Drops {
			if reason != zmq.DropLostInFlight && reason != zmq.DropSocketClosed {
				drops[reason] = n
			}
		}
		st.Drops = drops
	}
	return st
}

// Stats returns the output's counters: Sent counts events taken into
// batches, Dropped those not taken or abandoned unacknowledged at Close.
func (o *AckPush) Stats() Stats {
	s := o.push.Stats()
	return Stats{
		Sent:    o.sent.Load(),
		Dropped: o.failed.Load() + o.abandoned.Load(),
		Blocked: o.clock.total(),
		Queued:  s.QueueDepth,
		Peers:   s.Peers,
	}
}

// AckStats are an acknowledged output's own counters.
type AckStats struct {
	InFlight       int    // batches unacknowledged now, the one being filled included
	EventsInFlight int    // events in them
	Batches        uint64 // batches closed and sent
	Acked          uint64 // batches acknowledged
	AckedEvents    uint64 // events in them
	Resent         uint64 // batch resends
	ResentEvents   uint64 // events sent again: each is delivered twice unless its first copy was lost
	Abandoned      uint64 // events of batches unacknowledged when the output closed
	Orphaned       uint64 // messages queued for a worker that went away: their batches were resent at once
	// Acks ignored, by why: not an ack; another sender's stream (a
	// previous run of the relay, another relay); a batch already
	// acknowledged; a batch not closed yet or never sent.
	AcksMalformed, AcksUnknown, AcksDuplicate, AcksFuture uint64
	WindowFull                                            bool          // Write waits for an ack now
	WindowWait                                            time.Duration // total time writes waited for an ack with the window full
	Latency                                               LatencySnapshot
}

// AckStats returns a snapshot of the acknowledgement counters.
func (o *AckPush) AckStats() AckStats {
	st := o.snd.Stats()
	return AckStats{
		InFlight:       st.InFlight,
		EventsInFlight: st.AtRisk,
		Batches:        st.Batches,
		Acked:          st.Acked,
		AckedEvents:    st.AckedMsgs,
		Resent:         st.Resends,
		ResentEvents:   st.ResentMsgs,
		Abandoned:      o.abandoned.Load(),
		Orphaned:       o.orphans.Load(),
		AcksMalformed:  st.MalformedAcks,
		AcksUnknown:    st.UnknownAcks,
		AcksDuplicate:  st.DupAcks,
		AcksFuture:     st.FutureAcks,
		WindowFull:     st.Waiting,
		WindowWait:     st.StallTime,
		Latency:        o.lat.snapshot(),
	}
}

// AckLatencyBounds are the upper bounds, in seconds, of the ack latency
// histogram's buckets: from a batch's first send to its ack.
var AckLatencyBounds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// LatencySnapshot is a histogram: Counts[i] observations at or below
// AckLatencyBounds[i] and above the bound before it; the last count is
// above every bound.
type LatencySnapshot struct {
	Counts []uint64
	Sum    time.Duration
}

// Count is the number of observations.
func (l LatencySnapshot) Count() uint64 {
	var n uint64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

type latencyHist struct {
	counts [17]atomic.Uint64 // len(AckLatencyBounds)+1
	sum    atomic.Int64
}

func (h *latencyHist) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(AckLatencyBounds) && s > AckLatencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *latencyHist) snapshot() LatencySnapshot {
	l := LatencySnapshot{Counts: make([]uint64, len(h.counts)), Sum: time.Duration(h.sum.Load())}
	for i := range h.counts {
		l.Counts[i] = h.counts[i].Load()
	}
	return l
}

// waitClock adds up the time writers spend blocked, including writes
// still waiting, so a stall shows in the metric while it lasts.
type waitClock struct {
	mu       sync.Mutex
	done     time.Duration // finished waits
	waiting  int64         // waits in progress
	startSum int64         // sum of their start times, Unix nanoseconds
}

func (c *waitClock) begin() time.Time {
	now := time.Now()
	c.mu.Lock()
	c.waiting++
	c.startSum += now.UnixNano()
	c.mu.Unlock()
	return now
}

func (c *waitClock) end(start time.Time) {
	d := time.Since(start)
	c.mu.Lock()
	c.waiting--
	c.startSum -= start.UnixNano()
	c.done += d
	c.mu.Unlock()
}

func (c *waitClock) total() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done + time.Duration(c.waiting*time.Now().UnixNano()-c.startSum)
}
