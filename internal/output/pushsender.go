package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"unsafe"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// PushSender is the Sender of a spooled PUSH output: it acknowledges a
// record once the record is written to a peer's connection (in the kernel:
// what a plain PUSH output promises), and marks records Sent before the
// kernel may take them: before each write(2) that may accept a record's
// last byte (zmq WriteHooks.Writing), taking the mark back while a large
// write waits for the worker's TCP window with them unwritten
// (WriteHooks.Waiting). After a kill -9 every record that may have reached
// a worker is counted as redelivered: the count is never below the
// duplicates (nothing can be persisted atomically with a write(2), so the
// mark goes first), and above them only by the records a write(2) did not
// take when the kill landed in the microseconds between its mark and its
// return (at most one write, 64 KiB, per peer), or that the kernel took
// but discarded. A record in a write that failed is sent again (to any
// peer with room).
//
// It learns what was written from the socket's write hooks: each message
// it sends is one frame of a per-batch array, so the frame's address
// identifies the batch and the index the record.
type PushSender struct {
	push   *zmq.Push
	format Format
	sent   func(rs ...spool.Range) error
	unsent func(rs ...spool.Range) error

	mu      sync.Mutex
	batches []*pushBatch // in flight, sorted by base
	ack     func(first, last uint64)
	retry   []zmq.Msg
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

// pushBatch is one Send's messages: frames[i] is record seqs[i].
type pushBatch struct {
	base   uintptr
	frames [][]byte
	seqs   []uint64
	left   int // messages not yet written
}

const frameSlot = unsafe.Sizeof([]byte(nil))

// NewPushSender sends over push (endpoints set up by the caller). marks,
// if not nil, is the spool whose Sent and Unsent it calls.
func NewPushSender(push *zmq.Push, format Format, marks spool.Spool) *PushSender {
	s := &PushSender{push: push, format: format, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if marks != nil {
		s.sent, s.unsent = marks.Sent, marks.Unsent
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	push.SetWriteHooks(zmq.WriteHooks{Writing: s.writing, Waiting: s.waiting, After: s.after})
	go s.resend()
	return s
}

// Send queues recs to the peers, blocking while none has room.
func (s *PushSender) Send(ctx context.Context, recs []spool.Record, ack func(first, last uint64)) error {
	if len(recs) == 0 {
		return nil
	}
	b := &pushBatch{frames: make([][]byte, len(recs)), seqs: make([]uint64, len(recs)), left: len(recs)}
	msgs := make([]zmq.Msg, len(recs))
	var evs []*event.Event
	if s.format == JSON {
		evs = make([]*event.Event, len(recs))
		for i := range recs {
			e := event.New(recs[i].Raw)
			e.Stream, e.Input, e.Peer, e.Received = recs[i].Stream, recs[i].Input, recs[i].Peer, recs[i].Received
			evs[i] = e
		}
	}
	enc := newEncoder(s.format, evs)
	for i := range recs {
		if s.format == JSON {
			b.frames[i] = enc.payload(evs[i])
		} else {
			b.frames[i] = recs[i].Raw
		}
		b.seqs[i] = recs[i].Seq
		msgs[i] = b.frames[i : i+1 : i+1]
	}
	b.base = uintptr(unsafe.Pointer(&b.frames[0]))
	s.mu.Lock()
	s.ack = ack
	i := sort.Search(len(s.batches), func(i int) bool { return s.batches[i].base > b.base })
	s.batches = append(s.batches, nil)
	copy(s.batches[i+1:], s.batches[i:])
	s.batches[i] = b
	s.mu.Unlock()
	n, err := s.push.SendBatch(ctx, msgs)
	if err != nil {
		s.mu.Lock()
		b.left -= len(recs) - n
		if b.left == 0 {
			s.unlist(b)
		}
		s.mu.Unlock()
		return fmt.Errorf("%d of %d records not queued: %w", len(recs)-n, len(recs), err)
	}
	return nil
}

// find returns the batch holding frame address a (mu held).
func (s *PushSender) find(a uintptr) (*pushBatch, int) {
	i := sort.Search(len(s.batches), func(i int) bool { return s.batches[i].base > a }) - 1
	if i < 0 {
		return nil, 0
	}
	b := s.batches[i]
	k := int((a - b.base) / frameSlot)
	if k >= len(b.seqs) {
		return nil, 0
	}
	return b, k
}

func (s *PushSender) unlist(b *pushBatch) {
	i := sort.Search(len(s.batches), func(i int) bool { return s.batches[i].base >= b.base })
	if i < len(s.batches) && s.batches[i] == b {
		s.batches = append(s.batches[:i], s.batches[i+1:]...)
	}
}

// ranges turns messages into seq ranges (mu held); written counts them
// down in their batches.
func (s *PushSender) ranges(ms []zmq.Msg, written bool, out []spool.Range) []spool.Range {
	var last *pushBatch
	for _, m := range ms {
		a := uintptr(unsafe.Pointer(&m[0]))
		var b *pushBatch
		var k int
		if last != nil && a >= last.base && int((a-last.base)/frameSlot) < len(last.seqs) {
			b, k = last, int((a-last.base)/frameSlot)
		} else {
			b, k = s.find(a)
		}
		if b == nil {
			continue
		}
		last = b
		seq := b.seqs[k]
		if n := len(out); n > 0 && out[n-1].Last+1 == seq {
			out[n-1].Last = seq
		} else {
			out = append(out, spool.Range{First: seq, Last: seq})
		}
		if written {
			b.left--
			if b.left == 0 {
				s.unlist(b)
				last = nil
			}
		}
	}
	return out
}

// writing marks the records the next write(2) may take as Sent (persisted
// before the write(2)).
func (s *PushSender) writing(ms []zmq.Msg) { s.mark(ms, s.sent) }

// waiting takes the mark back for the records a waiting write has not
// written: a kill now does not count them.
func (s *PushSender) waiting(ms []zmq.Msg) { s.mark(ms, s.unsent) }

func (s *PushSender) mark(ms []zmq.Msg, f func(rs ...spool.Range) error) {
	if f == nil {
		return
	}
	s.mu.Lock()
	rs := s.ranges(ms, false, nil)
	s.mu.Unlock()
	if len(rs) > 0 {
		f(rs...)
	}
}

// after acknowledges written records, and queues those of a failed write
// to be sent again.
func (s *PushSender) after(ms []zmq.Msg, err error) {
	s.mu.Lock()
	if err != nil {
		s.retry = append(s.retry, ms...) // ms is only valid during the call: the Msgs are copied
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return
	}
	rs := s.ranges(ms, true, nil)
	ack := s.ack
	s.mu.Unlock()
	for _, r := range rs {
		ack(r.First, r.Last)
	}
}

// resend sends again what was in a failed write: a peer went away with
// it, and a worker may or may not have it (at-least-once).
func (s *PushSender) resend() {
	defer close(s.done)
	for {
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		msgs := s.retry
		s.retry = nil
		s.mu.Unlock()
		if len(msgs) == 0 {
			continue
		}
		if _, err := s.push.SendBatch(s.ctx, msgs); err != nil {
			return // closing: they stay unacknowledged in the spool
		}
	}
}

// Close waits, within ctx, until what was queued is written, then closes
// the socket.
func (s *PushSender) Close(ctx context.Context) error {
	var err error
	if ferr := s.push.Flush(ctx); ferr != nil && !errors.Is(ferr, zmq.ErrClosed) && !errors.Is(ferr, context.DeadlineExceeded) && !errors.Is(ferr, context.Canceled) {
		err = fmt.Errorf("flush: %w", ferr)
	}
	s.cancel()
	s.push.Close()
	<-s.done
	return err
}

// Socket returns the socket's counters.
func (s *PushSender) Socket() zmq.Stats { return s.push.Stats() }

// Addrs returns the bound addresses (tests).
func (s *PushSender) Addrs() []net.Addr { return s.push.Addrs() }

var _ Sender = (*PushSender)(nil)

// NewSpooledPush builds a spooled PUSH output: the socket with its
// endpoints (as NewZMQ does), a PushSender marking and acknowledging the
// spool, and the drain loop. The spool is closed with the output.
func NewSpooledPush(cfg ZMQConfig, sp spool.Spool, log *slog.Logger) (*Spooled, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Socket != "push" {
		return nil, fmt.Errorf("output %q: only push outputs can be spooled", cfg.Name)
	}
	if len(cfg.Bind)+len(cfg.Connect) == 0 {
		return nil, fmt.Errorf("output %q: no endpoint; set bind or connect", cfg.Name)
	}
	cfg.Options.Logger = log.With("output", cfg.Name)
	push := zmq.NewPush(cfg.Options)
	for _, ep := range cfg.Bind {
		if err := push.Listen(ep); err != nil {
			push.Close()
			return nil, fmt.Errorf("output %q: bind %s: %w", cfg.Name, ep, err)
		}
	}
	for _, ep := range cfg.Connect {
		if err := push.Dial(ep); err != nil {
			push.Close()
			return nil, fmt.Errorf("output %q: connect %s: %w", cfg.Name, ep, err)
		}
	}
	snd := NewPushSender(push, cfg.Format, sp)
	o, err := NewSpooled(SpooledConfig{Name: cfg.Name, Spool: sp, Sender: snd, Logger: log})
	if err != nil {
		snd.Close(context.Background())
		return nil, err
	}
	return o, nil
}
