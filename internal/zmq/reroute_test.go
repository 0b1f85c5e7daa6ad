package zmq

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestPushReroutesQueueOfGonePeer(t *testing.T) {
	push := NewPush(Options{HWM: 50})
	closeAll(t, push)
	ep := bound(t, push)
	dead := NewPull(Options{RecvHWM: 1})
	dead.Dial(ep)
	waitFor(t, 5*time.Second, "first peer", func() bool { return push.Stats().Peers == 1 })
	ctx := testCtx(t, 30*time.Second)
	// Fill the first peer until Send blocks: its queue holds HWM messages.
	payload := make([]byte, 1000)
	sent := 0
	for {
		sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		m := append(Msg{}, append([]byte(nil), msgOf(sent)[0]...), payload)
		err := push.Send(sctx, m)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if q := push.Stats().QueueDepth; q != 50 {
		t.Fatalf("queue depth %d at block, want HWM 50", q)
	}
	healthy := NewPull(Options{RecvHWM: 100000})
	closeAll(t, healthy)
	healthy.Dial(ep)
	waitFor(t, 5*time.Second, "second peer", func() bool { return push.Stats().Peers == 2 })
	dead.Close()
	waitFor(t, 5*time.Second, "first peer gone", func() bool { return push.Stats().Peers == 1 })
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := push.Stats()
	toHealthy := st.PeerStats[0].MsgsOut
	toDead := st.MsgsOut - toHealthy
	lost := st.Drops[DropLostInFlight]
	t.Logf("sent %d: %d written to the gone peer, %d lost in its failed write, %d re-routed", sent, toDead, lost, toHealthy)
	if toDead+lost+toHealthy != uint64(sent) {
		t.Fatalf("written %d + lost %d + re-routed %d != sent %d", toDead, lost, toHealthy, sent)
	}
	if toHealthy < 50 {
		t.Fatalf("only %d re-routed, want at least the queued 50", toHealthy)
	}
	seen := map[string]bool{}
	for i := uint64(0); i < toHealthy; i++ {
		m, err := healthy.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(m[0])] {
			t.Fatalf("duplicate %s", m[0])
		}
		seen[string(m[0])] = true
	}
	if d := st.Drops[DropSocketClosed]; d != 0 {
		t.Fatalf("%d dropped", d)
	}
}

