package zmq

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestSubSetMultiset(t *testing.T) {
	s := &subSet{}
	s, ch := s.with("a", 1)
	if !ch || !s.match([]byte("abc")) || s.match([]byte("b")) {
		t.Fatal("first subscribe")
	}
	s, ch = s.with("a", 1)
	if ch {
		t.Fatal("second identical subscribe changed the distinct set")
	}
	s, ch = s.with("a", -1)
	if ch || !s.match([]byte("a")) {
		t.Fatal("one cancel of two removed the subscription")
	}
	s, ch = s.with("a", -1)
	if !ch || s.match([]byte("a")) {
		t.Fatal("second cancel kept the subscription")
	}
	if s2, ch := s.with("zz", -1); ch || s2 != s {
		t.Fatal("cancel of an unknown topic changed the set")
	}
	s, _ = s.with("", 1)
	if !s.match(nil) || !s.match([]byte("anything")) {
		t.Fatal("empty subscription must match everything")
	}
}

// TestPubSubscriptionForms drives a PUB from a raw peer with both ZMTP 3.1
// commands and ZMTP 3.0 messages.
func TestPubSubscriptionForms(t *testing.T) {
	pub := NewPub(Options{})
	closeAll(t, pub)
	bound(t, pub)
	c := rawPeer(t, pub.Addrs()[0].String(), "SUB")
	waitFor(t, 5*time.Second, "peer", func() bool { return pub.Stats().Peers == 1 })
	pe := (*pub.list.Load())[0]
	has := func(topic string) bool { return pe.subs.Load().match([]byte(topic)) }

	c.Write(appendCmd(nil, "SUBSCRIBE", []byte("cmd")))
	c.Write(appendMsg(nil, Msg{[]byte("\x01msg")}))
	c.Write(appendMsg(nil, Msg{[]byte("\x01msg")})) // twice: needs two cancels
	waitFor(t, 5*time.Second, "both subscriptions", func() bool { return has("cmd.x") && has("msg.x") })

	// Nobody wants "other": nothing is queued or written.
	before := pub.Stats().MsgsOut
	pub.Send(Msg{[]byte("other")})
	pub.Send(Msg{[]byte("cmd.1")})
	d := newDecoder(c, 1024)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, _, err := d.next()
	if err != nil || string(m[0]) != "cmd.1" {
		t.Fatalf("got %q %v, want cmd.1 only", m, err)
	}
	waitFor(t, 5*time.Second, "write counted", func() bool { return pub.Stats().MsgsOut-before >= 1 })
	if got := pub.Stats().MsgsOut - before; got != 1 {
		t.Fatalf("%d messages written, want 1", got)
	}

	c.Write(appendCmd(nil, "CANCEL", []byte("cmd")))
	c.Write(appendMsg(nil, Msg{[]byte("\x00msg")}))
	waitFor(t, 5*time.Second, "cancels", func() bool { return !has("cmd.x") })
	if !has("msg.x") {
		t.Fatal("one cancel of a doubled subscription removed it")
	}
	c.Write(appendMsg(nil, Msg{[]byte("\x00msg")}))
	waitFor(t, 5*time.Second, "second cancel", func() bool { return !has("msg.x") })
}

func TestSubUnsubscribeStopsDelivery(t *testing.T) {
	pub := NewPub(Options{})
	sub := NewSub(Options{})
	closeAll(t, pub, sub)
	ep := bound(t, pub)
	sub.Subscribe("x")
	sub.Subscribe("x")
	sub.Subscribe("end")
	sub.Dial(ep)
	ctx := testCtx(t, 10*time.Second)
	recvOne(t, ctx, pub, sub, "x1")
	sub.Unsubscribe("x")
	recvOne(t, ctx, pub, sub, "x2") // one Subscribe left
	sub.Unsubscribe("x")
	// Locally filtered at once, whatever the publisher still sends: the
	// marker sent after x3 is the next message.
	pub.Send(Msg{[]byte("x3")})
	pub.Send(Msg{[]byte("end")})
	if m, err := sub.Recv(ctx); err != nil || string(m[0]) != "end" {
		t.Fatalf("received %q (%v) after the last Unsubscribe, want the marker", m, err)
	}
	waitFor(t, 5*time.Second, "cancel at PUB", func() bool {
		l := *pub.list.Load()
		return len(l) == 1 && !l[0].subs.Load().match([]byte("x"))
	})
	if ps := pub.Stats().PeerStats; len(ps) != 1 || ps[0].Subscriptions != 1 {
		t.Fatalf("peer stats %+v: want one subscriber with one subscription (end)", ps)
	}
}

func TestIncompatiblePeerRefused(t *testing.T) {
	pub := NewPub(Options{})
	closeAll(t, pub)
	ep := bound(t, pub)
	push := NewPush(Options{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	closeAll(t, push)
	push.Dial(ep)
	waitFor(t, 5*time.Second, "refused handshakes", func() bool { return push.Stats().HandshakeFailures >= 2 })
	if pub.Stats().Peers != 0 || push.Stats().Connects != 0 {
		t.Fatal("PUSH and PUB connected")
	}
}

func TestCloseUnblocks(t *testing.T) {
	push := NewPush(Options{})
	pull := NewPull(Options{})
	errs := make(chan error, 2)
	go func() { errs <- push.Send(context.Background(), msgOf(1)) }() // no peer: blocks
	go func() { _, err := pull.Recv(context.Background()); errs <- err }()
	push.Close()
	pull.Close()
	for i := 0; i < 2; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock Send/Recv")
		}
	}
	if err := push.Listen("tcp://127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Listen after Close: %v", err)
	}
}

func TestEndpoints(t *testing.T) {
	for _, ep := range []string{"tcp://127.0.0.1", "udp://1.2.3.4:5", "tcp//x:1", "ipc://"} {
		if _, err := parseEndpoint(ep); !errors.Is(err, ErrEndpoint) {
			t.Errorf("%q: %v, want ErrEndpoint", ep, err)
		}
	}
	if e, err := parseEndpoint("tcp://*:5555"); err != nil || e.addr != ":5555" {
		t.Errorf("tcp://*:5555 -> %+v %v", e, err)
	}
	if err := NewPush(Options{}).Dial("tcp://*:5555"); !errors.Is(err, ErrEndpoint) {
		t.Errorf("Dial to *: %v", err)
	}
}

// Past the limit, Subscribe says so instead of silently not subscribing.
func TestSubscribeOverLimitFails(t *testing.T) {
	s := NewSub(Options{})
	closeAll(t, s)
	for i := range maxSubscriptions {
		if err := s.Subscribe(fmt.Sprintf("topic-%d", i)); err != nil {
			t.Fatalf("subscription %d: %v", i+1, err)
		}
	}
	if err := s.Subscribe("one-more"); !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("subscription %d: %v, want ErrTooManySubscriptions", maxSubscriptions+1, err)
	}
	if err := s.Subscribe("topic-7"); err != nil {
		t.Fatalf("a repeated prefix is not a new one: %v", err)
	}
}
