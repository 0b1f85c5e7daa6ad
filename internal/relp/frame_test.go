package relp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReaderFrames(t *testing.T) {
	in := string(AppendFrame(nil, 1, CmdOpen, []byte(librelpOffers))) +
		"2 syslog 11 hello world\n" +
		"3 syslog 5 line\n\n" + // data ending in LF: the LF is data
		"4 close 0\n" +
		"0 serverclose 0\n" +
		"999999999 syslog 1 x\n"
	want := []Frame{
		{1, CmdOpen, []byte(librelpOffers)},
		{2, CmdSyslog, []byte("hello world")},
		{3, CmdSyslog, []byte("line\n")},
		{4, CmdClose, nil},
		{0, CmdServerclose, nil},
		{MaxTxnr, CmdSyslog, []byte("x")},
	}
	for _, mode := range []string{"whole", "one byte at a time"} {
		var r io.Reader = strings.NewReader(in)
		if mode != "whole" {
			r = iotest.OneByteReader(r)
		}
		rd := NewReader(r, 1024)
		for i, w := range want {
			f, err := rd.Next()
			if err != nil {
				t.Fatalf("%s: frame %d: %v", mode, i, err)
			}
			if f.Txnr != w.Txnr || f.Command != w.Command || !bytes.Equal(f.Data, w.Data) {
				t.Fatalf("%s: frame %d = %d %q %q, want %d %q %q", mode, i, f.Txnr, f.Command, f.Data, w.Txnr, w.Command, w.Data)
			}
		}
		if _, err := rd.Next(); err != io.EOF {
			t.Fatalf("%s: after the last frame: %v, want io.EOF", mode, err)
		}
	}
}

// librelpOffers is the data of librelp 1.11's "open".
const librelpOffers = "relp_version=0\nrelp_software=http://librelp.adiscon.com,1.11.0,librelp\ncommands=syslog"

func TestReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		reason   Reason
		sentinel error
		txnr     int
	}{
		{"junk", "hello world\n", ReasonTxnr, ErrBadTxnr, 0},
		{"non-numeric txnr", "1x syslog 1 a\n", ReasonTxnr, ErrBadTxnr, 0},
		{"txnr of 10 digits", "1000000000 syslog 1 a\n", ReasonTxnr, ErrBadTxnr, 0},
		{"no command", "1  1 a\n", ReasonCommand, ErrBadCommand, 1},
		{"digit in command", "1 sys1og 1 a\n", ReasonCommand, ErrBadCommand, 1},
		{"command of 33 letters", "1 " + strings.Repeat("a", 33) + " 1 a\n", ReasonCommand, ErrBadCommand, 1},
		{"datalen not a number", "5 syslog x a\n", ReasonDatalen, ErrBadDatalen, 5},
		{"datalen of 10 digits", "5 syslog 1234567890 a\n", ReasonDatalen, ErrBadDatalen, 5},
		{"datalen beyond the limit", "7 syslog 999999999 a\n", ReasonOversize, ErrOversize, 7},
		{"no space after datalen", "5 syslog 3x abc\n", ReasonDatalen, ErrBadDatalen, 5},
		{"missing trailer", "8 syslog 3 abcd\n", ReasonTrailer, ErrNoTrailer, 8},
		{"missing trailer after datalen 0", "8 close 0 \n", ReasonTrailer, ErrNoTrailer, 8},
		{"cut in the data", "9 syslog 10 abc", ReasonTruncated, ErrTruncated, 9},
		{"cut in the header", "9 sysl", ReasonTruncated, ErrTruncated, 9},
		{"cut in the txnr", "12", ReasonTruncated, ErrTruncated, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tc.in), 1024).Next()
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FrameError", err)
			}
			if fe.Reason != tc.reason || fe.Txnr != tc.txnr || !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v (reason %s, txnr %d), want reason %s, txnr %d, %v", err, fe.Reason, fe.Txnr, tc.reason, tc.txnr, tc.sentinel)
			}
		})
	}
}

func TestNextTxnrWraps(t *testing.T) {
	if NextTxnr(1) != 2 || NextTxnr(MaxTxnr-1) != MaxTxnr || NextTxnr(MaxTxnr) != 1 {
		t.Fatalf("NextTxnr: 1→%d, %d→%d, %d→%d", NextTxnr(1), MaxTxnr-1, NextTxnr(MaxTxnr-1), MaxTxnr, NextTxnr(MaxTxnr))
	}
}

func TestAppendFrameRoundTrip(t *testing.T) {
	var b []byte
	b = AppendOK(b, 5)
	b = AppendError(b, 6, strings.Repeat("x", 100))
	b = AppendServerclose(b)
	if !strings.HasPrefix(string(b), "5 rsp 6 200 OK\n6 rsp 84 500 "+strings.Repeat("x", 80)+"\n0 serverclose 0\n") {
		t.Fatalf("%q", b)
	}
}

func TestParseOffers(t *testing.T) {
	offers, err := ParseOffers([]byte("relp_version=0\nrelp_software=http://librelp.adiscon.com,1.11.0,librelp\ncommands=syslog"))
	if err != nil || len(offers) != 3 || offers[1].Values[1] != "1.11.0" || offers[2].Values[0] != "syslog" {
		t.Fatalf("%+v %v", offers, err)
	}
	answer, err := negotiate(offers, []string{"relay", "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := "200 OK\nrelp_version=0\nrelp_software=relay,1.0\ncommands=syslog"
	if string(answer) != want {
		t.Fatalf("answer %q, want %q", answer, want)
	}
	// A newer client is answered with our version; librelp accepts a
	// lower one.
	offers, _ = ParseOffers([]byte("relp_version=7\ncommands=syslog,eventlog"))
	if answer, err := negotiate(offers, []string{"r"}); err != nil || !strings.Contains(string(answer), "relp_version=0\n") {
		t.Fatalf("%q %v", answer, err)
	}
	for _, bad := range []string{
		"commands=syslog",                   // no relp_version
		"relp_version=x\ncommands=syslog",   // not a number
		"relp_version=0\ncommands=eventlog", // no syslog
		"relp_version=0",                    // no commands at all
	} {
		offers, err := ParseOffers([]byte(bad))
		if err == nil {
			_, err = negotiate(offers, []string{"r"})
		}
		if !errors.Is(err, ErrOffers) {
			t.Errorf("%q: %v, want ErrOffers", bad, err)
		}
	}
	if _, err := ParseOffers([]byte(strings.Repeat("x", 33) + "=1")); !errors.Is(err, ErrOffers) {
		t.Errorf("long name: %v", err)
	}
}
