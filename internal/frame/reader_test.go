package frame

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// result is one outcome of Next: a frame or a per-frame error.
type result struct {
	frame string
	err   error
}

func (r result) String() string {
	if r.err != nil {
		return "err:" + r.err.Error()
	}
	return fmt.Sprintf("%q", r.frame)
}

// readAll collects Next results until a stream-ending error, which it
// returns.
func readAll(t *testing.T, rd *Reader) ([]result, error) {
	t.Helper()
	var out []result
	for i := 0; i < 100000; i++ {
		msg, err := rd.Next()
		switch {
		case err == nil:
			out = append(out, result{frame: string(msg)})
		case errors.Is(err, ErrOversize):
			out = append(out, result{err: ErrOversize})
		case errors.Is(err, ErrMalformed):
			out = append(out, result{err: ErrMalformed})
		default:
			return out, err
		}
	}
	t.Fatal("Next never ended the stream")
	return nil, nil
}

func ok(frames ...string) []result {
	out := make([]result, len(frames))
	for i, f := range frames {
		out[i] = result{frame: f}
	}
	return out
}

func octet(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }

func zframe(t testing.TB, msg string) string {
	var b bytes.Buffer
	b.WriteByte('z')
	w := zlib.NewWriter(&b)
	w.Write([]byte(msg))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return octet(b.String())
}

const (
	m5424 = "<34>1 2026-11-22T05:06:07.123Z host app 42 ID1 - hello"
	m3164 = "<13>Nov 22 05:06:07 host app[1]: line"
	mfwd  = "<13>2026-11-22T05:06:07.123456+00:00 host app[1]: fwd"
)

func TestReader(t *testing.T) {
	big := strings.Repeat("x", 100)
	cases := []struct {
		name   string
		in     string
		maxLen int
		want   []result
		end    error
	}{
		{"lf", m5424 + "\n" + m3164 + "\n", 0, ok(m5424, m3164), io.EOF},
		{"crlf", m5424 + "\r\n" + m3164 + "\r\n", 0, ok(m5424, m3164), io.EOF},
		{"octet", octet(m5424) + octet(m3164), 0, ok(m5424, m3164), io.EOF},
		{"octet with LF inside", octet("<13>a\nb"), 0, ok("<13>a\nb"), io.EOF},
		// rsyslog templates end in LF, inside the octet count: it is not part of the message.
		{"octet with trailing LF", octet("<13>a\nb\n") + octet("<13>c\r\n"), 0, ok("<13>a\nb", "<13>c"), io.EOF},
		{"mixed", octet(m5424) + m3164 + "\n" + octet(mfwd) + mfwd + "\n", 0, ok(m5424, m3164, mfwd, mfwd), io.EOF},
		{"octet then LF separator", octet(m5424) + "\n" + octet(m3164) + "\n", 0, ok(m5424, m3164), io.EOF},
		{"empty lines skipped", "\n\r\n\n" + m3164 + "\n\n", 0, ok(m3164), io.EOF},
		{"partial last line", m5424 + "\n" + m3164, 0, ok(m5424, m3164), io.EOF},
		{"partial last line with CR", m3164 + "\r", 0, ok(m3164), io.EOF},
		{"digits only before EOF", "123", 0, ok("123"), io.EOF},
		{"digit-led line, not a count", "2026-11-22T05:06:07Z host app: x\n", 0, ok("2026-11-22T05:06:07Z host app: x"), io.EOF},
		{"zero-led line", "0 foo\n", 0, ok("0 foo"), io.EOF},
		{"truncated octet frame", "100 <13>short", 0, nil, io.ErrUnexpectedEOF},
		{"octet count too long", "12345678901 junk<13>next\n", 0, []result{{err: ErrMalformed}, {frame: "<13>next"}}, io.EOF},
		{"octet count too long, resync at LF", "123456789012345 junk\n" + m3164 + "\n", 0, []result{{err: ErrMalformed}, {frame: m3164}}, io.EOF},
		{"max length exactly", octet(big) + big + "\n" + big + "\r\n", 100, ok(big, big, big), io.EOF},
		{"oversize octet", octet(big+"y") + m3164 + "\n", 100, []result{{err: ErrOversize}, {frame: m3164}}, io.EOF},
		{"oversize line", big + "yz\n" + m3164 + "\n", 100, []result{{err: ErrOversize}, {frame: m3164}}, io.EOF},
		{"oversize line at EOF", big + "yz", 100, []result{{err: ErrOversize}}, io.EOF},
		{"oversize octet at EOF", "500 abc", 100, []result{{err: ErrOversize}}, io.ErrUnexpectedEOF},
		{"octet count too small", "5 <13>hello\n<13>next\n", 0, ok("<13>h", "ello", "<13>next"), io.EOF},
		{"octet count too large", "16 <13>a\n<13>b\n<13>cdefgh\n" + m3164 + "\n", 0, ok("<13>a\n<13>b\n<13>", "cdefgh", m3164), io.EOF},
		{"binary junk", "\x00\x01\xff\xfe\n<13>ok\n", 0, ok("\x00\x01\xff\xfe", "<13>ok"), io.EOF},
		{"compressed", zframe(t, m5424) + zframe(t, m3164) + octet(mfwd), 0, ok(m5424, m3164, mfwd), io.EOF},
		{"plain z message", octet("zebra") + "zoo\n", 0, ok("zebra", "zoo"), io.EOF},
		{"compressed bomb", zframe(t, strings.Repeat("a", 1000)) + octet(m3164), 100, []result{{err: ErrOversize}, {frame: m3164}}, io.EOF},
		{"compressed corrupt", octet("z\x78\x9cgarbage") + octet(m3164), 0, []result{{err: ErrMalformed}, {frame: m3164}}, io.EOF},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
		"dataerr": iotest.DataErrReader,
	}
	for _, tc := range cases {
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				rd := NewReader(wrap(strings.NewReader(tc.in)), tc.maxLen)
				got, end := readAll(t, rd)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("frames\n got %v\nwant %v", got, tc.want)
				}
				if end != tc.end {
					t.Errorf("stream ended with %v, want %v", end, tc.end)
				}
				if _, err := rd.Next(); err != end {
					t.Errorf("Next after end: %v, want the same %v again", err, end)
				}
			})
		}
	}
}

