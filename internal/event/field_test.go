package event

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseFieldGet(t *testing.T) {
	const sd5424 = `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 99 ID47 [exampleSDID@32473 iut="3" eventSource="App\"x\""][origin@32473.1 ip="192.0.2.1"] An application event user=bob`
	cases := []struct {
		spec, raw string
		want      string
		ok        bool
	}{
		{"app-name", sd5424, "evntslog", true},
		{"app-name", "<13>Nov 22 05:06:07 host sshd[12]: x", "sshd", true},
		{"app-name", "<13>1 - - - - - - x", "", false},
		{"msgid", sd5424, "ID47", true},
		{"hostname", sd5424, "mymachine.example.com", true},
		{"facility", sd5424, "local4", true},
		{"facility", "<0>1 - - - - - -", "kern", true},
		{"facility", "no pri", "", false},
		{"severity", sd5424, "notice", true},
		{"severity", "<131>x", "err", true},
		{"sd:exampleSDID@32473.iut", sd5424, "3", true},
		{"sd:exampleSDID@32473.eventSource", sd5424, `App"x"`, true},
		{"sd:origin@32473.1.ip", sd5424, "192.0.2.1", true},
		{"sd:exampleSDID@32473.nope", sd5424, "", false},
		{"sd:nope.iut", sd5424, "", false},
		{"json:user", `<13>1 - - app - - - {"user":"alice","n":12}`, "alice", true},
		{"json:n", `<13>1 - - app - - - {"user":"alice","n":12}`, "12", true},
		{"json:user.name", `<13>Nov 22 05:06:07 host app: @cee: {"skip":[1,{"user":2}],"user":{"id":7,"name":"b\u00f6b \"q\""}}`, `böb "q"`, true},
		{"json:user", `<13>Nov 22 05:06:07 host app: @cee:{"user":{"id":7}}`, `{"id":7}`, true},
		{"json:a\u00e9", `<13>1 - - - - - - {"a\u00e9":true}`, "true", true},
		{"json:user", `<13>1 - - - - - - {"user":null}`, "", false},
		{"json:user", `<13>1 - - - - - - {"other":1}`, "", false},
		{"json:user", `<13>1 - - - - - - not json`, "", false},
		{"json:user.name", `<13>1 - - - - - - {"user":"flat"}`, "", false},
		{"json:user", `<13>1 - - - - - - {"user":"unterminated`, "", false},
		{"regex:user=(\\w+)", sd5424, "bob", true},
		{"regex:uid=(\\d+)", sd5424, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.spec+"/"+tc.raw, func(t *testing.T) {
			f, err := ParseField(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := f.Get(New([]byte(tc.raw)))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseFieldErrors(t *testing.T) {
	for spec, hint := range map[string]string{
		"":            "use app-name",
		"appname":     "use app-name",
		"foo:bar":     "use app-name",
		"sd:noparam":  "sd:ID.param",
		"sd:.x":       "sd:ID.param",
		"sd:id.":      "sd:ID.param",
		"sd:a b.c":    "printable ASCII",
		"json:":       "json:path",
		"json:a..b":   "empty key",
		"regex:(":     "missing closing",
		"regex:a\\d+": "capture group",
	} {
		_, err := ParseField(spec)
		if !errors.Is(err, ErrBadField) || !strings.Contains(err.Error(), hint) {
			t.Errorf("ParseField(%q) = %v, want ErrBadField mentioning %q", spec, err, hint)
		}
	}
}

func TestHeaderFieldsDoNotAllocate(t *testing.T) {
	e := New([]byte(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 99 ID47 - msg`))
	for _, spec := range []string{"app-name", "msgid", "hostname", "facility", "severity"} {
		f, _ := ParseField(spec)
		f.Get(e) // intern it
		if n := testing.AllocsPerRun(100, func() { f.Get(e) }); n != 0 {
			t.Errorf("%s: %v allocs per Get", spec, n)
		}
	}
}

func TestInternerBounded(t *testing.T) {
	in := NewInterner(16)
	a := in.Intern([]byte("sshd"))
	if b := in.Intern([]byte("sshd")); b != a || len(in.slots) != 16 {
		t.Fatalf("interned %q, %q; %d slots", a, b, len(in.slots))
	}
	for i := range 1000 {
		v := []byte(strings.Repeat("x", i%200))
		if got := in.Intern(v); got != string(v) {
			t.Fatalf("Intern(%q) = %q", v, got)
		}
	}
	if len(in.slots) != 16 {
		t.Fatalf("table grew to %d", len(in.slots))
	}
}

// TestInternerKeepsHotValues checks that a hundred stream names stay
// interned together: no allocation once they are all in. (Five of them in
// one set of four would need a 1-in-10000 hash seed.)
func TestInternerKeepsHotValues(t *testing.T) {
	in := NewInterner(defaultInternSlots)
	names := make([][]byte, 100)
	for i := range names {
		names[i] = fmt.Appendf(nil, "stream-%d", i)
		in.Intern(names[i])
	}
	if n := testing.AllocsPerRun(20, func() {
		for _, b := range names {
			in.Intern(b)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per round of 100 hot names", n)
	}
}
