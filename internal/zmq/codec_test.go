package zmq

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestDecoderRoundTrip(t *testing.T) {
	msgs := []Msg{
		{[]byte("one")},
		{[]byte("a"), {}, bytes.Repeat([]byte("b"), 300)},
		{bytes.Repeat([]byte("c"), readBufSize+10)},
		{},
	}
	var wire []byte
	for _, m := range msgs {
		wire = appendMsg(wire, m)
	}
	wire = appendCmd(wire, "PING", []byte{0, 10, 'x'})
	d := newDecoder(iotest1(wire), 1<<20)
	for i, want := range msgs {
		got, cmd, err := d.next()
		if err != nil || cmd {
			t.Fatalf("message %d: %v cmd=%v", i, err, cmd)
		}
		if len(want) == 0 {
			want = Msg{{}}
		}
		if len(got) != len(want) {
			t.Fatalf("message %d: %d frames, want %d", i, len(got), len(want))
		}
		for k := range want {
			if !bytes.Equal(got[k], want[k]) {
				t.Fatalf("message %d frame %d differs", i, k)
			}
		}
	}
	got, cmd, err := d.next()
	if err != nil || !cmd {
		t.Fatalf("command: %v cmd=%v", err, cmd)
	}
	if name, data, ok := parseCmd(got[0]); !ok || name != "PING" || string(data) != "\x00\x0ax" {
		t.Fatalf("command parsed as %q %q", name, data)
	}
	if _, _, err := d.next(); err != io.EOF {
		t.Fatalf("at end: %v, want EOF", err)
	}
}

// iotest1 returns a reader that yields one byte per Read, the worst case
// for a framing decoder.
func iotest1(b []byte) io.Reader { return &oneByte{b: b} }

type oneByte struct{ b []byte }

func (r *oneByte) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func TestDecoderOversizeBeforeAllocating(t *testing.T) {
	// Two frames of 600 bytes each under a 1000-byte limit: the second
	// header already exceeds the sum, before its body is read.
	wire := appendHeader(nil, flagMore, 600)
	wire = append(wire, make([]byte, 600)...)
	wire = appendHeader(wire, 0, 600)
	d := newDecoder(bytes.NewReader(wire), 1000)
	if _, _, err := d.next(); !errors.Is(err, ErrOversize) {
		t.Fatalf("got %v, want ErrOversize", err)
	}
	d = newDecoder(bytes.NewReader(longHeader(0, 1<<49)), 1<<20)
	if _, _, err := d.next(); !errors.Is(err, ErrOversize) {
		t.Fatalf("2^49: got %v, want ErrOversize", err)
	}
}

func TestDecoderCommandInMultipart(t *testing.T) {
	wire := appendHeader(nil, flagMore, 1)
	wire = append(wire, 'a')
	wire = appendCmd(wire, "PING", []byte{0, 0})
	d := newDecoder(bytes.NewReader(wire), 1<<20)
	if _, _, err := d.next(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}

// FuzzDecoder feeds arbitrary bytes to the frame decoder: it must not
// panic, must respect the size limit, and what it returns must encode
// back to frames it decodes identically.
func FuzzDecoder(f *testing.F) {
	f.Add(appendMsg(nil, Msg{[]byte("hello")}))
	f.Add(appendMsg(nil, Msg{[]byte("a"), {}, bytes.Repeat([]byte("z"), 300)}))
	f.Add(appendCmd(nil, "SUBSCRIBE", []byte("topic")))
	f.Add(longHeader(0, 1<<49))
	f.Add([]byte{flagMore, 1, 'x'})
	f.Add(bytes.Repeat([]byte{flagMore, 0}, 200)) // empty frames: each costs FrameOverhead
	const max, maxFrames = 4096, 16
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDecoderFrames(bytes.NewReader(data), max, maxFrames)
		for {
			m, cmd, err := d.next()
			if err != nil {
				return
			}
			if n := MsgSize(m); n > max {
				t.Fatalf("message of size %d (%d frames) passed a %d limit", n, len(m), max)
			}
			if len(m) > maxFrames {
				t.Fatalf("message of %d frames passed a %d-frame limit", len(m), maxFrames)
			}
			if cmd {
				if len(m) != 1 {
					t.Fatalf("command with %d frames", len(m))
				}
				parseCmd(m[0])
				continue
			}
			back, cmd2, err := newDecoderFrames(bytes.NewReader(appendMsg(nil, m)), max, maxFrames).next()
			if err != nil || cmd2 || len(back) != len(m) {
				t.Fatalf("re-decode: %v cmd=%v frames %d vs %d", err, cmd2, len(back), len(m))
			}
			for i := range m {
				if !bytes.Equal(back[i], m[i]) {
					t.Fatalf("frame %d changed in round trip", i)
				}
			}
		}
	})
}

// FuzzHandshakeGuard checks that whatever bytes a peer sends, the guard
// never passes on a complete frame header claiming more than its limit.
func FuzzHandshakeGuard(f *testing.F) {
	f.Add(append(rawGreeting(), rawReady("PUSH")...), uint8(7))
	f.Add(append(rawGreeting(), longHeader(flagCommand, 1<<49)...), uint8(1))
	f.Add(append(rawGreeting(), 0x04, 0xff), uint8(64))
	const limit = 1024
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		g := newGuardConn(&fakeConn{r: bytes.NewReader(data)}, limit)
		var passed []byte
		buf := make([]byte, int(chunk)+1)
		for {
			n, err := g.Read(buf)
			passed = append(passed, buf[:n]...)
			if err != nil {
				break
			}
		}
		// Re-walk what was passed on, as zmq4 would read it.
		if len(passed) <= 64 {
			return
		}
		b := passed[64:]
		for len(b) >= 2 {
			size, hdr := uint64(b[1]), 2
			if b[0]&flagLong != 0 {
				if len(b) < 9 {
					return
				}
				size, hdr = uint64(b[1])<<56|uint64(b[2])<<48|uint64(b[3])<<40|uint64(b[4])<<32|
					uint64(b[5])<<24|uint64(b[6])<<16|uint64(b[7])<<8|uint64(b[8]), 9
			}
			if size > limit {
				t.Fatalf("guard passed a header claiming %d bytes", size)
			}
			if uint64(len(b)-hdr) < size {
				return
			}
			b = b[hdr+int(size):]
		}
	})
}

// FuzzHandshake runs zmq4's handshake behind our guard against arbitrary
// peer bytes: whatever they are, it must fail or succeed cleanly, never
// panic out or allocate what a header claims.
func FuzzHandshake(f *testing.F) {
	f.Add(append(rawGreeting(), rawReady("PUSH")...))
	f.Add(append(rawGreeting(), rawReady("NOPE")...))
	f.Add(append(rawGreeting(), 0x04, 0x06, 0x05, 'R', 'E', 'A', 'D', 'Y'))
	f.Add(append(rawGreeting(), longHeader(flagCommand, 1<<62)...))
	s := newSocket("PULL", Options{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := s.handshake(&fakeConn{r: bytes.NewReader(data)}, "fuzz", nil)
		if (p == nil) == (err == nil) {
			t.Fatalf("peer %v with error %v", p, err)
		}
	})
}
