package zmq

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// The key pairs of libzmq's zmq_curve(7) example ("Ironhouse"), as Z85.
const (
	docClientPublic = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
	docClientSecret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
	docServerPublic = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
	docServerSecret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
)

func TestZ85(t *testing.T) {
	// RFC 32's test vector.
	raw := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	s, err := Z85Encode(raw)
	if err != nil || s != "HelloWorld" {
		t.Fatalf("encode: %q, %v; want HelloWorld", s, err)
	}
	back, err := Z85Decode("HelloWorld")
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("decode: %x, %v", back, err)
	}
	for _, bad := range []string{"Hell", "Hello World", "Hello\"orld", "%%%%%"} {
		if _, err := Z85Decode(bad); err == nil {
			t.Errorf("Z85Decode(%q) accepted", bad)
		}
	}
	if _, err := Z85Encode([]byte{1, 2, 3}); err == nil {
		t.Error("Z85Encode of 3 bytes accepted")
	}
	for i := 0; i < 200; i++ {
		b := make([]byte, 4*(i%12))
		rand.Read(b)
		s, _ := Z85Encode(b)
		got, err := Z85Decode(s)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %x: %x, %v", b, got, err)
		}
	}
}

// TestCurveDocKeys derives libzmq's documented public keys from their
// secret keys: Z85 and the key derivation agree with libzmq's.
func TestCurveDocKeys(t *testing.T) {
	for _, p := range [][2]string{{docClientPublic, docClientSecret}, {docServerPublic, docServerSecret}} {
		sec, err := ParseCurveKey(p[1])
		if err != nil {
			t.Fatal(err)
		}
		pub, err := CurvePublicKey(sec)
		if err != nil {
			t.Fatal(err)
		}
		if pub.Z85() != p[0] {
			t.Fatalf("public key of %s = %s, want %s", p[1], pub.Z85(), p[0])
		}
	}
}

// TestMsgCipherMatchesNaCl checks the in-place MESSAGE boxes against
// nacl/box: same bytes sealed, and what box seals opens.
func TestMsgCipherMatchesNaCl(t *testing.T) {
	var shared [32]byte
	rand.Read(shared[:])
	c := newMsgCipher(&shared, nonceMsgC, 0)
	for _, size := range []int{0, 1, 31, 32, 33, 63, 64, 65, 200, 1000, 70000} {
		for _, n := range []uint64{1, 3, 1 << 40} {
			pt := make([]byte, size)
			rand.Read(pt)
			want := box.SealAfterPrecomputation(nil, pt, shortNonce(nonceMsgC, n), &shared)
			b := bytes.Clone(pt)
			tag := make([]byte, boxOverhead)
			c.seal(n, tag, b)
			if got := append(tag, b...); !bytes.Equal(got, want) {
				t.Fatalf("size %d nonce %d: sealed box differs from nacl/box", size, n)
			}
			body := bytes.Clone(want[boxOverhead:])
			if !c.open(n, want[:boxOverhead], body) || !bytes.Equal(body, pt) {
				t.Fatalf("size %d nonce %d: nacl box does not open", size, n)
			}
			if size > 0 {
				body := bytes.Clone(want[boxOverhead:])
				body[size/2] ^= 0x20
				if c.open(n, want[:boxOverhead], body) {
					t.Fatalf("size %d: a flipped byte opened", size)
				}
			}
			if c.open(n+1, want[:boxOverhead], bytes.Clone(want[boxOverhead:])) {
				t.Fatalf("size %d: opened under another nonce", size)
			}
		}
	}
}

// curvePair returns server and client security for a fresh server key and
// a client key the server admits.
func curvePair(t testing.TB) (server, client Security, sk, ck CurveKeyPair) {
	t.Helper()
	sk, err := NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	ck, err = NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return CurveServer(sk, CurveKeySet{ck.Public: {}}), CurveClient(ck, sk.Public), sk, ck
}

