package zmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestSendWholeKeepsRunsOnOnePeer sends runs of 10 to three PULLs: each
// run must arrive whole at one of them, and the runs spread over all.
func TestSendWholeKeepsRunsOnOnePeer(t *testing.T) {
	push := NewPush(Options{HWM: 25})
	closeAll(t, push)
	ep := bound(t, push)
	pulls := make([]*Pull, 3)
	for i := range pulls {
		pulls[i] = NewPull(Options{RecvHWM: 10000})
		closeAll(t, pulls[i])
		if err := pulls[i].Dial(ep); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "3 peers", func() bool { return push.Stats().Peers == 3 })
	ctx := testCtx(t, 30*time.Second)
	const runs, size = 300, 10
	for r := range runs {
		ms := make([]Msg, size)
		for i := range ms {
			ms[i] = msgOf(r*size + i)
		}
		if n, err := push.SendWhole(ctx, ms); n != size || err != nil {
			t.Fatalf("run %d: SendWhole = %d, %v", r, n, err)
		}
	}
	waitFor(t, 10*time.Second, "every message received", func() bool {
		n := 0
		for _, pl := range pulls {
			n += int(pl.Stats().MsgsIn)
		}
		return n == runs*size
	})
	total := 0
	for i, pl := range pulls {
		n := int(pl.Stats().MsgsIn)
		if n%size != 0 || n == 0 {
			t.Fatalf("pull %d got %d messages: not whole runs of %d, or none", i, n, size)
		}
		prev := -1
		for k := 0; k < n; k++ {
			m, err := pl.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var id int
			if _, err := fmt.Sscanf(string(m[0]), "m%d", &id); err != nil {
				t.Fatal(err)
			}
			if k%size != 0 && id != prev+1 {
				t.Fatalf("pull %d: message %d follows %d inside a run", i, id, prev)
			}
			if k%size == 0 && id%size != 0 {
				t.Fatalf("pull %d: a run starts at %d", i, id)
			}
			prev = id
		}
		total += n
	}
	if total != runs*size {
		t.Fatalf("received %d, sent %d", total, runs*size)
	}
}

// TestSendWholeWaitsForRoom: a run is queued only where all of it fits.
func TestSendWholeWaitsForRoom(t *testing.T) {
	push := NewPush(Options{HWM: 10})
	closeAll(t, push)
	ep := bound(t, push)
	// A raw peer that completes the handshake and never reads: the queue
	// fills once the kernel buffers are full; SendWhole must then block
	// without queueing part of a run.
	c := rawPeer(t, ep[len("tcp://"):], "PULL")
	defer c.Close()
	waitFor(t, 5*time.Second, "peer", func() bool { return push.Stats().Peers == 1 })
	ctx := testCtx(t, 30*time.Second)
	big := make([]byte, 64<<10)
	for i := 0; ; i++ {
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		n, err := push.SendWhole(sctx, []Msg{{big}, {big}, {big}, {big}})
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			if n != 0 {
				t.Fatalf("a timed-out SendWhole reports %d queued", n)
			}
			break
		}
		if err != nil || n != 4 {
			t.Fatalf("SendWhole = %d, %v", n, err)
		}
		if i > 10000 {
			t.Fatal("never blocked")
		}
	}
	if q := push.Stats().QueueDepth; q%4 != 0 || q > 10 {
		t.Fatalf("queue depth %d: runs of 4 split or past the HWM of 10", q)
	}
}

// TestSendWholeLongerThanHWM spreads a run that can never fit a queue.
func TestSendWholeLongerThanHWM(t *testing.T) {
	push := NewPush(Options{HWM: 4})
	closeAll(t, push)
	ep := bound(t, push)
	pull := NewPull(Options{RecvHWM: 100})
	closeAll(t, pull)
	pull.Dial(ep)
	waitFor(t, 5*time.Second, "peer", func() bool { return push.Stats().Peers == 1 })
	ctx := testCtx(t, 10*time.Second)
	ms := make([]Msg, 9)
	for i := range ms {
		ms[i] = msgOf(i)
	}
	if n, err := push.SendWhole(ctx, ms); n != 9 || err != nil {
		t.Fatalf("SendWhole = %d, %v", n, err)
	}
	for i := range 9 {
		m, err := pull.Recv(ctx)
		if err != nil || string(m[0]) != string(msgOf(i)[0]) {
			t.Fatalf("message %d: %q %v", i, m, err)
		}
	}
}

// TestTakeOrphans: what a gone peer never wrote goes to the handler, not
// to the other peers, and is not in flight any more.
func TestTakeOrphans(t *testing.T) {
	push := NewPush(Options{HWM: 50})
	closeAll(t, push)
	var mu sync.Mutex
	var orphans []Msg
	push.TakeOrphans(func(unsent []Msg) {
		mu.Lock()
		orphans = append(orphans, unsent...)
		mu.Unlock()
	})
	ep := bound(t, push)
	c := rawPeer(t, ep[len("tcp://"):], "PULL") // never reads
	waitFor(t, 5*time.Second, "peer", func() bool { return push.Stats().Peers == 1 })
	ctx := testCtx(t, 30*time.Second)
	big := make([]byte, 64<<10)
	sent := 0
	for {
		sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := push.SendWhole(sctx, []Msg{{big}, {big}})
		cancel()
		if err != nil {
			break
		}
		sent += 2
	}
	other := NewPull(Options{RecvHWM: 1000})
	closeAll(t, other)
	other.Dial(ep)
	waitFor(t, 5*time.Second, "second peer", func() bool { return push.Stats().Peers == 2 })
	c.Close()
	waitFor(t, 5*time.Second, "orphans handed over", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(orphans) > 0 && push.Stats().Peers == 1
	})
	if err := push.Flush(ctx); err != nil {
		t.Fatalf("Flush with the orphans handed over: %v", err)
	}
	st := push.Stats()
	mu.Lock()
	n := len(orphans)
	mu.Unlock()
	if n < 50 || st.PeerStats[0].MsgsOut != 0 {
		t.Fatalf("%d orphans of %d sent; %d re-routed to the other peer", n, sent, st.PeerStats[0].MsgsOut)
	}
	if st.MsgsOut+st.Drops[DropLostInFlight]+uint64(n) != uint64(sent) {
		t.Fatalf("written %d + lost %d + orphans %d != sent %d", st.MsgsOut, st.Drops[DropLostInFlight], n, sent)
	}
}
