package event

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/frame"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// rsyslogInputs are fed to a real rsyslogd, which forwards them in its
// three standard formats; each must scan to what rsyslog itself parsed.
var rsyslogInputs = []string{
	`<13>Nov 22 05:06:07 host1 app1[123]: hello world`,
	`<34>1 2026-11-22T05:06:07.123Z host2 app2 42 ID7 [ex@32473 a="b" c="d\"e"] structured`,
	`<165>1 2026-11-22T05:06:07Z host2b app2b - - - nil procid`,
	`<165>1 2026-11-22T05:06:07Z host2c postfix/smtpd 12 - - slash in app-name`,
	"<165>1 2026-11-22T05:06:07Z host2d app - - [a@1 x=\"1\"][b@2 y=\"\\]\\\\\"] \xef\xbb\xbfBOM and two elements",
	`<165>Nov  2 05:06:07 host3 postfix/smtpd[77]: connect from x`,
	`<14>Nov 22 05:06:07 host4 kernel: [ 1.0] no pid`,
	`<30>2026-11-22T05:06:07.123456+01:00 host5 sshd[9]: Accepted`,
	`<191>Nov 22 05:06:07 host6 tagnocolon message text`,
	`<0>Nov 22 05:06:07 host7 app7: unicode ünïcødé`,
	`<86>Nov 22 05:06:07 host8 app8:no space`,
	`<11>Nov 22 05:06:07 host9 app9[]: empty pid`,
	`<13>no timestamp here: at all`,
	`hello world without pri`,
	`<13>Nov 22 05:06:07 host- app: bad hostname`,
	`<13>Nov 22 05:06:07 my_host.example.com app[12]: underscore`,
	`<13>2026-11-22T05:06:07Z host x/y: slash`,
	`<13>Nov 22 05:06:07 192.168.1.1 app[1]:`,
	`<13>Nov 22 05:06:07 host app[1 2]: space in pid`,
}

func init() {
	// Every facility and severity, to check their names against rsyslog's.
	for f := range 24 {
		rsyslogInputs = append(rsyslogInputs, fmt.Sprintf("<%d>Nov 22 05:06:07 h%d app: facility %d", f*8+f%8, f, f))
	}
}

// rsyslogTruth is what rsyslog parsed, one line per message. AppName must
// match %app-name%: the APP-NAME of RFC 5424, the programname otherwise.
const rsyslogTruth = `%structured-data%\t%app-name%\t%programname%\t%hostname%\t%syslogfacility-text%\t%syslogseverity-text%\t%procid%\t%msgid%\t%msg%\n`

type truth struct{ sd, app, programname, host, facility, severity, procID, msgID, msg string }

// scanned is what Scan found in h, as a truth; programname is rsyslog's
// own notion, which Scan has no field for.
func scanned(h Header, programname string) truth {
	return truth{
		sd: string(h.SD()), app: string(h.AppName()), programname: programname, host: string(h.Hostname()),
		facility: FacilityName(h.Facility()), severity: SeverityName(h.Severity()),
		procID: string(h.ProcID()), msgID: string(h.MsgID()), msg: string(h.Msg()),
	}
}

// expected is tr with rsyslog's "-" for an absent PROCID, MSGID or
// STRUCTURED-DATA as Scan's empty value.
func expected(tr truth) truth {
	nil2empty := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	tr.procID, tr.msgID, tr.sd = nil2empty(tr.procID), nil2empty(tr.msgID), nil2empty(tr.sd)
	return tr
}

// collector accepts one connection (omfwd's) and keeps its frames.
type collector struct {
	ln     net.Listener
	mu     sync.Mutex
	frames []string
	errs   []error
}

func newCollector(t *testing.T) *collector {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		rd := frame.NewReader(conn, 0)
		for {
			msg, err := rd.Next()
			c.mu.Lock()
			if err != nil {
				c.errs = append(c.errs, err)
			} else {
				c.frames = append(c.frames, string(msg))
			}
			c.mu.Unlock()
			if err != nil && !strings.Contains(err.Error(), "frame") {
				return
			}
		}
	}()
	return c
}

func (c *collector) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

func (c *collector) snapshot() ([]string, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.frames...), append([]error(nil), c.errs...)
}

