package output

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

func newSpooledPush(t *testing.T, dir string) *Spooled {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewSpooledPush(ZMQConfig{Name: "w", Socket: "push", Bind: []string{"tcp://127.0.0.1:0"}, Options: zmq.Options{HWM: 100}}, sp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !f(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// collect receives from a pull into a count per message.
func collect(pull *zmq.Pull, mu *sync.Mutex, seen map[string]int) {
	for {
		m, err := pull.Recv(context.Background())
		if err != nil {
			return
		}
		mu.Lock()
		seen[string(m[0])]++
		mu.Unlock()
	}
}

// TestSpooledPush: hand-offs fire once records are durable, before any
// worker is there; a worker that comes later gets every event once; the
// spool is emptied by the acks; Stats say so.
func TestSpooledPush(t *testing.T) {
	o := newSpooledPush(t, t.TempDir())
	defer o.Close(context.Background())
	const n = 5000
	var handed atomic.Int64
	h := event.NewHandoff(func(err error) {
		if err != nil {
			t.Error(err)
		}
		handed.Add(1)
	})
	for i := 0; i < n; i += 100 {
		batch := events("click", 100)
		for k, e := range batch {
			e.Raw = fmt.Appendf(nil, "event %d", i+k)
			e.SetHandoff(h)
		}
		if err := o.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	h.Release(nil)
	eventually(t, "hand-off after the fsync, with no worker", func() bool { return handed.Load() == 1 })
	if st := o.Stats(); st.Queued != n || st.Sent != 0 {
		t.Fatalf("stats %+v", st)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	for range 2 {
		pull := zmq.NewPull(zmq.Options{})
		defer pull.Close()
		pull.Dial("tcp://" + o.Addrs()[0].String())
		go collect(pull, &mu, seen)
	}
	eventually(t, "every event at the workers", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	eventually(t, "the spool emptied by the acks", func() bool { return o.Stats().Queued == 0 && o.Stats().Sent == n })
	mu.Lock()
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("%s arrived %d times", k, c)
		}
	}
	mu.Unlock()
}

// TestSpooledCloseLeavesRest: Close with no worker gives up after its
// time and leaves the events in the spool; the next output on the same
// directory delivers them.
func TestSpooledCloseLeavesRest(t *testing.T) {
	dir := t.TempDir()
	o := newSpooledPush(t, dir)
	for i := 0; i < 1000; i += 100 {
		batch := events("x", 100)
		for k, e := range batch {
			e.Raw = fmt.Appendf(nil, "event %d", i+k)
		}
		o.Write(context.Background(), batch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	start := time.Now()
	o.Close(ctx)
	cancel()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	o = newSpooledPush(t, dir)
	defer o.Close(context.Background())
	if q := o.Stats().Queued; q != 1000 {
		t.Fatalf("reopened spool holds %d, want 1000", q)
	}
	pull := zmq.NewPull(zmq.Options{})
	defer pull.Close()
	pull.Dial("tcp://" + o.Addrs()[0].String())
	var mu sync.Mutex
	seen := map[string]int{}
	go collect(pull, &mu, seen)
	eventually(t, "the events left behind delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1000 })
}

// TestPushSenderWorkerGone: a worker that goes away while events flow:
// the flow goes on to the other worker and every event is acknowledged
// once written somewhere. What was written to the gone worker's
// connection counts as delivered: that is the plain PUSH promise (the TCP
// ack gap; the acknowledged PUSH closes it), measured and logged here.
func TestPushSenderWorkerGone(t *testing.T) {
	o := newSpooledPush(t, t.TempDir())
	defer o.Close(context.Background())
	var mu sync.Mutex
	seen := map[string]int{}
	keep := zmq.NewPull(zmq.Options{})
	defer keep.Close()
	keep.Dial("tcp://" + o.Addrs()[0].String())
	go collect(keep, &mu, seen)
	flaky := zmq.NewPull(zmq.Options{RecvHWM: 10})
	flaky.Dial("tcp://" + o.Addrs()[0].String())
	eventually(t, "two workers", func() bool { return o.Stats().Peers == 2 })
	const n = 20000
	go func() {
		for i := 0; i < n; i += 500 {
			batch := events("x", 500)
			for k, e := range batch {
				e.Raw = fmt.Appendf(nil, "event %d", i+k)
			}
			o.Write(context.Background(), batch)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	flaky.Close() // never read: what it had in its buffers is gone with it
	eventually(t, "every event acknowledged", func() bool { return o.Stats().Sent == n && o.Stats().Queued == 0 })
	mu.Lock()
	got := len(seen)
	mu.Unlock()
	if got == 0 || got > n {
		t.Fatalf("the remaining worker got %d", got)
	}
	t.Logf("the remaining worker got %d of %d; the rest was written to the worker that went away", got, n)
}

// BenchmarkSpooledPush is the per-event cost of a spooled PUSH output
// (append, encode, fsync per batch, read back, send, ack) into a Go PULL,
// against the plain PUSH output.
func BenchmarkSpooledPush(b *testing.B) {
	for _, spooled := range []bool{false, true} {
		b.Run(fmt.Sprintf("spool=%v", spooled), func(b *testing.B) {
			var o Output
			var addr string
			if spooled {
				sp, err := spool.Open(spool.Options{Dir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				so, err := NewSpooledPush(ZMQConfig{Name: "w", Socket: "push", Bind: []string{"tcp://127.0.0.1:0"}}, sp, nil)
				if err != nil {
					b.Fatal(err)
				}
				o, addr = so, so.Addrs()[0].String()
			} else {
				zo, err := NewZMQ(ZMQConfig{Name: "w", Socket: "push", Bind: []string{"tcp://127.0.0.1:0"}}, nil)
				if err != nil {
					b.Fatal(err)
				}
				o, addr = zo, zo.Addrs()[0].String()
			}
			pull := zmq.NewPull(zmq.Options{})
			pull.Dial("tcp://" + addr)
			var got atomic.Int64
			go func() {
				buf := make([]zmq.Msg, 256)
				for {
					n, err := pull.RecvBatch(context.Background(), buf)
					if err != nil {
						return
					}
					got.Add(int64(n))
				}
			}()
			batch := events("click", 256)
			for _, e := range batch {
				for len(e.Raw) < 200 {
					e.Raw = append(e.Raw, 'x')
				}
			}
			b.ResetTimer()
			for range b.N {
				if err := o.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			for got.Load() < int64(b.N*256) {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "ev/s")
			if so, ok := o.(*Spooled); ok {
				st := so.SpoolStats()
				b.ReportMetric(st.FsyncSeconds.Sum/float64(max(st.FsyncSeconds.Count, 1))*1e3, "ms/fsync")
				b.ReportMetric(float64(b.N*256)/float64(max(st.Fsyncs, 1)), "ev/fsync")
			}
			b.StopTimer()
			o.Close(context.Background())
			pull.Close()
		})
	}
}
