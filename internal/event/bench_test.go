package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/frame"
)

var benchMsgs = map[string]string{
	"rfc5424":   `<134>1 2026-11-22T05:06:07.123456+00:00 web-01.example.com nginx 1234 - - GET /index.html 200 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`,
	"rfc5424sd": `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry with some more text to make it longer`,
	"forward":   `<30>2026-11-22T05:06:07.123456+00:00 web1.example.com sshd[4242]: Accepted publickey for alice from 192.0.2.7 port 51234 ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG`,
	"rfc3164":   `<13>Nov 22 05:06:07 web1.example.com postfix/smtpd[77]: connect from mail.example.org[192.0.2.25] xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`,
}

func BenchmarkScan(b *testing.B) {
	for name, msg := range benchMsgs {
		raw := []byte(msg)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for range b.N {
				h := Scan(raw)
				if len(h.AppName()) == 0 {
					b.Fatal("no app name")
				}
			}
		})
	}
}

// BenchmarkRoute is the router's per-event cost: a new event, the header
// scan and the app-name stream lookup.
func BenchmarkRoute(b *testing.B) {
	f, _ := ParseField("app-name")
	for name, msg := range benchMsgs {
		raw := []byte(msg)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for range b.N {
				e := New(raw)
				if s, ok := f.Get(e); !ok || s == "" {
					b.Fatal("no stream")
				}
			}
		})
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	for name, msg := range benchMsgs {
		e := New([]byte(msg))
		e.Stream, e.Input, e.Peer, e.Received = "nginx", "tcp514", "192.0.2.7:51234", time.Now()
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 2048)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for range b.N {
				buf = e.AppendJSON(buf[:0])
			}
		})
	}
}

func BenchmarkSyslogFullParse(b *testing.B) {
	for name, msg := range benchMsgs {
		raw := []byte(msg)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := New(raw).Syslog(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendJSONStdlib is the baseline for AppendJSON: encoding/json
// on a struct holding the same members.
func BenchmarkAppendJSONStdlib(b *testing.B) {
	type doc struct {
		Stream    string    `json:"stream"`
		Format    string    `json:"format"`
		Facility  uint8     `json:"facility"`
		Severity  uint8     `json:"severity"`
		Timestamp string    `json:"timestamp,omitempty"`
		Hostname  string    `json:"hostname,omitempty"`
		AppName   string    `json:"app_name,omitempty"`
		ProcID    string    `json:"proc_id,omitempty"`
		MsgID     string    `json:"msg_id,omitempty"`
		Message   string    `json:"message"`
		Input     string    `json:"input,omitempty"`
		Peer      string    `json:"peer,omitempty"`
		Received  time.Time `json:"received"`
	}
	for name, msg := range benchMsgs {
		e := New([]byte(msg))
		e.Stream, e.Input, e.Peer, e.Received = "nginx", "tcp514", "192.0.2.7:51234", time.Now()
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for range b.N {
				h := e.Header()
				d := doc{e.Stream, h.Format.String(), h.Facility(), h.Severity(), string(h.Timestamp()), string(h.Hostname()),
					string(h.AppName()), string(h.ProcID()), string(h.MsgID()), string(h.Msg()), e.Input, e.Peer, e.Received}
				if _, err := json.Marshal(&d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

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

// BenchmarkIngest is the relay's per-message cost up to the router: frame
// a 200-byte RFC 5424 message off the stream, make the event, scan its
// header and look up its app-name stream.
func BenchmarkIngest(b *testing.B) {
	f, _ := ParseField("app-name")
	for _, framing := range []string{"octet", "lf"} {
		b.Run("framing="+framing, func(b *testing.B) {
			var in []byte
			for i := range 1000 {
				m := fmt.Sprintf("<134>1 2026-11-22T05:06:07.123456+00:00 web-%02d.example.com app%d %d - - GET /index.html 200 ", i%100, i%20, 1000+i)
				m += strings.Repeat("x", 200-len(m))
				if framing == "octet" {
					in = fmt.Appendf(in, "%d %s", len(m), m)
				} else {
					in = append(append(in, m...), '\n')
				}
			}
			rd := frame.NewReader(&loopReader{buf: in}, 0)
			b.SetBytes(200)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				msg, err := rd.Next()
				if err != nil {
					b.Fatal(err)
				}
				if s, ok := f.Get(New(msg)); !ok || s == "" {
					b.Fatal("no stream")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkNew compares one allocation per event with a Slab.
func BenchmarkNew(b *testing.B) {
	raw := []byte(benchMsgs["rfc5424"])
	f, _ := ParseField("app-name")
	b.Run("alloc=each", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, ok := f.Get(New(raw)); !ok {
				b.Fatal("no stream")
			}
		}
	})
	b.Run("alloc=slab", func(b *testing.B) {
		var s Slab
		b.ReportAllocs()
		for range b.N {
			if _, ok := f.Get(s.New(raw)); !ok {
				b.Fatal("no stream")
			}
		}
	})
}
