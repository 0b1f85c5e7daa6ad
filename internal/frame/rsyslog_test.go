package frame

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// sink accepts omfwd's connections and reads their frames.
type sink struct {
	ln     net.Listener
	mu     sync.Mutex
	frames []string
	errs   []error
	wire   int // bytes received
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	s *sink
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.s.mu.Lock()
	c.s.wire += n
	c.s.mu.Unlock()
	return n, err
}

func newSink(t *testing.T) *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				rd := NewReader(countConn{conn, s}, 0)
				for {
					msg, err := rd.Next()
					s.mu.Lock()
					if err == nil {
						s.frames = append(s.frames, string(msg))
					} else if err != io.EOF {
						s.errs = append(s.errs, err)
					}
					s.mu.Unlock()
					if err != nil && !errors.Is(err, ErrOversize) && !errors.Is(err, ErrMalformed) {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *sink) snapshot() ([]string, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.frames...), append([]error(nil), s.errs...)
}

// TestRealRsyslogFraming runs rsyslogd 8.2302 and has omfwd forward the
// same messages with each framing, with and without its per-message zlib
// compression ("z" frames), to readers here. Every message must arrive
// intact. With compression rsyslog octet-counts the compressed frames even
// when told to use traditional framing, so that stream mixes both.
func TestRealRsyslogFraming(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd test")
	}
	dir := t.TempDir()
	actions := []struct {
		name, params string
		s            *sink
	}{
		{"octet-counted", `tcp_framing="octet-counted"`, newSink(t)},
		{"traditional", `tcp_framing="traditional"`, newSink(t)},
		{"octet-counted+zlib", `tcp_framing="octet-counted" ziplevel="9" compression.mode="single"`, newSink(t)},
		{"traditional+zlib", `tcp_framing="traditional" ziplevel="9" compression.mode="single"`, newSink(t)},
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "global(workDirectory=%q maxMessageSize=\"64k\")\n", dir)
	fmt.Fprintf(&conf, "module(load=\"imtcp\")\n")
	fmt.Fprintf(&conf, "template(name=\"raw\" type=\"string\" string=\"%%rawmsg%%\")\n")
	fmt.Fprintf(&conf, "input(type=\"imtcp\" port=\"0\" listenPortFileName=%q ruleset=\"fwd\")\n", filepath.Join(dir, "port"))
	fmt.Fprintf(&conf, "ruleset(name=\"fwd\") {\n")
	for _, a := range actions {
		fmt.Fprintf(&conf, "  action(type=\"omfwd\" target=\"127.0.0.1\" port=\"%d\" protocol=\"tcp\" template=\"raw\" %s)\n",
			a.s.ln.Addr().(*net.TCPAddr).Port, a.params)
	}
	fmt.Fprintf(&conf, "}\n")
	r := testpeer.StartRsyslogdConf(t, dir, conf.String(), filepath.Join(dir, "port"))

	// Short messages (rsyslog does not compress them) and long
	// compressible ones.
	var want []string
	for i := range 40 {
		body := fmt.Sprintf("msg %d", i)
		if i%3 == 0 {
			body += " " + strings.Repeat("compressible text ", 50+i*20)
		}
		want = append(want, "<13>"+body)
	}
	conn := r.Dial(t)
	for _, w := range want {
		fmt.Fprintf(conn, "%d %s", len(w), w) // octet-counted into rsyslog too
	}
	conn.Close()

	for _, a := range actions {
		t.Run(a.name, func(t *testing.T) {
			var got []string
			testpeer.Eventually(t, 30*time.Second, func() string {
				_, errs := a.s.snapshot()
				return fmt.Sprintf("%d of %d frames (errors %v); rsyslogd: %s", len(got), len(want), errs, r.Output())
			}, func() bool {
				got, _ = a.s.snapshot()
				return len(got) >= len(want)
			})
			if _, errs := a.s.snapshot(); len(errs) > 0 {
				t.Errorf("reader errors: %v", errs)
			}
			a.s.mu.Lock()
			wire := a.s.wire
			a.s.mu.Unlock()
			// The zlib actions must really have sent compressed frames.
			if strings.HasSuffix(a.name, "zlib") && wire > 10000 {
				t.Errorf("%d bytes on the wire: rsyslog did not compress", wire)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("frame %d:\n got %.80q (%d bytes)\nwant %.80q (%d bytes)", i, got[i], len(got[i]), want[i], len(want[i]))
				}
			}
		})
	}
}
