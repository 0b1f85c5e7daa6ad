package ackpipe

import (
	"context"
	"fmt"
	"sync"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// AckConn is where a Receiver sends acks; *zmq.Push implements it.
type AckConn interface {
	Send(ctx context.Context, m zmq.Msg) error
}

// Defaults for the zero fields of ReceiverConfig.
const (
	DefaultMaxBatch   = 1<<20 + 1
	DefaultMaxOpen    = 64
	DefaultMaxStreams = 64
)

// ReceiverConfig bounds what a Receiver keeps per sender. The zero value
// is usable.
type ReceiverConfig struct {
	// MaxBatch is the largest batch accepted, in messages, a closing
	// marker included (default 1<<20+1). A larger index is refused, so a
	// peer cannot make the receiver allocate an arbitrary bitmap.
	MaxBatch int
	// MaxOpen is how many partly received batches are kept per stream
	// (default 64); beyond it the oldest is forgotten (Stats.Evicted), and
	// copies of its messages resent later would be delivered again. Keep
	// it above how many batches of a sender can be partly received at
	// once: its Window, or a few per worker when each batch goes whole to
	// one worker (Config.Whole, the relay's acknowledged output). Which
	// batches are complete is remembered apart from it (maxDoneSpan).
	MaxOpen int
	// MaxStreams is how many senders are tracked (default 64); the least
	// recently seen is forgotten beyond it.
	MaxStreams int
}

// ReceiverStats is a snapshot of a Receiver's counters.
type ReceiverStats struct {
	Msgs       uint64 // messages delivered (first copies)
	Duplicates uint64 // copies dropped because the message was already delivered
	Recovered  uint64 // delivered from a RESENT copy: the first one was lost
	Batches    uint64 // batches completed and acknowledged
	ReAcks     uint64 // acks repeated for a completed batch sent again
	Malformed  uint64 // messages refused (bad header, index beyond MaxBatch)
	Evicted    uint64 // partial batches forgotten (MaxOpen, MaxStreams)
	AckErrors  uint64 // acks AckConn did not take
}

type rbatch struct {
	have []uint64 // bitmap of indexes held
	n    int      // indexes held
	max  int64    // highest index held
	last int64    // index that carried LAST, -1 until seen
}

func (b *rbatch) has(i uint32) bool {
	w := int(i / 64)
	return w < len(b.have) && b.have[w]&(1<<(i%64)) != 0
}

func (b *rbatch) set(i uint32) {
	w := int(i / 64)
	if w >= len(b.have) {
		b.have = append(b.have, make([]uint64, w+1-len(b.have))...)
	}
	b.have[w] |= 1 << (i % 64)
	b.n++
	b.max = max(b.max, int64(i))
}

type rstream struct {
	low uint64 // every batch up to low is complete
	// done marks the complete batches above low: bit i of word w is batch
	// base+64w+i. A batch a slow worker still holds keeps low behind it
	// while later batches complete, for as long as the sender's resend
	// timeout if the worker died: the set spans at most maxDoneSpan
	// batches (a bit each).
	base uint64
	done []uint64
	open map[uint64]*rbatch
	used uint64 // for least-recently-seen eviction
}

// maxDoneSpan bounds how far past the oldest incomplete batch of a stream
// a Receiver remembers which batches are complete: 1<<20 batches, 128 KiB.
// Beyond it the oldest are forgotten (Stats.Evicted): a late copy of one
// would be taken for a copy of a complete batch. A live sender resends an
// unacknowledged batch long before that (5 s at 100,000 batches/s is half
// of it).
const maxDoneSpan = 1 << 20

// isDone reports whether batch seq is complete.
func (s *rstream) isDone(seq uint64) bool {
	if seq <= s.low {
		return true
	}
	k := seq - s.base
	return k < uint64(len(s.done))*64 && s.done[k/64]&(1<<(k%64)) != 0
}

// Receiver is the consuming end: it drops copies of messages it already
// delivered and acknowledges each batch once it holds all of it. It is
// safe for concurrent use, though one goroutine per socket is the norm.
type Receiver struct {
	acks AckConn
	cfg  ReceiverConfig

	mu      sync.Mutex
	streams map[uint32]*rstream
	clock   uint64
	st      ReceiverStats
	owed    []owedAck // batches complete (or re-sent) whose acks Commit sends

	// The batch being received, to skip two map lookups per message;
	// cleared whenever a batch or stream is dropped from the maps.
	curID  uint32
	curS   *rstream
	curSeq uint64
	curB   *rbatch
}

// NewReceiver returns a Receiver that sends its acks to acks.
func NewReceiver(acks AckConn, c ReceiverConfig) *Receiver {
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxOpen <= 0 {
		c.MaxOpen = DefaultMaxOpen
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	return &Receiver{acks: acks, cfg: c, streams: make(map[uint32]*rstream)}
}

// owedAck is an ack Commit still has to send.
type owedAck struct {
	stream uint32
	seq    uint64
}

// Handle takes one received message. It returns the application's
// frames and true when the message is delivered for the first time, and
// false for a copy, a marker or a refused message (with an error wrapping
// ErrMalformed or ErrBatchTooLarge).
//
// Handle never acks: a batch is acknowledged by the next Commit, which the
// application calls once it has processed what Handle returned. Acking
// first would tell the sender a batch is safe while its last message is
// still only in the application's hands.
func (r *Receiver) Handle(ctx context.Context, m zmq.Msg) (zmq.Msg, bool, error) {
	if len(m) == 0 {
		r.count(&r.st.Malformed)
		return nil, false, fmt.Errorf("empty message: %w", ErrMalformed)
	}
	h, err := ParseHeader(m[0])
	if err != nil {
		r.count(&r.st.Malformed)
		return nil, false, err
	}
	marker := h.Flags&FlagMarker != 0
	if marker && len(m) != 1 {
		r.count(&r.st.Malformed)
		return nil, false, fmt.Errorf("marker with %d frames: %w", len(m), ErrMalformed)
	}
	if int64(h.Index) >= int64(r.cfg.MaxBatch) {
		r.count(&r.st.Malformed)
		return nil, false, fmt.Errorf("index %d, MaxBatch %d: %w", h.Index, r.cfg.MaxBatch, ErrBatchTooLarge)
	}

	r.mu.Lock()
	s := r.stream(h.Stream)
	if s.isDone(h.Seq) {
		if !marker {
			r.st.Duplicates++
		}
		// The batch was acknowledged and is being sent again: the ack
		// may have been lost, so repeat it once per copy of the batch.
		reack := h.Flags&FlagLast != 0
		if reack {
			r.st.ReAcks++
			r.owed = append(r.owed, owedAck{h.Stream, h.Seq})
		}
		r.mu.Unlock()
		return nil, false, nil
	}
	var b *rbatch
	if r.curB != nil && r.curS == s && r.curSeq == h.Seq {
		b = r.curB
	} else {
		b = s.open[h.Seq]
		if b == nil {
			r.evictOpen(s)
			b = &rbatch{max: -1, last: -1}
			s.open[h.Seq] = b
		}
		r.curSeq, r.curB = h.Seq, b
	}
	last := h.Flags&FlagLast != 0
	if (b.last >= 0 && int64(h.Index) > b.last) || (last && (b.last >= 0 || int64(h.Index) < b.max)) {
		r.st.Malformed++
		r.mu.Unlock()
		return nil, false, fmt.Errorf("stream %d batch %d: index %d beyond its end: %w", h.Stream, h.Seq, h.Index, ErrMalformed)
	}
	if b.has(h.Index) {
		if !marker {
			r.st.Duplicates++
		}
		r.mu.Unlock()
		return nil, false, nil
	}
	b.set(h.Index)
	if last {
		b.last = int64(h.Index)
	}
	if !marker {
		r.st.Msgs++
		if h.Flags&FlagResent != 0 {
			r.st.Recovered++
		}
	}
	complete := b.last >= 0 && int64(b.n) == b.last+1
	if complete {
		delete(s.open, h.Seq)
		r.curB = nil
		r.st.Evicted += s.markDone(h.Seq)
		r.st.Batches++
		r.owed = append(r.owed, owedAck{h.Stream, h.Seq})
	}
	r.mu.Unlock()
	if marker {
		return nil, false, nil
	}
	return m[1:], true, nil
}

// Commit sends the acks of the batches completed (or re-sent after their
// ack) since the last Commit. Call it after processing what Handle
// returned; it costs nothing when no batch completed. On error, the acks
// not sent stay owed and the next Commit retries them.
func (r *Receiver) Commit(ctx context.Context) error {
	r.mu.Lock()
	owed := r.owed
	r.owed = nil
	r.mu.Unlock()
	for i, a := range owed {
		if err := r.ack(ctx, a.stream, a.seq); err != nil {
			r.mu.Lock()
			r.owed = append(owed[i:len(owed):len(owed)], r.owed...)
			r.mu.Unlock()
			return err
		}
	}
	return nil
}

func (r *Receiver) count(c *uint64) {
	r.mu.Lock()
	*c++
	r.mu.Unlock()
}

func (r *Receiver) ack(ctx context.Context, stream uint32, seq uint64) error {
	if err := r.acks.Send(ctx, zmq.Msg{AppendAck(make([]byte, 0, AckLen), stream, seq)}); err != nil {
		r.count(&r.st.AckErrors)
		return fmt.Errorf("ackpipe: ack stream %d batch %d: %w", stream, seq, err)
	}
	return nil
}

// stream returns the state of stream id, making room for it if needed.
func (r *Receiver) stream(id uint32) *rstream {
	r.clock++
	if r.curS != nil && r.curID == id {
		r.curS.used = r.clock
		return r.curS
	}
	r.curB = nil
	s := r.streams[id]
	if s == nil {
		if len(r.streams) >= r.cfg.MaxStreams {
			var oldest uint32
			var used uint64 = ^uint64(0)
			for k, v := range r.streams {
				if v.used < used {
					oldest, used = k, v.used
				}
			}
			r.st.Evicted += uint64(len(r.streams[oldest].open))
			delete(r.streams, oldest)
		}
		s = &rstream{base: 1, open: make(map[uint64]*rbatch)}
		r.streams[id] = s
	}
	s.used = r.clock
	r.curID, r.curS = id, s
	return s
}

// evictOpen forgets the oldest partial batch when the stream has MaxOpen.
func (r *Receiver) evictOpen(s *rstream) {
	if len(s.open) < r.cfg.MaxOpen {
		return
	}
	var oldest uint64 = ^uint64(0)
	for seq := range s.open {
		oldest = min(oldest, seq)
	}
	delete(s.open, oldest)
	r.curB = nil
	r.st.Evicted++
}

// markDone records seq (above low) as complete and advances the
// low-water mark over every complete batch. A batch still incomplete
// below later complete ones is remembered as such however many complete
// after it, up to maxDoneSpan: past that the mark jumps over the oldest
// (a batch lost with a sender that never resends it would pin the set
// forever), and markDone returns how many partial batches it forgot.
func (s *rstream) markDone(seq uint64) (forgot uint64) {
	if k := seq - s.base; k >= maxDoneSpan {
		// Forget the oldest batches, whole words of them, so seq fits:
		// complete or not, they count as complete from now on.
		words := (k-maxDoneSpan)/64 + 1
		s.low = max(s.low, s.base+64*words-1)
		s.base += 64 * words
		s.done = s.done[min(words, uint64(len(s.done))):]
	}
	k := seq - s.base
	for uint64(len(s.done))*64 <= k {
		s.done = append(s.done, 0)
	}
	s.done[k/64] |= 1 << (k % 64)
	for s.isDoneBit(s.low + 1) {
		s.low++
	}
	// Drop the words wholly at or below low.
	for len(s.done) > 0 && s.base+64 <= s.low+1 {
		s.done = s.done[1:]
		s.base += 64
	}
	if len(s.done) == 0 {
		s.done, s.base = s.done[:0], s.low+1
	}
	for seq, b := range s.open {
		if seq <= s.low {
			delete(s.open, seq)
			if b.n > 0 {
				forgot++
			}
		}
	}
	return forgot
}

// isDoneBit reports whether seq (above low) is marked complete.
func (s *rstream) isDoneBit(seq uint64) bool {
	k := seq - s.base
	return seq >= s.base && k < uint64(len(s.done))*64 && s.done[k/64]&(1<<(k%64)) != 0
}

// Stats returns a snapshot of the counters.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}
