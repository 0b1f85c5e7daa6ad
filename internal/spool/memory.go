package spool

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is the memory spool: the same FIFO, bounds and policies as Disk,
// kept in memory only. Its durable callback means "stored in memory"; a
// crash loses what it holds, so only the destination's ack makes an event
// safe.
type Memory struct {
	opt Options

	mu      sync.Mutex
	closed  bool
	q       []memEntry // unacknowledged records, oldest first; seqs consecutive
	head    int
	bytes   int64
	nextSeq uint64
	rpos    uint64
	records int64
	dataCh  chan struct{}
	roomCh  chan struct{}
	stats   Stats
}

type memEntry struct {
	r     Record
	size  int
	acked bool
}

var _ Spool = (*Memory)(nil)

// NewMemory returns an empty memory spool; it uses opt.MaxBytes and
// opt.Full.
func NewMemory(opt Options) *Memory {
	opt = opt.withDefaults()
	return &Memory{opt: opt, nextSeq: 1, rpos: 1, dataCh: make(chan struct{}), roomCh: make(chan struct{})}
}

// Durable reports false: records are only in memory.
func (m *Memory) Durable() bool { return false }

func (m *Memory) len() int { return len(m.q) - m.head }

func (m *Memory) at(seq uint64) *memEntry {
	if m.len() == 0 {
		return nil
	}
	first := m.q[m.head].r.Seq
	if seq < first || seq-first >= uint64(m.len()) {
		return nil
	}
	return &m.q[m.head+int(seq-first)]
}

// Append implements Spool.
func (m *Memory) Append(ctx context.Context, recs []Record, durable func(error)) error {
	if len(recs) == 0 {
		if durable != nil {
			durable(nil)
		}
		return nil
	}
	sizes := make([]int, len(recs))
	var total int64
	for i := range recs {
		sizes[i] = frameSize(&recs[i])
		total += int64(sizes[i])
	}
	if total > m.opt.MaxBytes/2 {
		return fmt.Errorf("batch of %d bytes, max_bytes %d: %w", total, m.opt.MaxBytes, ErrTooLarge)
	}
	kept := len(recs)
	m.mu.Lock()
	for {
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		room := m.opt.MaxBytes - m.bytes
		if total <= room {
			break
		}
		if m.opt.Full == FullDropNewest {
			var sum int64
			kept = 0
			for kept < len(recs) && sum+int64(sizes[kept]) <= room {
				sum += int64(sizes[kept])
				kept++
			}
			total = sum
			break
		}
		if m.opt.Full == FullDropOldest {
			for m.len() > 0 && m.opt.MaxBytes-m.bytes < total {
				e := m.q[m.head]
				m.q[m.head] = memEntry{}
				m.head++
				m.bytes -= int64(e.size)
				if !e.acked {
					m.stats.DroppedOldest++
					m.records--
				}
			}
			m.rpos = max(m.rpos, m.firstSeq())
			continue
		}
		ch := m.roomCh
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		m.mu.Lock()
	}
	for i := range recs[:kept] {
		recs[i].Seq = m.nextSeq
		m.nextSeq++
		m.q = append(m.q, memEntry{r: recs[i], size: sizes[i]})
	}
	m.bytes += total
	m.records += int64(kept)
	m.stats.Appended += uint64(kept)
	var err error
	if kept < len(recs) {
		m.stats.DroppedNewest += uint64(len(recs) - kept)
		err = fmt.Errorf("%d of %d records: %w", len(recs)-kept, len(recs), ErrDropped)
	}
	close(m.dataCh)
	m.dataCh = make(chan struct{})
	m.mu.Unlock()
	if durable != nil {
		durable(err)
	}
	return nil
}

// firstSeq is the seq of the oldest entry, or the next seq when empty.
func (m *Memory) firstSeq() uint64 {
	if m.len() == 0 {
		return m.nextSeq
	}
	return m.q[m.head].r.Seq
}

// Read implements Spool.
func (m *Memory) Read(ctx context.Context, max int) ([]Record, error) {
	if max <= 0 {
		max = 1
	}
	m.mu.Lock()
	for {
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		m.rpos = maxU(m.rpos, m.firstSeq())
		if m.rpos < m.nextSeq {
			var out []Record
			for len(out) < max && m.rpos < m.nextSeq {
				if e := m.at(m.rpos); e != nil && !e.acked {
					out = append(out, e.r)
				}
				m.rpos++
			}
			m.stats.Read += uint64(len(out))
			m.mu.Unlock()
			return out, nil
		}
		ch := m.dataCh
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		m.mu.Lock()
	}
}

// Sent implements Spool: nothing survives a restart of a memory spool.
func (m *Memory) Sent(...Range) error { return nil }

// Unsent implements Spool; a memory spool ignores it.
func (m *Memory) Unsent(...Range) error { return nil }

// Ack implements Spool.
func (m *Memory) Ack(first, last uint64) error {
	if last < first {
		return fmt.Errorf("spool: ack of %d..%d: last before first", first, last)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	first = maxU(first, m.firstSeq())
	last = min(last, m.nextSeq-1)
	freed := false
	for s := first; s <= last && s >= first; s++ {
		e := m.at(s)
		if e == nil || e.acked {
			continue
		}
		e.acked = true
		m.records--
		m.stats.Acked++
	}
	for m.len() > 0 && m.q[m.head].acked {
		m.bytes -= int64(m.q[m.head].size)
		m.q[m.head] = memEntry{}
		m.head++
		freed = true
	}
	if m.head > 4096 && m.head*2 > len(m.q) {
		n := copy(m.q, m.q[m.head:])
		clear(m.q[n:])
		m.q, m.head = m.q[:n], 0
	}
	if freed {
		close(m.roomCh)
		m.roomCh = make(chan struct{})
	}
	return nil
}

// Stats implements Spool.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	st.Bytes = m.bytes
	st.Records = m.records
	for i := m.head; i < len(m.q); i++ {
		if !m.q[i].acked {
			st.OldestUnacked = m.q[i].r.Received
			if st.OldestUnacked.IsZero() {
				st.OldestUnacked = time.Now()
			}
			break
		}
	}
	return st
}

// Close implements Spool: what it holds is lost.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.dataCh)
		close(m.roomCh)
	}
	return nil
}
