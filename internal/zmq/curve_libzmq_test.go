package zmq

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// curveKeys is a fresh server and client key pair for a libzmq test.
type curveKeys struct {
	server, client CurveKeyPair
}

func newCurveKeys(t *testing.T) curveKeys {
	t.Helper()
	s, err := NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return curveKeys{s, c}
}

// zpeer flags for libzmq's side of the handshake.
func (k curveKeys) libzmqServer() []string { return []string{"--curve-server", k.server.Secret.Z85()} }
func (k curveKeys) libzmqClient() []string {
	return []string{"--curve-client", k.server.Public.Z85() + "," + k.client.Public.Z85() + "," + k.client.Secret.Z85()}
}

// TestCurveLibzmq runs each of our socket types against libzmq (pyzmq)
// with CURVE, once with us as the CURVE server (binding) and once as the
// client (connecting to libzmq's server), and checks every message
// arrives whole and in order, multipart and long frames included.
func TestCurveLibzmq(t *testing.T) {
	needLibzmq(t)
	const n = 2000
	long := strings.Repeat("L", 700)
	for _, ourType := range []string{"push", "pull", "pub", "sub"} {
		for _, weServe := range []bool{true, false} {
			role := "client"
			if weServe {
				role = "server"
			}
			t.Run(ourType+"/we-are-"+role, func(t *testing.T) {
				k := newCurveKeys(t)
				ours := Options{Security: CurveClient(k.client, k.server.Public)}
				theirs := k.libzmqServer()
				if weServe {
					ours = Options{Security: CurveServer(k.server, CurveKeySet{k.client.Public: {}})}
					theirs = k.libzmqClient()
				}
				ctx := testCtx(t, 60*time.Second)
				switch ourType {
				case "push":
					s := NewPush(ours)
					closeAll(t, s)
					z := curvePeer(t, s, weServe, "pull", append(theirs, "--print", "--monitor")...)
					for i := 0; i < n; i++ {
						m := msgOf(i)
						if i == n/2 {
							m = Msg{[]byte("a"), {}, []byte(long)}
						}
						if err := s.Send(ctx, m); err != nil {
							t.Fatal(err)
						}
					}
					waitFor(t, 30*time.Second, "libzmq PULL has every message", func() bool { return z.count() >= n })
					got := z.received()
					for i := 0; i < n; i++ {
						want := string(msgOf(i)[0])
						if i == n/2 {
							want = "a||" + long
						}
						if got[i] != want {
							t.Fatalf("message %d: %q, want %q", i, got[i], want)
						}
					}
				case "pull":
					s := NewPull(ours)
					closeAll(t, s)
					z := curvePeer(t, s, weServe, "push", theirs...)
					z.do(fmt.Sprintf("send %d p", n))
					z.do("sendm a||" + long)
					for i := 0; i <= n; i++ {
						m, err := s.Recv(ctx)
						if err != nil {
							t.Fatal(err)
						}
						if i == n {
							if len(m) != 3 || string(m[0]) != "a" || len(m[1]) != 0 || string(m[2]) != long {
								t.Fatalf("multipart: %q", m)
							}
							break
						}
						if want := fmt.Sprintf("p%06d", i); len(m) != 1 || string(m[0]) != want {
							t.Fatalf("got %q, want %q", m, want)
						}
					}
				case "pub":
					ours.HWM = 2 * n // no drops for a slow Python subscriber
					s := NewPub(ours)
					closeAll(t, s)
					z := curvePeer(t, s, weServe, "sub", append(theirs, "--print")...)
					z.do("sub t")
					waitFor(t, 10*time.Second, "libzmq's subscription", func() bool { return s.Wanted([]byte("t")) })
					for i := 0; i < n; i++ {
						s.Send(Msg{[]byte("x"), []byte("unwanted")})
						s.Send(Msg{[]byte("t"), msgOf(i)[0]})
					}
					waitFor(t, 30*time.Second, "libzmq SUB has every message", func() bool { return z.count() >= n })
					if d := s.Stats().Drops[DropPubQueueFull]; d != 0 {
						t.Fatalf("%d dropped", d)
					}
					got := z.received()
					for i := 0; i < n; i++ {
						if want := "t|" + string(msgOf(i)[0]); got[i] != want {
							t.Fatalf("message %d: %q, want %q", i, got[i], want)
						}
					}
				case "sub":
					s := NewSub(ours)
					closeAll(t, s)
					s.Subscribe("t")
					z := curvePeer(t, s, weServe, "pub", theirs...)
					// Publish until our subscription has reached libzmq.
					for {
						z.do("sendm t|probe")
						c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
						m, err := s.Recv(c)
						cancel()
						if err == nil && string(m[1]) == "probe" {
							break
						}
						if ctx.Err() != nil {
							t.Fatal("our subscription never reached libzmq's PUB")
						}
					}
					z.do("sendm x|unwanted")
					z.do(fmt.Sprintf("sendm t|%s", long))
					for {
						m, err := s.Recv(ctx)
						if err != nil {
							t.Fatal(err)
						}
						if string(m[1]) == "probe" {
							continue
						}
						if string(m[0]) != "t" || string(m[1]) != long {
							t.Fatalf("got %q", m)
						}
						break
					}
				}
			})
		}
	}
}