func TestCurveGoPushPull(t *testing.T) {
	for _, serverBinds := range []bool{true, false} {
		t.Run(fmt.Sprintf("serverBinds=%v", serverBinds), func(t *testing.T) {
			ss, cs, _, _ := curvePair(t)
			push := NewPush(Options{Security: cs})
			pull := NewPull(Options{Security: ss})
			if !serverBinds {
				push = NewPush(Options{Security: ss})
				pull = NewPull(Options{Security: cs})
			}
			closeAll(t, push, pull)
			push.Dial(bound(t, pull))
			ctx := testCtx(t, 20*time.Second)
			const n = 5000
			big := bytes.Repeat([]byte("B"), 100000)
			go func() {
				for i := 0; i < n; i++ {
					m := msgOf(i)
					if i%1000 == 7 {
						m = Msg{[]byte("multi"), {}, big, m[0]}
					}
					if err := push.Send(ctx, m); err != nil {
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
				want := msgOf(i)
				if i%1000 == 7 {
					want = Msg{[]byte("multi"), {}, big, want[0]}
				}
				if len(m) != len(want) {
					t.Fatalf("message %d: %d frames, want %d", i, len(m), len(want))
				}
				for j := range m {
					if !bytes.Equal(m[j], want[j]) {
						t.Fatalf("message %d frame %d differs", i, j)
					}
				}
			}
			st := pull.Stats()
			if st.Curve == nil || st.HandshakeFailures != 0 {
				t.Fatalf("stats: %+v", st)
			}
			for r, v := range st.Curve {
				if v != 0 {
					t.Errorf("Curve[%s] = %d", r, v)
				}
			}
		})
	}
}

func TestCurveGoPubSub(t *testing.T) {
	ss, cs, _, _ := curvePair(t)
	hb := Options{HeartbeatIvl: 50 * time.Millisecond, HeartbeatTimeout: 5 * time.Second}
	po, so := hb, hb
	po.Security, so.Security = ss, cs
	pub := NewPub(po)
	sub := NewSub(so)
	closeAll(t, pub, sub)
	sub.Subscribe("a")
	sub.Dial(bound(t, pub))
	waitFor(t, 5*time.Second, "subscription", func() bool { return pub.Wanted([]byte("a")) })
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 100; i++ {
		pub.Send(Msg{[]byte("b"), []byte("no")})
		pub.Send(Msg{[]byte("a"), []byte(fmt.Sprint(i))})
	}
	for i := 0; i < 100; i++ {
		m, err := sub.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m[0]) != "a" || string(m[1]) != fmt.Sprint(i) {
			t.Fatalf("got %q", m)
		}
	}
	// Heartbeats are boxed commands both ways; the peers stay up.
	pp, sp := (*pub.list.Load())[0], (*sub.list.Load())[0]
	waitFor(t, 10*time.Second, "PINGs and PONGs decoded both ways", func() bool { return pp.cmdsIn.Load() >= 10 && sp.cmdsIn.Load() >= 10 })
	if st := pub.Stats(); st.Peers != 1 || st.HeartbeatTimeouts != 0 || st.Disconnects != 0 {
		t.Fatalf("after heartbeats: %+v", st)
	}
}

func TestCurveRefusals(t *testing.T) {
	sk, _ := NewCurveKeyPair()
	ck, _ := NewCurveKeyPair()
	other, _ := NewCurveKeyPair()
	cases := []struct {
		name                string
		server, client      Security
		serverWant, cliWant string
	}{
		{"wrong server key", CurveServer(sk, CurveAllowAny), CurveClient(ck, other.Public), CurveBadBox, CurveNoWelcome},
		{"unlisted client key", CurveServer(sk, CurveKeySet{other.Public: {}}), CurveClient(ck, sk.Public), CurveUnknownKey, CurveRefused},
		{"no allow-list", CurveServer(sk), CurveClient(ck, sk.Public), CurveUnknownKey, CurveRefused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pull := NewPull(Options{Security: c.server})
			push := NewPush(Options{Security: c.client, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
			closeAll(t, pull, push)
			push.Dial(bound(t, pull))
			waitFor(t, 5*time.Second, "refusals counted on both sides", func() bool {
				return pull.Stats().Curve[c.serverWant] >= 2 && push.Stats().Curve[c.cliWant] >= 2
			})
			if pull.Stats().Peers != 0 || push.Stats().Peers != 0 || pull.Stats().Connects != 0 {
				t.Fatalf("a refused peer connected: %+v", pull.Stats())
			}
		})
	}
}

func TestCurveMechanismMismatch(t *testing.T) {
	ss, _, _, _ := curvePair(t)
	pull := NewPull(Options{Security: ss})
	push := NewPush(Options{ReconnectMin: 20 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	closeAll(t, pull, push)
	push.Dial(bound(t, pull))
	waitFor(t, 5*time.Second, "NULL client refused", func() bool { return pull.Stats().Curve[CurveMalformed] >= 2 })
}

func TestCurveReasonsCounted(t *testing.T) {
	var s socket
	if len(s.stat.curve) != len(CurveReasons) {
		t.Fatalf("%d counters for %d reasons", len(s.stat.curve), len(CurveReasons))
	}
}

// TestCurveOversize: MaxMsgSize and MaxFrames hold for the messages
// inside the boxes, counted as in the clear (payload plus FrameOverhead per
// extra frame).
func TestCurveOversize(t *testing.T) {
	many := make(Msg, DefaultMaxFrames+1)
	for i := range many {
		many[i] = []byte{1}
	}
	for _, m := range []Msg{{make([]byte, 2000)}, {make([]byte, 600), make([]byte, 600)}, {make([]byte, 500), make([]byte, 480)}, many} {
		ss, cs, _, _ := curvePair(t)
		pull := NewPull(Options{Security: ss, MaxMsgSize: 1000})
		if len(m) > 2 {
			pull = NewPull(Options{Security: ss, MaxMsgSize: 1 << 20})
		}
		push := NewPush(Options{Security: cs})
		closeAll(t, pull, push)
		push.Dial(bound(t, pull))
		ctx := testCtx(t, 10*time.Second)
		if err := push.Send(ctx, Msg{make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
		if got, err := pull.Recv(ctx); err != nil || len(got[0]) != 1000 {
			t.Fatalf("a message at the limit: %v", err)
		}
		if err := push.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "oversize peer dropped", func() bool { return pull.Stats().Oversize == 1 })
	}
}

// TestCurveRoles: two CURVE servers (neither names the other's key, the
// usual slip) are told so at the greeting, where ours says we are the
// server, instead of waiting out the handshake timeout; two clients are
// told so at the first HELLO.
func TestCurveRoles(t *testing.T) {
	sk, _ := NewCurveKeyPair()
	ck, _ := NewCurveKeyPair()
	for _, c := range []struct {
		name     string
		pull     Security
		push     Security
		wantText string
	}{
		{"two servers", CurveServer(sk, CurveAllowAny), CurveServer(ck, CurveAllowAny), "a CURVE server too"},
		{"two clients", CurveClient(sk, ck.Public), CurveClient(ck, sk.Public), "a CURVE client too"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pull := NewPull(Options{Security: c.pull, HandshakeTimeout: time.Minute})
			push := NewPush(Options{Security: c.push, HandshakeTimeout: time.Minute, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
			closeAll(t, pull, push)
			push.Dial(bound(t, pull))
			waitFor(t, 5*time.Second, "both sides refuse at the greeting", func() bool {
				return pull.Stats().Curve[CurveMalformed] >= 1 && push.Stats().Curve[CurveMalformed] >= 1
			})
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				if c2, err := l.Accept(); err == nil {
					NewSession(c2, SessionOptions{Type: "PULL", Security: c.pull, HandshakeTimeout: time.Minute})
				}
			}()
			c1, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewSession(c1, SessionOptions{Type: "PUSH", Security: c.push, HandshakeTimeout: 10 * time.Second})
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), c.wantText) {
				t.Fatalf("session: %v, want ErrAuth saying %q", err, c.wantText)
			}
		})
	}
}
