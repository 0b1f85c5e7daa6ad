package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// collect reads every outcome of r, checking the per-frame invariants.
func collect(t *testing.T, r *Reader, maxLen, inLen int) []result {
	var out []result
	// Each call consumes at least one input byte or ends the stream; a
	// 'z' frame yields one result per input frame too.
	for calls := 0; ; calls++ {
		if calls > inLen+2 {
			t.Fatalf("no progress: %d calls for %d input bytes", calls, inLen)
		}
		msg, err := r.Next()
		switch {
		case err == nil:
			if len(msg) == 0 || len(msg) > maxLen {
				t.Fatalf("frame of %d bytes, want 1..%d", len(msg), maxLen)
			}
			out = append(out, result{frame: string(msg)})
		case errors.Is(err, ErrOversize), errors.Is(err, ErrMalformed):
			if msg != nil {
				t.Fatalf("frame %q returned with %v", msg, err)
			}
			out = append(out, result{err: errors.Unwrap(err)})
		case err == io.EOF, err == io.ErrUnexpectedEOF:
			return append(out, result{err: err})
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
}

// FuzzReader checks that the reader never panics, never returns a frame
// longer than maxLen, always makes progress, and frames the same way
// however the stream is split into reads.
func FuzzReader(f *testing.F) {
	f.Add([]byte(m5424+"\n"+octet(m3164)+mfwd+"\r\n"), uint16(0))
	f.Add([]byte(zframe(f, m5424)+octet("zebra")+"\n\n"), uint16(40))
	f.Add([]byte("12345678901 x<13>y\n99999 abc"), uint16(10))
	f.Add([]byte("5 ab\ncd\n7"), uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		maxLen := int(max)
		if maxLen == 0 {
			maxLen = DefaultMaxLen
		}
		whole := collect(t, NewReader(bytes.NewReader(in), maxLen), maxLen, len(in))
		bytewise := collect(t, NewReader(iotest.OneByteReader(bytes.NewReader(in)), maxLen), maxLen, len(in))
		if len(whole) != len(bytewise) {
			t.Fatalf("whole reads gave %v, one-byte reads %v", whole, bytewise)
		}
		for i := range whole {
			if whole[i] != bytewise[i] {
				t.Fatalf("result %d: whole reads gave %v, one-byte reads %v", i, whole[i], bytewise[i])
			}
		}
	})
}
