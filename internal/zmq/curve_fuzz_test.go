package zmq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/go-zeromq/zmq4"
)

// fuzzCurveConn is a connection state with fixed keys: its send cipher
// seals what its recv cipher opens, so seeds can be real boxes.
func fuzzCurveConn() *curveConn {
	var shared [32]byte
	copy(shared[:], "fixed shared key for fuzzing....")
	return &curveConn{
		send: newMsgCipher(&shared, nonceMsgC, 2),
		recv: newMsgCipher(&shared, nonceMsgC, 2),
	}
}

// FuzzCurveReader feeds arbitrary bytes to the MESSAGE decoder after a
// handshake: it must not panic, must keep messages within the limit,
// must accept only strictly increasing nonces and only boxes sealed with
// the connection's key.
func FuzzCurveReader(f *testing.F) {
	s := fuzzCurveConn()
	one := s.appendMsg(nil, Msg{[]byte("hello")})
	multi := s.appendMsg(nil, Msg{[]byte("a"), {}, bytes.Repeat([]byte("z"), 300)})
	ping := s.appendCmds(nil, appendCmd(nil, zmq4.CmdPing, []byte{0, 10}))
	f.Add(one)
	f.Add(append(bytes.Clone(one), one...)) // a replay
	f.Add(append(append(bytes.Clone(multi), ping...), one...))
	f.Add(append(bytes.Clone(multi[:len(multi)/2]), ping...))
	big := s.appendMsg(nil, Msg{bytes.Repeat([]byte("B"), 5000)})
	f.Add(big)
	f.Add(appendMsg(nil, Msg{[]byte("\x07MESSAGE0123456789abcdef0123456789abcdef")}))
	const max = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		cc := fuzzCurveConn()
		d := newDecoder(bytes.NewReader(data), max+curveFrameExtra)
		r := newCurveReader(d, cc, max, 8)
		last := cc.recv.nonce
		for i := 0; ; i++ {
			if i%2 == 1 {
				r.complete()
			}
			m, cmd, err := r.next()
			if err != nil {
				var ce *CurveError
				if errors.As(err, &ce) && curveReasonIndex(ce.Reason) < 0 {
					t.Fatalf("unknown reason %q", ce.Reason)
				}
				return
			}
			if cc.recv.nonce <= last {
				t.Fatalf("nonce went from %d to %d", last, cc.recv.nonce)
			}
			last = cc.recv.nonce
			if len(m) > 8 {
				t.Fatalf("message of %d frames passed a limit of 8", len(m))
			}
			if total := MsgSize(m); total > max {
				t.Fatalf("message of %d bytes passed a %d limit", total, max)
			}
			if cmd && len(m) != 1 {
				t.Fatalf("command with %d frames", len(m))
			}
		}
	})
}

// FuzzCurveHandshake feeds arbitrary bytes to both roles of the handshake
// (greeting, HELLO, WELCOME, INITIATE, READY parsers): no panic, and no
// handshake completes with bytes that were not sealed by a peer.
func FuzzCurveHandshake(f *testing.F) {
	sk, _ := ParseCurveKey(docServerSecret)
	spk, _ := ParseCurveKey(docServerPublic)
	csk, _ := ParseCurveKey(docClientSecret)
	cpk, _ := ParseCurveKey(docClientPublic)
	server := CurveServer(CurveKeyPair{spk, sk}, CurveAllowAny).(*curveSecurity)
	client := CurveClient(CurveKeyPair{cpk, csk}, spk).(*curveSecurity)
	// Seeds: what each side sends first, as a real client and server do.
	g := curveGreeting()
	helloBody := append([]byte{1, 0}, make([]byte, 192)...)
	f.Add(append(append(bytes.Clone(g), rawCurveCmd("HELLO", helloBody)...), rawCurveCmd("INITIATE", make([]byte, 300))...), true)
	f.Add(append(bytes.Clone(g), rawCurveCmd("HELLO", helloBody[:10])...), true)
	f.Add(append(bytes.Clone(g), longHeader(flagCommand, 1<<40)...), true)
	f.Add(append(bytes.Clone(g), rawCurveCmd("WELCOME", make([]byte, 160))...), false)
	f.Add(append(bytes.Clone(g), rawCurveCmd(zmq4.CmdError, []byte("\x03400"))...), false)
	f.Add(append(bytes.Clone(g), rawCurveCmd("READY", make([]byte, 40))...), false)
	f.Add(rawGreeting(), true)
	f.Fuzz(func(t *testing.T, data []byte, asServer bool) {
		sec := client
		if asServer {
			sec = server
		}
		cc, err := sec.handshakeConn(&fakeConn{r: bytes.NewReader(data)}, zmq4.Pull, "")
		if err == nil || cc != nil {
			t.Fatalf("a handshake completed on fuzzed bytes (server=%v)", asServer)
		}
	})
}

// FuzzCurveMetadata checks the metadata parser stays within its input.
func FuzzCurveMetadata(f *testing.F) {
	f.Add(zmtpMetadata(zmq4.Push, "id"))
	f.Add(appendMetadata(nil, "socket-type", "SUB"))
	f.Add([]byte{11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, err := parseMetadata(data)
		if err == nil && len(typ) > len(data) {
			t.Fatalf("socket type longer than the input")
		}
	})
}

// FuzzCurveCert checks the certificate parser (ZPL and Z85): no panic,
// and a certificate it accepts writes back to one with the same keys.
func FuzzCurveCert(f *testing.F) {
	f.Add([]byte("#   ZeroMQ CURVE **Secret** Certificate\n\nmetadata\n    name = \"a b\"\ncurve\n    public-key = \"" + docClientPublic + "\"\n    secret-key = \"" + docClientSecret + "\"\n"))
	f.Add([]byte("metadata\ncurve\n    public-key = '" + docServerPublic + "'   # comment\n"))
	f.Add([]byte("curve\n    public-key = " + docServerPublic + "\n"))
	f.Add([]byte("curve\n  public-key = x\n"))
	f.Add([]byte("curve\n        deep = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCurveCert(data)
		if err != nil {
			return
		}
		text := []byte("curve\n    public-key = \"" + c.Public.Z85() + "\"\n")
		if c.Secret != nil {
			text = append(text, "    secret-key = \""+c.Secret.Z85()+"\"\n"...)
		}
		back, err := ParseCurveCert(text)
		if err != nil || back.Public != c.Public || (c.Secret != nil) != (back.Secret != nil) {
			t.Fatalf("round trip: %v", err)
		}
		if c.Secret != nil && *back.Secret != *c.Secret {
			t.Fatal("secret key changed in round trip")
		}
	})
}

// FuzzZ85 checks that what decodes encodes back to the same text.
func FuzzZ85(f *testing.F) {
	f.Add("HelloWorld")
	f.Add(docClientPublic)
	f.Add("#####")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Z85Decode(s)
		if err != nil {
			return
		}
		back, err := Z85Encode(b)
		if err != nil || back != s {
			t.Fatalf("%q -> %x -> %q, %v", s, b, back, err)
		}
		if binary.Size(b) != len(s)/5*4 {
			t.Fatal("length")
		}
	})
}
