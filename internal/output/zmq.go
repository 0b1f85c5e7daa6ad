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
	"unsafe"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// ZMQConfig configures a ZeroMQ output.
type ZMQConfig struct {
	Name    string
	Socket  string   // "push" or "pub"
	Bind    []string // endpoints to listen on
	Connect []string // endpoints to dial (reconnecting forever)
	Format  Format
	Options zmq.Options // HWM, MaxMsgSize, Security, heartbeats…
}

// ZMQ is an output to a ZeroMQ PUSH or PUB socket. PUSH sends one frame,
// the payload, and blocks while no peer has room. PUB sends two frames,
// [stream, payload], so subscribers filter on the stream, and never blocks.
type ZMQ struct {
	name   string
	push   *zmq.Push
	pub    *zmq.Pub
	format Format

	sent   atomic.Uint64
	failed atomic.Uint64

	// blocked time includes writes still waiting, so a PUSH stalled for
	// minutes shows in the metric while it stalls, not only after.
	bmu      sync.Mutex
	blocked  time.Duration // finished writes
	waiting  int64         // writes in SendBatch now
	startSum int64         // sum of their start times, Unix nanoseconds
}

// NewZMQ creates the socket and sets up its endpoints. Dialled endpoints
// connect in the background; a bad endpoint is an error here.
func NewZMQ(cfg ZMQConfig, log *slog.Logger) (*ZMQ, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Options.Logger = log.With("output", cfg.Name)
	o := &ZMQ{name: cfg.Name, format: cfg.Format}
	var sock interface {
		Listen(string) error
		Dial(string) error
		Close() error
	}
	switch cfg.Socket {
	case "push":
		o.push = zmq.NewPush(cfg.Options)
		sock = o.push
	case "pub":
		o.pub = zmq.NewPub(cfg.Options)
		sock = o.pub
	default:
		return nil, fmt.Errorf("output %q: socket %q is not supported; use push or pub", cfg.Name, cfg.Socket)
	}
	if len(cfg.Bind)+len(cfg.Connect) == 0 {
		sock.Close()
		return nil, fmt.Errorf("output %q: no endpoint; set bind or connect", cfg.Name)
	}
	for _, ep := range cfg.Bind {
		if err := sock.Listen(ep); err != nil {
			sock.Close()
			return nil, fmt.Errorf("output %q: bind %s: %w", cfg.Name, ep, err)
		}
	}
	for _, ep := range cfg.Connect {
		if err := sock.Dial(ep); err != nil {
			sock.Close()
			return nil, fmt.Errorf("output %q: connect %s: %w", cfg.Name, ep, err)
		}
	}
	return o, nil
}

// Name returns the output's name.
func (o *ZMQ) Name() string { return o.name }