// curvePeer starts a libzmq peer of type peerType against s: when we
// serve, s binds and libzmq connects; otherwise libzmq binds and s dials.
func curvePeer(t *testing.T, s interface {
	Listen(string) error
	Dial(string) error
	Addrs() []net.Addr
	Stats() Stats
}, weServe bool, peerType string, flags ...string) *zpeer {
	t.Helper()
	var z *zpeer
	if weServe {
		if err := s.Listen("tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		z = startZpeer(t, append([]string{peerType, "connect", tcpEndpoint(s.Addrs()[0])}, flags...)...)
	} else {
		z = startZpeer(t, append([]string{peerType, "bind", "tcp://127.0.0.1:0"}, flags...)...)
		if err := s.Dial(z.Endpoint); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "CURVE handshake with libzmq", func() bool { return s.Stats().Peers == 1 })
	return z
}

// TestCurveLibzmqRefusals: a wrong server key and an unlisted client key
// are refused whichever side libzmq plays, and both sides notice.
func TestCurveLibzmqRefusals(t *testing.T) {
	needLibzmq(t)
	fast := Options{ReconnectMin: 20 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}

	t.Run("libzmq client, wrong server key", func(t *testing.T) {
		k := newCurveKeys(t)
		o := fast
		o.Security = CurveServer(k.server, CurveAllowAny)
		pull := NewPull(o)
		closeAll(t, pull)
		ep := bound(t, pull)
		wrong := newCurveKeys(t)
		z := startZpeer(t, "push", "connect", ep, "--monitor", "--curve-client",
			wrong.server.Public.Z85()+","+k.client.Public.Z85()+","+k.client.Secret.Z85())
		waitFor(t, 10*time.Second, "our server refuses the HELLO", func() bool { return pull.Stats().Curve[CurveBadBox] >= 1 })
		z.do("send 3 x")
		time.Sleep(200 * time.Millisecond)
		if st := pull.Stats(); st.Peers != 0 || st.MsgsIn != 0 || z.eventCount("HANDSHAKE_SUCCEEDED") != 0 {
			t.Fatalf("a client with the wrong server key got through: %+v events %v", st, z.eventLog())
		}
	})

	t.Run("our client, wrong server key", func(t *testing.T) {
		k := newCurveKeys(t)
		z := startZpeer(t, append([]string{"pull", "bind", "tcp://127.0.0.1:0", "--monitor"}, k.libzmqServer()...)...)
		wrong := newCurveKeys(t)
		o := fast
		o.Security = CurveClient(k.client, wrong.server.Public)
		push := NewPush(o)
		closeAll(t, push)
		push.Dial(z.Endpoint)
		waitFor(t, 10*time.Second, "libzmq refuses our HELLO and we count it", func() bool {
			return push.Stats().Curve[CurveNoWelcome] >= 2 && z.eventCount("HANDSHAKE_FAILED_PROTOCOL") >= 2
		})
		if push.Stats().Peers != 0 {
			t.Fatal("connected with the wrong server key")
		}
	})

	t.Run("libzmq client, unlisted key", func(t *testing.T) {
		k := newCurveKeys(t)
		listed := newCurveKeys(t)
		o := fast
		o.Security = CurveServer(k.server, CurveKeySet{listed.client.Public: {}})
		pull := NewPull(o)
		closeAll(t, pull)
		ep := bound(t, pull)
		z := startZpeer(t, append([]string{"push", "connect", ep, "--monitor"}, k.libzmqClient()...)...)
		waitFor(t, 10*time.Second, "we refuse the key and libzmq hears ERROR 400", func() bool {
			return pull.Stats().Curve[CurveUnknownKey] >= 1 && z.eventCount("HANDSHAKE_FAILED_AUTH 400") >= 1
		})
		if st := pull.Stats(); st.Peers != 0 || st.Connects != 0 {
			t.Fatalf("an unlisted client connected: %+v", st)
		}
	})

	t.Run("our client, unlisted key", func(t *testing.T) {
		k := newCurveKeys(t)
		dir := t.TempDir()
		listed := newCurveKeys(t)
		if err := WriteCurveCerts(filepath.Join(dir, "other.key"), listed.client, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		z := startZpeer(t, append([]string{"pull", "bind", "tcp://127.0.0.1:0", "--monitor", "--curve-allow", dir}, k.libzmqServer()...)...)
		o := fast
		o.Security = CurveClient(k.client, k.server.Public)
		push := NewPush(o)
		closeAll(t, push)
		push.Dial(z.Endpoint)
		waitFor(t, 10*time.Second, "libzmq's ZAP refuses us and we count it", func() bool {
			return push.Stats().Curve[CurveRefused] >= 2 && z.eventCount("HANDSHAKE_FAILED_AUTH") >= 2
		})
		if push.Stats().Peers != 0 {
			t.Fatal("connected with an unlisted key")
		}
	})

	t.Run("our client, listed key in libzmq's certificate directory", func(t *testing.T) {
		// The same as above with our key listed: the certificate file we
		// write is one pyzmq's zmq.auth reads.
		k := newCurveKeys(t)
		dir := t.TempDir()
		if err := WriteCurveCerts(filepath.Join(dir, "us.key"), k.client, map[string]string{"name": "relay"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		z := startZpeer(t, append([]string{"pull", "bind", "tcp://127.0.0.1:0", "--print", "--curve-allow", dir}, k.libzmqServer()...)...)
		o := fast
		o.Security = CurveClient(k.client, k.server.Public)
		push := NewPush(o)
		closeAll(t, push)
		push.Dial(z.Endpoint)
		ctx := testCtx(t, 10*time.Second)
		if err := push.Send(ctx, Msg{[]byte("admitted")}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "message through libzmq's ZAP", func() bool { return z.count() == 1 })
	})
}

// TestCurveLibzmqHeartbeats: PINGs and PONGs travel as boxed commands
// both ways between libzmq and us; neither side drops the other over
// many heartbeat periods, and messages still flow after.
func TestCurveLibzmqHeartbeats(t *testing.T) {
	needLibzmq(t)
	k := newCurveKeys(t)
	push := NewPush(Options{
		Security:     CurveServer(k.server, CurveKeySet{k.client.Public: {}}),
		HeartbeatIvl: 100 * time.Millisecond, HeartbeatTimeout: 3 * time.Second,
	})
	closeAll(t, push)
	// libzmq PINGs every 300 ms and drops us after 900 ms without traffic:
	// our PONGs must open on its side (lenient timeouts: shared cores).
	z := curvePeer(t, push, true, "pull", append(k.libzmqClient(), "--print", "--monitor", "--heartbeat", "300")...)
	p := (*push.list.Load())[0]
	waitFor(t, 10*time.Second, "libzmq's PINGs and PONGs decoded", func() bool { return p.cmdsIn.Load() >= 10 })
	st := push.Stats()
	if st.Peers != 1 || st.HeartbeatTimeouts != 0 || st.Disconnects != 0 || z.eventCount("DISCONNECTED") != 0 {
		t.Fatalf("heartbeats broke the connection: %+v, libzmq events %v", st, z.eventLog())
	}
	for r, n := range st.Curve {
		if n != 0 {
			t.Fatalf("Curve[%s] = %d", r, n)
		}
	}
	if st.PeerStats[0].MsgsIn != 0 {
		t.Fatalf("libzmq's PINGs counted as messages: %+v", st.PeerStats[0])
	}
	ctx := testCtx(t, 10*time.Second)
	if err := push.Send(ctx, Msg{[]byte("after heartbeats")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "message after heartbeats", func() bool { return z.count() == 1 })
}
