package input

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// sendUnix writes messages into rsyslogd's imuxsock socket. A unix
// datagram sender blocks while the socket is full, so nothing is lost.
func sendUnix(t *testing.T, r *testpeer.Rsyslogd, path string, msgs []string) {
	t.Helper()
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("rsyslogd input socket "+path), func() bool {
		if r.Exited() {
			t.Fatalf("rsyslogd exited:\n%s", r.Output())
		}
		_, err := os.Stat(path)
		return err == nil
	})
	conn, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, m := range msgs {
		mustWrite(t, conn, m)
	}
}

// rsyslogForward runs rsyslogd with an imuxsock input and the given
// forwarding action (with DIR and PORT replaced), sends n messages
// through it and checks that each arrives at the input exactly once.
func rsyslogForward(t *testing.T, s *Syslog, c *collector, dir, globals, preamble, action string) {
	t.Helper()
	port := ""
	for _, a := range s.Addrs() {
		switch a := a.(type) {
		case *net.TCPAddr:
			port = fmt.Sprint(a.Port)
		case *net.UDPAddr:
			port = fmt.Sprint(a.Port)
		}
	}
	action = strings.ReplaceAll(action, "PORT", port)
	conf := fmt.Sprintf(`
global(workDirectory="DIR" %s)
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="DIR/in.sock" RateLimit.Interval="0" ruleset="fwd")
%s
ruleset(name="fwd") {
  %s
}
`, globals, preamble, action)
	r := testpeer.StartRsyslogdConf(t, dir, strings.ReplaceAll(conf, "DIR", dir), "")

	const n = 1000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>Nov 22 05:00:00 fwdtest: msg-%04d.", i)
	}
	sendUnix(t, r, filepath.Join(dir, "in.sock"), msgs)
	testpeer.Eventually(t, 60*time.Second, testpeer.Text("1000 events through rsyslogd"), func() bool { return c.len() >= n })
	seen := map[string]int{}
	for _, r := range c.raws() {
		i := strings.Index(r, "msg-")
		if i < 0 || !strings.HasPrefix(r, "<13>1 ") {
			t.Fatalf("unexpected event %q", r)
		}
		seen[r[i:i+9]]++
	}
	for i := range n {
		if k := fmt.Sprintf("msg-%04d.", i); seen[k] != 1 {
			t.Errorf("%s seen %d times", k, seen[k])
		}
	}
	if st := s.Stats(); st.HandshakeErrors != 0 || st.Malformed != 0 || st.Received != n {
		t.Errorf("stats = %+v", st)
	}
}

// TestRsyslogForward sends 1000 messages through rsyslogd's omfwd (TCP
// with both framings, UDP) and omuxsock, and expects every one.
func TestRsyslogForward(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd peer")
	}
	const tmpl = `template="RSYSLOG_SyslogProtocol23Format"`
	for _, tc := range []struct{ name, listen, preamble, action string }{
		{"tcp_octet", "tcp://127.0.0.1:0", "", `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="tcp" TCP_Framing="octet-counted" ` + tmpl + `)`},
		{"tcp_lf", "tcp://127.0.0.1:0", "", `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="tcp" ` + tmpl + `)`},
		// rsyslog's compressed "z" frames (zlib), inflated by internal/frame.
		{"tcp_zip", "tcp://127.0.0.1:0", "", `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="tcp" TCP_Framing="octet-counted" ZipLevel="9" compression.mode="single" ` + tmpl + `)`},
		{"udp", "udp://127.0.0.1:0", "", `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="udp" ` + tmpl + `)`},
		// omuxsock 8.2302 takes legacy configuration only.
		{"omuxsock", "unix://DIR/relay.sock", "$ModLoad omuxsock\n$OMUxSockSocket DIR/relay.sock", "*.* :omuxsock:;RSYSLOG_SyslogProtocol23Format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, c := startSyslog(t, SyslogConfig{Listen: []string{strings.ReplaceAll(tc.listen, "DIR", dir)}})
			rsyslogForward(t, s, c, dir, "", tc.preamble, tc.action)
		})
	}
}

// TestRsyslogGTLS sends 1000 messages through rsyslogd's omfwd with the
// gtls stream driver, in anon mode and with x509/name and a client
// certificate, and expects every one.
func TestRsyslogGTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd peer")
	}
	testpeer.NeedRsyslogModules(t, `global(DefaultNetstreamDriver="gtls")`)
	for _, mode := range []string{"anon", "x509/name"} {
		t.Run(strings.ReplaceAll(mode, "/", "_"), func(t *testing.T) {
			p := newTestPKI(t)
			clientAuth, clientCA := "none", ""
			globals := fmt.Sprintf(`DefaultNetstreamDriverCAFile="%s"`, p.ca)
			auth := `StreamDriverAuthMode="anon"`
			if mode == "x509/name" {
				clientAuth, clientCA = "require", p.ca
				globals += fmt.Sprintf(` DefaultNetstreamDriverCertFile="%s" DefaultNetstreamDriverKeyFile="%s"`, p.clientCert, p.clientKey)
				auth = `StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="relay.test"`
			}
			srv, err := LoadTLS(p.serverCert, p.serverKey, clientCA, clientAuth)
			if err != nil {
				t.Fatal(err)
			}
			s, c := startSyslog(t, SyslogConfig{Listen: []string{"tls://127.0.0.1:0"}, TLS: srv})
			rsyslogForward(t, s, c, p.dir, globals, "", `action(type="omfwd" target="127.0.0.1" port="PORT" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         StreamDriver="gtls" StreamDriverMode="1" `+auth+`
         action.resumeRetryCount="-1" action.resumeInterval="1")`)
		})
	}
}
