package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse panic; a failure is always an *Error
// with at least one problem, and a success round-trips through YAML().
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(DefaultYAML)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("Parse error %T %v is not an *Error with problems", err, err)
			}
			for _, p := range cerr.Problems {
				if p.Msg == "" || p.Err == nil {
					t.Fatalf("problem without message or sentinel: %+v", p)
				}
			}
			return
		}
		y1, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		c2, err := Parse(y1, "fuzz.yaml")
		if err != nil {
			t.Fatalf("effective YAML does not parse back: %v\n%s", err, y1)
		}
		y2, err := c2.YAML()
		if err != nil || !bytes.Equal(y1, y2) {
			t.Fatalf("round trip changed the config (%v):\n%s\n---\n%s", err, y1, y2)
		}
	})
}

// FuzzParseSize: whatever parses prints back to the same size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"65536", "64KiB", "64 kib", "1MB", "2GiB", "100B", "64k", "-1", "", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		if back, err := ParseSize(n.String()); err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but its String %q reads back as %d, %v", s, n, n.String(), back, err)
		}
	})
}

// FuzzParseListen: an accepted URL has a known scheme and an address that
// parses again; ZeroMQ endpoint checks never panic.
func FuzzParseListen(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:10514", "udp://*:514", "tls://[::1]:6514", "unix:///run/relay.sock",
		"tcp://[fe80::1%eth0]:1", "127.0.0.1:514", "tcp://host", "ipc:///x", "tcp://*:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = checkZMQEndpoint(s, true)
		_ = checkZMQEndpoint(s, false)
		_ = checkHTTPListen(s)
		l, err := ParseListen(s)
		if err != nil {
			return
		}
		if l.Address == "" {
			t.Fatalf("ParseListen(%q) accepted an empty address", s)
		}
		switch l.Scheme {
		case SchemeTCP, SchemeUDP, SchemeTLS:
			if _, err := ParseListen(l.Scheme + "://" + l.Address); err != nil {
				t.Fatalf("ParseListen(%q) gave address %q that does not parse again: %v", s, l.Address, err)
			}
		case SchemeUnix:
		default:
			t.Fatalf("ParseListen(%q) accepted scheme %q", s, l.Scheme)
		}
	})
}
