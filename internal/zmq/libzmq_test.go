package zmq

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLibzmqPushToThreePulls(t *testing.T) {
	needLibzmq(t)
	// This test is about the split and duplicates, so no peer may be
	// skipped for being full: the burst outruns Python consumers starved
	// of CPU, and PUSH (like libzmq's) rightly skips a peer at its HWM.
	const n = 30000
	push := NewPush(Options{HWM: n})
	closeAll(t, push)
	ep := bound(t, push)
	var peers []*zpeer
	for i := 0; i < 3; i++ {
		peers = append(peers, startZpeer(t, "pull", "connect", ep, "--print"))
	}
	waitFor(t, 10*time.Second, "3 libzmq peers", func() bool { return push.Stats().Peers == 3 })
	ctx := testCtx(t, 60*time.Second)
	for i := 0; i < n; i++ {
		if err := push.Send(ctx, msgOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "all messages at the peers", func() bool {
		total := 0
		for _, z := range peers {
			total += z.count()
		}
		return total >= n
	})
	seen := make(map[string]int, n)
	for i, z := range peers {
		got := z.received()
		share := float64(len(got)) / n
		if share < 0.25 || share > 0.42 {
			t.Errorf("peer %d got %d (%.1f%%), want 25%%..42%%; sent to peers: %+v", i, len(got), 100*share, push.Stats().PeerStats)
		}
		for _, m := range got {
			seen[m]++
		}
	}
	for i := 0; i < n; i++ {
		m := string(msgOf(i)[0])
		if seen[m] != 1 {
			t.Fatalf("message %s received %d times", m, seen[m])
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages, want %d", len(seen), n)
	}
}

func TestLibzmqPushToGoPull(t *testing.T) {
	needLibzmq(t)
	pull := NewPull(Options{})
	closeAll(t, pull)
	ep := bound(t, pull)
	z := startZpeer(t, "push", "connect", ep)
	const n = 5000
	z.do(fmt.Sprintf("send %d p", n))
	z.do("sendm a|b||" + strings.Repeat("L", 300))
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < n; i++ {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("p%06d", i); len(m) != 1 || string(m[0]) != want {
			t.Fatalf("got %q, want %q", m, want)
		}
	}
	m, err := pull.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || string(m[0]) != "a" || string(m[1]) != "b" || len(m[2]) != 0 || len(m[3]) != 300 {
		t.Fatalf("multipart: got %d frames %q", len(m), m)
	}
}

func TestLibzmqGoPubToSub(t *testing.T) {
	needLibzmq(t)
	pub := NewPub(Options{})
	closeAll(t, pub)
	ep := bound(t, pub)
	z := startZpeer(t, "sub", "connect", ep, "--print")
	z.do("sub a")
	z.do("sub b")
	// Until both subscriptions arrived, PUB (rightly) drops. Probe with
	// each topic until it shows up.
	probe := func(topic string) {
		waitFor(t, 10*time.Second, "subscription "+topic, func() bool {
			pub.Send(Msg{[]byte(topic + ".probe")})
			for _, m := range z.received() {
				if m == topic+".probe" {
					return true
				}
			}
			return false
		})
	}
	probe("a")
	probe("b")
	// Probes still in flight are ignored from here on.
	real := func() []string {
		var out []string
		for _, m := range z.received() {
			if !strings.HasSuffix(m, ".probe") {
				out = append(out, m)
			}
		}
		return out
	}
	for _, topic := range []string{"a.1", "b.1", "c.1", "ab"} {
		pub.Send(Msg{[]byte(topic), []byte("x")})
	}
	waitFor(t, 10*time.Second, "3 messages", func() bool { return len(real()) >= 3 })
	if got := real(); strings.Join(got, ",") != "a.1|x,b.1|x,ab|x" {
		t.Fatalf("got %q", got)
	}
	// Unsubscribe b: once the cancel is through, b stops and a continues.
	z.do("unsub b")
	waitFor(t, 10*time.Second, "cancel at PUB", func() bool {
		l := *pub.list.Load()
		return len(l) == 1 && !l[0].subs.Load().match([]byte("b.2"))
	})
	pub.Send(Msg{[]byte("b.2")})
	pub.Send(Msg{[]byte("a.2")})
	waitFor(t, 10*time.Second, "a.2", func() bool { return len(real()) >= 4 })
	if got := real()[3:]; len(got) != 1 || got[0] != "a.2" {
		t.Fatalf("after unsubscribe got %q", got)
	}
}

func TestLibzmqPubToGoSub(t *testing.T) {
	needLibzmq(t)
	z := startZpeer(t, "pub", "bind", "tcp://127.0.0.1:0", "--hwm", "100000")
	sub := NewSub(Options{})
	closeAll(t, sub)
	sub.Subscribe("k")
	if err := sub.Dial(z.Endpoint); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	for {
		z.do("sendm x|no")
		z.do("sendm k1|yes")
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		m, err := sub.Recv(rctx)
		cancel()
		if err == nil {
			if string(m[0]) != "k1" || string(m[1]) != "yes" {
				t.Fatalf("got %q", m)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("nothing received from libzmq PUB")
		}
	}
	z.do("send 1000 k")
	for i := 0; i < 1000; {
		m, err := sub.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(m[0]), "k1") && len(m) == 2 {
			continue // a late probe
		}
		if want := fmt.Sprintf("k%06d", i); string(m[0]) != want {
			t.Fatalf("got %q want %q", m[0], want)
		}
		i++
	}
}

func TestLibzmqPullRestarted(t *testing.T) {
	needLibzmq(t)
	z := startZpeer(t, "pull", "bind", "tcp://127.0.0.1:0", "--print")
	ep := z.Endpoint
	push := NewPush(Options{HWM: 1000, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	closeAll(t, push)
	push.Dial(ep)
	ctx := testCtx(t, 60*time.Second)
	for i := 0; i < 100; i++ {
		if err := push.Send(ctx, msgOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "first 100", func() bool { return z.count() == 100 })
	z.stop()
	waitFor(t, 10*time.Second, "disconnect noticed", func() bool { return push.Stats().Peers == 0 })
	// During the outage the endpoint's queue takes up to HWM messages.
	for i := 100; i < 1100; i++ {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err := push.Send(sctx, msgOf(i))
		cancel()
		if err != nil {
			t.Fatalf("Send %d during outage: %v", i, err)
		}
	}
	// Past the HWM, Send blocks rather than losing anything.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := push.Send(short, msgOf(1100))
	cancel()
	if err == nil {
		t.Fatal("Send beyond HWM during outage did not block")
	}
	z2 := startZpeer(t, "pull", "bind", ep, "--print")
	waitFor(t, 20*time.Second, "outage messages", func() bool { return z2.count() >= 1000 })
	got := z2.received()
	if len(got) != 1000 {
		t.Fatalf("after restart got %d, want 1000", len(got))
	}
	for k, m := range got {
		if want := string(msgOf(100 + k)[0]); m != want {
			t.Fatalf("message %d: got %s want %s", k, m, want)
		}
	}
}

func TestLibzmqIPC(t *testing.T) {
	needLibzmq(t)
	ep := "ipc://" + t.TempDir() + "/z.sock"
	z := startZpeer(t, "pull", "bind", ep, "--print")
	push := NewPush(Options{})
	closeAll(t, push)
	if err := push.Dial(ep); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 100; i++ {
		push.Send(ctx, Msg{[]byte("i"), msgOf(i)[0]})
	}
	waitFor(t, 10*time.Second, "100 over ipc", func() bool { return z.count() == 100 })
	if got := z.received()[99]; got != "i|"+string(msgOf(99)[0]) {
		t.Fatalf("last message %q", got)
	}
}
