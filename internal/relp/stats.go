package relp

import (
	"sync/atomic"
	"time"
)

// Stats are a Server's counters, totals since it started unless noted.
type Stats struct {
	Sessions      int64  // sessions open now
	SessionsTotal uint64 // connections served

	// Frames by command: open, syslog, close, and every other command
	// (answered 500 and counted as bad too) as "other".
	Frames map[string]uint64
	// Acked is how many syslog frames were answered 200 OK.
	Acked uint64
	// ResendCloses counts sessions the server closed with serverclose
	// while frames were unanswered, which makes the client send them
	// again: by cause ("ack_timeout", "handoff_failed", "shutdown").
	ResendCloses map[string]uint64
	// BadFrames counts frames and sessions refused, by Reason.
	BadFrames map[Reason]uint64
	// Refused500 counts frames answered 500 (never a syslog frame the
	// relay could parse).
	Refused500 uint64

	// Window is the number of frames read but not yet answered, now, over
	// all sessions: how much of the clients' windows the relay holds.
	Window int64
	// WindowFull is the time sessions spent waiting for the client with
	// its window full of unanswered frames (see the package doc).
	WindowFull time.Duration

	// AckLatency is the time from reading a syslog frame to answering it.
	AckLatency Histogram

	// TLSRefused counts TLS handshakes that failed, by reason: TLSNoCert,
	// TLSUntrusted, TLSName (permitted peers), TLSOther.
	TLSRefused map[string]uint64
}

// Resend-close causes (Stats.ResendCloses keys).
const (
	CloseAckTimeout    = "ack_timeout"
	CloseHandoffFailed = "handoff_failed"
	CloseShutdown      = "shutdown"
)

// AckBuckets are the upper bounds of the ack latency histogram, seconds.
var AckBuckets = []float64{
	50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
	100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30, 60,
}

// Histogram is a snapshot of a latency histogram: Counts[i] observations
// fell at or below Bounds[i] (not cumulative); the last count is above
// every bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Cumulative returns the counts at or below each bound, as Prometheus
// wants them.
func (h Histogram) Cumulative() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.Bounds))
	var acc uint64
	for i, b := range h.Bounds {
		acc += h.Counts[i]
		m[b] = acc
	}
	return m
}

// Quantile estimates the q-quantile (0 < q < 1) from the buckets, by
// linear interpolation inside the bucket that holds it.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	var acc float64
	lower := 0.0
	for i, b := range h.Bounds {
		c := float64(h.Counts[i])
		if acc+c >= rank && c > 0 {
			return time.Duration((lower + (b-lower)*(rank-acc)/c) * float64(time.Second))
		}
		acc += c
		lower = b
	}
	return time.Duration(lower * float64(time.Second))
}

// histogram is the live, lock-free form of Histogram.
type histogram struct {
	counts []atomic.Uint64 // len(AckBuckets)+1
	count  atomic.Uint64
	sum    atomic.Int64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]atomic.Uint64, len(AckBuckets)+1)}
}

// observe records n observations of d.
func (h *histogram) observe(d time.Duration, n int) {
	s := d.Seconds()
	i := 0
	for i < len(AckBuckets) && s > AckBuckets[i] {
		i++
	}
	h.counts[i].Add(uint64(n))
	h.count.Add(uint64(n))
	h.sum.Add(int64(d) * int64(n))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: AckBuckets, Counts: make([]uint64, len(AckBuckets)+1)}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	out.Count = h.count.Load()
	out.Sum = time.Duration(h.sum.Load())
	return out
}

// counters are the live form of Stats.
type counters struct {
	sessions      atomic.Int64
	sessionsTotal atomic.Uint64
	framesOpen    atomic.Uint64
	framesSyslog  atomic.Uint64
	framesClose   atomic.Uint64
	framesOther   atomic.Uint64
	acked         atomic.Uint64
	refused500    atomic.Uint64
	closeTimeout  atomic.Uint64
	closeFailed   atomic.Uint64
	closeShutdown atomic.Uint64
	bad           [len(reasons)]atomic.Uint64
	window        atomic.Int64
	windowFull    atomic.Int64 // ns
	ack           *histogram
	tlsNoCert     atomic.Uint64
	tlsUntrusted  atomic.Uint64
	tlsName       atomic.Uint64
	tlsOther      atomic.Uint64
}

// reasonIndex maps each Reason to its counter, its place in reasons.
var reasonIndex = func() map[Reason]int {
	m := make(map[Reason]int, len(reasons))
	for i, r := range reasons {
		m[r] = i
	}
	return m
}()

func (c *counters) badFrame(r Reason) { c.bad[reasonIndex[r]].Add(1) }

func (c *counters) frame(cmd string) {
	switch cmd {
	case CmdSyslog:
		c.framesSyslog.Add(1)
	case CmdOpen:
		c.framesOpen.Add(1)
	case CmdClose:
		c.framesClose.Add(1)
	default:
		c.framesOther.Add(1)
	}
}

func (c *counters) resendClose(cause string) {
	switch cause {
	case CloseAckTimeout:
		c.closeTimeout.Add(1)
	case CloseHandoffFailed:
		c.closeFailed.Add(1)
	case CloseShutdown:
		c.closeShutdown.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Sessions:      c.sessions.Load(),
		SessionsTotal: c.sessionsTotal.Load(),
		Frames: map[string]uint64{
			CmdOpen: c.framesOpen.Load(), CmdSyslog: c.framesSyslog.Load(),
			CmdClose: c.framesClose.Load(), "other": c.framesOther.Load(),
		},
		Acked:      c.acked.Load(),
		Refused500: c.refused500.Load(),
		ResendCloses: map[string]uint64{
			CloseAckTimeout: c.closeTimeout.Load(), CloseHandoffFailed: c.closeFailed.Load(),
			CloseShutdown: c.closeShutdown.Load(),
		},
		BadFrames:  make(map[Reason]uint64, len(reasonIndex)),
		Window:     c.window.Load(),
		WindowFull: time.Duration(c.windowFull.Load()),
		AckLatency: c.ack.snapshot(),
		TLSRefused: map[string]uint64{
			TLSNoCert: c.tlsNoCert.Load(), TLSUntrusted: c.tlsUntrusted.Load(),
			TLSName: c.tlsName.Load(), TLSOther: c.tlsOther.Load(),
		},
	}
	for r, i := range reasonIndex {
		s.BadFrames[r] = c.bad[i].Load()
	}
	return s
}