// rawPeer completes a NULL handshake as typ and returns the connection.
func rawPeer(t *testing.T, addr, typ string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write(rawGreeting())
	c.Write(rawReady(typ))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	d := newDecoder(c, 1<<20)
	if _, err := io.ReadFull(c, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if m, cmd, err := d.next(); err != nil || !cmd || string(m[0][1:6]) != "READY" {
		t.Fatalf("no READY: %v", err)
	}
	return c
}

func TestPingAnsweredWithPong(t *testing.T) {
	pull := NewPull(Options{})
	closeAll(t, pull)
	bound(t, pull)
	c := rawPeer(t, pull.Addrs()[0].String(), "PUSH")
	c.Write(appendCmd(nil, "PING", []byte{0, 30, 'c', 't', 'x'}))
	m, cmd, err := newDecoder(c, 1024).next()
	if err != nil || !cmd {
		t.Fatalf("no PONG: %v", err)
	}
	if name, data, _ := parseCmd(m[0]); name != "PONG" || string(data) != "ctx" {
		t.Fatalf("got %s %q, want PONG \"ctx\"", name, data)
	}
}

func TestHeartbeatDropsSilentPeer(t *testing.T) {
	push := NewPush(Options{HeartbeatIvl: 20 * time.Millisecond, HeartbeatTimeout: time.Second})
	closeAll(t, push)
	ep := bound(t, push)
	alive := NewPull(Options{})
	closeAll(t, alive)
	alive.Dial(ep)
	waitFor(t, 5*time.Second, "live peer", func() bool { return push.Stats().Peers == 1 })
	silent := rawPeer(t, push.Addrs()[0].String(), "PULL") // never answers PINGs
	waitFor(t, 5*time.Second, "silent peer connected", func() bool { return push.Stats().Connects == 2 })
	waitFor(t, 5*time.Second, "silent peer dropped", func() bool { return push.Stats().HeartbeatTimeouts == 1 })
	expectClosed(t, silent, "silent peer")
	waitFor(t, 5*time.Second, "silent peer unlisted", func() bool { return push.Stats().Peers == 1 })
	// The peer that answers PINGs is still there and still works.
	st := push.Stats()
	if st.Peers != 1 || st.HeartbeatTimeouts != 1 {
		t.Fatalf("peers %d, heartbeat timeouts %d", st.Peers, st.HeartbeatTimeouts)
	}
	ctx := testCtx(t, 5*time.Second)
	push.Send(ctx, msgOf(1))
	if _, err := alive.Recv(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLibzmqAnswersOurPings(t *testing.T) {
	needLibzmq(t)
	push := NewPush(Options{HeartbeatIvl: 20 * time.Millisecond, HeartbeatTimeout: time.Second})
	closeAll(t, push)
	ep := bound(t, push)
	z := startZpeer(t, "pull", "connect", ep, "--print")
	waitFor(t, 5*time.Second, "libzmq peer", func() bool { return push.Stats().Peers == 1 })
	// Many heartbeat timeouts' worth of idle time, measured by PINGs
	// answered rather than by the clock.
	waitFor(t, 10*time.Second, "30 PONGs", func() bool {
		l := *push.list.Load()
		return len(l) == 1 && l[0].cmdsIn.Load() >= 30
	})
	if st := push.Stats(); st.HeartbeatTimeouts != 0 || st.Connects != 1 {
		t.Fatalf("libzmq peer dropped: %+v", st)
	}
	push.Send(testCtx(t, 5*time.Second), msgOf(7))
	waitFor(t, 5*time.Second, "message", func() bool { return z.count() == 1 })
}

// A peer whose PINGs announce a TTL and that then goes silent is dropped,
// even though we send no PINGs ourselves.
func TestPeerPingTTLEnforced(t *testing.T) {
	pull := NewPull(Options{})
	closeAll(t, pull)
	bound(t, pull)
	c := rawPeer(t, pull.Addrs()[0].String(), "PUSH")
	c.Write(appendCmd(nil, "PING", []byte{0, 2})) // TTL 200ms
	waitFor(t, 5*time.Second, "TTL expiry", func() bool { return pull.Stats().HeartbeatTimeouts == 1 })
	expectClosed(t, c, "silent pinger")
	waitFor(t, 5*time.Second, "silent pinger unlisted", func() bool { return pull.Stats().Peers == 0 })
}

// A Dial endpoint that goes away keeps its queue for its return, but the
// messages move to connected peers as soon as those have room.
func TestPushDialPipeMigrates(t *testing.T) {
	dead := NewPull(Options{RecvHWM: 1})
	deadEp := bound(t, dead)
	push := NewPush(Options{HWM: 50, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	closeAll(t, push)
	push.Dial(deadEp)
	waitFor(t, 5*time.Second, "first peer", func() bool { return push.Stats().Peers == 1 })
	ctx := testCtx(t, 30*time.Second)
	payload := make([]byte, 1000)
	sent := 0
	for {
		sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := push.Send(sctx, Msg{[]byte(msgOf(sent)[0]), payload})
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	healthy := NewPull(Options{RecvHWM: 100000})
	closeAll(t, healthy)
	push.Dial(bound(t, healthy))
	waitFor(t, 5*time.Second, "second peer", func() bool { return push.Stats().Peers == 2 })
	dead.Close()
	waitFor(t, 5*time.Second, "first peer gone", func() bool { return push.Stats().Peers == 1 })
	if err := push.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := push.Stats()
	toHealthy := st.PeerStats[0].MsgsOut
	toDead := st.MsgsOut - toHealthy
	lost := st.Drops[DropLostInFlight]
	t.Logf("sent %d: %d written to the gone peer, %d lost in its failed write, %d moved", sent, toDead, lost, toHealthy)
	if toDead+lost+toHealthy != uint64(sent) || toHealthy < 50 {
		t.Fatalf("written %d + lost %d + moved %d, sent %d", toDead, lost, toHealthy, sent)
	}
	if st.QueueDepth != 0 {
		t.Fatalf("%d still queued", st.QueueDepth)
	}
}
