package broker

import (
	"context"
	"sync"
)

// acks collects the spool seqs the server confirmed, from the client's
// callback goroutines (which must not block), and hands them to the
// spool's ack func as ranges on a goroutine of its own.
type acks struct {
	mu   sync.Mutex
	seqs []uint64
	fn   func(first, last uint64)
	wake chan struct{}
}

func newAcks() *acks { return &acks{wake: make(chan struct{}, 1)} }

// setFunc sets the spool's ack func (each Send passes it).
func (a *acks) setFunc(fn func(first, last uint64)) {
	a.mu.Lock()
	a.fn = fn
	a.mu.Unlock()
}

// add records a confirmed seq; it never blocks.
func (a *acks) add(seq uint64) {
	a.mu.Lock()
	a.seqs = append(a.seqs, seq)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// loop hands confirmations over until ctx ends, then hands over what is
// left.
func (a *acks) loop(ctx context.Context) {
	for {
		select {
		case <-a.wake:
		case <-ctx.Done():
			a.flush()
			return
		}
		a.flush()
	}
}

func (a *acks) flush() {
	a.mu.Lock()
	seqs, fn := a.seqs, a.fn
	a.seqs = nil
	a.mu.Unlock()
	ackRanges(seqs, fn)
}
