package frame

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// loopReader replays one buffer forever, as a busy connection would.
type loopReader struct {
	buf []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.buf[l.off:])
	l.off = (l.off + n) % len(l.buf)
	return n, nil
}

// msg200 is a 200-byte RFC 5424 message like rsyslog's
// RSYSLOG_SyslogProtocol23Format produces.
func msg200(i int) string {
	m := fmt.Sprintf("<134>1 2026-11-22T05:06:07.123456+00:00 web-%02d.example.com nginx %d - - GET /index.html 200 ", i%100, 1000+i%9000)
	return m + strings.Repeat("x", 200-len(m))
}

func BenchmarkReader(b *testing.B) {
	for _, mode := range []string{"octet", "lf", "mixed"} {
		b.Run("framing="+mode, func(b *testing.B) {
			var in strings.Builder
			for i := range 1000 {
				m := msg200(i)
				if mode == "octet" || (mode == "mixed" && i%2 == 0) {
					in.WriteString(octet(m))
				} else {
					in.WriteString(m + "\n")
				}
			}
			rd := NewReader(&loopReader{buf: []byte(in.String())}, 0)
			b.SetBytes(200)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if msg, err := rd.Next(); err != nil || len(msg) != 200 {
					b.Fatalf("%q %v", msg, err)
				}
			}
		})
	}
}

// BenchmarkBufioScanner is the baseline for LF framing: bufio.Scanner
// lines, copied so the caller may keep them as it may keep our frames.
func BenchmarkBufioScanner(b *testing.B) {
	var in strings.Builder
	for i := range 1000 {
		in.WriteString(msg200(i) + "\n")
	}
	sc := bufio.NewScanner(&loopReader{buf: []byte(in.String())})
	b.SetBytes(200)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !sc.Scan() {
			b.Fatal(sc.Err())
		}
		if msg := bytes.Clone(sc.Bytes()); len(msg) != 200 {
			b.Fatalf("%q", msg)
		}
	}
}
