package event

import (
	"testing"
	"time"
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