func TestFramesAreNotReused(t *testing.T) {
	var in strings.Builder
	const n = 20000
	for i := range n {
		msg := fmt.Sprintf("<13>1 - h app - - - message number %d", i)
		if i%2 == 0 {
			in.WriteString(octet(msg))
		} else {
			in.WriteString(msg + "\n")
		}
	}
	rd := NewReader(iotest.HalfReader(strings.NewReader(in.String())), 0)
	var kept [][]byte
	for {
		msg, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if cap(msg) != len(msg) {
			t.Fatalf("frame has spare capacity %d: an append would write into the reader's slab", cap(msg)-len(msg))
		}
		kept = append(kept, msg)
	}
	if len(kept) != n {
		t.Fatalf("got %d frames, want %d", len(kept), n)
	}
	for i, msg := range kept {
		if want := fmt.Sprintf("<13>1 - h app - - - message number %d", i); string(msg) != want {
			t.Fatalf("frame %d changed after later reads: %q", i, msg)
		}
	}
}

// countingReader yields size bytes of filler without holding them.
type countingReader struct {
	prefix []byte
	left   int64
	suffix []byte
}

func (c *countingReader) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	if c.left > 0 {
		n := int(min(int64(len(p)), c.left))
		for i := range p[:n] {
			p[i] = 'x'
		}
		c.left -= int64(n)
		return n, nil
	}
	if len(c.suffix) > 0 {
		n := copy(p, c.suffix)
		c.suffix = c.suffix[n:]
		return n, nil
	}
	return 0, io.EOF
}

func TestOversizeIsNotBuffered(t *testing.T) {
	const size = 10 << 20
	for _, mode := range []string{"octet", "lf"} {
		t.Run(mode, func(t *testing.T) {
			mk := func() io.Reader {
				c := &countingReader{left: size, suffix: []byte(m3164 + "\n")}
				if mode == "octet" {
					c.prefix = []byte(fmt.Sprintf("%d ", size))
				} else {
					c.suffix = []byte("\n" + m3164 + "\n")
				}
				return c
			}
			got, end := readAll(t, NewReader(mk(), 0))
			want := []result{{err: ErrOversize}, {frame: m3164}}
			if fmt.Sprint(got) != fmt.Sprint(want) || end != io.EOF {
				t.Fatalf("got %v then %v, want %v then EOF", got, end, want)
			}
			// Allocation is bounded by the slabs, far below the frame's size.
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			rd := NewReader(mk(), 0)
			for {
				if _, err := rd.Next(); err == io.EOF {
					break
				}
			}
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Fatalf("skipping a %d-byte frame allocated %d bytes", size, alloc)
			}
		})
	}
}

