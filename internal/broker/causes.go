package broker

import (
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// causes counts failed attempts by cause and logs each cause once per
// episode (from the first failure to the next confirmation), so that an
// outage of an hour is a few log lines, not one per retry.
type causes struct {
	log *slog.Logger
	mu  sync.Mutex
	// counts are totals since start, by cause.
	counts map[string]uint64
	// episode holds the causes logged since the last confirmation.
	episode map[string]uint64
	since   time.Time
	// logged is when each cause was last logged: at most once a minute,
	// also when failures and confirmations alternate (a subject no stream
	// takes beside subjects that flow).
	logged map[string]time.Time
	// loud is set when this episode logged something, so its end is
	// logged too.
	loud bool
	// open is set while an episode runs: ok's fast path, called for every
	// confirmation, reads only it.
	open atomic.Bool
	// failMsg and okMsg are the log lines of a cause's first failure in
	// an episode and of its end.
	failMsg, okMsg string
}

func newCauses(log *slog.Logger) *causes {
	return &causes{log: log, counts: map[string]uint64{}, episode: map[string]uint64{}, logged: map[string]time.Time{},
		failMsg: "broker refused or lost a publish; retrying with backoff, the spool keeps the events",
		okMsg:   "broker confirms publishes again"}
}

// fail counts one failed attempt (n records) with cause and logs it if
// it is new in this episode.
func (c *causes) fail(cause string, n int, err error, hint string) {
	c.mu.Lock()
	c.counts[cause] += uint64(n)
	now := time.Now()
	first := c.episode[cause] == 0 && now.Sub(c.logged[cause]) >= time.Minute
	if len(c.episode) == 0 {
		c.since = now
	}
	c.episode[cause] += uint64(n)
	c.open.Store(true)
	if first {
		c.logged[cause] = now
		c.loud = true
	}
	c.mu.Unlock()
	if first {
		args := []any{"cause", cause, "err", err}
		if hint != "" {
			args = append(args, "fix", hint)
		}
		c.log.Warn(c.failMsg, args...)
	}
}

// ok ends an episode: the destination confirmed something again. It is
// cheap when no episode runs.
func (c *causes) ok() {
	if !c.open.Load() {
		return
	}
	c.mu.Lock()
	c.open.Store(false)
	if len(c.episode) == 0 {
		c.mu.Unlock()
		return
	}
	ep := c.episode
	since := c.since
	loud := c.loud
	c.episode = map[string]uint64{}
	c.loud = false
	c.mu.Unlock()
	if !loud {
		return
	}
	args := []any{"after", time.Since(since).Round(time.Millisecond)}
	for _, k := range sortedKeys(ep) {
		args = append(args, k, ep[k])
	}
	c.log.Info(c.okMsg, args...)
}

// snapshot returns the totals by cause.
func (c *causes) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// backoff is a capped exponential backoff, reset by a success.
type backoff struct {
	mu       sync.Mutex
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() {
	b.mu.Lock()
	b.cur = 0
	b.mu.Unlock()
}

// current is the wait before the next retry (0 after a success).
func (b *backoff) current() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

// ackRanges turns acknowledged seqs (any order) into ranges of
// consecutive seqs and calls ack for each.
func ackRanges(seqs []uint64, ack func(first, last uint64)) {
	if len(seqs) == 0 || ack == nil {
		return
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	first, last := seqs[0], seqs[0]
	for _, s := range seqs[1:] {
		if s == last+1 || s == last {
			last = s
			continue
		}
		ack(first, last)
		first, last = s, s
	}
	ack(first, last)
}

// inEpisode reports whether cause failed since the last confirmation.
func (c *causes) inEpisode(cause string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.episode[cause] > 0
}

// The causes each output counts failures by: the relay exports each at 0
// before its first failure, so that rate() and increase() see the first.
var (
	JetStreamCauses = []string{CauseDisconnected, CauseTimeout, CauseNoStream, CauseStreamFull, CauseTooLarge, CauseAuth, CauseUnconfirmed, CauseOther}
	KafkaCauses     = []string{CauseUnknownTopic, CauseBrokers, CauseTimeout, CauseTooLarge, CauseAuth, CauseOther}
)