// Write encodes the batch and queues it. For PUSH it blocks until every
// event is queued to a peer or ctx ends; events it could not queue are
// released with the error, so their inputs learn they were not handed off.
// Write may be called from many goroutines at once.
func (o *ZMQ) Write(ctx context.Context, batch []*event.Event) error {
	enc := newEncoder(o.format, batch)
	msgs := make([]zmq.Msg, len(batch))
	if o.pub != nil {
		// One backing array for all frames: two allocations per batch, none per event.
		frames := make([][]byte, 2*len(batch))
		msgs = msgs[:0]
		for i, e := range batch {
			m := frames[2*i : 2*i+2 : 2*i+2]
			// The topic frame aliases the stream string: frames are only
			// ever read, so there is no copy.
			m[0] = unsafe.Slice(unsafe.StringData(e.Stream), len(e.Stream))
			// Encoding JSON for a stream nobody subscribes to is wasted work.
			if enc.format == JSON && !o.pub.Wanted(m[0]) {
				continue
			}
			m[1] = enc.payload(e)
			msgs = append(msgs, m)
		}
		// One queue lock per subscriber per batch, not per event.
		if err := o.pub.SendBatch(msgs); err != nil { // closed: none of it was sent
			o.fail(batch, err)
			return fmt.Errorf("output %q: %d events not sent: %w", o.name, len(batch), err)
		}
		// As for raw payloads, which the socket discards for free, an
		// event nobody wanted counts as handed to the socket.
		o.sent.Add(uint64(len(batch)))
		return nil
	}
	frames := make([][]byte, len(batch))
	for i, e := range batch {
		frames[i] = enc.payload(e)
		msgs[i] = frames[i : i+1 : i+1]
	}
	start := time.Now()
	o.bmu.Lock()
	o.waiting++
	o.startSum += start.UnixNano()
	o.bmu.Unlock()
	var n int
	var err error
	if runs := holdRuns(batch); runs != nil {
		// Events an acknowledging input waits for (RELP) are held until
		// the socket has written them to a peer's connection.
		n, err = o.push.SendBatchTracked(ctx, msgs, func(_ int, err error) {
			for _, r := range runs {
				r.Release(err)
			}
		})
	} else {
		n, err = o.push.SendBatch(ctx, msgs)
	}
	end := time.Now()
	o.bmu.Lock()
	o.waiting--
	o.startSum -= start.UnixNano()
	o.blocked += end.Sub(start)
	o.bmu.Unlock()
	o.sent.Add(uint64(n))
	if err != nil {
		if holdsAny(batch) {
			o.failed.Add(uint64(len(batch) - n)) // released by the tracker
		} else {
			o.fail(batch[n:], err)
		}
		return fmt.Errorf("output %q: %d of %d events not sent: %w", o.name, len(batch)-n, len(batch), err)
	}
	return nil
}

// holdRuns holds, once per run of consecutive events sharing one, the
// hand-offs of batch and returns them for release; nil when no event has
// one (plain syslog inputs), which costs one pass over the batch.
func holdRuns(batch []*event.Event) []*event.Handoff {
	var runs []*event.Handoff
	var last *event.Handoff
	for _, e := range batch {
		h := e.Handoff()
		if h == nil || h == last {
			continue
		}
		h.Hold()
		runs = append(runs, h)
		last = h
	}
	return runs
}

func holdsAny(batch []*event.Event) bool {
	for _, e := range batch {
		if e.Handoff() != nil {
			return true
		}
	}
	return false
}

// fail counts evs as not sent and releases them with err, so their
// inputs learn they were not handed off.
func (o *ZMQ) fail(evs []*event.Event, err error) {
	o.failed.Add(uint64(len(evs)))
	for _, e := range evs {
		e.Hold()
		e.Release(err)
	}
}

// Close waits, within ctx, until what PUSH queued is written to peers, then
// closes the socket. PUB does not wait: taps are best effort.
func (o *ZMQ) Close(ctx context.Context) error {
	var err error
	if o.push != nil {
		if ferr := o.push.Flush(ctx); ferr != nil && !errors.Is(ferr, zmq.ErrClosed) {
			err = fmt.Errorf("output %q: flush: %w", o.name, ferr)
		}
		o.push.Close()
	} else {
		o.pub.Close()
	}
	return err
}

// Addrs returns the bound addresses (port 0 resolved), for tests.
func (o *ZMQ) Addrs() []net.Addr {
	if o.push != nil {
		return o.push.Addrs()
	}
	return o.pub.Addrs()
}

// Socket returns the socket's own counters (per peer, drops by reason).
func (o *ZMQ) Socket() zmq.Stats {
	if o.push != nil {
		return o.push.Stats()
	}
	return o.pub.Stats()
}

// Stats returns the output's counters.
func (o *ZMQ) Stats() Stats {
	s := o.Socket()
	o.bmu.Lock()
	blocked := o.blocked + time.Duration(o.waiting*time.Now().UnixNano()-o.startSum)
	o.bmu.Unlock()
	st := Stats{
		Sent:    o.sent.Load(),
		Dropped: o.failed.Load(),
		Blocked: blocked,
		Queued:  s.QueueDepth,
		Peers:   s.Peers,
	}
	for _, n := range s.Drops {
		st.Dropped += n
	}
	return st
}