// errNet is a network-like error that must end the stream.
var errNet = errors.New("connection reset")

func TestReadErrorEndsStream(t *testing.T) {
	r := io.MultiReader(strings.NewReader(m3164+"\n"+octet(m5424)+"<13>cut"), iotest.ErrReader(errNet))
	got, end := readAll(t, NewReader(r, 0))
	// A line cut off by a broken connection is a fragment, not a message.
	want := append(ok(m3164, m5424), result{err: ErrMalformed})
	if fmt.Sprint(got) != fmt.Sprint(want) || end != errNet {
		t.Fatalf("got %v then %v", got, end)
	}
}

// emptyReader returns 0, nil forever, which io.Reader discourages.
type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestNoProgress(t *testing.T) {
	if _, err := NewReader(emptyReader{}, 0).Next(); err != io.ErrNoProgress {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

// TestSlabsShrinkWhenIdle checks that a trickle of small reads does not
// keep large slabs: each slab is sized for the recent reads.
func TestSlabsShrinkWhenIdle(t *testing.T) {
	var in strings.Builder
	for range 5000 {
		in.WriteString(m3164 + "\n")
	}
	big := NewReader(strings.NewReader(in.String()), 0)
	for {
		if _, err := big.Next(); err != nil {
			break
		}
	}
	if len(big.buf) < maxSlab {
		t.Errorf("bulk reads: slab of %d bytes, want it grown to %d", len(big.buf), maxSlab)
	}
	small := NewReader(iotest.OneByteReader(strings.NewReader(in.String()[:100000])), 0)
	for {
		if _, err := small.Next(); err != nil {
			break
		}
	}
	if len(small.buf) > minSlab {
		t.Errorf("one-byte reads: slab of %d bytes, want %d", len(small.buf), minSlab)
	}
}

// An octet-counted frame cut off by a broken connection, a timeout or
// shutdown is a malformed fragment (counted by the input), as an LF
// line's is; it used to come back as the bare error and go uncounted.
func TestOctetFrameCutByErrorIsMalformed(t *testing.T) {
	for _, cut := range []error{os.ErrDeadlineExceeded, net.ErrClosed, errors.New("connection reset")} {
		src := io.MultiReader(strings.NewReader("5 <13>a30 <13>partial"), iotest.ErrReader(cut))
		r := NewReader(src, 1024)
		if msg, err := r.Next(); err != nil || string(msg) != "<13>a" {
			t.Fatalf("%v: first frame %q, %v", cut, msg, err)
		}
		if _, err := r.Next(); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: cut frame gave %v, want ErrMalformed", cut, err)
		}
		if _, err := r.Next(); !errors.Is(err, cut) {
			t.Fatalf("%v: after the fragment got %v, want the connection's error", cut, err)
		}
	}
}

// trickle hands out data a few bytes per Read and records the largest
// buffer the Reader held meanwhile.
type trickle struct {
	data   []byte
	per    int
	r      *Reader
	maxBuf int
}

func (t *trickle) Read(p []byte) (int, error) {
	t.maxBuf = max(t.maxBuf, len(t.r.buf))
	if len(t.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, t.data[:min(len(t.data), t.per)])
	t.data = t.data[n:]
	return n, nil
}

// A frame that claims 60,000 bytes but arrives a few bytes at a time
// (slowloris) holds memory in proportion to what arrived, not to what it
// claims; the same frame, complete, still reads back whole.
func TestClaimedFrameMemory(t *testing.T) {
	body := strings.Repeat("x", 60000)
	tr := &trickle{data: []byte("60000 " + body[:2000]), per: 7}
	tr.r = NewReader(tr, 0)
	if _, err := tr.r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut-off frame: %v", err)
	}
	if tr.maxBuf > 32<<10 {
		t.Errorf("2,000 bytes of a claimed 60,000-byte frame held a %d-byte buffer", tr.maxBuf)
	}
	tr = &trickle{data: []byte("60000 " + body + "5 <13>x"), per: 1000}
	tr.r = NewReader(tr, 0)
	for _, want := range []string{body, "<13>x"} {
		if msg, err := tr.r.Next(); err != nil || string(msg) != want {
			t.Fatalf("got %d bytes, %v; want %d bytes", len(msg), err, len(want))
		}
	}
}
