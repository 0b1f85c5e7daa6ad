package zmq

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestPushPullTCP(t *testing.T) {
	push := NewPush(Options{})
	pull := NewPull(Options{})
	closeAll(t, push, pull)
	ep := bound(t, pull)
	if err := push.Dial(ep); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 20*time.Second)
	const n = 10000
	go func() {
		for i := 0; i < n; i++ {
			if err := push.Send(ctx, msgOf(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := msgOf(i); !bytes.Equal(m[0], want[0]) {
			t.Fatalf("message %d: got %q want %q", i, m[0], want[0])
		}
	}
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ps, ls := push.Stats(), pull.Stats()
	if ps.MsgsOut != n || ls.MsgsIn != n || ps.Peers != 1 || ls.Peers != 1 {
		t.Fatalf("stats: push %+v pull %+v", ps, ls)
	}
	if ps.BytesOut != 7*n || ls.BytesIn != 7*n || ps.PeerStats[0].BytesOut != 7*n || ls.PeerStats[0].MsgsIn != n {
		t.Fatalf("byte counters: push %+v pull %+v", ps, ls)
	}
}

func TestPushPullIPCMultipart(t *testing.T) {
	ep := "ipc://" + filepath.Join(t.TempDir(), "s.sock")
	push := NewPush(Options{})
	pull := NewPull(Options{})
	closeAll(t, push, pull)
	if err := push.Listen(ep); err != nil {
		t.Fatal(err)
	}
	if err := pull.Dial(ep); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	big := bytes.Repeat([]byte("x"), 200000) // long frames, beyond the read buffer
	want := Msg{[]byte("a"), {}, big, []byte("z")}
	if err := push.Send(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := pull.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs (len %d vs %d)", i, len(got[i]), len(want[i]))
		}
	}
}

func TestPubSub(t *testing.T) {
	pub := NewPub(Options{})
	sub := NewSub(Options{})
	closeAll(t, pub, sub)
	ep := bound(t, pub)
	if err := sub.Subscribe("a."); err != nil {
		t.Fatal(err)
	}
	if err := sub.Dial(ep); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	// Publish until the subscription has arrived (PUB drops before that).
	waitFor(t, 5*time.Second, "subscription at PUB", func() bool {
		st := pub.Stats()
		return st.Peers == 1 && pub.list.Load() != nil && (*pub.list.Load())[0].subs.Load().match([]byte("a.x"))
	})
	for _, topic := range []string{"b.1", "a.1", "a", "a.2"} {
		if err := pub.Send(Msg{[]byte(topic), []byte("body")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"a.1", "a.2"} {
		m, err := sub.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m[0]) != want || string(m[1]) != "body" {
			t.Fatalf("got %q, want topic %q", m, want)
		}
	}
}

func TestSubResubscribesAfterReconnect(t *testing.T) {
	pub := NewPub(Options{})
	ep := bound(t, pub)
	sub := NewSub(Options{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	closeAll(t, sub)
	sub.Subscribe("t")
	sub.Dial(ep)
	ctx := testCtx(t, 20*time.Second)
	recvOne(t, ctx, pub, sub, "t1")
	pub.Close()

	pub2 := NewPub(Options{})
	closeAll(t, pub2)
	listenRetry(t, pub2, ep)
	recvOne(t, ctx, pub2, sub, "t2")
	if sub.Stats().Reconnects == 0 {
		t.Fatal("no reconnect counted")
	}
}

// listenRetry binds ep, retrying while the port is briefly still in use.
func listenRetry(t *testing.T, s interface{ Listen(string) error }, ep string) {
	t.Helper()
	var err error
	waitFor(t, 5*time.Second, "listen on "+ep, func() bool {
		err = s.Listen(ep)
		return err == nil
	})
}

// recvOne waits until sub's subscription to topic has reached pub,
// publishes topic once, and expects it to be the next message sub gets.
func recvOne(t *testing.T, ctx context.Context, pub *Pub, sub *Sub, topic string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the subscription to "+topic+" at the PUB", func() bool {
		for _, p := range *pub.list.Load() {
			if p.subs.Load().match([]byte(topic)) {
				return true
			}
		}
		return false
	})
	if err := pub.Send(Msg{[]byte(topic)}); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Recv(ctx)
	if err != nil || string(m[0]) != topic {
		t.Fatalf("got %q (%v), want %q", m, err, topic)
	}
}

func TestPushBlocksAtHWMAndResumes(t *testing.T) {
	push := NewPush(Options{HWM: 10})
	closeAll(t, push)
	ctx := testCtx(t, 20*time.Second)
	// No peer: Send blocks until ctx ends.
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	if err := push.Send(short, msgOf(0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send without peers: %v, want deadline exceeded", err)
	}
	cancel()

	pull := NewPull(Options{RecvHWM: 10})
	closeAll(t, pull)
	ep := bound(t, pull)
	push.Dial(ep)
	// Nobody calls Recv: eventually every buffer is full and Send blocks.
	sent := 0
	for {
		sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := push.Send(sctx, Msg{bytes.Repeat([]byte{'p'}, 1000)})
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		sent++
		if sent > 1e6 {
			t.Fatal("Send never blocked")
		}
	}
	for i := 0; i < sent; i++ {
		if _, err := pull.Recv(ctx); err != nil {
			t.Fatalf("after %d of %d: %v", i, sent, err)
		}
	}
	if err := push.Send(ctx, msgOf(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := pull.Recv(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPubDropsForSlowSubscriberOnly(t *testing.T) {
	pub, fast, _, fastPeer, _ := fastAndStalledSubs(t)
	ctx := testCtx(t, 30*time.Second)
	const n = 50000
	fastGot := countRecv(ctx, fast, n)
	payload := bytes.Repeat([]byte("d"), 2000)
	for i := 0; i < n; i++ {
		pub.Send(Msg{payload})
		// The fast subscriber keeps up: pace like a real producer so the
		// only reason to drop is the slow one.
		for fastPeer.q.len() > 50 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if got := fastGot(); got != n {
		t.Fatalf("fast subscriber got %d of %d", got, n)
	}
	st := pub.Stats()
	if st.Drops[DropPubQueueFull] == 0 {
		t.Fatalf("no drops counted for the stalled subscriber: %+v", st)
	}
	var perPeer uint64
	for _, p := range st.PeerStats {
		perPeer += p.Drops
	}
	if fastPeer.drops.Load() != 0 {
		t.Fatalf("fast subscriber had %d drops", fastPeer.drops.Load())
	}
	if perPeer != st.Drops[DropPubQueueFull] {
		t.Fatalf("per-peer drops %d != total %d", perPeer, st.Drops[DropPubQueueFull])
	}
}

func TestPushRoundRobin(t *testing.T) {
	push := NewPush(Options{HWM: 100000})
	closeAll(t, push)
	ep := bound(t, push)
	pulls := make([]*Pull, 3)
	for i := range pulls {
		pulls[i] = NewPull(Options{RecvHWM: 100000})
		pulls[i].Dial(ep)
	}
	closeAll(t, pulls[0], pulls[1])
	waitFor(t, 5*time.Second, "3 peers", func() bool { return push.Stats().Peers == 3 })
	ctx := testCtx(t, 20*time.Second)
	const n = 3000
	for i := 0; i < n; i++ {
		push.Send(ctx, msgOf(i))
	}
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, p := range push.Stats().PeerStats {
		if p.MsgsOut != n/3 {
			t.Fatalf("peer %d got %d, want %d", i, p.MsgsOut, n/3)
		}
	}
}

// A command right after a message must not hold that message back until
// the next one arrives.
func TestMessageThenCommandDelivered(t *testing.T) {
	pull := NewPull(Options{})
	closeAll(t, pull)
	bound(t, pull)
	c := rawPeer(t, pull.Addrs()[0].String(), "PUSH")
	wire := appendMsg(nil, Msg{[]byte("first")})
	wire = appendCmd(wire, "PING", []byte{0, 0})
	c.Write(wire) // one write: both arrive in one read
	m, err := pull.Recv(testCtx(t, 5*time.Second))
	if err != nil || string(m[0]) != "first" {
		t.Fatalf("got %q %v", m, err)
	}
}

// Two senders that never stop, one slow consumer: neither sender starves.
func TestPullFairQueueing(t *testing.T) {
	pull := NewPull(Options{RecvHWM: 16})
	closeAll(t, pull)
	ep := bound(t, pull)
	ctx, cancel := context.WithCancel(testCtx(t, 30*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		push := NewPush(Options{HWM: 16})
		closeAll(t, push)
		push.Dial(ep)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := push.Send(ctx, Msg{[]byte(name), make([]byte, 2000)}); err != nil {
					return
				}
			}
		}()
	}
	waitFor(t, 5*time.Second, "2 peers", func() bool { return pull.Stats().Peers == 2 })
	// Let both fill every buffer on the way, then count.
	waitFor(t, 5*time.Second, "full receive queue", func() bool { return pull.Stats().QueueDepth == 16 })
	counts := map[string]int{}
	for i := 0; i < 20000; i++ {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		counts[string(m[0])]++
	}
	cancel()
	wg.Wait()
	t.Logf("shares: %v", counts)
	for _, name := range []string{"a", "b"} {
		if c := counts[name]; c < 6000 || c > 14000 {
			t.Fatalf("sender %s got %d of 20000 through", name, c)
		}
	}
}

func TestPushFlush(t *testing.T) {
	push := NewPush(Options{HWM: 400})
	pull := NewPull(Options{RecvHWM: 1})
	closeAll(t, push, pull)
	ep := bound(t, pull)
	push.Dial(ep)
	ctx := testCtx(t, 20*time.Second)
	big := make([]byte, 100000) // a few fill the kernel buffers
	sent := 0
	for ; sent < 400; sent++ { // 40 MB: more than every buffer on the way
		if err := push.Send(ctx, Msg{big}); err != nil {
			t.Fatal(err)
		}
	}
	// The consumer does not read: Flush cannot finish.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := push.Flush(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with a stuck peer: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- push.Flush(ctx) }()
	for i := 0; i < sent; i++ {
		if _, err := pull.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out := push.Stats().MsgsOut; out != uint64(sent) {
		t.Fatalf("Flush returned with %d of %d written", out, sent)
	}
}

func TestPushSendBatch(t *testing.T) {
	// Queues large enough never to fill: the split is SendBatch's
	// round-robin alone (a full peer would be skipped, as in libzmq).
	push := NewPush(Options{HWM: 100000})
	closeAll(t, push)
	ep := bound(t, push)
	var pulls []*Pull
	for i := 0; i < 3; i++ {
		p := NewPull(Options{RecvHWM: 100000})
		closeAll(t, p)
		p.Dial(ep)
		pulls = append(pulls, p)
	}
	waitFor(t, 5*time.Second, "3 peers", func() bool { return push.Stats().Peers == 3 })
	ctx := testCtx(t, 20*time.Second)
	const n = 30000
	for i := 0; i < n; i += 100 {
		batch := make([]Msg, 100)
		for k := range batch {
			batch[k] = msgOf(i + k)
		}
		if k, err := push.SendBatch(ctx, batch); err != nil || k != 100 {
			t.Fatalf("SendBatch: %d, %v", k, err)
		}
	}
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "all received", func() bool {
		var sum uint64
		for _, p := range pulls {
			sum += p.Stats().MsgsIn
		}
		return sum == n
	})
	seen := map[string]bool{}
	for i, p := range pulls {
		got := p.Stats().MsgsIn
		if got < n/4 || got > n*42/100 {
			t.Errorf("peer %d got %d of %d", i, got, n)
		}
		for k := uint64(0); k < got; k++ {
			m, err := p.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if seen[string(m[0])] {
				t.Fatalf("duplicate %s", m[0])
			}
			seen[string(m[0])] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages, want %d", len(seen), n)
	}

	// With nowhere to go, SendBatch returns what it queued when ctx ends.
	for _, p := range pulls {
		p.Close()
	}
	waitFor(t, 5*time.Second, "peers gone", func() bool { return push.Stats().Peers == 0 })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	k, err := push.SendBatch(short, []Msg{msgOf(1), msgOf(2)})
	if k != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendBatch without peers: %d, %v", k, err)
	}
}

func TestManyEndpointsPerSocket(t *testing.T) {
	pull := NewPull(Options{})
	closeAll(t, pull)
	ipc := "ipc://" + filepath.Join(t.TempDir(), "p.sock")
	tcp := bound(t, pull)
	if err := pull.Listen(ipc); err != nil {
		t.Fatal(err)
	}
	if n := len(pull.Addrs()); n != 2 {
		t.Fatalf("%d bound addresses, want 2", n)
	}
	// One PUSH dialing both endpoints, and another bound one the PULL dials.
	push := NewPush(Options{})
	other := NewPush(Options{})
	closeAll(t, push, other)
	push.Dial(tcp)
	push.Dial(ipc)
	pull.Dial(bound(t, other))
	waitFor(t, 5*time.Second, "3 connections", func() bool { return pull.Stats().Peers == 3 })
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 10; i++ {
		push.Send(ctx, msgOf(i))
		other.Send(ctx, msgOf(100+i))
	}
	eps := map[string]bool{}
	for _, p := range pull.Stats().PeerStats {
		eps[p.Endpoint] = true
	}
	if len(eps) != 3 {
		t.Fatalf("peer endpoints %v, want 3 distinct", eps)
	}
	for i := 0; i < 20; i++ {
		if _, err := pull.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// A PULL closed while its reader waits for room keeps for Recv what it
// queued and what the reader held: every message it read from its peer
// (which will not send it again) is still received, none dropped.
func TestPullCloseKeepsWhatItRead(t *testing.T) {
	pull := NewPull(Options{RecvHWM: 10})
	ep := bound(t, pull)
	push := NewPush(Options{})
	closeAll(t, push)
	push.Dial(ep)
	ctx := testCtx(t, 10*time.Second)
	for i := range 500 {
		if err := push.Send(ctx, msgOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the PULL's queue full", func() bool { return pull.rq.len() == 10 })
	waitFor(t, 5*time.Second, "the PULL reading past its queue", func() bool { return pull.Stats().MsgsIn > 10 })
	pull.Close()
	st := pull.Stats()
	if st.Drops[DropSocketClosed] != 0 || uint64(st.QueueDepth) != st.MsgsIn {
		t.Fatalf("read %d, queued %d, dropped %d at close: want everything read queued", st.MsgsIn, st.QueueDepth, st.Drops[DropSocketClosed])
	}
	for i := range int(st.MsgsIn) {
		m, err := pull.Recv(ctx)
		if err != nil || !bytes.Equal(m[0], msgOf(i)[0]) {
			t.Fatalf("message %d after close: %q, %v", i, m, err)
		}
	}
	if _, err := pull.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv past the kept messages = %v, want ErrClosed", err)
	}
}
