package zmq

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// recConn records what is written to it and can swap one write for other
// bytes (by its index, the greeting being write 0).
type recConn struct {
	net.Conn
	mu      sync.Mutex
	writes  [][]byte
	replace map[int][]byte
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	i := len(c.writes)
	c.writes = append(c.writes, bytes.Clone(b))
	r, ok := c.replace[i]
	c.mu.Unlock()
	if ok {
		if _, err := c.Conn.Write(r); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// curveDial connects to ep and runs the client handshake with sec over
// the raw connection, which the test then writes boxes to itself.
func curveDial(t *testing.T, ep string, sec Security, replace map[int][]byte) (*recConn, *curveConn, error) {
	t.Helper()
	c, err := net.Dial("tcp", ep[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	rc := &recConn{Conn: c, replace: replace}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cc, err := sec.(connHandshaker).handshakeConn(rc, zmq4.Push, "")
	c.SetDeadline(time.Time{})
	return rc, cc, err
}

// rawCurveCmd is a command frame as the handshake writes it.
func rawCurveCmd(name string, data []byte) []byte {
	return appendCmd(nil, name, data)
}

func curveGreeting() []byte {
	g := rawGreeting()
	copy(g[12:32], make([]byte, 20))
	copy(g[12:], "CURVE")
	return g
}

// TestCurveHostile sends a CURVE server what an attacker would: HELLOs of
// the wrong size, boxes that do not open, an INITIATE replayed from
// another connection, a MESSAGE replayed, reordered or with a flipped
// byte. Each is refused with a disconnect and counted by its reason; the
// server keeps serving honest clients and its descriptors stay flat.
func TestCurveHostile(t *testing.T) {
	sk, _ := NewCurveKeyPair()
	ck, _ := NewCurveKeyPair()
	client := CurveClient(ck, sk.Public)
	pull := NewPull(Options{Security: CurveServer(sk, CurveKeySet{ck.Public: {}}), HandshakeTimeout: 2 * time.Second, RecvHWM: 100000})
	closeAll(t, pull)
	ep := bound(t, pull)
	addr := ep[len("tcp://"):]

	// rawHello sends a greeting and a HELLO with the given body.
	rawHello := func(body []byte) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(curveGreeting())
		c.Write(rawCurveCmd("HELLO", body))
		return c
	}
	validHello := func() []byte {
		// A HELLO our client would send, captured from a real handshake.
		rc, _, err := curveDial(t, ep, client, nil)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		w := rc.writes[1]
		_, data, _ := parseCmd(w[2:])
		return data
	}()
	var honest int
	got := map[string]int{} // what reached Recv
	checkHonest := func() {
		t.Helper()
		rc, cc, err := curveDial(t, ep, client, nil)
		if err != nil {
			t.Fatalf("honest client refused: %v", err)
		}
		honest++
		rc.Write(cc.appendMsg(nil, Msg{[]byte("honest")}))
		ctx := testCtx(t, 5*time.Second)
		for {
			m, err := pull.Recv(ctx)
			if err != nil {
				t.Fatalf("honest message: %v", err)
			}
			got[string(m[0])]++
			if string(m[0]) == "honest" {
				break
			}
		}
		rc.Close()
	}
	count := func(reason string) uint64 { return pull.Stats().Curve[reason] }

	type attack struct {
		name   string
		reason string
		run    func() net.Conn // returns the connection the server must close
	}
	attacks := []attack{
		{"HELLO one byte short", CurveMalformed, func() net.Conn { return rawHello(validHello[:len(validHello)-1]) }},
		{"HELLO one byte long", CurveMalformed, func() net.Conn { return rawHello(append(bytes.Clone(validHello), 0)) }},
		{"HELLO claiming 1 GiB", CurveMalformed, func() net.Conn {
			c, _ := net.Dial("tcp", addr)
			c.Write(curveGreeting())
			c.Write(longHeader(flagCommand, 1<<30))
			return c
		}},
		{"HELLO version 2.0", CurveBadVersion, func() net.Conn {
			h := bytes.Clone(validHello)
			h[0] = 2
			return rawHello(h)
		}},
		{"HELLO box that does not open", CurveBadBox, func() net.Conn {
			h := bytes.Clone(validHello)
			h[len(h)-5] ^= 1
			return rawHello(h)
		}},
		{"INITIATE replayed from another connection", CurveBadBox, func() net.Conn {
			a, _, err := curveDial(t, ep, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			a.Close()
			// Writes: greeting, HELLO, INITIATE.
			b, _, err := curveDial(t, ep, client, map[int][]byte{2: a.writes[2]})
			if err == nil {
				t.Fatal("the server accepted a replayed INITIATE")
			}
			return b
		}},
		{"MESSAGE replayed", CurveBadNonce, func() net.Conn {
			rc, cc, err := curveDial(t, ep, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			m := cc.appendMsg(nil, Msg{[]byte("once")})
			rc.Write(m)
			rc.Write(m)
			return rc
		}},
		{"MESSAGE nonce going back", CurveBadNonce, func() net.Conn {
			rc, cc, err := curveDial(t, ep, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			first := cc.appendMsg(nil, Msg{[]byte("first")})
			second := cc.appendMsg(nil, Msg{[]byte("second")})
			rc.Write(second)
			rc.Write(first)
			return rc
		}},
		{"MESSAGE with a flipped byte", CurveBadBox, func() net.Conn {
			rc, cc, err := curveDial(t, ep, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			m := cc.appendMsg(nil, Msg{[]byte("tampered with")})
			m[len(m)-3] ^= 0x80
			rc.Write(m)
			return rc
		}},
		{"MESSAGE with a flipped nonce", CurveBadBox, func() net.Conn {
			rc, cc, err := curveDial(t, ep, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			m := cc.appendMsg(nil, Msg{[]byte("x")})
			m[2+8+7] ^= 0x40 // the short nonce's last byte: a higher nonce the box was not sealed with
			rc.Write(m)
			return rc
		}},
		{"MESSAGE frame too short", CurveMalformed, func() net.Conn {
			rc, _, err := curveDial(t, ep, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			rc.Write(append([]byte{0, 8}, curveMsgName...))
			return rc
		}},
		{"plain frame after the handshake", CurveMalformed, func() net.Conn {
			rc, _, err := curveDial(t, ep, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			rc.Write(appendMsg(nil, Msg{[]byte("cleartext, not a box at all, long enough")}))
			return rc
		}},
	}
	// Warm up (goroutines, buffers), then measure.
	checkHonest()
	settle()
	_, fds0 := procStatus(t)
	const rounds = 5
	for r := 0; r < rounds; r++ {
		for _, a := range attacks {
			before := count(a.reason)
			c := a.run()
			expectClosed(t, c, a.name)
			c.Close()
			waitFor(t, 5*time.Second, a.name+" counted as "+a.reason, func() bool { return count(a.reason) > before })
		}
		checkHonest()
	}
	waitFor(t, 5*time.Second, "no peer left", func() bool { return pull.Stats().Peers == 0 })
	settle()
	_, fds1 := procStatus(t)
	if fds1 > fds0+2 {
		t.Fatalf("descriptors grew from %d to %d over %d hostile connections", fds0, fds1, rounds*len(attacks))
	}
	st := pull.Stats()
	t.Logf("after %d attacks: %v, handshake failures %d, honest %d", rounds*len(attacks), st.Curve, st.HandshakeFailures, honest)
	// What the attacks delivered before they were caught: the first copy
	// of a replayed MESSAGE and the higher nonce of the reordered pair,
	// once per round; nothing tampered with.
	want := map[string]int{"honest": honest, "once": rounds, "second": rounds}
	for k, v := range got {
		if want[k] != v {
			t.Errorf("received %q %d times, want %d", k, v, want[k])
		}
	}
	if int(st.Connects) < honest {
		t.Fatalf("connects %d < honest clients %d", st.Connects, honest)
	}
}

// TestCurveClientHostileServer: our client refuses a server whose WELCOME
// or READY does not open, or whose READY nonce is 0.
func TestCurveClientHostileServer(t *testing.T) {
	sk, _ := NewCurveKeyPair()
	ck, _ := NewCurveKeyPair()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	push := NewPush(Options{Security: CurveClient(ck, sk.Public), ReconnectMin: 10 * time.Millisecond, ReconnectMax: 10 * time.Millisecond})
	closeAll(t, push)
	push.Dial("tcp://" + l.Addr().String())
	accept := func() *hsConn {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(curveGreeting())
		var g [64]byte
		if _, err := c.Read(g[:]); err != nil {
			t.Fatal(err)
		}
		h := &hsConn{c: c}
		if _, err := h.readCmd("HELLO"); err != nil {
			t.Fatal(err)
		}
		return h
	}
	// A WELCOME of the right size that does not open.
	h := accept()
	h.send("WELCOME", make([]byte, curveWelcomeSize-8))
	waitFor(t, 5*time.Second, "bad WELCOME box counted", func() bool { return push.Stats().Curve[CurveBadBox] >= 1 })
	h.c.Close()
	// A WELCOME of the wrong size.
	h = accept()
	h.send("WELCOME", make([]byte, 10))
	waitFor(t, 5*time.Second, "short WELCOME counted", func() bool { return push.Stats().Curve[CurveMalformed] >= 1 })
	h.c.Close()
	// An ERROR.
	h = accept()
	h.send(zmq4.CmdError, []byte{3}, []byte("400"))
	waitFor(t, 5*time.Second, "ERROR counted as refused", func() bool { return push.Stats().Curve[CurveRefused] >= 1 })
	h.c.Close()
	if push.Stats().Peers != 0 {
		t.Fatal("connected to a hostile server")
	}
}
