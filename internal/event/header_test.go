package event

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/leodido/go-syslog/v4/rfc3164"
)

// fields renders a header for comparison.
type fields struct {
	Format                                Format
	PRI                                   int // -1: none
	TS, Host, App, ProcID, MsgID, SD, Msg string
}

func fieldsOf(h *Header) fields {
	f := fields{
		Format: h.Format, PRI: -1,
		TS: string(h.Timestamp()), Host: string(h.Hostname()), App: string(h.AppName()),
		ProcID: string(h.ProcID()), MsgID: string(h.MsgID()), SD: string(h.SD()), Msg: string(h.Msg()),
	}
	if h.HasPRI {
		f.PRI = int(h.PRI)
	}
	return f
}

func TestScan(t *testing.T) {
	cases := []struct {
		raw  string
		want fields
	}{
		// RFC 5424, RSYSLOG_SyslogProtocol23Format.
		{`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event`,
			fields{FormatRFC5424, 165, "2003-10-11T22:14:15.003Z", "mymachine.example.com", "evntslog", "", "ID47",
				`[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]`, "An application event"}},
		{"<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - \xef\xbb\xbf'su root' failed",
			fields{FormatRFC5424, 34, "2003-10-11T22:14:15.003Z", "mymachine", "su", "", "ID47", "", "'su root' failed"}},
		{`<13>1 - - - - - -`, fields{FormatRFC5424, 13, "", "", "", "", "", "", ""}},
		{`<13>1 - - - - - [a x="1"][b@1 y="q\"]\\"]msg`,
			fields{FormatRFC5424, 13, "", "", "", "", "", `[a x="1"][b@1 y="q\"]\\"]`, "msg"}},
		{`<13>1 2026-11-22T05:06:07Z h app 42 - [bad sd`,
			fields{FormatRFC5424, 13, "2026-11-22T05:06:07Z", "h", "app", "42", "", "", "[bad sd"}},
		{`<13>1 2026-11-22T05:06:07Z h`, fields{FormatRFC5424, 13, "2026-11-22T05:06:07Z", "h", "", "", "", "", ""}},
		// RSYSLOG_ForwardFormat.
		{`<30>2026-11-22T05:06:07.123456+00:00 web1 sshd[4242]: Accepted publickey`,
			fields{FormatForward, 30, "2026-11-22T05:06:07.123456+00:00", "web1", "sshd", "4242", "", "", "Accepted publickey"}},
		{`<30>2026-11-22T05:06:07+01:00 web1 postfix/smtpd[77]: connect`,
			fields{FormatForward, 30, "2026-11-22T05:06:07+01:00", "web1", "postfix", "77", "", "", "connect"}},
		// RFC 3164, RSYSLOG_TraditionalForwardFormat.
		{`<13>Nov 22 05:06:07 host app: hello world`,
			fields{FormatRFC3164, 13, "Nov 22 05:06:07", "host", "app", "", "", "", "hello world"}},
		{`<13>Nov  2 05:06:07 host app[1]:hello`,
			fields{FormatRFC3164, 13, "Nov  2 05:06:07", "host", "app", "1", "", "", "hello"}},
		{`<13>Nov 2 05:06:07 host kernel: [  1.0] x`,
			fields{FormatRFC3164, 13, "Nov 2 05:06:07", "host", "kernel", "", "", "", "[  1.0] x"}},
		{`<13>Nov 22 05:06:07 app: no hostname`,
			fields{FormatRFC3164, 13, "Nov 22 05:06:07", "", "app", "", "", "", "no hostname"}},
		{`<13>Nov 22 05:06:07 host app no colon`,
			fields{FormatRFC3164, 13, "Nov 22 05:06:07", "host", "app", "", "", "", "no colon"}},
		{`<13>Nov 22 05:06:07 host`, fields{FormatRFC3164, 13, "Nov 22 05:06:07", "host", "", "", "", "", ""}},
		{`<13>Nov 22 05:06:07 10.0.0.1 app[x y]: m`,
			fields{FormatRFC3164, 13, "Nov 22 05:06:07", "10.0.0.1", "app", "", "", "", "y]: m"}},
		// No timestamp, no PRI, junk.
		{`<13>app: only a tag`, fields{FormatUnknown, 13, "", "", "app", "", "", "", "only a tag"}},
		{`hello world`, fields{FormatUnknown, -1, "", "hello", "world", "", "", "", ""}},
		{`<13>no timestamp here: at all`, fields{FormatUnknown, 13, "", "no", "timestamp", "", "", "", "here: at all"}},
		{`<13> Nov 22 05:06:07 host app: procurve`, fields{FormatRFC3164, 13, "Nov 22 05:06:07", "host", "app", "", "", "", "procurve"}},
		{`Nov 22 05:06:07 host app: no pri`, fields{FormatRFC3164, -1, "Nov 22 05:06:07", "host", "app", "", "", "", "no pri"}},
		{`<999>1 x`, fields{FormatUnknown, -1, "", "", "<999>1", "", "", "", "x"}},
		{`<13>`, fields{FormatUnknown, 13, "", "", "", "", "", "", ""}},
		{``, fields{FormatUnknown, -1, "", "", "", "", "", "", ""}},
		{"<13>\xff\xfe: bin", fields{FormatUnknown, 13, "", "", "", "", "", "", "bin"}},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			h := Scan([]byte(tc.raw))
			if got := fieldsOf(&h); got != tc.want {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestFacilitySeverity(t *testing.T) {
	h := Scan([]byte("<191>1 - - - - - - x"))
	if h.Facility() != 23 || h.Severity() != 7 || FacilityName(h.Facility()) != "local7" || SeverityName(h.Severity()) != "debug" {
		t.Fatalf("PRI 191: facility %d %s severity %d %s", h.Facility(), FacilityName(h.Facility()), h.Severity(), SeverityName(h.Severity()))
	}
}

func TestHeaderViewsAreCapped(t *testing.T) {
	raw := []byte("<13>1 - host app - - - msg")
	e := New(raw)
	host := e.Header().Hostname()
	_ = append(host, 'X')
	if string(raw) != "<13>1 - host app - - - msg" {
		t.Fatalf("appending to a header view wrote into Raw: %q", raw)
	}
}

func TestHeaderAllocs(t *testing.T) {
	raws := []string{
		`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event`,
		`<30>2026-11-22T05:06:07.123456+00:00 web1 sshd[4242]: Accepted publickey`,
		`<13>Nov 22 05:06:07 host app: hello world`,
	}
	for _, raw := range raws {
		b := []byte(raw)
		if n := testing.AllocsPerRun(100, func() { h := Scan(b); _ = h }); n != 0 {
			t.Errorf("Scan(%q): %v allocs", raw, n)
		}
		e := New(b)
		if n := testing.AllocsPerRun(100, func() { _ = e.Header().AppName() }); n != 0 {
			t.Errorf("Header(%q): %v allocs", raw, n)
		}
	}
}

func TestSyslogFullParse(t *testing.T) {
	e := New([]byte(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event`))
	m, err := e.Syslog()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%T", m); !strings.Contains(got, "rfc5424") {
		t.Fatalf("RFC 5424 event parsed as %s", got)
	}
	m2, _ := e.Syslog()
	if m2 != m {
		t.Fatal("full parse not memoised")
	}
	e3164 := New([]byte(`<13>Nov 22 05:06:07 host app[1]: hello`))
	m, err = e3164.Syslog()
	if err != nil || m == nil || !m.Valid() {
		t.Fatalf("RFC 3164 parse: %v %v", m, err)
	}
	fwd := New([]byte(`<30>2026-11-22T05:06:07.123456+00:00 web1 sshd[4242]: Accepted`))
	m, err = fwd.Syslog()
	if err != nil {
		t.Fatal(err)
	}
	b := m.(*rfc3164.SyslogMessage)
	if b.Timestamp == nil || b.Timestamp.Nanosecond() != 123456000 || *b.Appname != "sshd" || *b.ProcID != "4242" || *b.Message != "Accepted" {
		t.Fatalf("forward format full parse: %+v", b)
	}
}

// TestHeaderConcurrent lets outputs encode one event from several
// goroutines at once; run with -race.
func TestHeaderConcurrent(t *testing.T) {
	for range 50 {
		e := New([]byte(`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="c"] msg`))
		var wg sync.WaitGroup
		out := make([]string, 4)
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = string(e.AppendJSON(nil)) + string(e.Header().AppName())
			}()
		}
		wg.Wait()
		for _, o := range out[1:] {
			if o != out[0] {
				t.Fatalf("concurrent encodings differ:\n%s\n%s", out[0], o)
			}
		}
	}
}
