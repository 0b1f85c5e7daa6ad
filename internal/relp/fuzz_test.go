package relp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// fuzzSeeds are frame streams: a librelp session, and the bad inputs of
// the issue.
func fuzzSeeds() [][]byte {
	session := AppendFrame(nil, 1, CmdOpen, []byte(librelpOffers))
	session = AppendFrame(session, 2, CmdSyslog, []byte("<13>1 2026-01-01T00:00:00Z h app - - - hello"))
	session = AppendFrame(session, 3, CmdSyslog, []byte("line\n"))
	session = AppendFrame(session, 4, CmdClose, nil)
	return [][]byte{
		session,
		[]byte("hello world\n"),
		[]byte("1 syslog 5 early\n"),
		[]byte("1 syslog 999999999 x\n"),
		[]byte("x1 open 0\n"),
		[]byte("1 open 3 abcX"),
		[]byte("999999999 syslog 1 a\n1 syslog 1 b\n"),
		[]byte("1 open 0\n2 open 0\n"),
	}
}

// FuzzReader: whatever the bytes, the Reader never panics, never returns
// more data than its limit, reads the same frames however the stream is
// cut, and every frame it returns encodes back to bytes it parses again
// to the same frame.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 64
		whole := NewReader(bytes.NewReader(b), limit)
		bytewise := NewReader(iotest.OneByteReader(bytes.NewReader(b)), limit)
		for {
			f1, err1 := whole.Next()
			f2, err2 := bytewise.Next()
			if (err1 == nil) != (err2 == nil) || f1.Txnr != f2.Txnr || f1.Command != f2.Command || !bytes.Equal(f1.Data, f2.Data) {
				t.Fatalf("whole %+v %v, one byte at a time %+v %v", f1, err1, f2, err2)
			}
			if err1 != nil {
				var fe1, fe2 *FrameError
				if errors.As(err1, &fe1) != errors.As(err2, &fe2) || (fe1 != nil && (fe1.Reason != fe2.Reason || fe1.Txnr != fe2.Txnr)) {
					t.Fatalf("errors differ: %v / %v", err1, err2)
				}
				if fe1 == nil && err1 != io.EOF {
					t.Fatalf("non-frame error %v", err1)
				}
				return
			}
			if len(f1.Data) > limit || f1.Txnr < 0 || f1.Txnr > MaxTxnr {
				t.Fatalf("frame out of bounds: %+v", f1)
			}
			again, err := NewReader(bytes.NewReader(AppendFrame(nil, f1.Txnr, f1.Command, f1.Data)), limit).Next()
			if err != nil || again.Txnr != f1.Txnr || again.Command != f1.Command || !bytes.Equal(again.Data, f1.Data) {
				t.Fatalf("round trip %+v -> %+v %v", f1, again, err)
			}
		}
	})
}

// FuzzParseOffers: offers that parse encode back to offers that parse the
// same; nothing panics.
func FuzzParseOffers(f *testing.F) {
	f.Add([]byte(librelpOffers))
	f.Add([]byte("relp_version=0\ncommands=syslog,eventlog\n\nx"))
	f.Add([]byte("=\n,,,=,"))
	f.Fuzz(func(t *testing.T, b []byte) {
		offers, err := ParseOffers(b)
		if err != nil {
			return
		}
		again, err := ParseOffers(AppendOffers(nil, offers))
		if err != nil || len(again) != len(offers) {
			t.Fatalf("%q: %+v -> %+v %v", b, offers, again, err)
		}
		for i := range offers {
			if offers[i].Name != again[i].Name || len(offers[i].Values) != len(again[i].Values) {
				t.Fatalf("%q: offer %d: %+v -> %+v", b, i, offers[i], again[i])
			}
		}
		_, _ = negotiate(offers, []string{"relay"})
	})
}

// FuzzSession feeds a server session arbitrary client bytes. Whatever
// they are, the session ends in bounded time, its answers are well-formed
// frames in increasing transaction order, and a frame delivered as an
// event is never answered 500.
func FuzzSession(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// What the server parses, as our own Reader sees it.
		var parsed []Frame
		for rd := NewReader(bytes.NewReader(b), 64); ; {
			fr, err := rd.Next()
			if err != nil {
				break
			}
			parsed = append(parsed, fr)
		}
		srv := NewServer(Config{MaxMessageSize: 64, AckTimeout: time.Second, WriteTimeout: time.Second}, func([]*event.Event) {})
		client, server := tcpPair(t)
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), server) }()
		go func() {
			_, _ = client.Write(b)
			_ = client.(*net.TCPConn).CloseWrite()
		}()
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		rd := NewReader(client, 1<<20)
		last := 0
		for {
			fr, err := rd.Next()
			if err != nil {
				break
			}
			switch {
			case fr.Command == CmdServerclose && fr.Txnr == 0:
				continue
			case fr.Command != CmdRsp:
				t.Fatalf("server sent %q", fr.Command)
			case fr.Txnr <= last:
				t.Fatalf("answer %d after %d", fr.Txnr, last)
			case bytes.HasPrefix(fr.Data, []byte("500")) && fr.Txnr <= len(parsed) && parsed[fr.Txnr-1].Command == CmdSyslog:
				t.Fatalf("500 to syslog frame %d, which parsed: %q", fr.Txnr, parsed[fr.Txnr-1].Data)
			}
			last = fr.Txnr
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end")
		}
	})
}