// TestRealRsyslogFormats runs rsyslogd 8.2302: it receives rsyslogInputs
// on imtcp and forwards them with RSYSLOG_SyslogProtocol23Format,
// RSYSLOG_ForwardFormat (octet-counted) and
// RSYSLOG_TraditionalForwardFormat to three listeners here, and writes
// its own parse to a file. Every forwarded message must scan to the
// fields rsyslog parsed.
func TestRealRsyslogFormats(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd test")
	}
	dir := t.TempDir()
	formats := []struct {
		template string
		framing  string
		want     Format
		c        *collector
	}{
		{"RSYSLOG_SyslogProtocol23Format", "traditional", FormatRFC5424, newCollector(t)},
		{"RSYSLOG_ForwardFormat", "octet-counted", FormatForward, newCollector(t)},
		{"RSYSLOG_TraditionalForwardFormat", "traditional", FormatRFC3164, newCollector(t)},
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "global(workDirectory=%q)\n", dir)
	fmt.Fprintf(&conf, "module(load=\"imtcp\")\n")
	fmt.Fprintf(&conf, "template(name=\"truth\" type=\"string\" string=\"%s\")\n", rsyslogTruth)
	fmt.Fprintf(&conf, "input(type=\"imtcp\" port=\"0\" listenPortFileName=%q ruleset=\"fwd\")\n", filepath.Join(dir, "port"))
	fmt.Fprintf(&conf, "ruleset(name=\"fwd\") {\n")
	fmt.Fprintf(&conf, "  action(type=\"omfile\" file=%q template=\"truth\")\n", filepath.Join(dir, "truth.log"))
	for _, f := range formats {
		fmt.Fprintf(&conf, "  action(type=\"omfwd\" target=\"127.0.0.1\" port=\"%d\" protocol=\"tcp\" tcp_framing=%q template=%q)\n",
			f.c.port(), f.framing, f.template)
	}
	fmt.Fprintf(&conf, "}\n")
	r := testpeer.StartRsyslogdConf(t, dir, conf.String(), filepath.Join(dir, "port"))
	conn := r.Dial(t)
	for _, in := range rsyslogInputs {
		fmt.Fprintf(conn, "%s\n", in)
	}
	conn.Close()

	n := len(rsyslogInputs)
	var truths []truth
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("rsyslog parsed %d of %d messages; rsyslogd: %s", len(truths), n, r.Output())
	}, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "truth.log"))
		truths = truths[:0]
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			p := strings.SplitN(sc.Text(), "\t", 9)
			if len(p) == 9 {
				truths = append(truths, truth{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]})
			}
		}
		return len(truths) == n
	})
	// The inputs themselves must scan the way rsyslog parsed them.
	t.Run("inputs", func(t *testing.T) {
		for i, raw := range rsyslogInputs {
			tr := truths[i]
			h := Scan([]byte(raw))
			got, want := scanned(h, tr.programname), expected(tr)
			if h.Format != FormatRFC5424 {
				want.msg = strings.TrimPrefix(tr.msg, " ")
			}
			// rsyslog fills in what the message lacks: the sender's
			// address as hostname, user.notice as priority.
			if got.host == "" {
				want.host = ""
			}
			want.msg = strings.TrimPrefix(want.msg, "\ufeff") // Msg drops the BOM
			if !h.HasPRI {
				want.facility, want.severity = got.facility, got.severity
			}
			if got != want {
				t.Errorf("input %q (%v)\n got %+v\nwant %+v", raw, h.Format, got, want)
			}
		}
	})
	for _, f := range formats {
		t.Run(f.template, func(t *testing.T) {
			var frames []string
			testpeer.Eventually(t, 30*time.Second, func() string {
				_, errs := f.c.snapshot()
				return fmt.Sprintf("%d of %d frames arrived (errors %v)", len(frames), n, errs)
			}, func() bool {
				frames, _ = f.c.snapshot()
				return len(frames) >= n
			})
			for i, raw := range frames[:n] {
				tr := truths[i]
				h := Scan([]byte(raw))
				got, want := scanned(h, tr.programname), expected(tr)
				if f.want != FormatRFC5424 {
					// The 3164 layouts carry neither MSGID nor, after the
					// tag's ": ", the separating space of %msg%; their
					// app-name is the tag's programname ("postfix" for an
					// RFC 5424 APP-NAME "postfix/smtpd").
					want.msgID, want.sd, want.app = "", "", tr.programname
					want.msg = strings.TrimPrefix(tr.msg, " ")
				}
				want.msg = strings.TrimPrefix(want.msg, "\ufeff") // Msg drops the BOM
				if h.Format != f.want || !h.HasPRI || got != want {
					t.Errorf("input  %q\nsent   %q\nformat %v, want %v\n got %+v\nwant %+v", rsyslogInputs[i], raw, h.Format, f.want, got, want)
				}
			}
		})
	}
}
