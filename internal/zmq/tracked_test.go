package zmq

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// trackedDone records SendBatchTracked's callback.
type trackedDone struct {
	calls  atomic.Int32
	queued atomic.Int64
	err    atomic.Pointer[error]
}

func (d *trackedDone) fn(queued int, err error) {
	d.calls.Add(1)
	d.queued.Store(int64(queued))
	d.err.Store(&err)
}

func (d *trackedDone) result(t *testing.T) (int, error) {
	t.Helper()
	waitFor(t, 5*time.Second, "the tracked batch's callback", func() bool { return d.calls.Load() > 0 })
	time.Sleep(20 * time.Millisecond)
	if n := d.calls.Load(); n != 1 {
		t.Fatalf("callback ran %d times, want once", n)
	}
	return int(d.queued.Load()), *d.err.Load()
}

// TestSendBatchTrackedWaitsForWrite: the callback runs only once every
// message is written to the peer's connection, not when it is queued.
func TestSendBatchTrackedWaitsForWrite(t *testing.T) {
	push, pull := NewPush(Options{}), NewPull(Options{})
	closeAll(t, push, pull)
	if err := push.Dial(bound(t, pull)); err != nil {
		t.Fatal(err)
	}
	pe := onePeer(t, push)
	ctx := testCtx(t, 10*time.Second)
	var d trackedDone
	batch := []Msg{msgOf(0), msgOf(1), msgOf(2)}
	pe.wmu.Lock() // the writer is busy
	n, err := push.SendBatchTracked(ctx, batch, d.fn)
	if n != 3 || err != nil {
		pe.wmu.Unlock()
		t.Fatalf("SendBatchTracked = %d, %v", n, err)
	}
	time.Sleep(50 * time.Millisecond)
	if d.calls.Load() != 0 {
		pe.wmu.Unlock()
		t.Fatal("callback before the batch was written")
	}
	pe.wmu.Unlock()
	if q, err := d.result(t); q != 3 || err != nil {
		t.Fatalf("callback (%d, %v), want (3, nil)", q, err)
	}
	if got := recvN(t, ctx, pull, 3); got[2] != string(msgOf(2)[0]) {
		t.Fatalf("received %q", got)
	}
	// An empty batch reports at once.
	var e trackedDone
	if n, err := push.SendBatchTracked(ctx, nil, e.fn); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	if q, err := e.result(t); q != 0 || err != nil {
		t.Fatal(q, err)
	}
}

// TestSendBatchTrackedReroute: when a peer's connection breaks, the
// messages in the failed write are reported lost (never re-sent: they may
// have arrived), and the ones it had not written yet are re-routed to the
// other peer and stay tracked until written there.
func TestSendBatchTrackedReroute(t *testing.T) {
	push := NewPush(Options{HWM: 1000})
	a, b := NewPull(Options{RecvHWM: 10000}), NewPull(Options{RecvHWM: 10000})
	closeAll(t, push, a, b)
	ep := bound(t, push)
	if err := a.Dial(ep); err != nil {
		t.Fatal(err)
	}
	pa := onePeer(t, push)
	if err := b.Dial(ep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "two peers", func() bool { return len(*push.list.Load()) == 2 })
	ctx := testCtx(t, 10*time.Second)
	big := make([]byte, 4096)
	batch := make([]Msg, 100)
	for i := range batch {
		batch[i] = Msg{big}
	}
	var d trackedDone
	pa.wmu.Lock() // a's writer holds its share…
	n, err := push.SendBatchTracked(ctx, batch, d.fn)
	if n != 100 || err != nil {
		pa.wmu.Unlock()
		t.Fatal(n, err)
	}
	queuedA := pa.q.len()
	_ = pa.conn.Close() // …while a's connection breaks
	pa.wmu.Unlock()
	q, err := d.result(t)
	if q != 100 || !errors.Is(err, ErrLostInFlight) {
		t.Fatalf("callback (%d, %v), want (100, ErrLostInFlight)", q, err)
	}
	st := push.Stats()
	lost := st.Drops["lost_in_flight"]
	if lost == 0 || int(lost) >= queuedA || st.MsgsOut != 100-lost {
		t.Fatalf("a had %d queued; lost %d, written %d: want the first write lost and the rest re-routed and written", queuedA, lost, st.MsgsOut)
	}
	if got := recvN(t, ctx, b, int(100-lost)); len(got) != int(100-lost) {
		t.Fatal(len(got))
	}
}

// TestSendBatchTrackedClosed: messages still queued when the socket
// closes are reported with ErrClosed.
func TestSendBatchTrackedClosed(t *testing.T) {
	push := NewPush(Options{})
	if err := push.Dial("tcp://127.0.0.1:1"); err != nil { // nobody listens: the pipe keeps them
		t.Fatal(err)
	}
	var d trackedDone
	n, err := push.SendBatchTracked(testCtx(t, 5*time.Second), []Msg{msgOf(0), msgOf(1)}, d.fn)
	if n != 2 || err != nil {
		t.Fatal(n, err)
	}
	push.Close()
	if q, err := d.result(t); q != 2 || !errors.Is(err, ErrClosed) {
		t.Fatalf("callback (%d, %v), want (2, ErrClosed)", q, err)
	}
}

// TestOrphanHandlerAfterCloseSettles: a peer's writer that saw the socket
// open in orphaned may hand its messages to the PUSH's orphan handler
// after Close has begun. The handler must still settle them (inflight and
// trackers), or Flush and the tracked batch's callback wait forever.
func TestOrphanHandlerAfterCloseSettles(t *testing.T) {
	push := NewPush(Options{})
	push.Close()
	var d trackedDone
	tr := &tracker{done: d.fn, queued: 1}
	tr.pending.Store(1)
	push.inflight.Add(1)
	push.onOrphan(nil, []qmsg{{m: msgOf(0), t: tr}})
	if q, err := d.result(t); q != 1 || !errors.Is(err, ErrClosed) {
		t.Fatalf("callback (%d, %v), want (1, ErrClosed)", q, err)
	}
	if n := push.inflight.Load(); n != 0 {
		t.Fatalf("inflight %d after the orphan was settled, want 0", n)
	}
	if n := push.Stats().Drops[DropSocketClosed]; n != 1 {
		t.Fatalf("socket_closed drops %d, want 1", n)
	}
}
